/**
 * The storage node: the I/O shell around FileStore. One ROUTER serves clients and workers
 * (file_stat, file_put, file_read and the seed's file_request); an admin HTTP server serves
 * /healthz and /status; timers sweep idle uploads and run the scrub in small steps.
 *
 * The handler is synchronous (better-sqlite3), so requests are applied one at a time in the
 * order they arrived, which is what makes in-order chunk uploads over one socket work.
 */
import path from 'node:path';
import { LRUCache } from 'lru-cache';
import { Logger } from 'pino';
import { Message, MessageInput, MessageOf, PutStatus, newUuid } from '../messages';
import { AccessTable, AdminServer, GridError, RpcServer, Security, createLogger, persistentNodeId } from '../common';
import { StorageSnapshot, storageMetrics } from './metrics';
import { StorageConfig } from './config';
import { CorruptChunk, FileStore } from './store';
import { UploadQuota } from './upload-quota';


export interface ScrubReport {
  startedAtMs: number;
  finishedAtMs: number | null;
  chunksChecked: number;
  bytesChecked: number;
  corruptCount: number;
  corrupt: CorruptChunk[];
}

export interface StorageNodeOptions {
  log?: Logger;
  /** time source, ms since the epoch (tests inject one) */
  now?: () => number;
}

const READERS = ['clients', 'admins', 'workers', 'storage', 'masters'] as const;
/**
 * Who may send what to a storage node (docs/operations.md, "Security"): clients upload
 * programs and inputs, workers upload outputs and logs, both read.
 */
export const STORAGE_ACCESS: AccessTable = {
  generic_message: READERS,
  file_stat_request: READERS,
  file_read_request: READERS,
  file_request: READERS,
  file_put_request: ['clients', 'admins', 'workers', 'storage'],
};

export class StorageNode {
  readonly nodeId: string;
  readonly log: Logger;
  readonly store: FileStore;
  private readonly server: RpcServer;
  readonly security: Security;
  private readonly uploads: UploadQuota;
  private readonly admin: AdminServer;
  private readonly now: () => number;
  private readonly timers: NodeJS.Timeout[] = [];
  /** first answers by request_uuid, at most putReplyCacheEntries (least recently used out first); none when 0 */
  private readonly putReplies?: LRUCache<string, MessageInput<'file_put_response'>>;
  private readonly requests: Record<string, number> = {};
  private readonly corruptSeen = new Map<string, CorruptChunk>();
  private scrubCursor: number | null = null;
  private scrubRunning?: ScrubReport;
  private lastScrub: ScrubReport | null = null;
  private stopped = false;
  private refusedFileRequests = 0;
  private readonly startedAtMs: number;

  constructor(
    readonly cfg: StorageConfig,
    o: StorageNodeOptions = {},
  ) {
    this.now = o.now ?? Date.now;
    this.startedAtMs = this.now();
    if (cfg.putReplyCacheEntries > 0) this.putReplies = new LRUCache({ max: cfg.putReplyCacheEntries });
    this.nodeId = persistentNodeId(cfg.dataDir, newUuid);
    this.log = o.log ?? createLogger({ role: 'storage', nodeId: this.nodeId, file: path.join(cfg.dataDir, 'logs', `storage-${this.nodeId}.log`) });
    this.store = new FileStore(path.join(cfg.dataDir, 'storage.db'), cfg, this.log);
    this.uploads = new UploadQuota({ maxUploadsPerClient: cfg.maxUploadsPerClient, maxReservedBytesPerClient: cfg.maxReservedBytesPerClient, uploadIdleMs: cfg.uploadIdleMs });
    this.security = new Security({ mode: cfg.security, keyDir: cfg.dataDir, trustDir: cfg.trustDir, role: 'storage', enroll: cfg.enroll, log: this.log });
    this.server = new RpcServer({ bind: cfg.bind, nodeUuid: this.nodeId, log: this.log, security: this.security, access: STORAGE_ACCESS, handler: (m, peer) => this.handle(m, peer) });
    this.admin = new AdminServer({ host: cfg.adminHost, port: cfg.adminPort, token: cfg.adminToken, health: () => (this.stopped ? 'stopping' : null), status: () => this.status(),
      metrics: storageMetrics(this.nodeId, () => this.status() as StorageSnapshot, () => this.server.stats),
    });
  }

