/** FileStore on a real SQLite file, no sockets: uploads, idempotence, limits, corruption, restart. */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import fc from 'fast-check';
import { PutStatus, fileUuidFromSha256, sha256 } from '../../src/messages';
import { GridError, silentLogger } from '../../src/common';
import { FileStore, StoreLimits } from '../../src/storage/store';
import { MiB, bytes, tempDir } from './helpers';

const LIMITS: StoreLimits = {
  quotaBytes: 64 * MiB,
  chunkSizeBytes: 1 * MiB,
  maxPutChunkBytes: 8 * MiB,
  maxReadBytes: 4 * MiB,
  maxUploadSessions: 4,
  stagingMaxAgeMs: 60_000,
};

function code(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    assert.ok(e instanceof GridError, `expected a GridError, got ${e}`);
    return e.code;
  }
  assert.fail('expected an error');
}

/** Puts `data` in pieces of `piece` bytes; returns the last outcome. */
function putAll(s: FileStore, data: Buffer, piece: number, now = 1000) {
  const digest = sha256(data);
  const fileUuid = fileUuidFromSha256(digest);
  let off = 0;
  for (;;) {
    const len = Math.min(piece, data.length - off);
    const final = off + len === data.length;
    const r = s.put({ fileUuid, sha256: digest, fileLength: data.length, offset: off, final, data: data.subarray(off, off + len) }, now);
    off += len;
    if (final) return { fileUuid, r };
  }
}

function count(s: FileStore, table: string): number {
  return (s.db.prepare(`SELECT COUNT(*) AS n FROM ${table}`).get() as { n: number }).n;
}

