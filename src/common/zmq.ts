/**
 * The one link every role uses (docs/operations.md, "Security"): every ZeroMQ socket of the
 * grid is made here, by clientSocket() or serverSocket(), with CURVE and ZAP (unless
 * security is off), maxMessageSize from the codec's limit and the reconnect settings. On top:
 * a serialized send queue (zeromq.js allows one pending send per socket), a request/response
 * client over DEALER with one reply matcher, and a ROUTER server loop that decodes with the
 * codec, checks the sender's role per message type, answers hostile bytes with a typed
 * error_reply and keeps serving.
 */
import * as zmq from 'zeromq';
import { Logger } from 'pino';
import {
  DecodeError,
  ERROR_CODES,
  EncodeError,
  Message,
  MessageInput,
  MessageName,
  NIL_UUID,
  decode,
  encode,
  MAX_MESSAGE_BYTES,
  errorCodeName,
} from '../messages';
import { bindError } from './bind-errors';
import { GridError, RemoteError, TimeoutError } from './errors';
import { KeyRole, keyFingerprint } from './keys';
import { Security, TRUST_RECHECK_MS } from './security';
import { registerZapDomain, unregisterZapDomain } from './zap';

/** Most messages queued in JS for one socket before send() refuses (backpressure). */
export const MAX_SEND_QUEUE = 10_000;
/** Default time a request waits for its answer. */
export const DEFAULT_REQUEST_TIMEOUT_MS = 5_000;

/**
 * Largest inbound frame any socket accepts (ZMQ_MAXMSGSIZE, checked by libzmq per frame
 * before it is buffered): the codec's whole-message limit. A bigger frame closes that
 * connection, so a peer cannot make a node buffer gigabytes.
 */
export const MAX_INBOUND_FRAME_BYTES = MAX_MESSAGE_BYTES;
/** First reconnect delay of a client socket (ZMQ_RECONNECT_IVL). */
export const RECONNECT_INTERVAL_MS = 100;
/**
 * Largest reconnect delay (ZMQ_RECONNECT_IVL_MAX); 0 = no backoff, every retry after
 * RECONNECT_INTERVAL_MS. Backoff (2 s) made workers find a restarted balancer late, so results
 * they held reached the new lease holder after adoption and 8-14 of 600 tasks ran twice in the
 * failover bench; with 0, none did (docs/balancer.md).
 */
export const RECONNECT_MAX_INTERVAL_MS = 0;
/** A CURVE handshake not done within this long drops the connection (ZMQ_HANDSHAKE_IVL). */
export const HANDSHAKE_TIMEOUT_MS = 10_000;

type DealerOptions = ConstructorParameters<typeof zmq.Dealer>[0];
type RouterOptions = ConstructorParameters<typeof zmq.Router>[0];

/**
 * A DEALER connected to endpoint with the link's settings: with security on, CURVE as a
 * client of the server key the trust dir names for that endpoint, and a routing id that
 * proves this node's key (src/common/security.ts). Throws NOT_AUTHORIZED when no server key
 * is known for the endpoint.
 */
/**
 * A DEALER connected to `endpoint` with the link's settings. `beforeConnect` runs on the
 * socket before it connects: a watcher of its events (watchHandshake) must start there,
 * since libzmq reports connect and handshake events only to an observer that exists when
 * they happen, and a fast handshake can finish before the next line after connect runs.
 */
export function clientSocket(security: Security, endpoint: string, o: DealerOptions = {}, beforeConnect?: (d: zmq.Dealer, serverKey: string | undefined) => void): zmq.Dealer {
  const base: DealerOptions = {
    linger: 0,
    maxMessageSize: MAX_INBOUND_FRAME_BYTES,
    reconnectInterval: RECONNECT_INTERVAL_MS,
    reconnectMaxInterval: RECONNECT_MAX_INTERVAL_MS,
    handshakeInterval: HANDSHAKE_TIMEOUT_MS,
    ...o,
  };
  let serverKey: string | undefined;
  if (security.on) {
    serverKey = security.serverKey(endpoint);
    Object.assign(base, {
      curveServerKey: serverKey,
      curvePublicKey: security.keys!.publicKey,
      curveSecretKey: security.keys!.secretKey,
      // a fresh nonce per socket: a reconnecting node shows up as a new connection
      routingId: security.routingId(serverKey),
    });
  }
  const d = new zmq.Dealer(base);
  beforeConnect?.(d, serverKey);
  d.connect(endpoint);
  return d;
}

