// DevSupervisor's start, stop and restart logic with stand-in nodes (fixtures/fake-node.ts,
// real processes binding real ports): start order and endpoint wiring, dev.json, restart of
// a crashed worker on the same ports, a dead master left dead and reported, a node that
// never gets ready aborting start-up with its output, SIGKILL after the stop grace.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { DEV_DEFAULTS, DevConfig } from '../../src/cli/config';
import { DevOptions, DevRole, DevSupervisor, Launcher } from '../../src/cli/dev';
import { readCluster } from '../../src/cli/cluster';
import { GridError } from '../../src/common';
import { makeTmpDir, pidAlive, waitFor } from '../helpers/grid';

const FAKE = path.join(__dirname, 'fixtures', 'fake-node.js');

function launcher(modes: Partial<Record<string, string>>): Launcher {
  return (role: DevRole, args: string[]) => {
    const name = role === 'worker' ? `worker-${args[args.indexOf('--data-dir') + 1]!.split('-').pop()}` : role;
    return { command: process.execPath, argv: [FAKE, role, '--mode', modes[name] ?? modes[role] ?? 'ok', ...args] };
  };
}

function argsOf(dataDir: string, name: string): { role: string; flags: Record<string, string>; pid: number } {
  return JSON.parse(fs.readFileSync(path.join(dataDir, name, 'args.json'), 'utf8'));
}

