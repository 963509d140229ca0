/**
 * The ZAP handler (ZeroMQ RFC 27) of this process: a REP-like socket at
 * inproc://zeromq.zap.01 that libzmq asks, for every CURVE handshake on a server socket,
 * whether the client's public key may connect. Each Security registers its zapDomain; an
 * unknown domain, a non-CURVE mechanism or an unauthorized key gets 400, so the client sees
 * a handshake:error:auth event (turned into NOT_AUTHORIZED by src/common/zmq.ts). Every
 * request is answered: an unanswered one would stall the handshake.
 */
import * as zmq from 'zeromq';
import { Logger } from 'pino';
import { keyFingerprint, z85Encode } from './keys';
import type { Security } from './security';

export const ZAP_ENDPOINT = 'inproc://zeromq.zap.01';
/** Binds of the handler tried, 10 ms apart, while a closing one still holds the name. */
export const ZAP_BIND_ATTEMPTS = 100;

interface Domain {
  security: Security;
  log: Logger;
}

const domains = new Map<string, Domain>();
let sock: zmq.Reply | undefined;
let starting: Promise<void> | undefined;

/** Starts the process's ZAP handler if needed and registers the domain; call before bind. */
export async function registerZapDomain(security: Security, log: Logger): Promise<void> {
  domains.set(security.domain, { security, log });
  starting ??= start();
  await starting;
}

export function unregisterZapDomain(security: Security): void {
  domains.delete(security.domain);
  if (domains.size === 0 && sock) {
    sock.close();
    sock = undefined;
    starting = undefined;
  }
}

async function start(): Promise<void> {
  const s = new zmq.Reply({ linger: 0 });
  // a handler closed a moment ago may still hold the inproc name: retry a little
  for (let i = 0; ; i++) {
    try {
      await s.bind(ZAP_ENDPOINT);
      break;
    } catch (e) {
      if (i >= ZAP_BIND_ATTEMPTS) throw e;
      await new Promise((r) => setTimeout(r, 10));
    }
  }
  sock = s;
  void loop(s);
}

/** RFC 27 request: version, request id, domain, address, identity, mechanism, credentials... */
export function zapDecide(frames: Buffer[]): { status: '200' | '400' | '500'; text: string; userId: string } {
  const [version, , domain, address, , mechanism, cred] = frames;
  if (version?.toString() !== '1.0') return { status: '500', text: 'ZAP version 1.0 expected', userId: '' };
  const d = domains.get(domain?.toString() ?? '');
  if (!d) return { status: '400', text: 'unknown ZAP domain', userId: '' };
  if (mechanism?.toString() !== 'CURVE' || !cred || cred.length !== 32) {
    d.log.warn({ event: 'auth:refused', address: address?.toString(), mechanism: mechanism?.toString() }, 'connection refused: not CURVE');
    return { status: '400', text: 'CURVE required', userId: '' };
  }
  const key = z85Encode(cred);
  if (!d.security.authorized(key)) {
    d.log.warn({ event: 'auth:refused', address: address?.toString(), key, fingerprint: keyFingerprint(key) }, 'connection refused: key not authorized for any role');
    return { status: '400', text: 'key not authorized', userId: '' };
  }
  return { status: '200', text: 'OK', userId: key };
}

async function loop(s: zmq.Reply): Promise<void> {
  try {
    for await (const frames of s) {
      let r: ReturnType<typeof zapDecide>;
      try {
        r = zapDecide(frames as Buffer[]);
      } catch {
        r = { status: '500', text: 'internal error', userId: '' };
      }
      await s.send(['1.0', (frames[1] as Buffer) ?? Buffer.alloc(0), r.status, r.text, r.userId, Buffer.alloc(0)]);
    }
  } catch {
    // closed
  }
}
