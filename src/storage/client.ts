/**
 * StorageClient: the library the CLI and the worker use to talk to a storage node
 * (docs/storage.md, "Client"). Built on RpcClient: each request is re-sent after a timeout
 * with the same request_uuid, which the server applies at most once.
 *
 * Uploads are content-addressed and resumable: the client hashes first, asks file_stat, and
 * only then sends chunks in order with a small window in flight. Every file_put_response
 * says how many bytes the server holds (`received`); when that differs from what the client
 * expects (a resumed upload, a lost message) the client restarts from the server's offset.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Logger } from 'pino';
import {
  Message,
  MessageInput,
  MessageOf,
  PutStatus,
  errorCodeName,
  fileUuidFromSha256,
  isUuid,
  newUuid,
} from '../messages';
import { GridError, RemoteError, RpcClient, Security, TimeoutError, backoffDelayMs } from '../common';
import { STORAGE_CLIENT_DEFAULTS, StorageClientConfig, validateClientConfig } from './config';

export interface StorageClientOptions extends Partial<StorageClientConfig> {
  /** the storage node's ROUTER endpoint, e.g. tcp://127.0.0.1:7702 */
  endpoint: string;
  /** this node's id, sent in every message header */
  nodeUuid: string;
  log: Logger;
  /** this process's keys and trust (src/common/security.ts) */
  security: Security;
  /** jitter source in [0, 1] for the re-send backoff (tests); Math.random by default */
  random?: () => number;
  /** injected sleep (tests); a real timer by default */
  sleep?: (ms: number) => Promise<void>;
}

export interface StatResult {
  exists: boolean;
  length: number;
  /** the file's SHA-256 when it exists */
  sha256?: Buffer;
}

export interface PutResult {
  fileUuid: string;
  length: number;
  /** false when the storage node already held the file (nothing, or not all of it, was sent) */
  uploaded: boolean;
}

/** Reads `length` bytes at `offset` of the thing being uploaded. */
type ChunkSource = (offset: number, length: number) => Promise<Buffer>;

interface InFlightPut {
  offset: number;
  length: number;
  final: boolean;
  reply: Promise<MessageOf<'file_put_response'>>;
}

interface WholeWaiter {
  resolve(m: MessageOf<'file_response'>): void;
  reject(e: Error): void;
}

/** Refuses a bad argument before anything is sent. */
function badArg(what: string): GridError {
  return new GridError('BAD_REQUEST', what);
}

function checkUuid(fileUuid: string): void {
  if (!isUuid(fileUuid)) throw badArg(`${JSON.stringify(fileUuid)} is not a file id (a UUID like 0f1e2d3c-...)`);
}

function checkCount(name: string, v: number): void {
  if (!Number.isSafeInteger(v) || v < 0) throw badArg(`${name} must be a non-negative integer, got ${v}`);
}

/**
 * Runs `count` steps with at most `window` started and not yet consumed; results are
 * consumed strictly in order. `consume` returning false stops early. On an error the
 * outstanding steps are awaited (so nothing is left unhandled) and the error is rethrown.
 */
async function pipelined<T>(
  count: number,
  window: number,
  start: (i: number) => Promise<T>,
  consume: (i: number, v: T) => Promise<boolean> | boolean,
): Promise<void> {
  const inflight: Promise<T>[] = [];
  let next = 0;
  try {
    for (let i = 0; i < count; i++) {
      while (next < count && inflight.length < window) {
        const p = start(next++);
        p.catch(() => undefined);
        inflight.push(p);
      }
      const v = await inflight.shift()!;
      if (!(await consume(i, v))) break;
    }
  } finally {
    await Promise.allSettled(inflight);
  }
}

export class StorageClient {
  private readonly cfg: StorageClientConfig;
  private readonly rpc: RpcClient;
  private readonly log: Logger;
  /** seed file_request calls waiting for their answer, by file_uuid (one in flight per file) */
  private readonly whole = new Map<string, Promise<MessageOf<'file_response'>>>();
  private readonly wholeWaiters = new Map<string, WholeWaiter>();
  private closed = false;
  /** re-sends after a timeout, since the client was made (tests, debugging) */
  retries = 0;

