// `grid cluster` and replicated masters on a real `grid dev` (docs/operations.md "grid cluster",
// "grid dev --masters"; docs/architecture.md "Replicated masters"): the --json shape against
// one master; with --masters 3 a job survives a SIGKILLed leader (the client follows the new
// one), `grid cluster` shows who leads and who is down, and with two of three masters dead
// the client fails after its window with "no master leads ... no quorum?".
import assert from 'node:assert/strict';
import path from 'node:path';
import { EXAMPLES, Grid, makeTmpDir, runGrid, startGrid, waitFor } from '../helpers/grid';
import { assertExactlyOnce, localOutputs } from '../helpers/exactly-once';
import fs from 'node:fs';

const WORDCOUNT = path.join(EXAMPLES, 'wordcount');
const DATA = path.join(WORDCOUNT, 'data');

interface ClusterJson {
  source: string;
  leader: string | null;
  masters: { name: string; endpoint: string | null; pid: number | null; reachable: boolean; role: string | null; term: number | null; commit: number | null; applied: number | null; leader: string | null; error: string | null }[];
  balancers: { name: string; endpoint: string | null; pid: number | null; reachable: boolean; master: string | null }[];
  storage: { name: string; reachable: boolean }[];
  workers: { name: string; pid: number | null; reachable: boolean; slots: number | null; running: number | null }[];
  unknown: unknown[];
}

async function cluster(g: Grid): Promise<ClusterJson> {
  const r = await g.run(['cluster', '--json', '--data-dir', g.dataDir]);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as ClusterJson;
}

describe('e2e: grid cluster (one master)', function () {
  this.timeout(120_000);
  let g: Grid | undefined;
  after(async () => {
    await g?.stop();
  });

  it('lists the master, balancer, storage and workers with the documented --json shape', async () => {
    g = await startGrid({ workers: 2, slots: 2 });
    const v = await cluster(g);
    const nodes = g.refreshState().nodes;
    const pid = (name: string): number => nodes.find((n) => n.name === name)!.pid;
    assert.equal(v.masters.length, 1);
    const m = v.masters[0]!;
    assert.equal(m.name, 'master');
    assert.equal(m.endpoint, g.master);
    assert.equal(m.pid, pid('master'));
    assert.equal(m.reachable, true);
    assert.equal(m.role, 'leader', 'a group of one leads');
    assert.ok(typeof m.term === 'number' && m.term >= 1);
    assert.ok(typeof m.commit === 'number' && typeof m.applied === 'number');
    assert.equal(m.leader, g.master);
    assert.equal(v.leader, g.master);
    assert.deepEqual(v.balancers.map((b) => [b.name, b.endpoint, b.pid, b.reachable]), [['balancer', g.balancer, pid('balancer'), true]]);
    assert.deepEqual(v.storage.map((s) => [s.name, s.reachable]), [['storage', true]]);
    assert.deepEqual(
      v.workers.map((w) => [w.name, w.pid, w.reachable, w.slots, w.running]),
      [
        ['worker-0', pid('worker-0'), true, 2, 0],
        ['worker-1', pid('worker-1'), true, 2, 0],
      ],
    );
    assert.deepEqual(v.unknown, []);

    const text = await g.run(['cluster', '--data-dir', g.dataDir]);
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /^masters \(1 of 1 reachable; leader tcp:\/\/127\.0\.0\.1:\d+\)$/m);
    assert.match(text.stdout, /^workers \(2 of 2 reachable; 0 of 4 slots busy\)$/m);

    // the same nodes by admin address, as for a grid started by hand
    const admins = nodes.map((n) => `127.0.0.1:${n.adminPort}`).join(',');
    const byAdmin = JSON.parse((await runGrid(['cluster', '--json', '--admin', admins])).stdout) as ClusterJson;
    assert.equal(byAdmin.masters[0]!.role, 'leader');
    assert.equal(byAdmin.workers.length, 2);
  });

  it('says clearly when there is no grid dev and no --admin, and refuses a bad --admin', async () => {
    const empty = makeTmpDir();
    try {
      const r = await runGrid(['cluster', '--data-dir', empty]);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /^grid: UNAVAILABLE: no running `grid dev` in .* and no --admin given \(start `grid dev`.*--admin 127\.0\.0\.1:7710/);
      const bad = await runGrid(['cluster', '--admin', '127.0.0.1:7710,localhost']);
      assert.equal(bad.code, 1);
      assert.match(bad.stderr, /^grid: BAD_REQUEST: --admin entry "localhost" is not HOST:PORT/);
    } finally {
      fs.rmSync(empty, { recursive: true, force: true });
    }
  });
});

