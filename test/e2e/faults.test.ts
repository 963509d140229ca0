// Faults on a real `grid dev` (real processes, sockets, FUSE, SQLite): a 200-task job over
// 4 workers, a worker SIGKILLed mid-task, the master SIGKILLed and restarted mid-job, a
// program that fails on one input (retried, then reported), and a 50 MiB input read
// byte-exact through the FUSE mount. (docs/architecture.md "Flows", DESIGN.md "Faults")
import assert from 'node:assert/strict';
import { ChildProcess, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { GRID_BIN, Grid, adminStatus, makeTmpDir, pidAlive, startGrid, taskVisibleDir, waitFor } from '../helpers/grid';
import { assertExactlyOnce, localOutputs } from '../helpers/exactly-once';
import { readExecutions } from '../../src/worker/journal';
import { RpcClient, silentLogger } from '../../src/common';
import { MessageOf, TaskOutcome, TaskState, newUuid } from '../../src/messages';
import { testSecurity } from '../helpers/security';

/**
 * A program that waits until the gate file named in GRID_ARGS exists ('none' = no gate), then
 * writes one output naming its inputs and its task index. The test opens the gate, so tasks
 * are running exactly as long as the test needs, on any machine speed. It gives up (exit 3)
 * after GATE_GIVE_UP_MS so an orphan of a killed worker cannot outlive the test by much.
 */
const GATED_JOB = `const fs = require('fs');
const gate = JSON.parse(process.env.GRID_ARGS)[0];
const t0 = Date.now();
(function wait() {
  if (gate === 'none' || fs.existsSync(gate)) {
    fs.writeFileSync('done.txt', process.argv.slice(2).map((p) => require('path').basename(p)).join(',') + ' ' + process.env.GRID_TASK_INDEX);
    return;
  }
  if (Date.now() - t0 > ${180_000}) process.exit(3);
  setTimeout(wait, 20);
})();
`;

function writeInputs(dir: string, n: number, prefix = 'in'): string[] {
  fs.mkdirSync(dir, { recursive: true });
  return Array.from({ length: n }, (_, i) => {
    const f = path.join(dir, `${prefix}${String(i).padStart(3, '0')}.txt`);
    fs.writeFileSync(f, `input ${i}\n`);
    return f;
  });
}

async function taskStatus(g: Grid, jobId: string, i: number): Promise<MessageOf<'task_status_response'>> {
  const c = new RpcClient({ security: testSecurity('admins'), endpoint: g.master, nodeUuid: newUuid(), log: silentLogger() });
  try {
    return (await c.request({ type: 'task_status_request', node_uuid: newUuid(), request_uuid: newUuid(), job_uuid: jobId, task_index: i }, { retries: 3 })) as MessageOf<'task_status_response'>;
  } finally {
    c.close();
  }
}

interface JobJson {
  jobId: string;
  state: string;
  program: string;
  taskCount: number;
  tasksSucceeded: number;
  tasksRunning: number;
}

async function submitJson(g: Grid, args: string[]): Promise<JobJson> {
  const r = await g.run(['submit', ...args, '--json']);
  assert.equal(r.code, 0, `submit failed: ${r.stdout}\n${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as JobJson;
}

/** Tasks of `jobId` the workers report running (admin GET /status, read directly: no CLI per poll). */
async function runningOn(g: Grid, jobId: string): Promise<Map<string, number>> {
  const per = new Map<string, number>();
  for (const n of g.refreshState().nodes.filter((x) => x.role === 'worker' && x.state === 'running')) {
    const st = (await adminStatus(n.adminPort)) as { running?: { jobUuid: string; state: string; pid: number }[] } | undefined;
    const k = st?.running?.filter((t) => t.jobUuid === jobId && t.state === 'running' && t.pid > 0).length ?? 0;
    if (k > 0) per.set(n.name, k);
  }
  return per;
}

/** `grid submit ... --wait` in the background (it prints the job id first), so faults can be injected meanwhile. */
function submitWaiting(g: Grid, args: string[]): { proc: ChildProcess; output: () => string; done: Promise<{ code: number | null; out: string }> } {
  const proc = spawn(process.execPath, [GRID_BIN, 'submit', ...args, '--wait'], {
    env: { ...process.env, GRID_MASTER: g.masters.join(','), GRID_STORAGE: g.storage },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  proc.stdout!.on('data', (b: Buffer) => (out += b.toString()));
  proc.stderr!.on('data', (b: Buffer) => (out += b.toString()));
  const done = new Promise<{ code: number | null; out: string }>((r) => proc.once('exit', (code) => r({ code, out })));
  return { proc, output: () => out, done };
}

/** The job id `submit` printed first. */
async function jobIdOf(w: { output: () => string }): Promise<string> {
  let id: string | undefined;
  await waitFor(() => !!(id = jobIdFrom(w.output())), 'submit to print the job id', 60_000);
  return id!;
}

function jobIdFrom(out: string): string | undefined {
  return /([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})/.exec(out)?.[1];
}

describe('e2e: faults on a real grid', function () {
  this.timeout(180_000);
  let work: string;
  /** gate files, where sandboxed tasks can see them */
  let gates: string;
  let job: string;
  before(() => {
    work = makeTmpDir('grid-e2e-faults-');
    gates = taskVisibleDir();
    job = path.join(work, 'gated.js');
    fs.writeFileSync(job, GATED_JOB);
  });
  after(() => {
    fs.rmSync(work, { recursive: true, force: true });
    fs.rmSync(gates, { recursive: true, force: true });
  });

  describe('4 workers', () => {
    let g: Grid;
    before(async () => {
      g = await startGrid({ workers: 4, slots: 1, prefetch: 1 });
    });
    after(async () => g?.stop());

    it('runs a job of 200 tasks, each run, accepted and delivered once, byte for byte', async () => {
      const inputs = writeInputs(path.join(work, 'many'), 200);
      const expected = localOutputs(job, inputs, { args: ['none'] }); // computed while the grid runs
      expected.catch(() => undefined); // awaited below; no unhandled rejection if submit fails first
      const s = await submitJson(g, [job, '--inputs', ...inputs, '--args', 'none', '--wait']);
      assert.equal(s.state, 'succeeded');
      assert.equal(s.taskCount, 200);
      assert.equal(s.tasksSucceeded, 200);
      await assertExactlyOnce(g, s.jobId, await expected);
    });

    it('reads a 50 MiB input byte-exact through the FUSE mount', async () => {
      const big = path.join(work, 'big.bin');
      const data = randomBytes(50 << 20);
      fs.writeFileSync(big, data);
      const hasher = path.join(work, 'sha.js');
      fs.writeFileSync(
        hasher,
        `const h = require('crypto').createHash('sha256'); const fs = require('fs');
const fd = fs.openSync(process.argv[2], 'r'); const b = Buffer.alloc(1 << 20); let n = 0;
for (;;) { const k = fs.readSync(fd, b, 0, b.length, null); if (!k) break; h.update(b.subarray(0, k)); n += k; }
fs.writeFileSync('sha.txt', h.digest('hex') + ' ' + n + ' ' + fs.statSync(process.argv[2]).size);
`,
      );
      const s = await submitJson(g, [hasher, '--inputs', big, '--wait']);
      assert.equal(s.state, 'succeeded');
      await assertExactlyOnce(g, s.jobId, await localOutputs(hasher, [big]));
      const out = path.join(work, 'sha-out');
      assert.equal((await g.run(['results', s.jobId, '--out', out])).code, 0);
      const want = createHash('sha256').update(data).digest('hex');
      assert.equal(fs.readFileSync(path.join(out, '0', 'sha.txt'), 'utf8'), `${want} ${50 << 20} ${50 << 20}`);
    });

    it('retries a program that fails on one input, then reports that task and its log', async () => {
      const inputs = writeInputs(path.join(work, 'bad'), 4, 'ok');
      const poison = path.join(work, 'bad', 'poison.txt');
      fs.writeFileSync(poison, 'poison\n');
      const prog = path.join(work, 'picky.js');
      fs.writeFileSync(prog, `const p = process.argv[2];\nif (p.endsWith('poison.txt')) { console.log('refusing ' + require('path').basename(p)); throw new Error('poisoned input'); }\nrequire('fs').writeFileSync('ok.txt', 'ok');\n`);
      const r = await g.run(['submit', prog, '--inputs', ...inputs, poison, '--retries', '2', '--wait']);
      assert.equal(r.code, 2, `a failed job exits 2 (EXIT_JOB_NOT_SUCCEEDED):\n${r.stdout}\n${r.stderr}`);
      assert.match(r.stdout + r.stderr, /poisoned input/);
      const jobId = jobIdFrom(r.stdout + r.stderr)!;
      const t = await taskStatus(g, jobId, 4);
      assert.equal(t.state, TaskState.failed);
      assert.equal(t.attempts, 3, 'first run plus two retries');
      assert.equal(t.outcome, TaskOutcome.exit_nonzero);
      assert.match(t.log_tail, /refusing poison\.txt/);
      // and the workers' journals agree: the poisoned task really ran three times, exit 1 each
      const runs = g
        .refreshState()
        .nodes.filter((n) => n.role === 'worker')
        .flatMap((n) => readExecutions(n.dataDir, jobId).filter((x) => x.taskIndex === 4));
      assert.deepEqual(runs.map((x) => [x.attempt, x.outcome, x.exitCode]).sort(), [[0, 'exit_nonzero', 1], [1, 'exit_nonzero', 1], [2, 'exit_nonzero', 1]]);
    });

    it('completes a job when a worker is SIGKILLed mid-task, each task run to success, accepted and delivered once', async () => {
      const inputs = writeInputs(path.join(work, 'kill'), 8, 'k');
      const gate = path.join(gates, 'kill.gate');
      const w = submitWaiting(g, [job, '--inputs', ...inputs, '--args', gate]);
      const jobId = await jobIdOf(w);
      // every worker holds a running task (4 workers, 1 slot each; the gate keeps them running)
      let per = new Map<string, number>();
      await waitFor(async () => (per = await runningOn(g, jobId)).size === 4, 'a task running on each of the 4 workers', 60_000);
      const victim = g.node('worker-0');
      assert.equal(per.get('worker-0'), 1);
      process.kill(victim.pid, 'SIGKILL');
      await waitFor(() => !pidAlive(victim.pid), 'worker-0 to die', 10_000);
      fs.writeFileSync(gate, '');
      const res = await w.done;
      assert.equal(res.code, 0, res.out);
      const rep = await assertExactlyOnce(g, jobId, await localOutputs(job, inputs, { args: [gate] }), { killedWorkers: ['worker-0'] });
      assert.ok(rep.openRuns >= 1, 'the killed worker left its run open in its journal');
    });
  });

  describe('master restart', () => {
    let g: Grid;
    before(async () => {
      g = await startGrid({ workers: 2, slots: 2, restart: 'worker,master' });
    });
    after(async () => g?.stop());

    it('completes a job when the master is SIGKILLed and restarted mid-job, each task once', async () => {
      const inputs = writeInputs(path.join(work, 'm'), 8, 'm');
      const gate = path.join(gates, 'master.gate');
      const w = submitWaiting(g, [job, '--inputs', ...inputs, '--args', gate]);
      const jobId = await jobIdOf(w);
      await waitFor(async () => (await runningOn(g, jobId)).size > 0, 'tasks running', 60_000);
      const master = g.node('master');
      process.kill(master.pid, 'SIGKILL');
      await waitFor(() => g.node('master').pid !== master.pid && g.node('master').state === 'running', 'master restarted', 30_000);
      fs.writeFileSync(gate, '');
      const res = await w.done;
      assert.equal(res.code, 0, res.out);
      await assertExactlyOnce(g, jobId, await localOutputs(job, inputs, { args: [gate] }));
    });
  });
});
