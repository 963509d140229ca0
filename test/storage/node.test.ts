/**
 * StorageClient against a StorageNode over real ZeroMQ sockets and a real SQLite file
 * (docs/architecture.md "Upload", docs/storage.md).
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import * as zmq from 'zeromq';
import { ERROR_CODES, PutStatus, decode, encode, fileUuidFromSha256, newUuid, sha256 } from '../../src/messages';
import { RpcClient, silentLogger } from '../../src/common';
import { StorageNode } from '../../src/storage/server';
import { StorageClient } from '../../src/storage/client';
import { MiB, bytes, client, httpGet, rejection, startNode, tempDir } from './helpers';
import { freshSecurity, testSecurity } from '../helpers/security';
import { RemoteError, bindServer, clientSocket, releaseServer, serverSocket } from '../../src/common';

function rows(dir: string): { files: number; chunks: number; uploads: number } {
  const db = new Database(path.join(dir, 'storage.db'), { readonly: true });
  try {
    const n = (t: string) => (db.prepare(`SELECT COUNT(*) AS n FROM ${t}`).get() as { n: number }).n;
    return { files: n('files'), chunks: n('chunks'), uploads: n('uploads') };
  } finally {
    db.close();
  }
}

describe('storage node + StorageClient (real sockets)', function () {
  this.timeout(30_000);
  let dir: string;
  let node: StorageNode | undefined;
  let c: StorageClient | undefined;
  const extra: { close(): void }[] = [];

  beforeEach(async () => {
    dir = tempDir();
    node = await startNode(dir);
    c = client(node.endpoint);
  });
  afterEach(async () => {
    for (const x of extra.splice(0)) x.close();
    c?.close();
    await node?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('round-trips small, empty and 5 MiB files (putBuffer, stat, read, readWhole, downloadTo)', async () => {
    for (const data of [Buffer.from('hello grid\n'), Buffer.alloc(0), bytes(5 * MiB + 3, 21)]) {
      const put = await c!.putBuffer(data);
      assert.equal(put.fileUuid, fileUuidFromSha256(sha256(data)));
      assert.deepEqual([put.length, put.uploaded], [data.length, true]);
      const st = await c!.stat(put.fileUuid);
      assert.ok(st.exists && st.length === data.length && st.sha256!.equals(sha256(data)));
      assert.ok((await c!.read(put.fileUuid, 0, data.length + 10)).equals(data));
      if (data.length <= 4 * MiB) assert.ok((await c!.readWhole(put.fileUuid)).equals(data));
      const dest = path.join(dir, `out-${data.length}`);
      assert.equal(await c!.downloadTo(put.fileUuid, dest), data.length);
      assert.ok(fs.readFileSync(dest).equals(data));
    }
    const big = fileUuidFromSha256(sha256(bytes(5 * MiB + 3, 21)));
    assert.ok((await c!.read(big, 3 * MiB - 7, 2 * MiB)).equals(bytes(5 * MiB + 3, 21).subarray(3 * MiB - 7, 5 * MiB - 7)));
    assert.equal((await c!.read(big, 5 * MiB + 3, 10)).length, 0);
  });

  it('putFile streams a file from disk and reports progress up to its length', async () => {
    const data = bytes(3 * MiB + 100, 22);
    const src = path.join(dir, 'input.bin');
    fs.writeFileSync(src, data);
    const seen: number[] = [];
    const put = await c!.putFile(src, (n) => seen.push(n));
    assert.equal(put.uploaded, true);
    assert.equal(seen[seen.length - 1], data.length);
    assert.deepEqual(seen, [...seen].sort((a, b) => a - b));
    assert.ok((await c!.read(put.fileUuid, 0, data.length)).equals(data));
    assert.equal((await rejection(c!.putFile(path.join(dir, 'missing')))).code, 'INPUT_UNREADABLE');
    assert.equal((await rejection(c!.putFile(dir))).code, 'INPUT_UNREADABLE');
  });

  it('stores a file uploaded twice once: the second put sends nothing and changes no rows', async () => {
    const data = bytes(2 * MiB + 5, 23);
    assert.equal((await c!.putBuffer(data)).uploaded, true);
    const before = rows(dir);
    const putsBefore = (node!.status() as { requests: { byType: Record<string, number> } }).requests.byType.file_put_request;
    const again = await c!.putBuffer(data);
    assert.equal(again.uploaded, false);
    assert.deepEqual(rows(dir), before);
    assert.equal((node!.status() as { requests: { byType: Record<string, number> } }).requests.byType.file_put_request, putsBefore);
    // a raw put of a stored file answers already_stored
    const rpc = new RpcClient({ security: testSecurity(), endpoint: node!.endpoint, nodeUuid: newUuid(), log: silentLogger() });
    extra.push(rpc);
    const d = sha256(data);
    const r = await rpc.request({ type: 'file_put_request', node_uuid: newUuid(), request_uuid: newUuid(), file_uuid: fileUuidFromSha256(d), file_length: data.length, offset: 0, final: 0, sha256: d, data: data.subarray(0, MiB) });
    assert.equal(r.type === 'file_put_response' && r.status, PutStatus.already_stored);
    assert.deepEqual(rows(dir), before);
  });

  it('two clients uploading the same bytes at once end with one stored copy', async () => {
    const data = bytes(4 * MiB + 1, 24);
    const c2 = client(node!.endpoint, { putChunkBytes: 512 * 1024, putWindowChunks: 2 });
    extra.push(c2);
    const [a, b] = await Promise.all([c!.putBuffer(data), c2.putBuffer(data)]);
    assert.equal(a.fileUuid, b.fileUuid);
    assert.equal(rows(dir).files, 1);
    assert.equal(rows(dir).uploads, 0);
    assert.ok((await c2.read(a.fileUuid, 0, data.length)).equals(data));
  });

  it('refuses an upload whose bytes do not match its SHA-256 and keeps nothing of it', async () => {
    const rpc = new RpcClient({ security: testSecurity(), endpoint: node!.endpoint, nodeUuid: newUuid(), log: silentLogger() });
    extra.push(rpc);
    const claimed = sha256(Buffer.from('the declared content'));
    const e = await rejection(
      rpc.request({ type: 'file_put_request', node_uuid: newUuid(), request_uuid: newUuid(), file_uuid: fileUuidFromSha256(claimed), file_length: 5, offset: 0, final: 1, sha256: claimed, data: Buffer.from('other') }),
    );
    assert.equal(e.code, 'CHECKSUM_MISMATCH');
    assert.deepEqual(rows(dir), { files: 0, chunks: 0, uploads: 0 });
    assert.equal((await c!.stat(fileUuidFromSha256(claimed))).exists, false);
  });

  it('never serves a corrupted chunk; scrub and /status report it', async () => {
    const data = bytes(3 * MiB, 25);
    const { fileUuid } = await c!.putBuffer(data);
    const raw = new Database(path.join(dir, 'storage.db'));
    const row = raw.prepare('SELECT id, data FROM chunks WHERE file_uuid = ? AND offset = ?').get(fileUuid, 2 * MiB) as { id: number; data: Buffer };
    row.data[12345] ^= 0x01;
    raw.prepare('UPDATE chunks SET data = ? WHERE id = ?').run(row.data, row.id);
    raw.close();
    assert.ok((await c!.read(fileUuid, 0, MiB)).equals(data.subarray(0, MiB)));
    assert.equal((await rejection(c!.read(fileUuid, 2 * MiB + 1, 10))).code, 'CHECKSUM_MISMATCH');
    const dest = path.join(dir, 'dl');
    assert.equal((await rejection(c!.downloadTo(fileUuid, dest))).code, 'CHECKSUM_MISMATCH');
    assert.equal(fs.existsSync(dest), false);
    assert.deepEqual(fs.readdirSync(dir).filter((f) => f.includes('.part-')), []);
    const rep = await node!.startScrub();
    assert.equal(rep.chunksChecked, 3);
    assert.deepEqual(rep.corrupt.map((x) => [x.fileUuid, x.offset]), [[fileUuid, 2 * MiB]]);
    const st = JSON.parse((await httpGet(node!.adminPort, '/status')).body);
    assert.equal(st.scrub.last.corruptCount, 1);
    assert.equal(st.corruptChunksSeen.length, 1);
    assert.equal(st.files, 1);
    assert.equal(st.bytesStored, 3 * MiB);
  });

  it('keeps files and its node id across a restart', async () => {
    const data = bytes(MiB + 17, 26);
    const { fileUuid } = await c!.putBuffer(data);
    const id = node!.nodeId;
    c!.close();
    await node!.stop();
    node = await startNode(dir);
    c = client(node.endpoint);
    assert.equal(node.nodeId, id);
    assert.ok((await c.read(fileUuid, 0, data.length)).equals(data));
    assert.equal((await c.putBuffer(data)).uploaded, false);
  });

  it('resumes an upload cut off by a restart from the offset the node holds', async () => {
    const data = bytes(3 * MiB + 9, 27);
    const d = sha256(data);
    const fileUuid = fileUuidFromSha256(d);
    const rpc = new RpcClient({ security: testSecurity(), endpoint: node!.endpoint, nodeUuid: newUuid(), log: silentLogger() });
    for (const off of [0, MiB]) {
      await rpc.request({ type: 'file_put_request', node_uuid: newUuid(), request_uuid: newUuid(), file_uuid: fileUuid, file_length: data.length, offset: off, final: 0, sha256: d, data: data.subarray(off, off + MiB) });
    }
    rpc.close();
    c!.close();
    await node!.stop();
    node = await startNode(dir);
    c = client(node.endpoint);
    const put = await c.putBuffer(data);
    assert.equal(put.uploaded, true);
    assert.ok((await c.read(fileUuid, 0, data.length)).equals(data));
    assert.deepEqual(rows(dir).uploads, 0);
  });

  it('answers hostile bytes with error_reply DECODE_ERROR and an unexpected message with UNEXPECTED, and keeps serving', async () => {
    const sock = clientSocket(testSecurity(), node!.endpoint);
    extra.push(sock);
    for (const junk of [[Buffer.from('not a message')], [Buffer.alloc(0)], [Buffer.alloc(4096, 0xff), Buffer.from('x')]]) {
      await sock.send(junk);
      const frames = (await sock.receive()) as Buffer[];
      const m = decode(frames);
      assert.equal(m.type, 'error_reply');
      assert.equal(m.type === 'error_reply' && m.error_code, ERROR_CODES.DECODE_ERROR);
    }
    await sock.send(encode({ type: 'job_status_request', node_uuid: newUuid(), request_uuid: newUuid(), job_uuid: newUuid() }));
    const u = decode((await sock.receive()) as Buffer[]);
    assert.equal(u.type === 'error_reply' && u.error_code, ERROR_CODES.UNEXPECTED);
    const data = Buffer.from('still serving');
    const { fileUuid } = await c!.putBuffer(data);
    assert.ok((await c!.readWhole(fileUuid)).equals(data));
    const st = JSON.parse((await httpGet(node!.adminPort, '/status')).body);
    assert.equal(st.requests.decodeErrors, 3);
    assert.equal((await httpGet(node!.adminPort, '/healthz')).code, 200);
  });

  it('gives typed errors: unknown file, offset past the end, oversized whole-file request, bad arguments', async () => {
    const unknown = fileUuidFromSha256(sha256(Buffer.from('never stored')));
    assert.equal((await c!.stat(unknown)).exists, false);
    assert.equal((await rejection(c!.read(unknown, 0, 10))).code, 'NOT_FOUND');
    assert.equal((await rejection(c!.readWhole(unknown))).code, 'NOT_FOUND');
    assert.equal((await rejection(c!.downloadTo(unknown, path.join(dir, 'x')))).code, 'NOT_FOUND');
    const data = bytes(5 * MiB, 28);
    const { fileUuid } = await c!.putBuffer(data);
    assert.equal((await rejection(c!.read(fileUuid, 5 * MiB + 1, 10))).code, 'BAD_REQUEST');
    // the node refuses file_request over maxReadBytes; readWhole falls back to ranged reads...
    assert.ok((await c!.readWhole(fileUuid)).equals(data));
    // ...up to the client's maxWholeReadBytes
    const small = client(node!.endpoint, { maxWholeReadBytes: 4 * MiB });
    extra.push(small);
    const big = await rejection(small.readWhole(fileUuid));
    assert.equal(big.code, 'TOO_LARGE');
    assert.match(big.message, /maxWholeReadBytes/);
    const seed = await rejection(new Promise((resolve, reject) => {
      // the node's own refusal of a seed file_request names ranged reads, matched by file_uuid
      const rpc = new RpcClient({ security: testSecurity(), endpoint: node!.endpoint, nodeUuid: newUuid(), log: silentLogger(), onUnsolicited: (m) => (m.type === 'error_reply' && m.request_uuid === fileUuid ? reject(Object.assign(new Error(m.message), { code: m.error_code })) : resolve(m)) });
      extra.push(rpc);
      void rpc.send({ type: 'file_request', node_uuid: newUuid(), file_uuid: fileUuid });
    }));
    assert.equal(seed.code, ERROR_CODES.TOO_LARGE as unknown as string);
    assert.match(seed.message, /ranged reads/);
    assert.equal((await rejection(c!.read('not-a-uuid', 0, 1))).code, 'BAD_REQUEST');
    assert.equal((await rejection(c!.read(fileUuid, -1, 1))).code, 'BAD_REQUEST');
    assert.equal((await rejection(c!.read(fileUuid, 0.5, 1))).code, 'BAD_REQUEST');
    // a raw ranged read over maxReadBytes is refused by the node
    const rpc = new RpcClient({ security: testSecurity(), endpoint: node!.endpoint, nodeUuid: newUuid(), log: silentLogger() });
    extra.push(rpc);
    const e = await rejection(rpc.request({ type: 'file_read_request', node_uuid: newUuid(), request_uuid: newUuid(), file_uuid: fileUuid, offset: 0, length: 4 * MiB + 1 }));
    assert.equal(e.code, 'TOO_LARGE');
  });

  it('refuses an upload over the quota with QUOTA_EXCEEDED', async () => {
    c!.close();
    await node!.stop();
    node = await startNode(dir, { quotaBytes: 2 * MiB });
    c = client(node.endpoint);
    await c.putBuffer(bytes(MiB, 29));
    assert.equal((await rejection(c.putBuffer(bytes(MiB + 1, 30)))).code, 'QUOTA_EXCEEDED');
    await c.putBuffer(bytes(MiB, 31));
    const st = JSON.parse((await httpGet(node.adminPort, '/status')).body);
    assert.deepEqual([st.files, st.bytesStored, st.quotaBytes], [2, 2 * MiB, 2 * MiB]);
  });

  it('runs the periodic scrub and the idle-upload sweep on their timers', async () => {
    c!.close();
    await node!.stop();
    let nowMs = 1_000_000;
    node = await startNode(dir, { scrubIntervalMs: 50, stagingSweepIntervalMs: 100, stagingMaxAgeMs: 10_000 }, () => nowMs);
    c = client(node.endpoint);
    await c.putBuffer(bytes(MiB + 1, 32));
    const data = bytes(2 * MiB, 33);
    const d = sha256(data);
    const rpc = new RpcClient({ security: testSecurity(), endpoint: node.endpoint, nodeUuid: newUuid(), log: silentLogger() });
    extra.push(rpc);
    await rpc.request({ type: 'file_put_request', node_uuid: newUuid(), request_uuid: newUuid(), file_uuid: fileUuidFromSha256(d), file_length: data.length, offset: 0, final: 0, sha256: d, data: data.subarray(0, MiB) });
    assert.equal(rows(dir).uploads, 1);
    nowMs += 10_001;
    const until = async (what: string, ok: () => boolean) => {
      for (let i = 0; i < 100 && !ok(); i++) await new Promise((r) => setTimeout(r, 50));
      assert.ok(ok(), what);
    };
    await until('the sweep discards the idle upload', () => rows(dir).uploads === 0 && rows(dir).chunks === 2);
    await until('a scrub pass completes', () => (node!.status() as { scrub: { last: { chunksChecked: number } | null } }).scrub.last?.chunksChecked === 2);
  });

  it('per-client upload bounds: a client declaring a huge upload of 4 bytes blocks only itself, and only until uploadIdleMs (docs/storage.md)', async () => {
    await node!.stop();
    node = await startNode(dir, { quotaBytes: 64 * MiB, maxReservedBytesPerClient: 32 * MiB, maxUploadsPerClient: 2, uploadIdleMs: 500, stagingSweepIntervalMs: 100 });
    const attacker = new RpcClient({ security: freshSecurity('greedy', ['clients']), endpoint: node.endpoint, nodeUuid: newUuid(), log: silentLogger() });
    extra.push(attacker);
    const declare = (length: number) => {
      const d = sha256(Buffer.from(`fake ${length} ${Math.random()}`));
      return attacker.request({ type: 'file_put_request', node_uuid: newUuid(), request_uuid: newUuid(), file_uuid: fileUuidFromSha256(d), file_length: length, offset: 0, final: 0, sha256: d, data: Buffer.from('abcd') });
    };
    await assert.rejects(declare(100 * 1024 * MiB), (e: unknown) => e instanceof RemoteError && e.code === 'QUOTA_EXCEEDED' && /maxReservedBytesPerClient/.test(e.message));
    await declare(30 * MiB); // holds 30 MiB of its 32
    await assert.rejects(declare(4 * MiB), (e: unknown) => e instanceof RemoteError && e.code === 'QUOTA_EXCEEDED');
    await declare(1 * MiB);
    await assert.rejects(declare(1), (e: unknown) => e instanceof RemoteError && e.code === 'UNAVAILABLE' && /maxUploadsPerClient/.test(e.message));
    // everyone else still uploads
    const other = client(node.endpoint);
    extra.push(other);
    const put = await other.putBuffer(bytes(8 * MiB, 5));
    assert.equal(put.length, 8 * MiB);
    // the idle uploads are dropped, and the attacker's reservation with them
    const until = async (what: string, ok: () => boolean) => {
      for (const t0 = Date.now(); !ok(); await new Promise((r) => setTimeout(r, 50))) if (Date.now() - t0 > 10_000) throw new Error(`timed out waiting: ${what}`);
    };
    await until('the idle uploads are discarded', () => rows(dir).uploads === 0);
    await declare(30 * MiB);
  });

  it('times out with TIMEOUT against a node that does not answer', async () => {
    const sec = freshSecurity('silent-storage', ['storage'], true);
    const silent = serverSocket(sec);
    extra.push({ close: () => (silent.close(), releaseServer(sec)) });
    const dead = client(await bindServer(silent, sec, 'tcp://127.0.0.1:0', silentLogger()), { requestTimeoutMs: 200, retries: 1 });
    extra.push(dead);
    assert.equal((await rejection(dead.stat(newUuid()))).code, 'TIMEOUT');
    assert.equal((await rejection(dead.readWhole(newUuid()))).code, 'TIMEOUT');
  });

  it('remembers at most putReplyCacheEntries put answers: a re-sent put within the bound gets its first answer, beyond it a fresh one', async () => {
    await node!.stop();
    node = await startNode(dir, { putReplyCacheEntries: 2 });
    const rpc = new RpcClient({ security: testSecurity(), endpoint: node.endpoint, nodeUuid: newUuid(), log: silentLogger() });
    extra.push(rpc);
    const put = (data: Buffer, requestUuid: string) => {
      const d = sha256(data);
      return rpc.request({ type: 'file_put_request', node_uuid: newUuid(), request_uuid: requestUuid, file_uuid: fileUuidFromSha256(d), file_length: data.length, offset: 0, final: 1, sha256: d, data });
    };
    const status = (r: Awaited<ReturnType<typeof put>>) => (r.type === 'file_put_response' ? r.status : -1);
    const ids = [newUuid(), newUuid(), newUuid()];
    const files = [bytes(1000, 31), bytes(1000, 32), bytes(1000, 33)];
    assert.equal(status(await put(files[0]!, ids[0]!)), PutStatus.stored);
    // re-sent (its answer was "lost"): the remembered first answer, not already_stored
    assert.equal(status(await put(files[0]!, ids[0]!)), PutStatus.stored);
    assert.equal(status(await put(files[1]!, ids[1]!)), PutStatus.stored);
    assert.equal(status(await put(files[2]!, ids[2]!)), PutStatus.stored);
    // three answers, room for two: the oldest is forgotten and answered afresh from the store
    assert.equal(status(await put(files[0]!, ids[0]!)), PutStatus.already_stored);
    assert.equal(status(await put(files[2]!, ids[2]!)), PutStatus.stored, 'the newest is still remembered');
  });
});
