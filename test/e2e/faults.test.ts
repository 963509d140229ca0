// Faults on a real `grid dev` (real processes, sockets, FUSE, SQLite): a 200-task job over
// 4 workers, a worker SIGKILLed mid-task, the master SIGKILLed and restarted mid-job, a
// program that fails on one input (retried, then reported), and a 50 MiB input read
// byte-exact through the FUSE mount. (docs/architecture.md "Flows", DESIGN.md "Faults")
import assert from 'node:assert/strict';
import { ChildProcess, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { GRID_BIN, Grid, makeTmpDir, pidAlive, startGrid, waitFor } from '../helpers/grid';
import { RpcClient, silentLogger } from '../../src/common';
import { MessageOf, TaskOutcome, TaskState, newUuid } from '../../src/messages';

/** A program that sleeps `ms` (from GRID_ARGS) then writes one output naming its input. */
const SLOW_JOB = `const ms = Number(JSON.parse(process.env.GRID_ARGS)[0]);
setTimeout(() => {
  require('fs').writeFileSync('done.txt', process.argv.slice(2).map((p) => require('path').basename(p)).join(',') + ' ' + process.env.GRID_TASK_INDEX);
}, ms);
`;

function writeInputs(dir: string, n: number, prefix = 'in'): string[] {
  fs.mkdirSync(dir, { recursive: true });
  return Array.from({ length: n }, (_, i) => {
    const f = path.join(dir, `${prefix}${String(i).padStart(3, '0')}.txt`);
    fs.writeFileSync(f, `input ${i}\n`);
    return f;
  });
}

/** Outputs recorded per task, read from the master's SQLite file (WAL allows a reader). */
function outputsPerTask(g: Grid, jobId: string): number[] {
  const db = new Database(path.join(g.node('master').dataDir, 'jobs.db'), { readonly: true, fileMustExist: true });
  try {
    const rows = db.prepare('SELECT task_index, COUNT(*) AS n FROM outputs WHERE job_uuid = ? GROUP BY task_index ORDER BY task_index').all(jobId) as { task_index: number; n: number }[];
    return rows.map((r) => r.n);
  } finally {
    db.close();
  }
}

async function taskStatus(g: Grid, jobId: string, i: number): Promise<MessageOf<'task_status_response'>> {
  const c = new RpcClient({ endpoint: g.master, nodeUuid: newUuid(), log: silentLogger() });
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

async function runningTasks(g: Grid, jobId: string): Promise<number> {
  const r = await g.run(['status', jobId, '--json']);
  if (r.code !== 0) return 0;
  return (JSON.parse(r.stdout) as JobJson).tasksRunning;
}

/** `grid submit ... --wait --json` in the background, so faults can be injected meanwhile. */
function submitWaiting(g: Grid, args: string[]): { proc: ChildProcess; done: Promise<{ code: number | null; out: string }> } {
  const proc = spawn(process.execPath, [GRID_BIN, 'submit', ...args, '--wait', '--json'], {
    env: { ...process.env, GRID_MASTER: g.master, GRID_STORAGE: g.storage },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  proc.stdout!.on('data', (b: Buffer) => (out += b.toString()));
  proc.stderr!.on('data', (b: Buffer) => (out += b.toString()));
  const done = new Promise<{ code: number | null; out: string }>((r) => proc.once('exit', (code) => r({ code, out })));
  return { proc, done };
}

function jobIdFrom(out: string): string | undefined {
  return /([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})/.exec(out)?.[1];
}

describe('e2e: faults on a real grid', function () {
  this.timeout(180_000);
  let work: string;
  let job: string;
  before(() => {
    work = makeTmpDir('grid-e2e-faults-');
    job = path.join(work, 'slow.js');
    fs.writeFileSync(job, SLOW_JOB);
  });
  after(() => fs.rmSync(work, { recursive: true, force: true }));

  describe('4 workers', () => {
    let g: Grid;
    before(async () => {
      g = await startGrid({ workers: 4, slots: 1, prefetch: 1 });
    });
    after(async () => g?.stop());

    it('runs a job of 200 tasks, each recorded once', async () => {
      const inputs = writeInputs(path.join(work, 'many'), 200);
      const s = await submitJson(g, [job, '--inputs', ...inputs, '--args', '0', '--wait']);
      assert.equal(s.state, 'succeeded');
      assert.equal(s.taskCount, 200);
      assert.equal(s.tasksSucceeded, 200);
      const per = outputsPerTask(g, s.jobId);
      assert.equal(per.length, 200);
      assert.ok(per.every((n) => n === 1), 'one output per task, recorded once');
      const out = path.join(work, 'many-out');
      const r = await g.run(['results', s.jobId, '--out', out]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(fs.readFileSync(path.join(out, '137', 'done.txt'), 'utf8'), 'in137.txt 137');
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
      assert.notEqual(r.code, 0, 'a failed job exits non-zero');
      assert.match(r.stdout + r.stderr, /poisoned input/);
      const jobId = jobIdFrom(r.stdout + r.stderr)!;
      const t = await taskStatus(g, jobId, 4);
      assert.equal(t.state, TaskState.failed);
      assert.equal(t.attempts, 3, 'first run plus two retries');
      assert.equal(t.outcome, TaskOutcome.exit_nonzero);
      assert.match(t.log_tail, /refusing poison\.txt/);
    });

    it('completes a job when a worker is SIGKILLed mid-task, recording each task once', async () => {
      const inputs = writeInputs(path.join(work, 'kill'), 8, 'k');
      const w = submitWaiting(g, [job, '--inputs', ...inputs, '--args', '1500']);
      let jobId: string | undefined;
      // find the job id from `grid jobs` (the newest job), then wait until tasks run
      await waitFor(
        async () => {
          const r = await g.run(['jobs', '--json']);
          const jobs = (r.code === 0 ? JSON.parse(r.stdout) : []) as JobJson[];
          jobId = jobs.find((j) => j.program === 'slow.js' && j.state === 'running')?.jobId;
          return jobId !== undefined && (await runningTasks(g, jobId)) >= 2;
        },
        'tasks running',
        30_000,
        200,
      );
      const victim = g.node('worker-0');
      process.kill(victim.pid, 'SIGKILL');
      const res = await w.done;
      assert.equal(res.code, 0, res.out);
      assert.ok(!pidAlive(victim.pid));
      const per = outputsPerTask(g, jobId!);
      assert.deepEqual(per, Array(8).fill(1), 'every task settled once with its outputs');
    });
  });

  describe('master restart', () => {
    let g: Grid;
    before(async () => {
      g = await startGrid({ workers: 2, slots: 2, restart: 'worker,master' });
    });
    after(async () => g?.stop());

    it('completes a job when the master is SIGKILLed and restarted mid-job', async () => {
      const inputs = writeInputs(path.join(work, 'm'), 8, 'm');
      const w = submitWaiting(g, [job, '--inputs', ...inputs, '--args', '700']);
      let jobId: string | undefined;
      await waitFor(
        async () => {
          const r = await g.run(['jobs', '--json']);
          const jobs = (r.code === 0 ? JSON.parse(r.stdout) : []) as JobJson[];
          jobId = jobs.find((j) => j.state === 'running')?.jobId;
          return jobId !== undefined && (await runningTasks(g, jobId)) >= 1;
        },
        'tasks running',
        30_000,
        200,
      );
      const master = g.node('master');
      process.kill(master.pid, 'SIGKILL');
      await waitFor(() => g.node('master').pid !== master.pid && g.node('master').state === 'running', 'master restarted', 30_000);
      const res = await w.done;
      assert.equal(res.code, 0, res.out);
      assert.deepEqual(outputsPerTask(g, jobId!), Array(8).fill(1));
    });
  });
});