/**
 * A ROUTER with the link's settings (bind it with bindServer): with security on, a CURVE
 * server whose handshakes the process's ZAP handler decides.
 */
export function serverSocket(security: Security, o: RouterOptions = {}): zmq.Router {
  const base: RouterOptions = { linger: 0, maxMessageSize: MAX_INBOUND_FRAME_BYTES, handshakeInterval: HANDSHAKE_TIMEOUT_MS, ...o };
  if (security.on) Object.assign(base, { curveServer: true, curveSecretKey: security.keys!.secretKey, curvePublicKey: security.keys!.publicKey, zapDomain: security.domain });
  return new zmq.Router(base);
}

/** Binds a server socket (ZAP handler first), records the endpoint when enrolling. */
export async function bindServer(sock: zmq.Router, security: Security, bind: string, log: Logger, what = 'ZeroMQ peers', flag = '--bind'): Promise<string> {
  if (security.on) await registerZapDomain(security, log);
  try {
    await sock.bind(bind.replace(/:0$/, ':*'));
  } catch (e) {
    throw bindError(e, what, bind, flag);
  }
  const endpoint = sock.lastEndpoint ?? bind;
  security.bound(endpoint);
  return endpoint;
}

/** Releases the server's ZAP domain after its socket closed. */
export function releaseServer(security: Security): void {
  if (security.on) unregisterZapDomain(security);
}

/**
 * Watches a client socket's handshake events and calls onRefused once with a typed
 * NOT_AUTHORIZED error when the server refuses this key (ZAP said no) or the server is not
 * the one the trust dir names (CURVE could not be completed): the caller fails at once
 * instead of timing out. Call it from clientSocket's beforeConnect, so no event is missed.
 */
export function watchHandshake(sock: zmq.Dealer, security: Security, endpoint: string, onRefused: (e: GridError) => void): void {
  if (!security.on) return;
  const me = keyFingerprint(security.keys!.publicKey);
  void (async () => {
    try {
      for await (const ev of sock.events) {
        if (ev.type === 'handshake:error:auth') {
          onRefused(
            new GridError(
              'NOT_AUTHORIZED',
              `not authorized: the server at ${endpoint} refused this ${security.role === 'clients' ? 'client' : 'node'}'s key ${security.keys!.publicKey} (fingerprint ${me})`,
              `ask its operator to run \`grid keys authorize ${security.role} ${security.keys!.publicKey}\` in the server's trust dir`,
            ),
          );
        } else if (ev.type === 'handshake:error:protocol' || ev.type === 'handshake:error:other') {
          onRefused(
            new GridError(
              'NOT_AUTHORIZED',
              `not authorized: the CURVE handshake with ${endpoint} failed (${ev.type}): the server does not hold the key ${security.trustDir}/servers names for it, or it does not use CURVE`,
              'check the servers file of the trust dir, and that both sides use the same security setting',
            ),
          );
        } else if (ev.type === 'end') return;
      }
    } catch {
      // socket closed
    }
  })();
}

/**
 * Calls onStale once when a connection attempt of `sock` failed or dropped (connect retry,
 * disconnect, handshake error) and the trust dir's servers file now names another key for
 * `endpoint` than `usedKey`, the one the socket was made with: the server was given a new
 * key, or the line read was a stale one for a reused port that the server's own enrollment
 * has since overridden. libzmq retries forever with the key it was given, so the owner must
 * close the socket and make a new one (which reads the key again). The file is read at most
 * once per TRUST_RECHECK_MS. Call from clientSocket's beforeConnect, with its serverKey.
 */
export function watchServerKey(sock: zmq.Dealer, security: Security, endpoint: string, usedKey: string | undefined, onStale: () => void): void {
  if (!security.on || usedKey === undefined) return;
  let checkedAt = -Infinity;
  void (async () => {
    try {
      for await (const ev of sock.events) {
        if (ev.type === 'end') return;
        if (ev.type !== 'connect:retry' && ev.type !== 'disconnect' && !ev.type.startsWith('handshake:error')) continue;
        const now = Date.now();
        if (now - checkedAt < TRUST_RECHECK_MS) continue;
        checkedAt = now;
        let current: string | undefined;
        try {
          current = security.serverKey(endpoint);
        } catch {
          continue; // no line (any more): keep the socket; the servers file may be mid-edit
        }
        if (current !== usedKey) {
          onStale();
          return;
        }
      }
    } catch {
      // socket closed
    }
  })();
}

/**
 * Serializes sends on one socket, bounded by MAX_SEND_QUEUE. A send that cannot be queued
 * rejects with UNAVAILABLE rather than growing memory without bound.
 */