  private readonly random: () => number;
  private readonly sleep: (ms: number) => Promise<void>;

  constructor(readonly o: StorageClientOptions) {
    const { endpoint, nodeUuid, log, security, random, sleep, ...rest } = o;
    this.random = random ?? Math.random;
    this.sleep = sleep ?? ((ms) => new Promise((r) => setTimeout(r, ms)));
    const merged: Record<string, unknown> = { ...STORAGE_CLIENT_DEFAULTS };
    for (const [k, v] of Object.entries(rest)) if (v !== undefined) merged[k] = v;
    this.cfg = validateClientConfig(merged);
    this.log = log;
    this.rpc = new RpcClient({ endpoint, nodeUuid, log, security, onUnsolicited: (m) => this.onUnsolicited(m) });
  }

  get endpoint(): string {
    return this.o.endpoint;
  }

  // ---- stat ----------------------------------------------------------------------------------

  async stat(fileUuid: string): Promise<StatResult> {
    checkUuid(fileUuid);
    const r = await this.request('file_stat_response', {
      type: 'file_stat_request',
      node_uuid: this.o.nodeUuid,
      request_uuid: newUuid(),
      file_uuid: fileUuid,
    });
    if (!r.exists) return { exists: false, length: 0 };
    return { exists: true, length: r.file_length, sha256: r.sha256 };
  }

  // ---- upload --------------------------------------------------------------------------------

  /** Stores `data` (content-addressed). Sends nothing but a stat when the file is already stored. */
  async putBuffer(data: Buffer): Promise<PutResult> {
    if (!Buffer.isBuffer(data)) throw badArg('putBuffer takes a Buffer');
    const digest = createHash('sha256').update(data).digest();
    return this.upload(digest, data.length, async (off, len) => data.subarray(off, off + len));
  }

  /**
   * Stores the file at `filePath`, streaming: a first pass hashes it, a second sends it in
   * chunks; the whole file is never in memory. `onProgress` gets the bytes the server holds.
   */
  async putFile(filePath: string, onProgress?: (sentBytes: number) => void): Promise<PutResult> {
    let fh: fs.promises.FileHandle;
    try {
      fh = await fs.promises.open(filePath, 'r');
    } catch (e) {
      throw new GridError('INPUT_UNREADABLE', `cannot open ${filePath}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, 'check the path and its permissions', { cause: e });
    }
    try {
      const st = await fh.stat();
      if (!st.isFile()) throw new GridError('INPUT_UNREADABLE', `${filePath} is not a regular file`, 'give the path of a file');
      const length = st.size;
      const digest = await this.hashHandle(fh, length, filePath);
      const source: ChunkSource = async (off, len) => {
        const buf = Buffer.allocUnsafe(len);
        let got = 0;
        while (got < len) {
          const { bytesRead } = await fh.read(buf, got, len - got, off + got);
          if (bytesRead === 0) throw new GridError('INPUT_UNREADABLE', `${filePath} shrank while it was being uploaded`, 'do not change a file while it is uploaded; try again');
          got += bytesRead;
        }
        return buf;
      };
      return await this.upload(digest, length, source, onProgress);
    } finally {
      await fh.close().catch(() => undefined);
    }
  }

  private async hashHandle(fh: fs.promises.FileHandle, length: number, filePath: string): Promise<Buffer> {
    const h = createHash('sha256');
    const buf = Buffer.allocUnsafe(Math.max(1, Math.min(this.cfg.putChunkBytes, length)));
    let off = 0;
    try {
      while (off < length) {
        const { bytesRead } = await fh.read(buf, 0, Math.min(buf.length, length - off), off);
        if (bytesRead === 0) throw new GridError('INPUT_UNREADABLE', `${filePath} shrank while it was being read`, 'do not change a file while it is uploaded; try again');
        h.update(buf.subarray(0, bytesRead));
        off += bytesRead;
      }
    } catch (e) {
      if (e instanceof GridError) throw e;
      throw new GridError('INPUT_UNREADABLE', `cannot read ${filePath}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, undefined, { cause: e });
    }
    return h.digest();
  }