describe('e2e: grid dev --masters 3', function () {
  this.timeout(180_000);
  let g: Grid | undefined;
  after(async () => {
    await g?.stop();
  });

  it('a job submitted after the leader is SIGKILLed succeeds; cluster shows the new leader; two dead masters = "no quorum?"', async () => {
    g = await startGrid({ masters: 3, workers: 2, slots: 2 });
    assert.equal(g.masters.length, 3);
    const leading = await g.waitForLeader();
    let v = await cluster(g);
    assert.deepEqual(v.masters.map((m) => m.name), ['master-0', 'master-1', 'master-2']);
    assert.equal(v.masters.filter((m) => m.role === 'leader').length, 1);
    assert.equal(v.leader, leading.endpoints.clients);

    const inputs = fs.readdirSync(DATA).map((f) => path.join(DATA, f));
    const job = path.join(WORDCOUNT, 'job.js');
    const expected = await localOutputs(job, inputs);
    const before = await g.run(['submit', job, '--inputs', ...inputs, '--wait', '--json']);
    assert.equal(before.code, 0, before.stderr);
    await assertExactlyOnce(g, JSON.parse(before.stdout).jobId, expected);

    // the leader read again just before the kill (it may have changed since the first look)
    const first = await g.waitForLeader();
    process.kill(first.pid, 'SIGKILL');
    // the client is given all three (GRID_MASTER list); it skips the dead one and follows the new leader
    const after = await g.run(['submit', path.join(WORDCOUNT, 'job.js'), '--inputs', ...inputs, '--wait', '--json']);
    assert.equal(after.code, 0, `${after.stderr}\n--- dev:\n${g.devOutput()}`);
    assert.equal(JSON.parse(after.stdout).state, 'succeeded');
    await assertExactlyOnce(g, JSON.parse(after.stdout).jobId, expected, { staleMasters: [first.name] });
    // the job from before the failover is still known to the new leader
    const jobs = JSON.parse((await g.run(['jobs', '--json'])).stdout) as { jobId: string; state: string }[];
    assert.equal(jobs.length, 2);
    assert.ok(jobs.every((j) => j.state === 'succeeded'), JSON.stringify(jobs));

    await waitFor(() => g!.node(first.name).state === 'dead', `${first.name} marked dead by dev`);
    assert.match(g.devOutput(), new RegExp(`!! ${first.name} \\(pid ${first.pid}\\) killed by SIGKILL.*the other masters keep serving while 2 of 3 run`));
    const second = await g.waitForLeader();
    assert.notEqual(second.name, first.name);
    v = await cluster(g);
    const dead = v.masters.find((m) => m.name === first.name)!;
    assert.equal(dead.reachable, false);
    assert.equal(v.leader, second.endpoints.clients);
    const live = v.masters.filter((m) => m.reachable);
    assert.equal(live.length, 2);
    for (const m of live) assert.ok(m.term! > 1, `${m.name} is in a later term than the first leader's`);

    process.kill(second.pid, 'SIGKILL');
    const r = await g.run(['jobs'], { env: { GRID_MASTER_RETRY_WINDOW_MS: '4000', GRID_MASTER_REQUEST_TIMEOUT_MS: '300' } });
    assert.equal(r.code, 1, r.stdout);
    assert.match(r.stderr, /^grid: UNAVAILABLE: no master leads: asked .* no quorum\?/);
  });
});
