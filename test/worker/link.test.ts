// The worker's balancer link as a pure state machine, driven by an injected clock
// (docs/architecture.md, "Balancer -> worker (Paranoid Pirate)" and "Results").
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { GridError, parseJsonc } from '../../src/common';
import { BalancerLink, resultKey } from '../../src/worker/link';
import { WORKER_DEFAULTS, loadWorkerConfig, sampleConfig, validateWorkerConfig } from '../../src/worker/config';
import { clipUtf8 } from '../../src/worker/node';

const CFG = { heartbeatIntervalMs: 100, livenessMissed: 3, resultResendMs: 250, resultResendMaxMs: 600, maxUnackedResults: 3 };
/** jitter sources: the whole backoff pause, or half of it (equal jitter's two ends) */
const FULL = (): number => 1;
const HALF = (): number => 0;

describe('worker balancer link (pure)', () => {
  it('heartbeats every interval and reconnects after livenessMissed silent intervals', () => {
    const l = new BalancerLink<string>(CFG, 0);
    assert.equal(l.tick(0).heartbeat, true);
    assert.equal(l.tick(50).heartbeat, false);
    assert.equal(l.tick(100).heartbeat, true);
    assert.equal(l.tick(299).reconnect, false);
    l.heard(250);
    assert.equal(l.tick(540).reconnect, false);
    assert.equal(l.tick(550).reconnect, true, '300 ms of silence');
    l.reconnected(550);
    assert.equal(l.tick(560).reconnect, false);
    assert.equal(l.tick(560).heartbeat, false, 'the first tick after a reconnect already beat');
    assert.equal(l.reconnects, 1);
  });

  it('re-sends results until acked, keyed by job, task and attempt, backing off: resultResendMs doubled up to resultResendMaxMs', () => {
    const l = new BalancerLink<string>(CFG, 0, FULL);
    const k = resultKey('j', 1, 0);
    l.addResult(k, 'r1', 0);
    l.addResult(resultKey('j', 1, 1), 'r1b', 0);
    assert.deepEqual(l.tick(100).resend, []);
    l.heard(200);
    assert.deepEqual(l.tick(249).resend, []);
    assert.deepEqual(l.tick(250).resend, ['r1', 'r1b'], 'first re-send after resultResendMs');
    assert.deepEqual(l.tick(300).resend, []);
    assert.equal(l.ack(k), true);
    assert.equal(l.ack(k), false, 'a second ack is harmless');
    l.heard(450);
    assert.deepEqual(l.tick(500).resend, [], 'the second pause is twice the first: not at 500');
    l.heard(700);
    assert.deepEqual(l.tick(749).resend, []);
    assert.deepEqual(l.tick(750).resend, ['r1b'], 'at 250 + 500');
    l.heard(1000);
    l.heard(1300);
    assert.deepEqual(l.tick(1349).resend, []);
    assert.deepEqual(l.tick(1350).resend, ['r1b'], 'capped at resultResendMaxMs: 750 + 600, not 750 + 1000');
    assert.deepEqual(l.reconnected(1400), ['r1b'], 'a reconnect sends every pending result at once');
    l.heard(1600);
    assert.deepEqual(l.tick(1649).resend, []);
    assert.deepEqual(l.tick(1650).resend, ['r1b'], 'and starts the backoff again: 1400 + 250');
  });

  it('jitters each re-send pause between half and all of it (equal jitter, src/common/backoff.ts)', () => {
    const l = new BalancerLink<string>(CFG, 0, HALF);
    l.addResult('k', 'r', 0);
    assert.deepEqual(l.tick(124).resend, []);
    assert.deepEqual(l.tick(125).resend, ['r'], 'half of 250');
    l.heard(300);
    assert.deepEqual(l.tick(374).resend, []);
    assert.deepEqual(l.tick(375).resend, ['r'], 'half of 500');
    let draw = 0;
    const l2 = new BalancerLink<string>(CFG, 0, () => [0.5, 0.1, 0.9][draw++ % 3]!);
    for (const k of ['a', 'b', 'c']) l2.addResult(k, k, 0);
    // 125 + 0.5 * 125, 125 + 0.1 * 125, 125 + 0.9 * 125: three workers' results spread out
    assert.deepEqual(l2.tick(138).resend, ['b']);
    assert.deepEqual(l2.tick(188).resend, ['a']);
    assert.deepEqual(l2.tick(238).resend, ['c']);
  });

  it('bounds unacked results, dropping the oldest', () => {
    const l = new BalancerLink<string>(CFG, 0);
    for (let i = 0; i < 3; i++) assert.equal(l.addResult(`k${i}`, `r${i}`, 0), true);
    assert.equal(l.addResult('k3', 'r3', 0), false);
    assert.equal(l.pending, 3);
    assert.equal(l.has('k0'), false);
    assert.equal(l.get('k3'), 'r3');
  });
});

describe('worker config', () => {
  it('the sample config parses and equals the defaults', () => {
    const parsed = parseJsonc(sampleConfig(), 'sample');
    assert.deepEqual(Object.keys(parsed).sort(), Object.keys(WORKER_DEFAULTS).sort());
    for (const [k, v] of Object.entries(parsed)) assert.deepEqual(v, (WORKER_DEFAULTS as unknown as Record<string, unknown>)[k], k);
  });

  it('refuses bad settings with CONFIG_INVALID naming them, and lets flags override the file', () => {
    const bad = (over: Record<string, unknown>, re: RegExp) => {
      assert.throws(() => validateWorkerConfig({ ...WORKER_DEFAULTS, ...over }), (e: unknown) => e instanceof GridError && e.code === 'CONFIG_INVALID' && re.test(e.message));
    };
    bad({ slots: -1 }, /slots/);
    bad({ heartbeatIntervalMs: 'fast' }, /heartbeatIntervalMs/);
    bad({ balancer: 'localhost' }, /balancer must be an endpoint/);
    bad({ fuseChunkBytes: 5000 }, /multiple of 4096/);
    bad({ staged: 'maybe' }, /staged/);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'grid-wcfg-'));
    try {
      const f = path.join(dir, 'w.json');
      fs.writeFileSync(f, '// comment\n{ "slots": 3, "prefetch": 2 }\n');
      const c = loadWorkerConfig({ prefetch: '5', dataDir: dir }, f);
      assert.equal(c.slots, 3);
      assert.equal(c.prefetch, 5);
      assert.equal(c.mount, path.join(dir, 'mnt'));
      fs.writeFileSync(f, '{ "slotz": 3 }');
      assert.throws(() => loadWorkerConfig({}, f), /unknown setting "slotz"/);
      assert.ok(validateWorkerConfig({ ...WORKER_DEFAULTS, slots: 0 }).slots >= 1, 'slots 0 = CPU count');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('clips text to a byte budget without splitting characters', () => {
    assert.equal(clipUtf8('héllo', 2), 'h');
    assert.equal(clipUtf8('héllo', 3), 'hé');
    assert.equal(clipUtf8('abc', 10), 'abc');
  });
});