export class SendQueue {
  private tail: Promise<void> = Promise.resolve();
  private queued = 0;
  constructor(
    private readonly sock: zmq.Socket & { send(m: Buffer[]): Promise<void> },
    private readonly max = MAX_SEND_QUEUE,
  ) {}

  send(frames: Buffer[]): Promise<void> {
    if (this.queued >= this.max) return Promise.reject(new GridError('UNAVAILABLE', `send queue full (${this.max} messages)`));
    this.queued++;
    const p = this.tail.then(() => this.sock.send(frames)).finally(() => {
      this.queued--;
    });
    this.tail = p.catch(() => undefined);
    return p;
  }

  get length(): number {
    return this.queued;
  }
}

/** The key a reply is matched to its request by. */
function replyKey(m: Message): string | undefined {
  if ('request_uuid' in m) return m.request_uuid;
  if (m.type === 'file_response') return 'file:' + m.file_uuid;
  return undefined;
}

function requestKey(m: MessageInput): string | undefined {
  const r = m as unknown as { request_uuid?: string; type: string; file_uuid?: string };
  if (r.request_uuid) return r.request_uuid;
  if (r.type === 'file_request') return 'file:' + r.file_uuid;
  return undefined;
}

export interface RpcClientOptions {
  endpoint: string;
  nodeUuid: string;
  log: Logger;
  /** this process's keys and trust (src/common/security.ts) */
  security: Security;
  /** Called for messages that answer no pending request. */
  onUnsolicited?: (m: Message) => void;
}

interface Pending {
  resolve(m: Message): void;
  reject(e: Error): void;
  timer: NodeJS.Timeout;
}

/**
 * Requests over one DEALER socket; replies matched by request_uuid (or, for the seed's
 * file_request, by file_uuid). An error_reply rejects with RemoteError.
 */
export class RpcClient {
  private sock?: zmq.Dealer;
  private out?: SendQueue;
  /** why the socket could not be made yet (no key known for the server) */
  private noSocket?: GridError;
  private readonly pending = new Map<string, Pending>();
  private closed = false;
  /** set when the server refused this key: every request fails with it at once */
  private refused?: GridError;

  constructor(readonly opts: RpcClientOptions) {
    this.open();
  }

  /**
   * Makes the socket. A server whose key the trust dir does not know yet (one that has not
   * started and enrolled) is tried again at each request; until then requests get no
   * answer, as from a server that is down, and their TimeoutError says why.
   */
  private open(): zmq.Dealer | undefined {
    if (this.sock || this.closed) return this.sock;
    const opts = this.opts;
    let sock: zmq.Dealer;
    try {
      sock = clientSocket(opts.security, opts.endpoint, { sendHighWaterMark: 10_000, receiveHighWaterMark: 10_000 }, (d) =>
        watchHandshake(d, opts.security, opts.endpoint, (e) => {
          if (this.refused) return;
          this.refused = e;
          this.opts.log.warn({ event: 'auth:refused', endpoint: opts.endpoint, err: e.message }, 'server refused the handshake');
          for (const p of this.pending.values()) {
            clearTimeout(p.timer);
            p.reject(e);
          }
          this.pending.clear();
        }),
      );
    } catch (e) {
      if (!(e instanceof GridError)) throw e;
      this.noSocket = e;
      return undefined;
    }
    this.noSocket = undefined;
    this.sock = sock;
    this.out = new SendQueue(sock);
    void this.loop(sock);
    return sock;
  }

  /** The NOT_AUTHORIZED error when the server refused this client's key. */
  get refusal(): GridError | undefined {
    return this.refused;
  }

  private async loop(sock: zmq.Dealer): Promise<void> {
    try {
      for await (const frames of sock) {
        let m: Message;
        try {
          m = decode(frames as Buffer[]);
        } catch (e) {
          this.opts.log.warn({ err: (e as Error).message, endpoint: this.opts.endpoint }, 'undecodable reply dropped');
          continue;
        }
        let key = replyKey(m);
        // The seed's file_request has no request_uuid: storage answers a refused one with an
        // error_reply whose request_uuid is the file_uuid.
        if (m.type === 'error_reply' && key && !this.pending.has(key) && this.pending.has('file:' + key)) key = 'file:' + key;
        const p = key ? this.pending.get(key) : undefined;
        if (!p) {
          this.opts.onUnsolicited?.(m);
          continue;
        }
        this.pending.delete(key!);
        clearTimeout(p.timer);
        if (m.type === 'error_reply') p.reject(new RemoteError(m.error_code, m.message || errorCodeName(m.error_code)));
        else p.resolve(m);
      }
    } catch (e) {
      if (!this.closed) this.opts.log.error({ err: e }, 'rpc client receive loop ended');
    }
  }

