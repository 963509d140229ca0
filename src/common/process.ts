/**
 * Process life of a node: tell the supervisor (grid dev) that it is ready and where it
 * listens, and shut down cleanly once on SIGINT/SIGTERM or when the supervisor goes away.
 */

/** Most time a node's shutdown may take before it exits anyway. */
export const SHUTDOWN_GRACE_MS = 5_000;

export interface ReadyInfo {
  role: string;
  nodeId: string;
  /** endpoints this node bound, by purpose (e.g. { clients: 'tcp://127.0.0.1:7700' }) */
  endpoints: Record<string, string>;
  adminPort: number;
  [k: string]: unknown;
}

/**
 * Reports readiness: over the IPC channel when started by a supervisor, and always as one
 * line `GRID_READY {json}` on stdout so scripts can wait for it.
 */
export function announceReady(info: ReadyInfo): void {
  if (process.send) process.send({ type: 'ready', ...info });
  process.stdout.write(`GRID_READY ${JSON.stringify(info)}\n`);
}

/** Runs `stop` once on the first SIGINT/SIGTERM (or IPC disconnect), then exits 0. */
export function onShutdown(stop: () => Promise<void> | void): void {
  let stopping = false;
  const run = (why: string) => {
    if (stopping) return;
    stopping = true;
    const force = setTimeout(() => process.exit(1), SHUTDOWN_GRACE_MS);
    force.unref();
    Promise.resolve()
      .then(stop)
      .catch((e) => process.stderr.write(`shutdown after ${why} failed: ${(e as Error).message}\n`))
      .finally(() => process.exit(0));
  };
  process.on('SIGINT', () => run('SIGINT'));
  process.on('SIGTERM', () => run('SIGTERM'));
  if (process.send) process.on('disconnect', () => run('supervisor gone'));
}
