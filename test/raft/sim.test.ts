// Deterministic simulation of the Raft core (docs/raft.md, "Simulation"): hundreds of seeds,
// every regression seed, and unit tests that show the linearizability checker can fail.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { runSeed } from './sim/cluster';
import { KvOp, checkKv, checkRegister } from './sim/linearizability';
import { Prng } from './sim/prng';

/** Seeds per mocha run; `npm run sim -- --seeds N` runs more. */
const SUITE_SEEDS = 500;
const SUITE_START = 1;

function expectOk(seed: number): void {
  const r = runSeed(seed);
  if (!r.ok) assert.fail(`seed ${seed} failed at t=${r.at}: ${r.error}\n  replay: npm run sim -- --seed ${seed} --verbose\n  (then add ${seed} to test/raft/regressions.json)`);
}

describe('raft simulation', function () {
  // CPU-bound and bounded (a fixed number of seeds and steps): the timeout only guards against
  // a hang. 500 seeds took 74 s with two busy loops beside the suite and over 180 s at load
  // ~15 on 2 cores, so the guard is generous.
  this.timeout(600_000);

  it(`passes ${SUITE_SEEDS} seeds (${SUITE_START}..${SUITE_START + SUITE_SEEDS - 1}): safety after every step, linearizable, progress after faults`, () => {
    for (let s = SUITE_START; s < SUITE_START + SUITE_SEEDS; s++) expectOk(s);
  });

  it('replays every seed in test/raft/regressions.json', () => {
    const file = path.join(__dirname, '..', '..', '..', 'test', 'raft', 'regressions.json');
    const seeds = JSON.parse(fs.readFileSync(file, 'utf8')) as number[];
    assert.ok(Array.isArray(seeds) && seeds.length > 0);
    for (const s of seeds) expectOk(s);
  });

  it('is deterministic: a seed replays to the same outcome and statistics', () => {
    const a = runSeed(4242);
    const b = runSeed(4242);
    assert.deepEqual(a, b);
    assert.ok(a.stats.commits > 0 && a.stats.messages > 0);
  });

  it('the PRNG is seeded: same seed, same stream; different seeds differ', () => {
    const x = new Prng(7);
    const y = new Prng(7);
    const z = new Prng(8);
    const xs = Array.from({ length: 5 }, () => x.u32());
    assert.deepEqual(xs, Array.from({ length: 5 }, () => y.u32()));
    assert.notDeepEqual(xs, Array.from({ length: 5 }, () => z.u32()));
  });
});

describe('linearizability checker (Wing-Gong with memoization)', () => {
  const op = (kind: 'put' | 'get', value: string | null, invoke: number, ret: number, key = 'k'): KvOp => ({ client: 'c', kind, key, value, invoke, ret });

  it('accepts a sequential history and concurrent overlaps that can be ordered', () => {
    assert.ok(checkRegister([op('put', '1', 0, 1), op('get', '1', 2, 3), op('put', '2', 4, 5), op('get', '2', 6, 7)]));
    // the get overlaps the put: either value is fine
    assert.ok(checkRegister([op('put', '1', 0, 1), op('put', '2', 2, 10), op('get', '1', 3, 4), op('get', '2', 5, 6)]));
    assert.ok(checkRegister([op('get', null, 0, 1), op('put', 'x', 2, Infinity)]));
  });

  it('rejects a stale read, a read of a value never written, and a value going back in time', () => {
    assert.equal(checkRegister([op('put', '1', 0, 1), op('put', '2', 2, 3), op('get', '1', 4, 5)]), false);
    assert.equal(checkRegister([op('get', 'ghost', 0, 1)]), false);
    assert.equal(checkRegister([op('put', '1', 0, 10), op('put', '2', 0, 10), op('get', '2', 11, 12), op('get', '1', 13, 14)]), false);
  });

  it('checks per key and ignores gets without a response', () => {
    const h = [op('put', '1', 0, 1, 'a'), op('put', '2', 0, 1, 'b'), op('get', '1', 2, 3, 'a'), op('get', '9', 2, Infinity, 'b')];
    assert.equal(checkKv(h).ok, true);
    const bad = checkKv([...h, op('get', '1', 4, 5, 'b')]);
    assert.equal(bad.ok, false);
    assert.equal(bad.badKey, 'b');
  });

  it('stays fast on a long concurrent history (memoization)', () => {
    const r = new Prng(1);
    const ops: KvOp[] = [];
    let t = 0;
    let cur: string | null = null;
    for (let i = 0; i < 400; i++) {
      t += 2;
      if (r.chance(0.5)) {
        cur = `v${i}`;
        ops.push(op('put', cur, t, t + 5));
      } else ops.push(op('get', cur, t + 6, t + 7));
    }
    assert.ok(checkRegister(ops));
  });
});