  private async upload(digest: Buffer, length: number, source: ChunkSource, onProgress?: (n: number) => void): Promise<PutResult> {
    const fileUuid = fileUuidFromSha256(digest);
    const st = await this.stat(fileUuid);
    if (st.exists) {
      onProgress?.(length);
      return { fileUuid, length, uploaded: false };
    }
    const chunk = this.cfg.putChunkBytes;
    const window = this.cfg.putWindowChunks;
    let next = 0;
    let rewinds = 0;
    let finalSent = false;
    const inflight: InFlightPut[] = [];
    try {
      for (;;) {
        while (inflight.length < window && !finalSent) {
          const len = Math.min(chunk, length - next);
          const final = next + len === length;
          const data = await source(next, len);
          const reply = this.putChunk(fileUuid, digest, length, next, final, data);
          reply.catch(() => undefined);
          inflight.push({ offset: next, length: len, final, reply });
          next += len;
          finalSent = final;
        }
        const head = inflight.shift()!;
        const r = await head.reply;
        if (r.status === PutStatus.stored || r.status === PutStatus.already_stored) {
          onProgress?.(length);
          // already_stored here: another client finished the same bytes first
          return { fileUuid, length, uploaded: r.status === PutStatus.stored };
        }
        const end = head.offset + head.length;
        if (r.received === end && !head.final) {
          onProgress?.(end);
          continue;
        }
        // The server holds a different prefix than we assumed (resumed or lost chunk):
        // let the window drain and continue from the server's offset.
        if (r.received > length) throw new GridError('REMOTE_ERROR', `storage says it holds ${r.received} bytes of a ${length}-byte file ${fileUuid}`);
        if (++rewinds > this.cfg.maxUploadRewinds) {
          throw new GridError('UNAVAILABLE', `upload of ${fileUuid} restarted ${rewinds - 1} times and still does not line up (server holds ${r.received} bytes)`, 'try again later');
        }
        // The chunks still in flight were applied (or skipped) after this one: the last
        // answer among them is the node's newest state, and may already say stored.
        let received = r.received;
        for (const s of await Promise.allSettled(inflight.map((f) => f.reply))) {
          if (s.status !== 'fulfilled') continue;
          if (s.value.status !== PutStatus.partial) {
            onProgress?.(length);
            return { fileUuid, length, uploaded: s.value.status === PutStatus.stored };
          }
          received = s.value.received;
        }
        inflight.length = 0;
        this.log.info({ fileId: fileUuid, expected: end, received }, "upload continues from the storage node's offset");
        next = received;
        finalSent = false;
      }
    } finally {
      await Promise.allSettled(inflight.map((f) => f.reply));
    }
  }

  private putChunk(fileUuid: string, digest: Buffer, length: number, offset: number, final: boolean, data: Buffer): Promise<MessageOf<'file_put_response'>> {
    return this.request('file_put_response', {
      type: 'file_put_request',
      node_uuid: this.o.nodeUuid,
      request_uuid: newUuid(),
      file_uuid: fileUuid,
      file_length: length,
      offset,
      final: final ? 1 : 0,
      sha256: digest,
      data,
    });
  }

  // ---- reads ---------------------------------------------------------------------------------

  /** Up to `length` bytes from `offset`; short (possibly empty) at the end of the file. */
  async read(fileUuid: string, offset: number, length: number): Promise<Buffer> {
    checkUuid(fileUuid);
    checkCount('offset', offset);
    checkCount('length', length);
    if (length <= this.cfg.readChunkBytes) return (await this.readPiece(fileUuid, offset, length)).data;
    const pieces: Buffer[] = [];
    const step = this.cfg.readChunkBytes;
    await pipelined(
      Math.ceil(length / step),
      this.cfg.readWindowChunks,
      (i) => this.readPiece(fileUuid, offset + i * step, Math.min(step, length - i * step)),
      (i, r) => {
        pieces.push(r.data);
        return r.length === Math.min(step, length - i * step); // a short piece is the end of the file
      },
    );
    return pieces.length === 1 ? pieces[0]! : Buffer.concat(pieces);
  }

