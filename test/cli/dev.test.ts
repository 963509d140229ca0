// DevSupervisor's start, stop and restart logic with stand-in nodes (fixtures/fake-node.ts,
// real processes binding real ports): start order and endpoint wiring, dev.json, restart of
// a crashed worker on the same ports, a dead master left dead and reported, a node that
// never gets ready aborting start-up with its output, SIGKILL after the stop grace.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { DEV_DEFAULTS, DevConfig } from '../../src/cli/config';
import { DevOptions, DevRole, DevSupervisor, Launcher } from '../../src/cli/dev';
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
});