describe('cli: grid dev supervisor (stand-in nodes)', function () {
  this.timeout(30_000);
  let tmp: string;
  let sup: DevSupervisor | undefined;
  let said: string[];
  const cfg: DevConfig = { ...DEV_DEFAULTS, readyTimeoutMs: 5_000, stopGraceMs: 500, restartDelayMs: 50, maxRestarts: 2 };

  beforeEach(() => {
    tmp = makeTmpDir();
    said = [];
  });
  afterEach(async () => {
    // stop() is idempotent; it kills whatever a failed test left running
    await sup?.stop();
    sup = undefined;
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  function make(modes: Partial<Record<string, string>> = {}, o: Partial<DevOptions> = {}, c: Partial<DevConfig> = {}): DevSupervisor {
    sup = new DevSupervisor({ workers: 2, dataDir: tmp, portBase: 0, restart: ['worker'], ...o }, { ...cfg, ...c }, { say: (l) => said.push(l), launcher: launcher(modes) });
    return sup;
  }

  it('starts storage and master, then the balancer with the master\'s endpoint, then workers; stop ends them all', async () => {
    const s = await make({}, { slots: 3 }).start();
    assert.match(s.master, /^tcp:\/\/127\.0\.0\.1:\d+$/);
    assert.notEqual(s.master, 'tcp://127.0.0.1:0');
    assert.deepEqual(s.nodes.map((n) => n.name).sort(), ['balancer', 'master', 'storage', 'worker-0', 'worker-1']);
    const onDisk = JSON.parse(fs.readFileSync(path.join(tmp, 'dev.json'), 'utf8'));
    assert.equal(onDisk.master, s.master);
    assert.equal(onDisk.pid, process.pid);
    const b = argsOf(tmp, 'balancer');
    assert.equal(b.flags.master, s.master);
    assert.equal(b.flags.bind, 'tcp://127.0.0.1:0');
    const w = argsOf(tmp, 'worker-1');
    assert.equal(w.flags.balancer, s.balancer);
    assert.equal(w.flags.storage, s.storage);
    assert.equal(w.flags.slots, '3');
    assert.equal(w.flags.mount, path.join(tmp, 'worker-1', 'mnt'));
    for (const n of s.nodes) assert.ok(pidAlive(n.pid), `${n.name} runs`);

    const r = await sup!.stop();
    assert.deepEqual(r.killed, [], 'every node stopped on SIGTERM');
    for (const n of s.nodes) assert.ok(!pidAlive(n.pid), `${n.name} stopped`);
    assert.ok(!fs.existsSync(path.join(tmp, 'dev.json')), 'dev.json removed');
  });

  it('restarts a crashed worker on the same admin port; leaves a dead master dead and says so loudly', async () => {
    const s = await make().start();
    const w0 = s.nodes.find((n) => n.name === 'worker-0')!;
    process.kill(w0.pid, 'SIGKILL');
    await waitFor(() => fs.readFileSync(path.join(tmp, 'worker-0', 'starts'), 'utf8').length === 2 && sup!.state().nodes.find((n) => n.name === 'worker-0')!.state === 'running', 'worker-0 restarted');
    const again = sup!.state().nodes.find((n) => n.name === 'worker-0')!;
    assert.notEqual(again.pid, w0.pid);
    assert.equal(again.adminPort, w0.adminPort, 'same admin port');
    assert.equal(again.restarts, 1);
    assert.ok(said.some((l) => /worker-0 \(pid \d+\) killed by SIGKILL.*restarting it/.test(l)), said.join('\n'));

    const m = s.nodes.find((n) => n.name === 'master')!;
    process.kill(m.pid, 'SIGKILL');
    await waitFor(() => sup!.state().nodes.find((n) => n.name === 'master')!.state === 'dead', 'master marked dead');
    assert.ok(said.some((l) => /!!! master \(pid \d+\) killed by SIGKILL.*NO JOBS CAN BE SUBMITTED/.test(l)), said.join('\n'));
    assert.equal(fs.readFileSync(path.join(tmp, 'master', 'starts'), 'utf8').length, 1, 'master not restarted');
    assert.equal(JSON.parse(fs.readFileSync(path.join(tmp, 'dev.json'), 'utf8')).nodes.find((n: { name: string }) => n.name === 'master').state, 'dead');
  });

  it('restarts a master (when asked) on the endpoint it had', async () => {
    const s = await make({}, { workers: 0, restart: ['master'] }).start();
    const m = s.nodes.find((n) => n.name === 'master')!;
    process.kill(m.pid, 'SIGKILL');
    await waitFor(() => {
      const n = sup!.state().nodes.find((x) => x.name === 'master')!;
      return n.state === 'running' && n.pid !== m.pid;
    }, 'master restarted');
    assert.equal(argsOf(tmp, 'master').flags.bind, s.master, 'bound again to its first real endpoint');
    assert.equal(sup!.state().master, s.master);
  });

  it('aborts start-up when a node never gets ready, showing its last output, and leaves nothing running', async () => {
    make({ balancer: 'never-ready' }, {}, { readyTimeoutMs: 1500 });
    await assert.rejects(sup!.start(), (e: unknown) => {
      assert.ok(e instanceof GridError);
      assert.match(e.message, /balancer \(pid \d+\) did not announce ready within 1500 ms; its last output:[\s\S]*stuck waiting for something/);
      assert.match(e.describe(), /balancer\.out/);
      return true;
    });
    for (const n of sup!.state().nodes) assert.ok(!pidAlive(n.pid), `${n.name} stopped`);
    assert.ok(!fs.existsSync(path.join(tmp, 'dev.json')));
  });

  it('aborts start-up when a node exits early, with its exit code and error output', async () => {
    make({ storage: 'exit-early' });
    await assert.rejects(sup!.start(), /storage \(pid \d+\) exited with code 3 before it was ready; its last output:[\s\S]*cannot open the database/);
    for (const n of sup!.state().nodes) assert.ok(!pidAlive(n.pid), `${n.name} stopped`);
  });

  it('SIGKILLs a node that ignores SIGTERM after stopGraceMs', async () => {
    const s = await make({ 'worker-1': 'ignore-term' }).start();
    const r = await sup!.stop();
    assert.deepEqual(r.killed, ['worker-1']);
    for (const n of s.nodes) assert.ok(!pidAlive(n.pid), `${n.name} stopped`);
  });

  // docs/architecture.md "Replicated masters"; docs/operations.md "grid dev --masters"
  it('--masters 3: real fixed ports, --peers and --bind for each, the whole list for the balancer and dev.json', async () => {
    const s = await make({}, { masters: 3, workers: 1, slots: 2 }).start();
    assert.deepEqual(s.nodes.map((n) => n.name).sort(), ['balancer', 'master-0', 'master-1', 'master-2', 'storage', 'worker-0']);
    assert.equal(s.masters!.length, 3);
    assert.equal(new Set(s.masters).size, 3);
    assert.equal(s.master, s.masters![0], '`master` stays the first, for older readers');
    for (const [i, ep] of s.masters!.entries()) {
      assert.match(ep, /^tcp:\/\/127\.0\.0\.1:\d+$/);
      assert.notEqual(ep, 'tcp://127.0.0.1:0', 'a group member needs a real port');
      const a = argsOf(tmp, `master-${i}`);
      assert.equal(a.flags.peers, s.masters!.join(','));
      assert.equal(a.flags.bind, ep);
      assert.equal(a.flags['data-dir'], path.join(tmp, `master-${i}`));
    }
    assert.equal(argsOf(tmp, 'balancer').flags.master, s.masters!.join(','));
    const onDisk = JSON.parse(fs.readFileSync(path.join(tmp, 'dev.json'), 'utf8'));
    assert.deepEqual(onDisk.masters, s.masters);
  });

  it('--masters 3: a dead master is reported but not fatal; with --restart master it comes back on its endpoint', async () => {
    const s = await make({}, { masters: 3, workers: 0, restart: ['master'] }, { maxRestarts: 1 }).start();
    const m1 = s.nodes.find((n) => n.name === 'master-1')!;
    process.kill(m1.pid, 'SIGKILL');
    await waitFor(() => {
      const n = sup!.state().nodes.find((x) => x.name === 'master-1')!;
      return n.state === 'running' && n.pid !== m1.pid;
    }, 'master-1 restarted');
    assert.equal(argsOf(tmp, 'master-1').flags.bind, s.masters![1], 'same endpoint');
    assert.equal(argsOf(tmp, 'master-1').flags.peers, s.masters!.join(','), 'same group');
    // second crash: out of restarts; reported, left dead, the others unaffected
    process.kill(sup!.state().nodes.find((x) => x.name === 'master-1')!.pid, 'SIGKILL');
    await waitFor(() => sup!.state().nodes.find((x) => x.name === 'master-1')!.state === 'dead', 'master-1 left dead');
    const line = said.find((l) => /master-1 \(pid \d+\) killed by SIGKILL.* after 1 restarts; it stays down/.test(l));
    assert.ok(line, said.join('\n'));
    assert.match(line, /the other masters keep serving while 2 of 3 run/);
    assert.doesNotMatch(line, /NO JOBS/);
    for (const name of ['master-0', 'master-2', 'balancer', 'storage']) assert.ok(pidAlive(sup!.state().nodes.find((x) => x.name === name)!.pid), `${name} still runs`);
  });

  it('grid cluster reads every node\'s /status from dev.json; a dead master is listed unreachable', async () => {
    const s = await make({}, { masters: 3, workers: 2, slots: 3 }).start();
    let v = await readCluster({ dataDir: tmp }, {});
    assert.equal(v.source, path.join(tmp, 'dev.json'));
    assert.deepEqual(v.masters.map((m) => [m.name, m.endpoint, m.reachable]), s.masters!.map((ep, i) => [`master-${i}`, ep, true]));
    assert.deepEqual(v.masters.map((m) => m.role), ['leader', 'follower', 'follower']);
    assert.equal(v.leader, s.masters![0]);
    for (const m of v.masters) {
      assert.equal(m.pid, s.nodes.find((n) => n.name === m.name)!.pid);
      assert.deepEqual([m.term, m.commit, m.applied, m.leader], [2, 7, 7, s.masters![0]]);
    }
    assert.deepEqual(v.balancers.map((b) => [b.name, b.endpoint, b.master, b.workers]), [['balancer', s.balancer, s.masters!.join(','), 1]]);
    assert.deepEqual(v.workers.map((w) => [w.name, w.reachable, w.slots, w.running]), [['worker-0', true, 3, 1], ['worker-1', true, 3, 1]]);
    assert.equal(v.storage[0]!.reachable, true);

    const m2 = s.nodes.find((n) => n.name === 'master-2')!;
    process.kill(m2.pid, 'SIGKILL');
    await waitFor(() => sup!.state().nodes.find((x) => x.name === 'master-2')!.state === 'dead', 'master-2 dead');
    v = await readCluster({ dataDir: tmp }, {});
    const dead = v.masters.find((m) => m.name === 'master-2')!;
    assert.equal(dead.reachable, false);
    assert.match(dead.error!, /dead according to grid dev/);
    assert.deepEqual([dead.role, dead.term], [null, null]);
    assert.equal(v.leader, s.masters![0]);

    // by admin addresses, as for a grid started by hand; a port nobody serves is listed, not fatal
    const admins = s.nodes.filter((n) => n.name !== 'master-2').map((n) => `127.0.0.1:${n.adminPort}`);
    v = await readCluster({ admin: [...admins, `127.0.0.1:${m2.adminPort}`].join(',') }, { GRID_CLUSTER_STATUS_TIMEOUT_MS: '2000' });
    assert.equal(v.masters.length, 2);
    assert.equal(v.workers.length, 2);
    assert.deepEqual(v.unknown.map((u) => [u.admin, u.reachable]), [[`127.0.0.1:${m2.adminPort}`, false]]);
    assert.match(v.unknown[0]!.error!, /connection refused/);
  });
});