  private readPiece(fileUuid: string, offset: number, length: number): Promise<MessageOf<'file_read_response'>> {
    return this.request('file_read_response', {
      type: 'file_read_request',
      node_uuid: this.o.nodeUuid,
      request_uuid: newUuid(),
      file_uuid: fileUuid,
      offset,
      length,
    });
  }

  /**
   * The whole file, for small files: one seed file_request. A file the node refuses as
   * TOO_LARGE for that (over its maxReadBytes) is read with ranged reads instead, up to
   * maxWholeReadBytes; larger ones fail with TOO_LARGE (use downloadTo).
   */
  async readWhole(fileUuid: string): Promise<Buffer> {
    checkUuid(fileUuid);
    let p = this.whole.get(fileUuid);
    if (!p) {
      p = this.fileRequest(fileUuid).finally(() => this.whole.delete(fileUuid));
      this.whole.set(fileUuid, p);
    }
    try {
      return (await p).data;
    } catch (e) {
      if (!(e instanceof GridError) || e.code !== 'TOO_LARGE') throw e;
    }
    const st = await this.stat(fileUuid);
    if (!st.exists) throw new GridError('NOT_FOUND', `no file ${fileUuid} on storage ${this.o.endpoint}`, 'check the id');
    if (st.length > this.cfg.maxWholeReadBytes) {
      throw new GridError('TOO_LARGE', `${fileUuid} is ${st.length} bytes, over maxWholeReadBytes (${this.cfg.maxWholeReadBytes}) for readWhole`, 'use downloadTo or ranged reads');
    }
    const data = await this.read(fileUuid, 0, st.length);
    if (data.length !== st.length || !createHash('sha256').update(data).digest().equals(st.sha256!)) {
      throw new GridError('CHECKSUM_MISMATCH', `the bytes read of ${fileUuid} do not match its SHA-256`, 'try again; if it persists the storage node holds a damaged copy');
    }
    return data;
  }

  /**
   * The seed's file_request has no request_uuid: its file_response is matched by file_uuid,
   * and the storage node answers a refused file_request with an error_reply whose
   * request_uuid is the file_uuid (docs/storage.md). RpcClient keys error replies by
   * request_uuid only, so these calls are matched here, through onUnsolicited.
   */
  private async fileRequest(fileUuid: string): Promise<MessageOf<'file_response'>> {
    const req: MessageInput<'file_request'> = { type: 'file_request', node_uuid: this.o.nodeUuid, file_uuid: fileUuid };
    for (let attempt = 0; ; attempt++) {
      if (this.closed) throw new GridError('UNAVAILABLE', 'storage client is closed');
      try {
        return await new Promise<MessageOf<'file_response'>>((resolve, reject) => {
          const timer = setTimeout(() => {
            this.wholeWaiters.delete(fileUuid);
            reject(new TimeoutError('file_request', this.o.endpoint, this.cfg.requestTimeoutMs));
          }, this.cfg.requestTimeoutMs);
          const done = <A>(f: (a: A) => void) => (a: A) => {
            clearTimeout(timer);
            this.wholeWaiters.delete(fileUuid);
            f(a);
          };
          this.wholeWaiters.set(fileUuid, { resolve: done(resolve), reject: done(reject) });
          this.rpc.send(req).catch(done(reject));
        });
      } catch (e) {
        if (!(e instanceof TimeoutError) || attempt >= this.cfg.retries) throw e;
        await this.retryPause(attempt);
      }
    }
  }

  /** The pause before re-send number attempt + 1 (backoff with jitter), logged. */
  private async retryPause(attempt: number): Promise<void> {
    const ms = backoffDelayMs(attempt, { baseMs: this.cfg.retryBackoffBaseMs, maxMs: Math.max(this.cfg.retryBackoffBaseMs, this.cfg.retryBackoffMaxMs) }, this.random);
    this.log.debug({ storage: this.o.endpoint, attempt: attempt + 1, pauseMs: ms }, 'storage request timed out; re-sending after a pause');
    this.retries++;
    await this.sleep(ms);
  }

