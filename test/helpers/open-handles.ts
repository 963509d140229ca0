/**
 * Mocha root hook (loaded by .mocharc.json `require`): after the last test, no socket,
 * server, child process or watcher of ours may still hold the event loop. Mocha runs without
 * `exit: true`, so such a leak would otherwise show as a run that never ends; here it fails
 * with the list of what is left. Timers are not listed by _getActiveHandles (mocha's own
 * hook timer is alive here); a leaked ref'd timer still keeps mocha from exiting.
 */

/** How long handles closed by the last after-hooks get to finish closing. */
export const OPEN_HANDLES_GRACE_MS = 3_000;

interface Handle {
  constructor: { name: string };
  hasRef?: () => boolean;
  pid?: number;
  spawnfile?: string;
  remoteAddress?: string;
  remotePort?: number;
  localPort?: number;
  fd?: number;
  address?: () => unknown;
}

function describe(h: Handle): string {
  const bits = [h.constructor.name];
  if (h.pid) bits.push(`pid ${h.pid} ${h.spawnfile ?? ''}`);
  if (h.remoteAddress) bits.push(`to ${h.remoteAddress}:${h.remotePort}`);
  if (h.localPort) bits.push(`from :${h.localPort}`);
  try {
    const a = h.address?.();
    if (a) bits.push(`listening ${JSON.stringify(a)}`);
  } catch {
    // not a server
  }
  return bits.join(' ');
}

function leaks(): Handle[] {
  const all = (process as unknown as { _getActiveHandles(): Handle[] })._getActiveHandles();
  return all.filter((h) => h.hasRef?.() !== false && !((h.fd ?? -1) >= 0 && (h.fd ?? -1) <= 2));
}

export const mochaHooks = {
  async afterAll(this: { timeout(ms: number): void }): Promise<void> {
    this.timeout(OPEN_HANDLES_GRACE_MS + 5_000);
    const end = Date.now() + OPEN_HANDLES_GRACE_MS;
    while (leaks().length > 0 && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
    const left = leaks();
    if (left.length > 0) throw new Error(`the tests left ${left.length} open handle(s) that keep mocha from exiting:\n  ${left.map(describe).join('\n  ')}`);
  },
};