  async start(): Promise<{ endpoint: string; adminPort: number }> {
    this.store.discardStale(this.now());
    const endpoint = await this.server.start();
    const adminPort = await this.admin.start();
    this.timers.push(setInterval(() => this.store.discardStale(this.now()), this.cfg.stagingSweepIntervalMs));
    this.timers.push(setInterval(() => this.dropIdleUploads(), Math.min(this.cfg.stagingSweepIntervalMs, this.cfg.uploadIdleMs)));
    if (this.cfg.scrubIntervalMs > 0) this.timers.push(setInterval(() => this.startScrub(), this.cfg.scrubIntervalMs));
    for (const t of this.timers) t.unref();
    this.log.info({ endpoint, adminPort, ...this.store.statsNow() }, 'storage serving');
    return { endpoint, adminPort };
  }

  get endpoint(): string {
    return this.server.endpoint;
  }

  get adminPort(): number {
    return this.admin.port;
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    for (const t of this.timers) clearInterval(t);
    this.server.close();
    await this.admin.close();
    this.store.close();
    this.log.info('storage stopped');
  }

  /** Discards uploads that got no chunk for uploadIdleMs, freeing their client's reservation. */
  private dropIdleUploads(): void {
    for (const id of this.uploads.idle(this.now())) {
      this.store.discard(id);
      this.uploads.end(id);
      this.log.info({ fileId: id, idleMs: this.cfg.uploadIdleMs }, 'idle upload discarded');
    }
  }

  // ---- requests ------------------------------------------------------------------------------

  private handle(m: Message, peer: Buffer): MessageInput | void {
    this.requests[m.type] = (this.requests[m.type] ?? 0) + 1;
    switch (m.type) {
      case 'file_stat_request':
        return this.onStat(m);
      case 'file_put_request':
        return this.onPut(m, peer);
      case 'file_read_request':
        return this.onRead(m);
      case 'file_request':
        return this.onFileRequest(m);
      default:
        throw new GridError('UNEXPECTED', `a storage node does not take ${m.type}`, 'send file_stat_request, file_put_request, file_read_request or file_request');
    }
  }

  private onStat(m: MessageOf<'file_stat_request'>): MessageInput<'file_stat_response'> {
    const f = this.store.stat(m.file_uuid);
    return {
      type: 'file_stat_response',
      node_uuid: this.nodeId,
      request_uuid: m.request_uuid,
      file_uuid: m.file_uuid,
      file_length: f ? f.length : 0,
      exists: f ? 1 : 0,
      sha256: f ? f.sha256 : Buffer.alloc(32),
    };
  }

  private onPut(m: MessageOf<'file_put_request'>, peer: Buffer): MessageInput<'file_put_response'> {
    const seen = this.putReplies?.get(m.request_uuid);
    if (seen) return seen;
    const now = this.now();
    // per-client bounds (the key, or the connection with security off); a chunk at offset 0
    // of an upload not tracked yet is the one that opens it in the store
    const key = this.security.peerKey(peer);
    const owner = key ?? peer.toString('hex');
    if (m.offset === 0 && !this.uploads.has(m.file_uuid)) this.uploads.begin(m.file_uuid, owner, m.file_length, now, key ? this.security.nameOf(key) : 'this connection');
    else this.uploads.touch(m.file_uuid, now);
    let r: ReturnType<FileStore['put']>;
    try {
      r = this.store.put({ fileUuid: m.file_uuid, sha256: m.sha256, fileLength: m.file_length, offset: m.offset, final: m.final === 1, data: m.data }, now);
    } catch (e) {
      this.uploads.end(m.file_uuid);
      throw e;
    }
    if (r.status !== PutStatus.partial) this.uploads.end(m.file_uuid);
    const reply: MessageInput<'file_put_response'> = {
      type: 'file_put_response',
      node_uuid: this.nodeId,
      request_uuid: m.request_uuid,
      file_uuid: m.file_uuid,
      received: r.received,
      status: r.status,
    };
    // Only answers that changed state need remembering: a re-sent chunk that was applied
    // would otherwise read as a partial/already_stored answer instead of its first one.
    if (r.status === PutStatus.stored || m.offset + m.data.length === r.received) {
      this.putReplies?.set(m.request_uuid, reply);
    }
    return reply;
  }

