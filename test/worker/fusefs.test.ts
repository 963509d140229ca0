// The worker's FUSE file system on a real mount, read only from child processes
// (docs/worker.md, "FUSE layout"). The chunk source here is a Buffer in the test (the node
// test reads through a real storage node).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { silentLogger } from '../../src/common';
import { newUuid } from '../../src/messages';
import { ChunkCache, ChunkSource } from '../../src/worker/chunkcache';
import { GridFs, mountedPaths } from '../../src/worker/fusefs';
import { StorageClient } from '../../src/storage';
import { Proc, fuseMounts, sh, startGrid } from './helpers';
import { testSecurity } from '../helpers/security';

const MiB = 1024 * 1024;

/** Files in memory, served with a small delay so concurrent reads overlap. */
class BufferSource implements ChunkSource {
  readonly files = new Map<string, Buffer>();
  reads = 0;
  failing = new Set<string>();
  async read(fileUuid: string, offset: number, length: number): Promise<Buffer> {
    this.reads++;
    await new Promise((r) => setTimeout(r, 1));
    if (this.failing.has(fileUuid)) throw new Error('storage unreachable (test)');
    const f = this.files.get(fileUuid);
    if (!f) throw new Error('no such file');
    return f.subarray(offset, offset + length);
  }
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('worker FUSE file system (real mount)', function () {
  this.timeout(60_000);
  let tmp: string;
  let fsys: GridFs | undefined;
  /** the view holding every file of this describe (one task's view) */
  let v = '';
  const src = new BufferSource();
  const small = { uuid: newUuid(), data: Buffer.from('hello, grid\n') };
  const five = { uuid: newUuid(), data: randomBytes(5 * MiB + 12345) };
  const fifty = { uuid: newUuid(), data: randomBytes(50 * MiB) };
  const empty = { uuid: newUuid(), data: Buffer.alloc(0) };
  const broken = { uuid: newUuid(), data: randomBytes(1000) };

  before(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'grid-fuse-'));
    for (const f of [small, five, fifty, empty, broken]) src.files.set(f.uuid, f.data);
    src.failing.add(broken.uuid);
    fsys = new GridFs({
      mount: path.join(tmp, 'mnt'),
      source: src,
      fuseChunkBytes: MiB,
      chunkCacheBytes: 16 * MiB, // smaller than the 50 MiB file: eviction is exercised
      readAheadChunks: 2,
      fuseOpTimeoutMs: 30_000,
      log: silentLogger(),
    });
    await fsys.start();
    v = fsys.openView();
    fsys.register(v, small.uuid, 'hello.txt', small.data.length);
    fsys!.register(v, small.uuid, 'same bytes, other name.txt', small.data.length);
    fsys!.register(v, five.uuid, 'five.bin', five.data.length);
    fsys!.register(v, fifty.uuid, 'fifty.bin', fifty.data.length);
    fsys!.register(v, empty.uuid, 'empty', 0);
    fsys!.register(v, broken.uuid, 'broken.bin', broken.data.length);
  });

  after(async () => {
    await fsys?.stop();
    const mnt = path.join(tmp, 'mnt');
    assert.ok(!fuseMounts().includes(mnt), 'the mount must be gone after stop');
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('lists nothing at the root, a view its files, and reads a small one byte-exact (cat in a child)', async () => {
    const root = await sh('ls', [fsys!.mount]);
    assert.equal(root.code, 0, root.stderr);
    assert.equal(root.stdout.trim(), '', 'the root reveals no view (no other job)');
    const ls = await sh('ls', [fsys!.viewPath(v)]);
    assert.equal(ls.code, 0, ls.stderr);
    assert.deepEqual(ls.stdout.trim().split('\n').sort(), [small.uuid, five.uuid, fifty.uuid, empty.uuid, broken.uuid].sort());
    const inner = await sh('ls', [path.join(fsys!.viewPath(v), small.uuid)]);
    assert.deepEqual(inner.stdout.trim().split('\n').sort(), ['hello.txt', 'same bytes, other name.txt']);
    const cat = await sh('cat', [fsys!.pathOf(v, small.uuid, 'same bytes, other name.txt')]);
    assert.equal(cat.stdout, 'hello, grid\n');
    const empt = await sh('wc', ['-c', fsys!.pathOf(v, empty.uuid, 'empty')]);
    assert.match(empt.stdout, /^0 /);
  });

  it('gives sizes and read-only modes', async () => {
    const st = await sh('stat', ['-c', '%s %a %F %u', fsys!.pathOf(v, five.uuid, 'five.bin'), path.join(fsys!.viewPath(v), five.uuid)]);
    const [file, dir] = st.stdout.trim().split('\n');
    assert.equal(file, `${five.data.length} 444 regular file ${process.getuid!()}`);
    assert.match(dir!, /^\d+ 555 directory /);
    const missing = await sh('stat', [path.join(fsys!.viewPath(v), newUuid(), 'x')]);
    assert.notEqual(missing.code, 0);
    assert.match(missing.stderr, /No such file/);
  });

  it('reads a multi-chunk file (5 MiB) byte-exact with sha256sum', async () => {
    const r = await sh('sha256sum', [fsys!.pathOf(v, five.uuid, 'five.bin')]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.split(' ')[0], sha(five.data));
  });

  it('reads a 50 MiB file byte-exact through a 16 MiB cache', async () => {
    const r = await sh('sha256sum', [fsys!.pathOf(v, fifty.uuid, 'fifty.bin')]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.split(' ')[0], sha(fifty.data));
    const c = fsys!.cache.stats();
    assert.ok(c.bytes <= 16 * MiB, `cache holds ${c.bytes} bytes`);
    assert.ok(c.evictions > 0);
    assert.ok(c.prefetches > 0, 'a sequential reader gets read-ahead');
  });

  it('serves random ranges across chunk edges, from several readers at once', async () => {
    const script = `
      const fs = require('fs'); const crypto = require('crypto');
      const fd = fs.openSync(process.argv[1], 'r'); const out = [];
      for (const [pos, len] of JSON.parse(process.argv[2])) {
        const b = Buffer.alloc(len); const n = fs.readSync(fd, b, 0, len, pos);
        out.push(crypto.createHash('sha256').update(b.subarray(0, n)).digest('hex') + ':' + n);
      }
      console.log(out.join(','));`;
    const ranges = [[0, 10], [MiB - 5, 10], [3 * MiB - 1, 2 * MiB + 2], [five.data.length - 7, 100], [five.data.length + 10, 5]];
    const expect = ranges
      .map(([p, l]) => five.data.subarray(p, p! + l!))
      .map((b) => `${sha(b)}:${b.length}`)
      .join(',');
    const runs = await Promise.all([1, 2, 3].map(() => sh(process.execPath, ['-e', script, fsys!.pathOf(v, five.uuid, 'five.bin'), JSON.stringify(ranges)])));
    for (const r of runs) assert.equal(r.stdout.trim(), expect, r.stderr);
  });

  it('refuses every write with EROFS', async () => {
    const d = path.join(fsys!.viewPath(v), small.uuid);
    const cases = [
      `echo x > '${d}/new.txt'`,
      `echo x >> '${d}/hello.txt'`,
      `mkdir '${d}/sub'`,
      `rm -f '${d}/hello.txt'`,
      `mv '${d}/hello.txt' '${d}/moved.txt'`,
      `touch '${d}/hello.txt'`,
      `chmod 777 '${d}/hello.txt'`,
    ];
    for (const c of cases) {
      const r = await sh('sh', ['-c', c]);
      assert.notEqual(r.code, 0, c);
      assert.match(r.stderr, /Read-only file system/, `${c}: ${r.stderr}`);
    }
    assert.equal((await sh('cat', [fsys!.pathOf(v, small.uuid, 'hello.txt')])).stdout, 'hello, grid\n');
  });

  it('answers EIO when storage fails, and keeps serving', async () => {
    const r = await sh('cat', [fsys!.pathOf(v, broken.uuid, 'broken.bin')]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /Input\/output error/);
    assert.equal((await sh('cat', [fsys!.pathOf(v, small.uuid, 'hello.txt')])).stdout, 'hello, grid\n');
    assert.equal(await fsys!.health(), null);
  });

  it('keeps views apart, and drops a file from the mount when the last view holding it closes', async () => {
    const u = newUuid();
    src.files.set(u, Buffer.from('temp'));
    const a = fsys!.openView();
    const b = fsys!.openView();
    fsys!.register(a, u, 'a', 4);
    fsys!.register(b, u, 'b', 4);
    // one task's view does not show another's files, under any name
    assert.match((await sh('cat', [fsys!.pathOf(a, u, 'b')])).stderr, /No such file/);
    assert.match((await sh('ls', [fsys!.viewPath(a)])).stdout, new RegExp(u));
    assert.doesNotMatch((await sh('ls', [fsys!.viewPath(v)])).stdout, new RegExp(u));
    fsys!.closeView(a);
    assert.match((await sh('ls', [fsys!.viewPath(a)])).stderr, /No such file/, 'a closed view is gone');
    assert.equal((await sh('cat', [fsys!.pathOf(b, u, 'b')])).stdout, 'temp');
    const files = fsys!.registeredCount();
    fsys!.closeView(b);
    assert.equal(fsys!.registeredCount(), files - 1);
    const r = await sh('cat', [fsys!.pathOf(b, u, 'b')]);
    assert.match(r.stderr, /No such file/);
    assert.throws(() => fsys!.register(b, u, 'c', 4), /no open view/);
  });

  it('refuses unsafe names at registration', () => {
    assert.throws(() => fsys!.register(v, newUuid(), '../etc', 3), /not a plain file name/);
    assert.throws(() => fsys!.register(v, 'nope', 'a', 3), /not a file uuid/);
  });
});

