/**
 * Fast "is a grid node there?" for clients. A ZeroMQ connect never fails: the socket retries in
 * the background and a request just times out, so a client pointed at a dead or wrong
 * endpoint used to wait its whole retry window (31-41 s) before saying so. A plain TCP
 * connect answers within milliseconds (refused, unreachable, unknown host), so clients
 * probe first and report within `connectTimeoutMs` (1.5 s by default, counted by the CLI from
 * its own start), naming every endpoint tried and why it failed.
 */
import net from 'node:net';
import { GridError } from './errors';

/** Pause between two rounds of connect attempts while none has succeeded, ms. */
export const REACH_RETRY_MS = 100;
/**
 * Least time the probe gets when its budget is counted from an earlier moment (the CLI
 * counts connectTimeoutMs from the process's start) and start-up already used most of it, ms.
 */
export const REACH_MIN_PROBE_MS = 250;

export interface ReachResult {
  /** the first endpoint that accepted a TCP connection, or undefined */
  ok?: string;
  /** why each endpoint failed (last attempt), for the error message */
  why: Map<string, string>;
}

function hostPort(endpoint: string): { host: string; port: number } | undefined {
  const m = /^tcp:\/\/([^:/\s]+):(\d{1,5})$/.exec(endpoint);
  if (!m) return undefined;
  return { host: m[1] === '*' ? '127.0.0.1' : m[1]!, port: Number(m[2]) };
}

function describeErr(e: NodeJS.ErrnoException): string {
  switch (e.code) {
    case 'ECONNREFUSED':
      return 'connection refused (nothing listens on that port)';
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return 'unknown host';
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return 'host unreachable';
    default:
      return e.code ?? e.message;
  }
}

/** The first bytes of a ZMTP 3 greeting: signature 0xFF, 8 padding bytes, 0x7F (RFC 23). */
const ZMTP_SIGNATURE = Buffer.from([0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0x7f]);

/**
 * One TCP connect to `endpoint`; resolves null when a ZeroMQ peer answers, else why not.
 * A ZMTP peer sends its greeting (first byte 0xFF) as soon as it accepts, so after connecting
 * the probe sends the greeting's signature and waits for the peer's first byte: a port where
 * something else listens (an HTTP admin port, ssh) is told apart from a grid node at once,
 * instead of ZeroMQ retrying its handshake silently until the retry window ends.
 */
export function tcpConnect(endpoint: string, timeoutMs: number): Promise<string | null> {
  const hp = hostPort(endpoint);
  if (!hp) return Promise.resolve('not a tcp://HOST:PORT endpoint');
  return new Promise((resolve) => {
    const s = net.connect({ host: hp.host, port: hp.port });
    let connected = false;
    const done = (why: string | null): void => {
      clearTimeout(timer);
      s.destroy();
      resolve(why);
    };
    const timer = setTimeout(() => done(connected ? 'accepts TCP but does not speak ZeroMQ (not a grid node?)' : `no TCP answer within ${timeoutMs} ms`), timeoutMs);
    s.once('connect', () => {
      connected = true;
      s.write(ZMTP_SIGNATURE);
    });
    s.once('data', (b: Buffer) => done(b[0] === 0xff ? null : `speaks another protocol, not ZeroMQ (${describeBanner(b)}; not a grid node?)`));
    s.once('end', () => done(connected ? 'closed the connection without a ZeroMQ greeting (not a grid node?)' : 'connection closed'));
    s.once('error', (e: NodeJS.ErrnoException) => done(describeErr(e)));
  });
}

function describeBanner(b: Buffer): string {
  const text = b.subarray(0, 40).toString('latin1').split(/\r?\n/)[0]!.replace(/[^\x20-\x7e]/g, '.');
  return text ? `it said ${JSON.stringify(text)}` : 'binary data';
}

/**
 * Tries every endpoint at once, again every REACH_RETRY_MS, until one accepts a TCP
 * connection or `timeoutMs` has passed. A port that opens during the window (a node still
 * starting) counts.
 */
export async function reachAny(endpoints: readonly string[], timeoutMs: number, now: () => number = Date.now): Promise<ReachResult> {
  const deadline = now() + timeoutMs;
  const why = new Map<string, string>();
  for (;;) {
    const left = Math.max(1, deadline - now());
    const results = await Promise.all(endpoints.map(async (e) => [e, await tcpConnect(e, left)] as const));
    const ok = results.find(([, w]) => w === null);
    if (ok) return { ok: ok[0], why };
    // a definite reason (refused, unknown host) is not overwritten by a later round that
    // merely ran out of the little time left
    for (const [e, w] of results) if (!why.has(e) || !w!.startsWith('no TCP answer')) why.set(e, w!);
    if (now() + REACH_RETRY_MS >= deadline) return { why };
    await new Promise((r) => setTimeout(r, REACH_RETRY_MS));
  }
}

/**
 * Throws UNAVAILABLE naming each endpoint tried and why, when none of them accepts a TCP
 * connection within `timeoutMs`; `what` is the kind of node ("master", "storage node").
 * `spentMs`: how much of timeoutMs is already gone (the CLI's start-up, so that a command
 * with no grid ends about timeoutMs after it started); the probe still gets at least
 * REACH_MIN_PROBE_MS (or timeoutMs, if smaller).
 */
export async function ensureReachable(what: string, endpoints: readonly string[], from: string | undefined, timeoutMs: number, hint: string, spentMs = 0): Promise<void> {
  if (timeoutMs <= 0 || endpoints.length === 0) return;
  const r = await reachAny(endpoints, Math.max(Math.min(REACH_MIN_PROBE_MS, timeoutMs), timeoutMs - spentMs));
  if (r.ok) return;
  const tried = endpoints.map((e) => `${e}: ${r.why.get(e) ?? 'no answer'}`).join('; ');
  throw new GridError('UNAVAILABLE', `cannot connect to the ${what}${from ? ` (from ${from})` : ''} within ${timeoutMs} ms: tried ${tried}`, hint);
}