  /** Sends a message that expects no answer. */
  send(m: MessageInput): Promise<void> {
    if (this.refused) return Promise.reject(this.refused);
    if (!this.open()) return Promise.reject(this.noSocket!);
    return this.out!.send(encode(m));
  }

  /**
   * Sends a request and waits for its answer. With `retries`, the same request (same
   * request_uuid) is sent again after each timeout, so servers must apply it at most once.
   */
  async request(m: MessageInput, o: { timeoutMs?: number; retries?: number } = {}): Promise<Message> {
    const key = requestKey(m);
    if (!key) throw new EncodeError('MISSING_FIELD', `${(m as { type: string }).type} carries no request_uuid`);
    const timeoutMs = o.timeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    const frames = encode(m);
    let attempt = 0;
    for (;;) {
      try {
        return await this.once(key, frames, timeoutMs, (m as { type: string }).type);
      } catch (e) {
        if (!(e instanceof TimeoutError) || attempt++ >= (o.retries ?? 0) || this.closed) throw this.refused ?? e;
      }
    }
  }

  private once(key: string, frames: Buffer[], timeoutMs: number, what: string): Promise<Message> {
    if (this.closed) return Promise.reject(new GridError('UNAVAILABLE', 'client is closed'));
    if (this.refused) return Promise.reject(this.refused);
    const out = this.open() && this.out;
    return new Promise<Message>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(key);
        reject(new TimeoutError(what, this.opts.endpoint, timeoutMs, out ? undefined : this.noSocket?.message));
      }, timeoutMs);
      this.pending.set(key, { resolve, reject, timer });
      if (!out) return;
      out.send(frames).catch((e: Error) => {
        clearTimeout(timer);
        this.pending.delete(key);
        reject(e);
      });
    });
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const p of this.pending.values()) {
      clearTimeout(p.timer);
      p.reject(new GridError('UNAVAILABLE', 'client closed'));
    }
    this.pending.clear();
    this.sock?.close();
  }
}

/** A ROUTER peer id for logs: the key part of a grid routing id, else hex. */
function peerName(peer: Buffer): string {
  const s = peer.toString('latin1');
  return s.startsWith('g1.') ? s.slice(0, 50) : peer.toString('hex');
}

/** What a server handler returns: a reply (or several), or nothing. */
export type Reply = MessageInput | MessageInput[] | void;

/**
 * Which roles may send each message type. With security on, a type not listed is refused
 * (UNEXPECTED: this node does not take it), a listed one from a key without the role gets
 * NOT_AUTHORIZED. With security off the handler sees everything.
 */
export type AccessTable = Partial<Record<MessageName, readonly KeyRole[]>>;

export interface RpcServerOptions {
  /** e.g. tcp://127.0.0.1:7700, or tcp://127.0.0.1:0 for an ephemeral port */
  bind: string;
  nodeUuid: string;
  log: Logger;
  security: Security;
  /** checked before the handler; with security off everything passes */
  access: AccessTable;
  handler: (m: Message, peer: Buffer) => Reply | Promise<Reply>;
}

/** Counts of what the server saw, for /status. */
export interface ServerStats {
  received: number;
  decodeErrors: number;
  handlerErrors: number;
  /** messages refused because the sender's key lacks the role (NOT_AUTHORIZED) */
  refused: number;
  /** error replies sent, by stable error code (DECODE_ERROR, NOT_LEADER, INTERNAL, ...): GET /metrics grid_errors_total */
  errorsByCode: Record<string, number>;
}

/**
 * A ROUTER that decodes every message and hands it to the handler. Undecodable bytes get an
 * error_reply (DECODE_ERROR) and a log line; a handler's GridError becomes an error_reply
 * with its code; any other error is logged as a bug and answered INTERNAL. The server keeps
 * serving in every case.
 */
export class RpcServer {
  readonly sock: zmq.Router;
  private readonly out: SendQueue;
  readonly stats: ServerStats = { received: 0, decodeErrors: 0, handlerErrors: 0, refused: 0, errorsByCode: {} };
  private closed = false;
  endpoint = '';

  constructor(readonly opts: RpcServerOptions) {
    this.sock = serverSocket(opts.security, { sendHighWaterMark: 100_000, receiveHighWaterMark: 100_000 });
    this.out = new SendQueue(this.sock, 100_000);
  }

