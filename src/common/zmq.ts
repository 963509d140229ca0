/**
 * Thin ZeroMQ shell shared by every role: a serialized send queue (zeromq.js allows one
 * pending send per socket), a request/response client over DEALER, and a ROUTER server
 * loop that decodes with the codec, answers hostile bytes with a typed error_reply and
 * keeps serving.
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
  errorCodeName,
  newUuid,
} from '../messages';
import { bindError } from './bind-errors';
import { GridError, RemoteError, TimeoutError } from './errors';

/** Most messages queued in JS for one socket before send() refuses (backpressure). */
export const MAX_SEND_QUEUE = 10_000;
/** Default time a request waits for its answer. */
export const DEFAULT_REQUEST_TIMEOUT_MS = 5_000;

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
  readonly sock = new zmq.Dealer({ linger: 0, sendHighWaterMark: 10_000, receiveHighWaterMark: 10_000 });
  private readonly out = new SendQueue(this.sock);
  private readonly pending = new Map<string, Pending>();
  private closed = false;

  constructor(readonly opts: RpcClientOptions) {
    this.sock.connect(opts.endpoint);
    void this.loop();
  }

  private async loop(): Promise<void> {
    try {
      for await (const frames of this.sock) {
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
    return this.out.send(encode(m));
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
        if (!(e instanceof TimeoutError) || attempt++ >= (o.retries ?? 0) || this.closed) throw e;
      }
    }
  }

  private once(key: string, frames: Buffer[], timeoutMs: number, what: string): Promise<Message> {
    if (this.closed) return Promise.reject(new GridError('UNAVAILABLE', 'client is closed'));
    return new Promise<Message>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(key);
        reject(new TimeoutError(what, this.opts.endpoint, timeoutMs));
      }, timeoutMs);
      this.pending.set(key, { resolve, reject, timer });
      this.out.send(frames).catch((e: Error) => {
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
    this.sock.close();
  }
}

/** What a server handler returns: a reply (or several), or nothing. */
export type Reply = MessageInput | MessageInput[] | void;

export interface RpcServerOptions {
  /** e.g. tcp://127.0.0.1:7700, or tcp://127.0.0.1:0 for an ephemeral port */
  bind: string;
  nodeUuid: string;
  log: Logger;
  handler: (m: Message, peer: Buffer) => Reply | Promise<Reply>;
}

/** Counts of what the server saw, for /status. */
export interface ServerStats {
  received: number;
  decodeErrors: number;
  handlerErrors: number;
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
  readonly sock = new zmq.Router({ linger: 0, sendHighWaterMark: 100_000, receiveHighWaterMark: 100_000 });
  private readonly out = new SendQueue(this.sock, 100_000);
  readonly stats: ServerStats = { received: 0, decodeErrors: 0, handlerErrors: 0, errorsByCode: {} };
  private closed = false;
  endpoint = '';

  constructor(readonly opts: RpcServerOptions) {}

  async start(): Promise<string> {
    const bind = this.opts.bind.replace(/:0$/, ':*');
    try {
      await this.sock.bind(bind);
    } catch (e) {
      throw bindError(e, 'ZeroMQ peers', this.opts.bind, '--bind');
    }
    this.endpoint = this.sock.lastEndpoint ?? this.opts.bind;
    void this.loop();
    return this.endpoint;
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
  }
}
