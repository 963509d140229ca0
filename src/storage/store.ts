/**
 * Immutable, content-addressed files in one SQLite database (docs/storage.md, "Schema").
 *
 * A file is a row in `files` plus its chunks in `chunks`, each chunk with its own SHA-256.
 * An upload is a row in `uploads` (staging) whose chunks are written in order; the final
 * chunk checks the whole-file SHA-256 and the file_uuid derived from it and then, in one
 * transaction written with synchronous=FULL, makes the file visible by inserting its `files`
 * row. Chunks of an unfinished upload are never served: reads go through `files`.
 *
 * Everything here is synchronous (better-sqlite3) and takes the time as an argument, so the
 * server handles requests strictly one after another in arrival order, and tests can drive
 * ages without waiting.
 */
import { createHash, Hash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { Logger } from 'pino';
import { PutStatus, fileUuidFromSha256, sha256 } from '../messages';
import { GridError, assert } from '../common';

export interface StoreLimits {
  quotaBytes: number;
  chunkSizeBytes: number;
  maxPutChunkBytes: number;
  maxReadBytes: number;
  maxUploadSessions: number;
  stagingMaxAgeMs: number;
}

export interface PutChunk {
  fileUuid: string;
  sha256: Buffer;
  fileLength: number;
  offset: number;
  final: boolean;
  data: Buffer;
}

export interface PutOutcome {
  /** bytes of the file the store holds after this chunk */
  received: number;
  status: (typeof PutStatus)[keyof typeof PutStatus];
}

export interface FileInfo {
  fileUuid: string;
  sha256: Buffer;
  length: number;
  chunkCount: number;
  storedAtMs: number;
}

export interface CorruptChunk {
  fileUuid: string;
  offset: number;
  length: number;
  /** 'read' when a request hit it, 'scrub' when the scrub found it */
  foundBy: 'read' | 'scrub';
  atMs: number;
}

export interface ScrubStep {
  /** pass this back to continue; null when the pass is complete */
  cursor: number | null;
  chunksChecked: number;
  bytesChecked: number;
  corrupt: CorruptChunk[];
}

export interface StoreStats {
  files: number;
  bytesStored: number;
  chunks: number;
  uploadSessions: number;
  /** bytes received by open uploads */
  stagingBytes: number;
  /** bytes counted against the quota: stored files plus the full declared length of open uploads */
  reservedBytes: number;
  quotaBytes: number;
}

interface UploadRow {
  file_uuid: string;
  sha256: Buffer;
  length: number;
  received: number;
  chunk_count: number;
  created_at_ms: number;
  updated_at_ms: number;
}

interface ChunkRow {
  id: number;
  file_uuid: string;
  offset: number;
  length: number;
  sha256: Buffer;
  data: Buffer;
}

/** Bumped when the schema changes; an unknown version refuses to open. */
const SCHEMA_VERSION = 1;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS files (
  file_uuid    TEXT PRIMARY KEY,
  sha256       BLOB NOT NULL,
  length       INTEGER NOT NULL,
  chunk_count  INTEGER NOT NULL,
  stored_at_ms INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS uploads (
  file_uuid     TEXT PRIMARY KEY,
  sha256        BLOB NOT NULL,
  length        INTEGER NOT NULL,
  received      INTEGER NOT NULL,
  chunk_count   INTEGER NOT NULL,
  created_at_ms INTEGER NOT NULL,
  updated_at_ms INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS chunks (
  id        INTEGER PRIMARY KEY,
  file_uuid TEXT NOT NULL,
  offset    INTEGER NOT NULL,
  length    INTEGER NOT NULL,
  sha256    BLOB NOT NULL,
  data      BLOB NOT NULL,
  UNIQUE (file_uuid, offset)
);
`;

/** An in-memory running hash of an upload, valid while the process lives (else recomputed). */
interface LiveHash {
  hash: Hash;
  upTo: number;
}

export class FileStore {
  readonly db: Database.Database;
  private readonly live = new Map<string, LiveHash>();
  private stats: { files: number; bytesStored: number; chunks: number };
  private readonly q: ReturnType<FileStore['prepare']>;

  constructor(
    readonly file: string,
    readonly limits: StoreLimits,
    private readonly log: Logger,
  ) {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    this.db = new Database(file);
    this.db.pragma('journal_mode = WAL');
    // Staging writes use NORMAL (WAL stays consistent; a crash may lose the newest staged
    // chunks, which the client re-sends from `received`); commits switch to FULL.
    this.db.pragma('synchronous = NORMAL');
    this.db.pragma('foreign_keys = ON');
    this.db.exec(SCHEMA);
    const v = this.db.prepare(`SELECT value FROM meta WHERE key = 'schema_version'`).get() as { value: string } | undefined;
    if (!v) this.db.prepare(`INSERT INTO meta (key, value) VALUES ('schema_version', ?)`).run(String(SCHEMA_VERSION));
    else if (Number(v.value) !== SCHEMA_VERSION) {
      this.db.close();
      throw new GridError('CONFIG_INVALID', `${file} has schema version ${v.value}; this build reads version ${SCHEMA_VERSION}`, 'use the grid version that wrote it, or another --data-dir');
    }
    this.q = this.prepare();
    const s = this.db.prepare(`SELECT COUNT(*) AS n, COALESCE(SUM(length), 0) AS bytes, COALESCE(SUM(chunk_count), 0) AS chunks FROM files`).get() as { n: number; bytes: number; chunks: number };
    this.stats = { files: s.n, bytesStored: s.bytes, chunks: s.chunks };
  }

  private prepare() {
    const d = this.db;
    return {
      file: d.prepare(`SELECT file_uuid AS fileUuid, sha256, length, chunk_count AS chunkCount, stored_at_ms AS storedAtMs FROM files WHERE file_uuid = ?`),
      upload: d.prepare(`SELECT * FROM uploads WHERE file_uuid = ?`),
      uploadCount: d.prepare(`SELECT COUNT(*) AS n, COALESCE(SUM(length), 0) AS reserved, COALESCE(SUM(received), 0) AS received FROM uploads`),
      insertUpload: d.prepare(`INSERT INTO uploads (file_uuid, sha256, length, received, chunk_count, created_at_ms, updated_at_ms) VALUES (?, ?, ?, 0, 0, ?, ?)`),
      advanceUpload: d.prepare(`UPDATE uploads SET received = ?, chunk_count = chunk_count + ?, updated_at_ms = ? WHERE file_uuid = ?`),
      touchUpload: d.prepare(`UPDATE uploads SET updated_at_ms = ? WHERE file_uuid = ?`),
      deleteUpload: d.prepare(`DELETE FROM uploads WHERE file_uuid = ?`),
      insertChunk: d.prepare(`INSERT INTO chunks (file_uuid, offset, length, sha256, data) VALUES (?, ?, ?, ?, ?)`),
      deleteChunks: d.prepare(`DELETE FROM chunks WHERE file_uuid = ?`),
      insertFile: d.prepare(`INSERT INTO files (file_uuid, sha256, length, chunk_count, stored_at_ms) VALUES (?, ?, ?, ?, ?)`),
      chunksOf: d.prepare(`SELECT offset, length, sha256, data FROM chunks WHERE file_uuid = ? ORDER BY offset`),
      // chunks overlapping [start, end): from the last chunk starting at or before start
      chunksIn: d.prepare(
        `SELECT offset, length, sha256, data FROM chunks WHERE file_uuid = @f
           AND offset >= (SELECT MAX(offset) FROM chunks WHERE file_uuid = @f AND offset <= @start)
           AND offset < @end ORDER BY offset`,
      ),
      staleUploads: d.prepare(`SELECT file_uuid FROM uploads WHERE updated_at_ms < ?`),
      scrubFrom: d.prepare(
        `SELECT c.id, c.file_uuid, c.offset, c.length, c.sha256, c.data FROM chunks c
           JOIN files f ON f.file_uuid = c.file_uuid WHERE c.id > ? ORDER BY c.id`,
      ),
    };
  }

  // ---- queries -------------------------------------------------------------------------------

  stat(fileUuid: string): FileInfo | undefined {
    return this.q.file.get(fileUuid) as FileInfo | undefined;
  }

  statsNow(): StoreStats {
    const u = this.q.uploadCount.get() as { n: number; reserved: number; received: number };
    return {
      ...this.stats,
      uploadSessions: u.n,
      stagingBytes: u.received,
      reservedBytes: this.stats.bytesStored + u.reserved,
      quotaBytes: this.limits.quotaBytes,
    };
  }

  // ---- upload --------------------------------------------------------------------------------

  /**
   * Applies one upload chunk. Idempotent: a chunk at an offset the store already holds (a
   * re-send) changes nothing and answers `partial` with the current `received`; so does a
   * chunk ahead of it (the client then continues from `received`).
   */
  put(c: PutChunk, nowMs: number): PutOutcome {
    const L = this.limits;
    const len = c.data.length;
    if (c.sha256.length !== 32) throw new GridError('BAD_REQUEST', 'sha256 must be 32 bytes');
    if (fileUuidFromSha256(c.sha256) !== c.fileUuid) {
      throw new GridError('CHECKSUM_MISMATCH', `file_uuid ${c.fileUuid} is not the content address of the given SHA-256 (${fileUuidFromSha256(c.sha256)})`, 'derive file_uuid from the SHA-256 with fileUuidFromSha256');
    }
    if (len > L.maxPutChunkBytes) throw new GridError('TOO_LARGE', `upload chunk of ${len} bytes is over maxPutChunkBytes (${L.maxPutChunkBytes})`, 'send smaller chunks (1 MiB is the norm)');
    if (c.offset + len > c.fileLength) throw new GridError('BAD_REQUEST', `chunk at offset ${c.offset} with ${len} bytes runs past the file length ${c.fileLength}`);
    if (c.final && c.offset + len !== c.fileLength) throw new GridError('BAD_REQUEST', `the final chunk must end at the file length ${c.fileLength}, it ends at ${c.offset + len}`);
    if (!c.final && len === 0) throw new GridError('BAD_REQUEST', 'a chunk that is not final must carry bytes');

    const stored = this.stat(c.fileUuid);
    if (stored) {
      if (stored.length !== c.fileLength) throw new GridError('BAD_REQUEST', `file ${c.fileUuid} is stored with length ${stored.length}, not ${c.fileLength}`);
      return { received: stored.length, status: PutStatus.already_stored };
    }
    let up = this.q.upload.get(c.fileUuid) as UploadRow | undefined;
    if (up && up.length !== c.fileLength) throw new GridError('BAD_REQUEST', `upload of ${c.fileUuid} was started with length ${up.length}, not ${c.fileLength}`);
    if (!up) {
      // Only a chunk at offset 0 opens a session; anything else learns to start at 0.
      if (c.offset !== 0) return { received: 0, status: PutStatus.partial };
      this.openUpload(c, nowMs);
      up = this.q.upload.get(c.fileUuid) as UploadRow;
    }
    if (c.offset !== up.received) {
      this.q.touchUpload.run(nowMs, c.fileUuid);
      return { received: up.received, status: PutStatus.partial };
    }
    const received = this.appendChunk(c, up, nowMs);
    if (!c.final) return { received, status: PutStatus.partial };
    this.commit(c, nowMs);
    return { received: c.fileLength, status: PutStatus.stored };
  }

  private openUpload(c: PutChunk, nowMs: number): void {
    const u = this.q.uploadCount.get() as { n: number; reserved: number };
    if (u.n >= this.limits.maxUploadSessions) {
      throw new GridError('UNAVAILABLE', `${u.n} uploads are open, the limit (maxUploadSessions) is ${this.limits.maxUploadSessions}`, 'retry later');
    }
    const reserved = this.stats.bytesStored + u.reserved;
    if (reserved + c.fileLength > this.limits.quotaBytes) {
      throw new GridError('QUOTA_EXCEEDED', `storing ${c.fileLength} bytes would exceed the quota: ${reserved} of ${this.limits.quotaBytes} bytes are used or reserved`, 'free space on the storage node or raise quotaBytes');
    }
    this.q.insertUpload.run(c.fileUuid, c.sha256, c.fileLength, nowMs, nowMs);
    this.live.set(c.fileUuid, { hash: createHash('sha256'), upTo: 0 });
  }

  /** Writes the chunk's bytes as stored chunks of at most chunkSizeBytes; returns the new `received`. */
  private appendChunk(c: PutChunk, up: UploadRow, nowMs: number): number {
    const size = this.limits.chunkSizeBytes;
    const pieces: Buffer[] = [];
    for (let p = 0; p < c.data.length; p += size) pieces.push(c.data.subarray(p, Math.min(p + size, c.data.length)));
    const received = up.received + c.data.length;
    this.db.transaction(() => {
      let off = c.offset;
      for (const piece of pieces) {
        this.q.insertChunk.run(c.fileUuid, off, piece.length, sha256(piece), piece);
        off += piece.length;
      }
      this.q.advanceUpload.run(received, pieces.length, nowMs, c.fileUuid);
    })();
    const lh = this.live.get(c.fileUuid);
    if (lh && lh.upTo === c.offset) {
      lh.hash.update(c.data);
      lh.upTo = received;
    } else this.live.delete(c.fileUuid);
    return received;
  }

  /** Verifies the whole file and makes it visible, or discards the upload with CHECKSUM_MISMATCH. */
  private commit(c: PutChunk, nowMs: number): void {
    const lh = this.live.get(c.fileUuid);
    this.live.delete(c.fileUuid);
    const digest = lh && lh.upTo === c.fileLength ? lh.hash.digest() : this.rehash(c.fileUuid);
    if (!digest.equals(c.sha256)) {
      this.discard(c.fileUuid);
      this.log.warn({ fileId: c.fileUuid, want: c.sha256.toString('hex'), got: digest.toString('hex') }, 'upload discarded: whole-file SHA-256 mismatch');
      throw new GridError('CHECKSUM_MISMATCH', `the uploaded bytes of ${c.fileUuid} hash to ${digest.toString('hex')}, not the declared ${c.sha256.toString('hex')}; the upload was discarded`, 'upload the file again');
    }
    const up = this.q.upload.get(c.fileUuid) as UploadRow;
    assert(up && up.received === c.fileLength, 'a committed upload holds every byte');
    this.db.pragma('synchronous = FULL');
    try {
      this.db.transaction(() => {
        this.q.insertFile.run(c.fileUuid, c.sha256, c.fileLength, up.chunk_count, nowMs);
        this.q.deleteUpload.run(c.fileUuid);
      })();
    } finally {
      this.db.pragma('synchronous = NORMAL');
    }
    this.stats.files++;
    this.stats.bytesStored += c.fileLength;
    this.stats.chunks += up.chunk_count;
    this.log.info({ fileId: c.fileUuid, length: c.fileLength, chunks: up.chunk_count }, 'file stored');
  }

  /** SHA-256 of an upload's staged bytes, read back from the database (after a restart). */
  private rehash(fileUuid: string): Buffer {
    const h = createHash('sha256');
    for (const r of this.q.chunksOf.iterate(fileUuid) as IterableIterator<Omit<ChunkRow, 'id' | 'file_uuid'>>) h.update(r.data);
    return h.digest();
  }

  discard(fileUuid: string): void {
    this.db.transaction(() => {
      this.q.deleteChunks.run(fileUuid);
      this.q.deleteUpload.run(fileUuid);
    })();
    this.live.delete(fileUuid);
  }

  /** Discards uploads idle for longer than stagingMaxAgeMs; returns their file ids. */
  discardStale(nowMs: number): string[] {
    const rows = this.q.staleUploads.all(nowMs - this.limits.stagingMaxAgeMs) as { file_uuid: string }[];
    for (const r of rows) this.discard(r.file_uuid);
    if (rows.length) this.log.info({ discarded: rows.map((r) => r.file_uuid) }, 'stale uploads discarded');
    return rows.map((r) => r.file_uuid);
  }

  // ---- reads ---------------------------------------------------------------------------------

  private mustStat(fileUuid: string): FileInfo {
    const f = this.stat(fileUuid);
    if (!f) throw new GridError('NOT_FOUND', `no file ${fileUuid} on this storage node`, 'check the id, or upload the file first');
    return f;
  }

  /**
   * Up to `length` bytes from `offset`, short at the end of the file. Every chunk touched is
   * verified against its SHA-256; a damaged one is reported (onCorrupt) and never served.
   */
  read(fileUuid: string, offset: number, length: number, nowMs: number, onCorrupt?: (c: CorruptChunk) => void): { data: Buffer; fileLength: number } {
    const f = this.mustStat(fileUuid);
    if (length > this.limits.maxReadBytes) throw new GridError('TOO_LARGE', `a read of ${length} bytes is over maxReadBytes (${this.limits.maxReadBytes})`, 'read in smaller ranges');
    if (offset > f.length) throw new GridError('BAD_REQUEST', `offset ${offset} is past the end of ${fileUuid} (${f.length} bytes)`, 'read at offsets up to the file length');
    const end = Math.min(offset + length, f.length);
    if (end === offset) return { data: Buffer.alloc(0), fileLength: f.length };
    const rows = this.q.chunksIn.all({ f: fileUuid, start: offset, end }) as Omit<ChunkRow, 'id' | 'file_uuid'>[];
    let pos = offset;
    for (const r of rows) {
      if (r.data.length !== r.length || !sha256(r.data).equals(r.sha256)) {
        const bad: CorruptChunk = { fileUuid, offset: r.offset, length: r.length, foundBy: 'read', atMs: nowMs };
        this.log.error(bad, 'corrupt chunk: SHA-256 mismatch on read; not served');
        onCorrupt?.(bad);
        throw new GridError('CHECKSUM_MISMATCH', `chunk at offset ${r.offset} of ${fileUuid} is damaged on this storage node (SHA-256 mismatch); it is not served`, 'the file must be uploaded again; see the storage log');
      }
      if (r.offset > pos || r.offset + r.length <= pos) throw this.broken(fileUuid, pos);
      pos = r.offset + r.length;
    }
    if (pos < end) throw this.broken(fileUuid, pos);
    const first = rows[0]!;
    if (rows.length === 1) return { data: first.data.subarray(offset - first.offset, end - first.offset), fileLength: f.length };
    const out = Buffer.allocUnsafe(end - offset);
    for (const r of rows) {
      const from = Math.max(offset, r.offset);
      const to = Math.min(end, r.offset + r.length);
      r.data.copy(out, from - offset, from - r.offset, to - r.offset);
    }
    return { data: out, fileLength: f.length };
  }

  private broken(fileUuid: string, pos: number): GridError {
    this.log.error({ fileId: fileUuid, offset: pos }, 'stored file has a gap in its chunks');
    return new GridError('CHECKSUM_MISMATCH', `${fileUuid} has no chunk at offset ${pos} on this storage node (damaged database)`, 'the file must be uploaded again; see the storage log');
  }

  /** A whole file (the seed's file_request), refused over maxReadBytes. */
  readWhole(fileUuid: string, nowMs: number, onCorrupt?: (c: CorruptChunk) => void): { data: Buffer; fileLength: number } {
    const f = this.mustStat(fileUuid);
    if (f.length > this.limits.maxReadBytes) {
      throw new GridError('TOO_LARGE', `${fileUuid} is ${f.length} bytes, over maxReadBytes (${this.limits.maxReadBytes}) for a whole-file request`, 'use ranged reads (file_read_request, StorageClient.read or downloadTo)');
    }
    return this.read(fileUuid, 0, f.length, nowMs, onCorrupt);
  }

  // ---- scrub ---------------------------------------------------------------------------------

  /**
   * Verifies stored chunks in id order from `cursor` (0 = start) until about `maxBytes` were
   * checked. Returns where to continue; null when every chunk was checked.
   */
  scrubStep(cursor: number, maxBytes: number, nowMs: number): ScrubStep {
    const out: ScrubStep = { cursor: null, chunksChecked: 0, bytesChecked: 0, corrupt: [] };
    const it = this.q.scrubFrom.iterate(cursor) as IterableIterator<ChunkRow>;
    for (const r of it) {
      out.chunksChecked++;
      out.bytesChecked += r.data.length;
      if (r.data.length !== r.length || !sha256(r.data).equals(r.sha256)) {
        const bad: CorruptChunk = { fileUuid: r.file_uuid, offset: r.offset, length: r.length, foundBy: 'scrub', atMs: nowMs };
        this.log.error(bad, 'corrupt chunk found by scrub');
        out.corrupt.push(bad);
      }
      if (out.bytesChecked >= maxBytes) {
        out.cursor = r.id;
        break;
      }
    }
    return out;
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}