describe('storage FileStore (docs/storage.md)', () => {
  let dir: string;
  let s: FileStore;
  beforeEach(() => {
    dir = tempDir();
    s = new FileStore(path.join(dir, 'storage.db'), LIMITS, silentLogger());
  });
  afterEach(() => {
    s.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('stores a multi-chunk file sent in odd-sized pieces, re-chunked to chunkSizeBytes, and reads any range', () => {
    const data = bytes(3 * MiB + 12345, 7);
    const { fileUuid, r } = putAll(s, data, 3 * MiB - 1);
    assert.equal(r.status, PutStatus.stored);
    const info = s.stat(fileUuid)!;
    assert.equal(info.length, data.length);
    assert.ok(info.sha256.equals(sha256(data)));
    for (const row of s.db.prepare('SELECT length FROM chunks').all() as { length: number }[]) assert.ok(row.length <= MiB);
    for (const [off, len] of [[0, 10], [MiB - 5, 10], [MiB, MiB], [2 * MiB + 3, 2 * MiB], [data.length - 1, 100], [data.length, 5]]) {
      const got = s.read(fileUuid, off!, len!, 0).data;
      assert.ok(got.equals(data.subarray(off!, Math.min(off! + len!, data.length))), `range ${off}+${len}`);
    }
  });

  it('answers already_stored for a stored file without writing', () => {
    const data = bytes(5000, 2);
    const { fileUuid } = putAll(s, data, 1000);
    const rows = [count(s, 'files'), count(s, 'chunks')];
    const again = putAll(s, data, 1000);
    assert.equal(again.fileUuid, fileUuid);
    assert.equal(again.r.status, PutStatus.already_stored);
    assert.deepEqual([count(s, 'files'), count(s, 'chunks')], rows);
  });

  it('treats a re-sent or out-of-order chunk as a no-op that reports received', () => {
    const data = bytes(3000, 3);
    const digest = sha256(data);
    const fileUuid = fileUuidFromSha256(digest);
    const put = (offset: number, len: number, final = false) => s.put({ fileUuid, sha256: digest, fileLength: 3000, offset, final, data: data.subarray(offset, offset + len) }, 1);
    assert.deepEqual(put(0, 1000), { received: 1000, status: PutStatus.partial });
    assert.deepEqual(put(0, 1000), { received: 1000, status: PutStatus.partial });
    assert.deepEqual(put(2000, 1000, true), { received: 1000, status: PutStatus.partial });
    assert.deepEqual(put(1000, 1000), { received: 2000, status: PutStatus.partial });
    assert.deepEqual(put(2000, 1000, true), { received: 3000, status: PutStatus.stored });
    assert.ok(s.read(fileUuid, 0, 3000, 0).data.equals(data));
  });

  it('discards an upload whose bytes do not match the declared SHA-256 (CHECKSUM_MISMATCH)', () => {
    const real = bytes(2000, 4);
    const claimed = sha256(Buffer.from('something else'));
    const fileUuid = fileUuidFromSha256(claimed);
    s.put({ fileUuid, sha256: claimed, fileLength: 2000, offset: 0, final: false, data: real.subarray(0, 1000) }, 1);
    assert.equal(count(s, 'uploads'), 1);
    assert.equal(code(() => s.put({ fileUuid, sha256: claimed, fileLength: 2000, offset: 1000, final: true, data: real.subarray(1000) }, 1)), 'CHECKSUM_MISMATCH');
    assert.equal(count(s, 'uploads'), 0);
    assert.equal(count(s, 'chunks'), 0);
    assert.equal(s.stat(fileUuid), undefined);
  });

  it('refuses a file_uuid that is not the content address of the SHA-256', () => {
    const data = bytes(10, 5);
    const other = fileUuidFromSha256(sha256(Buffer.from('x')));
    assert.equal(code(() => s.put({ fileUuid: other, sha256: sha256(data), fileLength: 10, offset: 0, final: true, data }, 1)), 'CHECKSUM_MISMATCH');
    assert.equal(count(s, 'uploads'), 0);
  });

  it('refuses bad puts with typed errors', () => {
    const data = bytes(100, 6);
    const d = sha256(data);
    const u = fileUuidFromSha256(d);
    assert.equal(code(() => s.put({ fileUuid: u, sha256: d, fileLength: 50, offset: 0, final: true, data }, 1)), 'BAD_REQUEST');
    assert.equal(code(() => s.put({ fileUuid: u, sha256: d, fileLength: 200, offset: 0, final: true, data }, 1)), 'BAD_REQUEST');
    assert.equal(code(() => s.put({ fileUuid: u, sha256: d, fileLength: 100, offset: 0, final: false, data: Buffer.alloc(0) }, 1)), 'BAD_REQUEST');
    const big = Buffer.alloc(LIMITS.maxPutChunkBytes + 1);
    assert.equal(code(() => s.put({ fileUuid: fileUuidFromSha256(sha256(big)), sha256: sha256(big), fileLength: big.length, offset: 0, final: true, data: big }, 1)), 'TOO_LARGE');
  });

  it('enforces the quota, counting the declared length of open uploads', () => {
    const small = new FileStore(path.join(dir, 'q.db'), { ...LIMITS, quotaBytes: 10_000 }, silentLogger());
    try {
      const a = bytes(6000, 8);
      const da = sha256(a);
      small.put({ fileUuid: fileUuidFromSha256(da), sha256: da, fileLength: 6000, offset: 0, final: false, data: a.subarray(0, 10) }, 1);
      const b = bytes(5000, 9);
      const db = sha256(b);
      assert.equal(code(() => small.put({ fileUuid: fileUuidFromSha256(db), sha256: db, fileLength: 5000, offset: 0, final: true, data: b }, 1)), 'QUOTA_EXCEEDED');
      assert.equal(small.statsNow().reservedBytes, 6000);
    } finally {
      small.close();
    }
  });

  it('limits concurrent upload sessions (UNAVAILABLE) and discards idle ones after stagingMaxAgeMs', () => {
    const open = (seed: number, now: number) => {
      const data = bytes(100, seed);
      const d = sha256(data);
      return s.put({ fileUuid: fileUuidFromSha256(d), sha256: d, fileLength: 100, offset: 0, final: false, data: data.subarray(0, 50) }, now);
    };
    for (let i = 0; i < LIMITS.maxUploadSessions; i++) open(100 + i, 1000 + i);
    assert.equal(code(() => open(200, 2000)), 'UNAVAILABLE');
    assert.deepEqual(s.discardStale(1000 + LIMITS.stagingMaxAgeMs), []);
    assert.equal(s.discardStale(1002 + LIMITS.stagingMaxAgeMs).length, 2);
    assert.equal(count(s, 'uploads'), 2);
    open(200, 3000);
  });

  it('survives a reopen: files stay, an open upload resumes and is verified from the database', () => {
    const data = bytes(2 * MiB + 10, 10);
    const d = sha256(data);
    const u = fileUuidFromSha256(d);
    s.put({ fileUuid: u, sha256: d, fileLength: data.length, offset: 0, final: false, data: data.subarray(0, MiB) }, 1);
    const done = putAll(s, bytes(10, 11), 10);
    s.close();
    s = new FileStore(path.join(dir, 'storage.db'), LIMITS, silentLogger());
    assert.ok(s.stat(done.fileUuid));
    const r = s.put({ fileUuid: u, sha256: d, fileLength: data.length, offset: 0, final: false, data: data.subarray(0, MiB) }, 2);
    assert.deepEqual(r, { received: MiB, status: PutStatus.partial });
    assert.equal(s.put({ fileUuid: u, sha256: d, fileLength: data.length, offset: MiB, final: true, data: data.subarray(MiB) }, 3).status, PutStatus.stored);
    assert.ok(s.read(u, 0, 4 * MiB, 0).data.equals(data));
  });

  it('never serves a corrupted chunk: read fails with CHECKSUM_MISMATCH and scrub reports it', () => {
    const data = bytes(3 * MiB, 12);
    const { fileUuid } = putAll(s, data, MiB);
    const other = putAll(s, bytes(100, 13), 100).fileUuid;
    // flip one byte of the middle chunk's blob through a second connection
    const raw = new Database(path.join(dir, 'storage.db'));
    const row = raw.prepare('SELECT id, data FROM chunks WHERE file_uuid = ? AND offset = ?').get(fileUuid, MiB) as { id: number; data: Buffer };
    row.data[777] ^= 0xff;
    raw.prepare('UPDATE chunks SET data = ? WHERE id = ?').run(row.data, row.id);
    raw.close();
    const seen: unknown[] = [];
    assert.ok(s.read(fileUuid, 0, 100, 0).data.equals(data.subarray(0, 100)), 'an untouched chunk still reads');
    assert.equal(code(() => s.read(fileUuid, MiB + 5, 10, 0, (c) => seen.push(c))), 'CHECKSUM_MISMATCH');
    assert.equal(code(() => s.read(fileUuid, 0, 2 * MiB, 0)), 'CHECKSUM_MISMATCH');
    assert.equal(seen.length, 1);
    assert.ok(s.read(other, 0, 100, 0).data.equals(bytes(100, 13)));
    let cursor: number | null = 0;
    const corrupt = [];
    let checked = 0;
    while (cursor !== null) {
      const st = s.scrubStep(cursor, 1, 0);
      checked += st.chunksChecked;
      corrupt.push(...st.corrupt);
      cursor = st.cursor;
    }
    assert.equal(checked, 4);
    assert.deepEqual(corrupt.map((c) => [c.fileUuid, c.offset, c.foundBy]), [[fileUuid, MiB, 'scrub']]);
  });

  it('gives typed errors for unknown files, offsets past the end and oversized reads', () => {
    const { fileUuid } = putAll(s, bytes(100, 14), 100);
    assert.equal(code(() => s.read(fileUuidFromSha256(sha256(Buffer.from('nope'))), 0, 1, 0)), 'NOT_FOUND');
    assert.equal(code(() => s.read(fileUuid, 101, 1, 0)), 'BAD_REQUEST');
    assert.equal(s.read(fileUuid, 100, 10, 0).data.length, 0);
    assert.equal(code(() => s.read(fileUuid, 0, LIMITS.maxReadBytes + 1, 0)), 'TOO_LARGE');
    const big = putAll(s, bytes(LIMITS.maxReadBytes + 1, 15), MiB).fileUuid;
    assert.equal(code(() => s.readWhole(big, 0)), 'TOO_LARGE');
  });

  it('property: any file, put in any piece size (with re-sends), reads back exactly over any range', () => {
    const small = new FileStore(path.join(dir, 'prop.db'), { ...LIMITS, chunkSizeBytes: 97, maxReadBytes: 5000 }, silentLogger());
    try {
      fc.assert(
        fc.property(
          fc.integer({ min: 0, max: 4000 }),
          fc.integer({ min: 1, max: 1500 }),
          fc.integer({ min: 1, max: 1 << 30 }),
          fc.array(fc.tuple(fc.nat(), fc.nat({ max: 5000 })), { maxLength: 8 }),
          fc.boolean(),
          (size, piece, seed, ranges, resend) => {
            const data = bytes(size, seed);
            const digest = sha256(data);
            const fileUuid = fileUuidFromSha256(digest);
            let off = 0;
            let last: ReturnType<FileStore['put']> | undefined;
            do {
              const len = Math.min(piece, size - off);
              const final = off + len === size;
              const chunk = { fileUuid, sha256: digest, fileLength: size, offset: off, final, data: data.subarray(off, off + len) };
              last = small.put(chunk, 1);
              if (resend && !final) assert.equal(small.put(chunk, 1).received, off + len);
              off += len;
            } while (off < size);
            assert.notEqual(last.status, PutStatus.partial);
            for (const [o, l] of ranges) {
              const at = size === 0 ? 0 : o % (size + 1);
              assert.ok(small.read(fileUuid, at, l, 0).data.equals(data.subarray(at, Math.min(at + l, size))));
            }
          },
        ),
        { numRuns: 25, seed: 4242 },
      );
    } finally {
      small.close();
    }
  });

  it('stores the empty file as one empty final chunk', () => {
    const { fileUuid, r } = putAll(s, Buffer.alloc(0), MiB);
    assert.equal(r.status, PutStatus.stored);
    assert.equal(s.stat(fileUuid)!.length, 0);
    assert.equal(s.readWhole(fileUuid, 0).data.length, 0);
  });
});