  async start(): Promise<string> {
    this.endpoint = await bindServer(this.sock, this.opts.security, this.opts.bind, this.opts.log);
    void this.loop();
    return this.endpoint;
  }

  /**
   * NOT_AUTHORIZED unless the peer's verified key holds a role allowed to send this type
   * (docs/operations.md, "Security"). Logged with the key's fingerprint.
   */
  private checkAccess(m: Message, peer: Buffer): GridError | undefined {
    const sec = this.opts.security;
    if (!sec.on) return undefined;
    const allowed = this.opts.access[m.type];
    if (!allowed) return new GridError('UNEXPECTED', `this node does not take ${m.type} messages`, 'send it to the node that serves it');
    const roles = sec.peerRoles(peer);
    if (allowed.some((r) => roles.has(r))) return undefined;
    const key = sec.peerKey(peer);
    const who = key ? `key ${sec.nameOf(key)} (${[...roles].join(', ') || 'no role'})` : 'a peer that did not prove its key';
    return new GridError(
      'NOT_AUTHORIZED',
      `not authorized: ${m.type} is taken only from ${allowed.join(' or ')}, and came from ${who}`,
      `authorize the sender's key with \`grid keys authorize ${allowed[0]} KEY\``,
    );
  }

  /** The verified public key of a peer (undefined with security off). */
  peerKey(peer: Buffer): string | undefined {
    return this.opts.security.peerKey(peer);
  }

  private async loop(): Promise<void> {
    try {
      for await (const [peer, ...frames] of this.sock) {
        this.stats.received++;
        void this.handle(peer as Buffer, frames as Buffer[]);
      }
    } catch (e) {
      if (!this.closed) this.opts.log.error({ err: e }, 'rpc server receive loop ended');
    }
  }

  private async handle(peer: Buffer, frames: Buffer[]): Promise<void> {
    let m: Message;
    try {
      m = decode(frames);
    } catch (e) {
      this.stats.decodeErrors++;
      const err = e as DecodeError;
      this.countError('DECODE_ERROR');
      this.opts.log.warn({ code: err.code, err: err.message, peer: peer.toString('hex') }, 'undecodable message');
      await this.sendTo(peer, this.errorReply(NIL_UUID, ERROR_CODES.DECODE_ERROR, err.message));
      return;
    }
    let reply: Reply;
    try {
      const denied = this.checkAccess(m, peer);
      if (denied) {
        if (denied.code === 'NOT_AUTHORIZED') {
          this.stats.refused++;
          this.opts.log.warn({ event: 'auth:refused', type: m.type, peer: peerName(peer), err: denied.message }, 'message refused: sender not authorized');
        }
        throw denied;
      }
      reply = await this.opts.handler(m, peer);
    } catch (e) {
      this.stats.handlerErrors++;
      const rid = 'request_uuid' in m ? m.request_uuid : NIL_UUID;
      this.countError(e instanceof GridError ? e.code : 'INTERNAL');
      if (e instanceof GridError) {
        this.opts.log.info({ code: e.code, err: e.message, type: m.type }, 'request refused');
        reply = this.errorReply(rid, e.wireCode, e.describe());
      } else {
        this.opts.log.error({ err: e, type: m.type }, 'handler failed (bug)');
        reply = this.errorReply(rid, ERROR_CODES.INTERNAL, `internal error handling ${m.type}: ${(e as Error).message}`);
      }
    }
    if (!reply) return;
    for (const r of Array.isArray(reply) ? reply : [reply]) await this.sendTo(peer, r);
  }

  /** Codes are a closed set (GridErrorCode), so this map stays small. */
  private countError(code: string): void {
    this.stats.errorsByCode[code] = (this.stats.errorsByCode[code] ?? 0) + 1;
  }

  errorReply(requestUuid: string, code: number, message: string): MessageInput<'error_reply'> {
    return { type: 'error_reply', node_uuid: this.opts.nodeUuid, request_uuid: requestUuid, error_code: code, message: message.slice(0, 4000) };
  }

  /** Sends to one peer; a peer that is gone is dropped silently by ROUTER. */
  async sendTo(peer: Buffer, m: MessageInput): Promise<void> {
    try {
      await this.out.send([peer, ...encode(m)]);
    } catch (e) {
      if (!this.closed) this.opts.log.warn({ err: (e as Error).message, type: (m as { type: MessageName }).type }, 'send failed');
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.sock.close();
    releaseServer(this.opts.security);
  }
}
