// The task sandbox (docs/operations.md, "Containment"): pure decisions, then real jailed
// task processes run by the runner as root: own uid, own PID namespace, private /tmp.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { silentLogger } from '../../src/common';
import { RunLimits, RunSpec, TaskRun } from '../../src/worker/runner';
import { JailSpec, UidPool, inView, sandboxDecision, setupFailure } from '../../src/worker/sandbox';
import { describeIf } from '../helpers/requires';

const isRoot = process.geteuid?.() === 0;

function alive(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z /.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

async function until(what: string, cond: () => boolean, tries = 250): Promise<void> {
  for (let i = 0; i < tries; i++) {
    if (cond()) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  assert.fail(`timed out waiting for ${what}`);
}

describe('task sandbox (pure)', () => {
  it('jails only as root with the tools, and says why not otherwise', () => {
    assert.deepEqual(sandboxDecision({ enabled: true, euid: 0, missing: [] }), { jail: true });
    const off = sandboxDecision({ enabled: false, euid: 0, missing: [] });
    assert.equal(off.jail, false);
    assert.match(!off.jail ? off.warning! : '', /sandbox = false.*can read the worker data dir and signal its processes/);
    const user = sandboxDecision({ enabled: true, euid: 1000, missing: [] });
    assert.match(!user.jail ? user.warning! : '', /not root \(uid 1000\).*run the worker as root/);
    const tools = sandboxDecision({ enabled: true, euid: 0, missing: ['/usr/bin/unshare'] });
    assert.match(!tools.jail ? tools.warning! : '', /needs \/usr\/bin\/unshare.*install util-linux/);
  });

  it('hands out distinct uids, the lowest free first, and refuses beyond its bound', () => {
    const pool = new UidPool(64100, 2);
    const a = pool.acquire();
    const b = pool.acquire();
    assert.deepEqual([a, b], [
      { uid: 64100, gid: 64100 },
      { uid: 64101, gid: 64101 },
    ]);
    assert.throws(() => pool.acquire(), /all 2 task uids from 64100 are in use/);
    pool.release(a);
    assert.deepEqual(pool.acquire(), a);
  });

  it('maps host paths into the task view and refuses paths outside', () => {
    assert.equal(inView('/d/programs/u/job.js', '/d/programs/u', '/tmp/.grid/program'), '/tmp/.grid/program/job.js');
    assert.equal(inView('/m/v/f/in.txt', '/m/v', '/tmp/.grid/inputs'), '/tmp/.grid/inputs/f/in.txt');
    assert.throws(() => inView('/etc/passwd', '/m/v', '/x'), /not inside/);
    assert.throws(() => inView('/m/v', '/m/v', '/x'), /not inside/);
  });

  it('recognises a set-up failure only by its exit code and mark', () => {
    assert.equal(setupFailure(125, 'x\ngrid-sandbox: cannot bind the inputs\n'), 'cannot bind the inputs');
    assert.equal(setupFailure(125, 'a task that exits 125'), null);
    assert.equal(setupFailure(1, 'grid-sandbox: cannot bind the inputs'), null);
  });
});

describeIf(isRoot ? null : 'the sandbox needs root (unshare, setpriv, mounts)', 'task sandbox on real processes (root)', function () {
  this.timeout(60_000);
  const LIMITS: RunLimits = { maxLogBytes: 64 * 1024, logTailBytes: 4096, memoryPollIntervalMs: 50, outputPollIntervalMs: 50, maxOutputFiles: 100 };
  let tmp: string;
  let secret: string;
  let n = 0;

  before(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'grid-sandbox-'));
    fs.chmodSync(tmp, 0o700); // like a node's data dir
    secret = path.join(tmp, 'secret.db');
    fs.writeFileSync(secret, 'node secret', { mode: 0o600 });
  });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  function jailed(src: string, over: Partial<RunSpec> = {}, inputs: Record<string, string> = {}): RunSpec {
    const id = n++;
    const programDir = path.join(tmp, `programs-${id}`);
    fs.mkdirSync(programDir, { mode: 0o700 });
    const programPath = path.join(programDir, 'job.js');
    fs.writeFileSync(programPath, src, { mode: 0o600 });
    const taskDir = path.join(tmp, `task-${id}`);
    fs.mkdirSync(taskDir, { mode: 0o700 });
    const inputsDir = path.join(taskDir, 'inputs');
    const inputPaths = Object.entries(inputs).map(([name, text], i) => {
      fs.mkdirSync(path.join(inputsDir, String(i)), { recursive: true });
      fs.writeFileSync(path.join(inputsDir, String(i), name), text, { mode: 0o600 });
      return path.join(inputsDir, String(i), name);
    });
    const jail: JailSpec = { uid: 64150 + (id % 8), gid: 64150 + (id % 8), inputsDir: inputPaths.length ? inputsDir : '' };
    return {
      jobUuid: '11111111-2222-4333-8444-555555555555',
      taskIndex: 0,
      taskCount: 1,
      args: [],
      programPath,
      inputPaths,
      timeoutMs: 20_000,
      memoryLimitMb: 256,
      outputLimitBytes: 10 * 1024 * 1024,
      taskDir,
      jail,
      ...over,
    };
  }
  const run = (s: RunSpec, limits = LIMITS) => new TaskRun(s, limits, silentLogger()).start();

  it('runs as its uid in its own view: cwd, TMPDIR, read-only inputs and program; outputs are collected', async () => {
    const s = jailed(
      `const fs = require('fs');
       const t = (f) => { try { f(); return 'ok'; } catch (e) { return e.code; } };
       fs.writeFileSync('seen.json', JSON.stringify({
         uid: process.getuid(), gid: process.getgid(), groups: process.getgroups(), pid: process.pid,
         cwd: process.cwd(), home: process.env.HOME, tmpdir: require('os').tmpdir(),
         input: fs.readFileSync(process.argv[2], 'utf8'), argv: process.argv.slice(1),
         writeInput: t(() => fs.writeFileSync(process.argv[2], 'x')),
         writeProgram: t(() => fs.writeFileSync(process.argv[1], 'x')),
         procs: fs.readdirSync('/proc').filter((d) => /^\\d+$/.test(d)).length,
       }));
       fs.writeFileSync(require('os').tmpdir() + '/scratch', 'temp');`,
      {},
      { 'in.txt': 'input text' },
    );
    const r = await run(s);
    assert.equal(r.outcome, 'ok', r.error + r.logTail);
    assert.deepEqual(r.outputs.map((o) => o.name), ['seen.json'], 'temp files are not outputs');
    const seen = JSON.parse(fs.readFileSync(path.join(r.workDir, 'seen.json'), 'utf8'));
    assert.equal(seen.uid, s.jail!.uid);
    assert.equal(seen.gid, s.jail!.gid);
    assert.deepEqual(seen.groups, [s.jail!.gid]);
    assert.equal(seen.pid, 1, 'the program is PID 1 of its own namespace');
    assert.ok(seen.procs <= 2, `the task sees only its own processes, saw ${seen.procs}`);
    assert.equal(seen.cwd, '/tmp/work');
    assert.equal(seen.home, '/tmp/work');
    assert.equal(seen.tmpdir, '/tmp');
    assert.equal(seen.input, 'input text');
    assert.deepEqual(seen.argv, ['/tmp/.grid/program/job.js', '/tmp/.grid/inputs/0/in.txt']);
    assert.equal(seen.writeInput, 'EROFS');
    assert.equal(seen.writeProgram, 'EROFS');
    assert.equal(fs.statSync(s.programPath).mode & 0o777, 0o600, 'the cached program stays private: the task reads a copy');
    assert.equal(fs.readFileSync(path.join(s.taskDir, 'tmp', 'scratch'), 'utf8'), 'temp', 'its /tmp is the task temp folder');
  });

  it("cannot read a node's files nor signal the worker", async () => {
    const s = jailed(
      `const fs = require('fs');
       const t = (f) => { try { f(); return 'ok'; } catch (e) { return e.code; } };
       const [secret, dataDir, worker] = JSON.parse(process.env.GRID_ARGS);
       fs.writeFileSync('seen.json', JSON.stringify({
         read: t(() => fs.readFileSync(secret)), list: t(() => fs.readdirSync(dataDir)),
         kill: t(() => process.kill(Number(worker), 'SIGKILL')),
       }));`,
      { args: [secret, tmp, String(process.pid)] },
    );
    const r = await run(s);
    assert.equal(r.outcome, 'ok', r.error + r.logTail);
    const seen = JSON.parse(fs.readFileSync(path.join(r.workDir, 'seen.json'), 'utf8'));
    // outside its PID namespace the worker has no pid the task can name: ESRCH (or EPERM)
    // the data dir is 0700 of another uid (EACCES); under the host /tmp it is not even there
    assert.ok(['EACCES', 'ENOENT'].includes(seen.read), seen.read);
    assert.ok(['EACCES', 'ENOENT'].includes(seen.list), seen.list);
    assert.ok(['ESRCH', 'EPERM'].includes(seen.kill), seen.kill);
  });

  it('kills an escaping setsid grandchild when the task ends', async () => {
    const s = jailed(
      `const { spawn } = require('child_process');
       const c = spawn('setsid', [process.execPath, '-e', 'setInterval(() => require("fs").writeFileSync("/tmp/work/alive", String(Date.now())), 20)'], { detached: true, stdio: 'ignore' });
       c.unref();
       // end once the grandchild runs
       setInterval(() => { if (require('fs').existsSync('/tmp/work/alive')) process.exit(0); }, 20);`,
    );
    const r = await run(s);
    assert.equal(r.outcome, 'ok', r.error + r.logTail);
    // the grandchild wrote while the task lived; afterwards no process of the namespace is left
    const alivePath = path.join(r.workDir, 'alive');
    assert.ok(fs.existsSync(alivePath), 'the grandchild ran');
    const left = fs
      .readdirSync('/proc')
      .filter((d) => /^\d+$/.test(d))
      .filter((d) => {
        try {
          return fs.statSync(`/proc/${d}`).uid === s.jail!.uid && alive(Number(d));
        } catch {
          return false;
        }
      });
    assert.deepEqual(left, [], 'no process of the task uid outlives the task');
  });

  it('counts /tmp toward the output limit and leaves nothing in the host /tmp', async () => {
    const name = `grid-hog-${process.pid}-${Date.now()}`;
    const s = jailed(
      `const fs = require('fs'); const b = Buffer.alloc(1 << 20, 7);
       const fd = fs.openSync('/tmp/${name}', 'w'); for (let i = 0; i < 450; i++) fs.writeSync(fd, b);`,
      { outputLimitBytes: 8 * 1024 * 1024 },
    );
    const r = await run(s);
    assert.equal(r.outcome, 'output_limit', r.error + r.logTail);
    assert.equal(fs.existsSync(path.join('/tmp', name)), false, 'the host /tmp never saw the file');
    const kept = fs.statSync(path.join(s.taskDir, 'tmp', name)).size;
    assert.ok(kept <= 8 * 1024 * 1024, `kept ${kept} bytes`);
  });

  it('reports a sandbox that cannot be set up as a worker error', async () => {
    const s = jailed(`console.log('never')`);
    s.jail = { ...s.jail!, inputsDir: path.join(tmp, 'no-such-inputs') };
    const r = await run(s);
    assert.equal(r.outcome, 'worker_error', r.error + r.logTail);
    assert.match(r.error, /could not set up the task sandbox: cannot bind the inputs/);
  });
});