describe('worker FUSE mount life', function () {
  this.timeout(60_000);
  let tmp: string;
  let victim: ReturnType<typeof spawn> | undefined;

  before(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'grid-fuse-stale-'));
  });
  after(async () => {
    victim?.kill('SIGKILL');
    const mnt = path.join(tmp, 'mnt');
    if (fuseMounts().includes(mnt)) await sh('fusermount', ['-uz', mnt]);
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('replaces a stale mount left by a killed process, and unmounts on stop', async () => {
    const mnt = path.join(tmp, 'mnt');
    const fuseNative = require.resolve('fuse-native');
    // A process that mounts and then dies by SIGKILL leaves a dead mount behind.
    victim = spawn(process.execPath, ['-e', `
      const Fuse = require(${JSON.stringify(fuseNative)});
      const f = new Fuse(${JSON.stringify(mnt)}, { readdir: (p, cb) => cb(0, []), getattr: (p, cb) => cb(0, { mtime: new Date(), atime: new Date(), ctime: new Date(), nlink: 1, size: 0, mode: 0o40555, uid: 0, gid: 0 }) }, { mkdir: true, force: true });
      f.mount((e) => { if (e) { console.error(e.message); process.exit(1); } console.log('mounted'); });
    `], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((resolve, reject) => {
      victim!.stdout!.on('data', (d: Buffer) => d.toString().includes('mounted') && resolve());
      victim!.once('exit', (c) => reject(new Error(`victim exited ${c}`)));
    });
    victim.kill('SIGKILL');
    await new Promise((r) => victim!.once('exit', r));
    assert.ok((await mountedPaths()).has(mnt), 'the stale mount is there');
    const stale = await sh('ls', [mnt]);
    assert.match(stale.stderr, /Transport endpoint is not connected/);

    const src = new BufferSource();
    const u = newUuid();
    src.files.set(u, Buffer.from('fresh'));
    const g = new GridFs({ mount: mnt, source: src, fuseChunkBytes: MiB, chunkCacheBytes: 4 * MiB, readAheadChunks: 1, fuseOpTimeoutMs: 10_000, log: silentLogger() });
    try {
      await g.start();
      const gv = g.openView();
      g.register(gv, u, 'f', 5);
      assert.equal((await sh('cat', [g.pathOf(gv, u, 'f')])).stdout, 'fresh');
    } finally {
      await g.stop();
    }
    assert.ok(!fuseMounts().includes(mnt), 'unmounted after stop');
    assert.equal(await g.health(), 'FUSE is not mounted');
  });
});

describe('worker chunk cache', () => {
  it('de-duplicates concurrent fetches and evicts least recently used chunks', async () => {
    const src = new BufferSource();
    const u = newUuid();
    src.files.set(u, randomBytes(10 * 1000));
    const c = new ChunkCache(src, { chunkBytes: 1000, maxBytes: 3000 });
    const got = await Promise.all([c.get(u, 2, 10_000), c.get(u, 2, 10_000), c.get(u, 2, 10_000)]);
    assert.equal(src.reads, 1);
    assert.deepEqual(got[0], src.files.get(u)!.subarray(2000, 3000));
    assert.equal(c.stats().joined, 2);
    await c.get(u, 0, 10_000);
    await c.get(u, 1, 10_000);
    await c.get(u, 2, 10_000); // bump 2
    await c.get(u, 3, 10_000); // evicts 0
    assert.equal(c.stats().bytes, 3000);
    const before = src.reads;
    await c.get(u, 2, 10_000);
    assert.equal(src.reads, before, 'chunk 2 stayed cached');
    await c.get(u, 0, 10_000);
    assert.equal(src.reads, before + 1, 'chunk 0 was evicted');
    await assert.rejects(c.get(u, 0, 20_000).then(() => c.get(u, 15, 20_000)), /ended at/);
  });
});

describe('worker FUSE file system over a real storage node', function () {
  this.timeout(90_000);
  let tmp: string;
  let storage: Proc | undefined;
  let client: StorageClient | undefined;
  let g: GridFs | undefined;

  before(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'grid-fuse-storage-'));
    storage = await startGrid(['storage', '--data-dir', path.join(tmp, 'storage'), '--bind', 'tcp://127.0.0.1:0', '--admin-port', '0']);
    client = new StorageClient({ security: testSecurity(), endpoint: (storage.ready.endpoints as { clients: string }).clients, nodeUuid: newUuid(), log: silentLogger() });
  });
  /** mounts of the tests below; unmounted here, before tmp is removed (removing a folder
   * still mounted by this very process would block it on its own FUSE server) */
  const mounts: GridFs[] = [];
  after(async () => {
    await g?.stop();
    for (const m of mounts) await m.stop();
    client?.close();
    await storage?.stop();
    assert.ok(!fuseMounts().includes(path.join(tmp, 'mnt')));
    for (const m of mounts) assert.ok(!fuseMounts().includes(m.mount), `${m.mount} unmounted`);
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('reads 5 MiB and 50 MiB files byte-exact (sha256sum in children)', async () => {
    const five = randomBytes(5 * MiB + 3);
    const fifty = randomBytes(50 * MiB);
    const p5 = await client!.putBuffer(five);
    const p50 = await client!.putBuffer(fifty);
    g = new GridFs({ mount: path.join(tmp, 'mnt'), source: client!, fuseChunkBytes: MiB, chunkCacheBytes: 32 * MiB, readAheadChunks: 2, fuseOpTimeoutMs: 30_000, log: silentLogger() });
    await g.start();
    const gv = g.openView();
    const a = g.register(gv, p5.fileUuid, 'five.bin', p5.length);
    const b = g.register(gv, p50.fileUuid, 'fifty.bin', p50.length);
    const [r5, r50] = await Promise.all([sh('sha256sum', [a]), sh('sha256sum', [b])]);
    assert.equal(r5.stdout.split(' ')[0], sha(five), r5.stderr);
    assert.equal(r50.stdout.split(' ')[0], sha(fifty), r50.stderr);
    assert.ok(g.cache.stats().bytes <= 32 * MiB);
  });

  // the error and eviction cases of the in-memory tests above, over the real storage node
  /** A mount over its own quick-to-give-up client of the storage node. */
  async function mountOver(name: string, cacheBytes: number): Promise<{ fs: GridFs; client: StorageClient }> {
    const c = new StorageClient({ security: testSecurity(), endpoint: (storage!.ready.endpoints as { clients: string }).clients, nodeUuid: newUuid(), log: silentLogger(), requestTimeoutMs: 1_000, retries: 1 });
    const m = new GridFs({ mount: path.join(tmp, name), source: c, fuseChunkBytes: MiB, chunkCacheBytes: cacheBytes, readAheadChunks: 2, fuseOpTimeoutMs: 30_000, log: silentLogger() });
    await m.start();
    mounts.push(m);
    return { fs: m, client: c };
  }

  it('evicts through a cache smaller than the file, and re-reads evicted chunks byte-exact', async () => {
    const data = randomBytes(12 * MiB + 5);
    const put = await client!.putBuffer(data);
    const { fs: m, client: c } = await mountOver('mnt-evict', 4 * MiB);
    try {
      const p = m.register(m.openView(), put.fileUuid, 'twelve.bin', put.length);
      assert.equal((await sh('sha256sum', [p])).stdout.split(' ')[0], sha(data));
      const first = m.cache.stats();
      assert.ok(first.bytes <= 4 * MiB, `cache holds ${first.bytes} bytes`);
      assert.ok(first.evictions > 0, 'chunks were evicted');
      assert.ok(first.prefetches > 0, 'a sequential reader gets read-ahead from storage');
      // the first chunk was evicted long ago: reading it again fetches it again, same bytes
      const head = await sh('sh', ['-c', `head -c ${MiB} "$0" | sha256sum`, p]);
      assert.equal(head.code, 0, head.stderr);
      assert.equal(head.stdout.split(' ')[0], sha(data.subarray(0, MiB)));
      assert.ok(m.cache.stats().misses > first.misses, 'an evicted chunk is a miss again');
    } finally {
      c.close();
    }
  });

  it('answers EIO for a file storage does not have, and keeps serving the others', async () => {
    const ok = Buffer.from('stored bytes\n');
    const put = await client!.putBuffer(ok);
    const { fs: m, client: c } = await mountOver('mnt-missing', 4 * MiB);
    try {
      const gone = m.register(m.openView(), newUuid(), 'gone.bin', 1000);
      const r = await sh('cat', [gone]);
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /Input\/output error/);
      assert.equal((await sh('cat', [m.register(m.openView(), put.fileUuid, 'ok.txt', put.length)])).stdout, 'stored bytes\n');
      assert.ok((m.stats().readErrors as number) >= 1, JSON.stringify(m.stats()));
      assert.equal(await m.health(), null);
    } finally {
      c.close();
    }
  });

  it('when the storage node dies: uncached reads get EIO, cached bytes are still served, the mount stays healthy', async () => {
    const cached = randomBytes(100_000);
    const uncached = randomBytes(3 * MiB);
    const a = await client!.putBuffer(cached);
    const b = await client!.putBuffer(uncached);
    const { fs: m, client: c } = await mountOver('mnt-dead', 8 * MiB);
    try {
      const pa = m.register(m.openView(), a.fileUuid, 'cached.bin', a.length);
      const pb = m.register(m.openView(), b.fileUuid, 'uncached.bin', b.length);
      assert.equal((await sh('sha256sum', [pa])).stdout.split(' ')[0], sha(cached));
      await storage!.stop(); // this is the describe's last test: the node stays down
      const r = await sh('cat', [pb]);
      assert.notEqual(r.code, 0, 'no bytes without storage');
      assert.match(r.stderr, /Input\/output error/);
      assert.equal((await sh('sha256sum', [pa])).stdout.split(' ')[0], sha(cached), 'cached chunks need no storage');
      assert.equal(await m.health(), null);
    } finally {
      c.close();
    }
  });
});
