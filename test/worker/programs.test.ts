// The worker's program cache (src/worker/programs.ts, docs/worker.md "Program cache") on real
// files: the program of a running task is never evicted, however many programs pass through
// the cache meanwhile; idle programs go least recently used first, deleted from disk.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { ProgramCache } from '../../src/worker/programs';

const A = '11111111-1111-4111-8111-111111111111';
const B = '22222222-2222-4222-8222-222222222222';
const C = '33333333-3333-4333-8333-333333333333';
const D = '44444444-4444-4444-8444-444444444444';

describe('worker: program cache (lru-cache + pins)', () => {
  let root: string;
  let fetched: string[];
  let failNext: boolean;
  const fetch = async (uuid: string, dir: string, name: string): Promise<string> => {
    fetched.push(uuid);
    if (failNext) {
      failNext = false;
      throw new Error('storage said no');
    }
    await fsp.mkdir(dir, { recursive: true });
    await fsp.writeFile(path.join(dir, name), `// program ${uuid}\n`);
    return path.join(dir, name);
  };
  const onDisk = (uuid: string) => fs.existsSync(path.join(root, uuid));
  /** one task's life: acquire, read the program, release */
  const runTask = async (cache: ProgramCache, uuid: string) => {
    const l = cache.acquire(uuid, 'job.js');
    assert.match(await fsp.readFile(await l.path, 'utf8'), new RegExp(uuid));
    l.release();
  };

  beforeEach(() => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'grid-programs-'));
    fetched = [];
    failNext = false;
  });
  afterEach(() => fs.rmSync(root, { recursive: true, force: true }));

  it('never evicts the program of a running task, even past maxIdle; it becomes evictable once released', async () => {
    const cache = new ProgramCache(root, 1, fetch);
    const running = cache.acquire(A, 'job.js');
    const file = await running.path;
    for (const u of [B, C, D]) await runTask(cache, u);
    await cache.settled();
    assert.ok(fs.existsSync(file), 'the running task still has its program');
    assert.deepEqual([onDisk(B), onDisk(C), onDisk(D)], [false, false, true], 'idle ones go least recently used first, from disk too');
    assert.deepEqual(cache.stats(), { cached: 2, pinned: 1, hits: 0, fetches: 4, evictions: 2 });
    running.release();
    running.release(); // idempotent: one task, one reference
    await cache.settled();
    assert.ok(fs.existsSync(file), 'the released program is the most recently used idle one');
    assert.equal(onDisk(D), false, 'and pushed out the older idle one');
    assert.deepEqual(cache.stats(), { cached: 1, pinned: 0, hits: 0, fetches: 4, evictions: 3 });
  });

  it('two tasks of one job share one copy; it stays pinned until the last releases', async () => {
    const cache = new ProgramCache(root, 1, fetch);
    const t1 = cache.acquire(A, 'job.js');
    const t2 = cache.acquire(A, 'job.js');
    assert.equal(await t1.path, await t2.path);
    t1.release();
    await runTask(cache, B);
    await runTask(cache, C);
    await cache.settled();
    assert.ok(onDisk(A), 'still held by the second task');
    t2.release();
    await runTask(cache, D);
    await cache.settled();
    assert.equal(onDisk(A), false);
    assert.deepEqual(fetched, [A, B, C, D]);
  });

  it('a hit moves a program to the most recently used end', async () => {
    const cache = new ProgramCache(root, 2, fetch);
    await runTask(cache, A);
    await runTask(cache, B);
    await runTask(cache, A); // A is now the most recent
    await runTask(cache, C); // evicts B
    await cache.settled();
    assert.deepEqual([onDisk(A), onDisk(B), onDisk(C)], [true, false, true]);
    assert.deepEqual(fetched, [A, B, C]);
  });

  it('a failed fetch is not cached: the next task asks again', async () => {
    const cache = new ProgramCache(root, 2, fetch);
    failNext = true;
    const l = cache.acquire(A, 'job.js');
    await assert.rejects(l.path, /storage said no/);
    l.release();
    await runTask(cache, A);
    assert.deepEqual(fetched, [A, A]);
    assert.deepEqual(cache.stats().cached, 1);
  });

  it('a program fetched again right after its eviction is not deleted by the late delete', async () => {
    const cache = new ProgramCache(root, 1, fetch);
    await runTask(cache, A);
    await runTask(cache, B); // evicts A: its folder delete is under way
    const again = cache.acquire(A, 'job.js');
    const file = await again.path;
    await cache.settled();
    assert.ok(fs.existsSync(file));
    again.release();
  });

  it('adopts the programs a previous life left on disk', async () => {
    const dir = path.join(root, A);
    fs.mkdirSync(dir);
    fs.writeFileSync(path.join(dir, 'job.js'), `// program ${A}\n`);
    const cache = new ProgramCache(root, 1, fetch);
    cache.adopt(A, path.join(dir, 'job.js'));
    await runTask(cache, A);
    assert.deepEqual(fetched, [], 'no fetch for an adopted program');
    await runTask(cache, B);
    await cache.settled();
    assert.equal(onDisk(A), false);
  });
});