  private onRead(m: MessageOf<'file_read_request'>): MessageInput<'file_read_response'> {
    const r = this.store.read(m.file_uuid, m.offset, m.length, this.now(), (c) => this.noteCorrupt(c));
    return {
      type: 'file_read_response',
      node_uuid: this.nodeId,
      request_uuid: m.request_uuid,
      file_uuid: m.file_uuid,
      offset: m.offset,
      file_length: r.fileLength,
      data: r.data,
    };
  }

  /**
   * The seed's file_request carries no request_uuid; a refusal is answered with an
   * error_reply whose request_uuid is the file_uuid, so the client can match it
   * (docs/storage.md, "Wire").
   */
  private onFileRequest(m: MessageOf<'file_request'>): MessageInput {
    try {
      const r = this.store.readWhole(m.file_uuid, this.now(), (c) => this.noteCorrupt(c));
      return { type: 'file_response', node_uuid: this.nodeId, file_uuid: m.file_uuid, data: r.data };
    } catch (e) {
      if (!(e instanceof GridError)) throw e;
      this.refusedFileRequests++;
      this.log.info({ code: e.code, err: e.message, type: m.type }, 'request refused');
      return this.server.errorReply(m.file_uuid, e.wireCode, e.describe());
    }
  }

  private noteCorrupt(c: CorruptChunk): void {
    const key = `${c.fileUuid}@${c.offset}`;
    if (!this.corruptSeen.has(key) && this.corruptSeen.size < this.cfg.maxCorruptListed) this.corruptSeen.set(key, c);
  }

  // ---- scrub ---------------------------------------------------------------------------------

  /** Starts a scrub pass unless one is running; resolves when the pass is complete. */
  startScrub(): Promise<ScrubReport> {
    if (this.scrubRunning) return this.scrubDone!;
    const rep: ScrubReport = { startedAtMs: this.now(), finishedAtMs: null, chunksChecked: 0, bytesChecked: 0, corruptCount: 0, corrupt: [] };
    this.scrubRunning = rep;
    this.scrubCursor = 0;
    this.scrubDone = new Promise<ScrubReport>((resolve) => {
      const step = () => {
        if (this.stopped) return resolve(rep);
        const s = this.store.scrubStep(this.scrubCursor!, this.cfg.scrubBatchBytes, this.now());
        rep.chunksChecked += s.chunksChecked;
        rep.bytesChecked += s.bytesChecked;
        rep.corruptCount += s.corrupt.length;
        for (const c of s.corrupt) {
          if (rep.corrupt.length < this.cfg.maxCorruptListed) rep.corrupt.push(c);
          this.noteCorrupt(c);
        }
        this.scrubCursor = s.cursor;
        if (s.cursor !== null) return void setImmediate(step);
        rep.finishedAtMs = this.now();
        this.lastScrub = rep;
        this.scrubRunning = undefined;
        this.scrubDone = undefined;
        this.log.info({ chunks: rep.chunksChecked, bytes: rep.bytesChecked, corrupt: rep.corruptCount }, 'scrub finished');
        resolve(rep);
      };
      setImmediate(step);
    });
    return this.scrubDone;
  }
  private scrubDone?: Promise<ScrubReport>;

  // ---- status --------------------------------------------------------------------------------

  status(): unknown {
    const s = this.stopped ? null : this.store.statsNow();
    return {
      role: 'storage',
      nodeId: this.nodeId,
      endpoint: this.server.endpoint,
      uptimeMs: this.now() - this.startedAtMs,
      files: s?.files,
      bytesStored: s?.bytesStored,
      chunks: s?.chunks,
      quotaBytes: this.cfg.quotaBytes,
      reservedBytes: s?.reservedBytes,
      uploads: { open: s?.uploadSessions, stagingBytes: s?.stagingBytes, max: this.cfg.maxUploadSessions },
      requests: { received: this.server.stats.received, decodeErrors: this.server.stats.decodeErrors, refused: this.server.stats.handlerErrors + this.refusedFileRequests, byType: { ...this.requests } },
      corruptChunksSeen: [...this.corruptSeen.values()],
      scrub: { running: this.scrubRunning ? { ...this.scrubRunning, corrupt: undefined } : null, last: this.lastScrub, intervalMs: this.cfg.scrubIntervalMs },
      limits: { chunkSizeBytes: this.cfg.chunkSizeBytes, maxPutChunkBytes: this.cfg.maxPutChunkBytes, maxReadBytes: this.cfg.maxReadBytes, stagingMaxAgeMs: this.cfg.stagingMaxAgeMs },
    };
  }
}