  private onUnsolicited(m: Message): void {
    const key = m.type === 'file_response' ? m.file_uuid : m.type === 'error_reply' ? m.request_uuid : undefined;
    const w = key ? this.wholeWaiters.get(key) : undefined;
    if (w && m.type === 'file_response') return w.resolve(m);
    if (w && m.type === 'error_reply') return w.reject(new RemoteError(m.error_code, m.message || errorCodeName(m.error_code)));
    this.log.debug({ type: m.type }, 'storage reply that answers nothing pending (late or duplicate) dropped');
  }

  /**
   * Downloads a whole file to `destPath` with pipelined ranged reads, verifying its SHA-256
   * against the stored one; writes to a temporary file next to it and renames at the end, so
   * `destPath` never holds a partial file. Returns the file's length.
   */
  async downloadTo(fileUuid: string, destPath: string): Promise<number> {
    const st = await this.stat(fileUuid);
    if (!st.exists) throw new GridError('NOT_FOUND', `no file ${fileUuid} on storage ${this.o.endpoint}`, 'upload it first, or check the id');
    const tmp = path.join(path.dirname(destPath), `.${path.basename(destPath)}.part-${newUuid()}`);
    const fh = await fs.promises.open(tmp, 'wx').catch((e: NodeJS.ErrnoException) => {
      throw new GridError('INPUT_UNREADABLE', `cannot write ${tmp}: ${e.code ?? e.message}`, 'check the destination folder exists and is writable', { cause: e });
    });
    let ok = false;
    try {
      const h = createHash('sha256');
      const step = this.cfg.readChunkBytes;
      let written = 0;
      await pipelined(
        Math.ceil(st.length / step),
        this.cfg.readWindowChunks,
        (i) => this.readPiece(fileUuid, i * step, Math.min(step, st.length - i * step)),
        async (i, r) => {
          const want = Math.min(step, st.length - i * step);
          if (r.length !== want || r.file_length !== st.length) {
            throw new GridError('REMOTE_ERROR', `storage returned ${r.length} bytes at offset ${i * step} of ${fileUuid}, expected ${want} (file length ${r.file_length} vs ${st.length})`);
          }
          h.update(r.data);
          await fh.write(r.data, 0, r.data.length, written);
          written += r.data.length;
          return true;
        },
      );
      const got = h.digest();
      if (!st.sha256 || !got.equals(st.sha256)) {
        throw new GridError('CHECKSUM_MISMATCH', `downloaded ${fileUuid} does not match its SHA-256`, 'try again; if it persists the storage node holds a damaged copy');
      }
      await fh.sync();
      await fh.close();
      await fs.promises.rename(tmp, destPath);
      ok = true;
      return written;
    } finally {
      if (!ok) {
        await fh.close().catch(() => undefined);
        await fs.promises.rm(tmp, { force: true }).catch(() => undefined);
      }
    }
  }

  // ---- plumbing ------------------------------------------------------------------------------

  private async request<T extends Message['type']>(want: T, m: Parameters<RpcClient['request']>[0]): Promise<MessageOf<T>> {
    let r: Message;
    // re-sent with the same request_uuid after a timeout (the node answers a repeat as the first)
    for (let attempt = 0; ; attempt++) {
      if (this.closed) throw new GridError('UNAVAILABLE', 'storage client is closed');
      try {
        r = await this.rpc.request(m, { timeoutMs: this.cfg.requestTimeoutMs, retries: 0 });
        break;
      } catch (e) {
        if (!(e instanceof TimeoutError) || attempt >= this.cfg.retries || this.closed) throw e;
        await this.retryPause(attempt);
      }
    }
    if (r.type !== want) throw new GridError('REMOTE_ERROR', `storage answered ${m.type} with ${r.type}, expected ${want}`);
    return r as MessageOf<T>;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const w of this.wholeWaiters.values()) w.reject(new GridError('UNAVAILABLE', 'storage client closed'));
    this.wholeWaiters.clear();
    this.rpc.close();
  }
}
