// The balancer pair on real processes (`grid dev --balancers 2`; docs/balancer.md "Failures"):
// SIGKILL of the primary during a 300-task job, SIGSTOP of the primary beyond its lease, a
// balancer the masters never granted the lease, and the active balancer killed 10 times in
// one job. Every task's executions are counted by the job itself (one marker file per run,
// named by task index and pid), and results are counted in the master's SQLite file.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { clientSocket } from '../../src/common';
import { testSecurity } from '../helpers/security';
import { Grid, adminStatus, makeTmpDir, pidAlive, startGrid, taskVisibleDir, waitFor } from '../helpers/grid';
import { BalancerRole, ERROR_CODES, Message, PROTOCOL_VERSION, decode, encode, newUuid } from '../../src/messages';

/** Marks each execution in the folder GRID_ARGS[0], sleeps GRID_ARGS[1] ms, writes an output. */
const MARKING_JOB = `const fs = require('fs'), path = require('path');
const [marks, ms] = JSON.parse(process.env.GRID_ARGS);
const i = process.env.GRID_TASK_INDEX;
// one file per execution: a sandboxed task is always PID 1 of its own namespace, so not the pid
fs.writeFileSync(path.join(marks, i + '.' + require('crypto').randomUUID()), '');
setTimeout(() => fs.writeFileSync('out.txt', 'task ' + i + '\\n'), Number(ms));
`;

interface BalancerStatus {
  pairRole: string;
  active: boolean;
  epoch: number;
  counters: { dispatched: number; tasksAdopted: number };
}

function writeInputs(dir: string, n: number): string[] {
  fs.mkdirSync(dir, { recursive: true });
  return Array.from({ length: n }, (_, i) => {
    const f = path.join(dir, `in${String(i).padStart(3, '0')}.txt`);
    fs.writeFileSync(f, `input ${i}\n`);
    return f;
  });
}

/** Executions per task index, from the marker files. */
function executions(marks: string, n: number): number[] {
  const counts = new Array<number>(n).fill(0);
  for (const f of fs.readdirSync(marks)) counts[Number(f.split('.')[0])]!++;
  return counts;
}

/** Results recorded per task (rows of the attempts table) and their outcomes. */
function recorded(g: Grid, jobId: string): { perTask: Map<number, number>; finals: number } {
  const db = new Database(path.join(g.node('master').dataDir, 'jobs.db'), { readonly: true, fileMustExist: true });
  try {
    const rows = db.prepare('SELECT task_index, final FROM attempts WHERE job_uuid = ?').all(jobId) as { task_index: number; final: number }[];
    const perTask = new Map<number, number>();
    for (const r of rows) perTask.set(r.task_index, (perTask.get(r.task_index) ?? 0) + 1);
    return { perTask, finals: rows.filter((r) => r.final === 1).length };
  } finally {
    db.close();
  }
}

async function balancerStatus(g: Grid, name: string): Promise<BalancerStatus | undefined> {
  const n = g.node(name);
  if (n.state !== 'running' || !pidAlive(n.pid)) return undefined;
  return (await adminStatus(n.adminPort)) as BalancerStatus | undefined;
}

/** The name of the balancer holding the lease now, or undefined. */
async function activeBalancer(g: Grid): Promise<string | undefined> {
  for (const name of ['balancer-0', 'balancer-1']) if ((await balancerStatus(g, name))?.active) return name;
  return undefined;
}

async function submit(g: Grid, job: string, inputs: string[], marks: string, ms: number): Promise<string> {
  const r = await g.run(['submit', job, '--inputs', ...inputs, '--args', marks, String(ms), '--retries', '3', '--json']);
  assert.equal(r.code, 0, `submit failed: ${r.stdout}\n${r.stderr}`);
  return (JSON.parse(r.stdout.trim().split('\n').pop()!) as { jobId: string }).jobId;
}

async function jobState(g: Grid, jobId: string): Promise<{ state: string; tasksSucceeded: number; taskCount: number } | undefined> {
  const r = await g.run(['status', jobId, '--json']);
  return r.code === 0 ? JSON.parse(r.stdout) : undefined;
}

async function waitForJob(g: Grid, jobId: string, timeoutMs: number): Promise<void> {
  let last: unknown;
  await waitFor(
    async () => {
      const s = await jobState(g, jobId);
      last = s;
      return s?.state === 'succeeded' || s?.state === 'failed';
    },
    `job ${jobId} to finish (last: ${JSON.stringify(last)})`,
    timeoutMs,
    250,
  );
  assert.equal((await jobState(g, jobId))!.state, 'succeeded');
}

function assertOnce(g: Grid, jobId: string, marks: string, n: number): void {
  const rec = recorded(g, jobId);
  assert.equal(rec.finals, n, 'every task settled once');
  const twice = [...rec.perTask].filter(([, c]) => c !== 1);
  assert.deepEqual(twice, [], 'one result recorded per task (no attempt lost, none recorded twice)');
  const ex = executions(marks, n);
  const again = ex.map((c, i) => [i, c]).filter(([, c]) => c !== 1);
  assert.deepEqual(again, [], 'every task executed exactly once: running work was adopted, not re-run');
}

describe('e2e: the balancer pair (grid dev --balancers 2)', function () {
  this.timeout(400_000);
  let work: string;
  /** where the tasks leave their marks: visible to sandboxed tasks (they run as other uids) */
  let shared: string;
  let job: string;
  let g: Grid | undefined;
  const markDir = (name: string): string => {
    const d = path.join(shared, name);
    fs.mkdirSync(d);
    fs.chmodSync(d, 0o1777);
    return d;
  };
  before(() => {
    work = makeTmpDir('grid-e2e-pair-');
    shared = taskVisibleDir();
    job = path.join(work, 'marking.js');
    fs.writeFileSync(job, MARKING_JOB);
  });
  afterEach(async () => {
    await g?.stop();
    g = undefined;
  });
  after(() => {
    fs.rmSync(work, { recursive: true, force: true });
    fs.rmSync(shared, { recursive: true, force: true });
  });

  it('SIGKILL of the primary during a 300-task job: the auxiliary takes over, every task recorded once, no running task executed twice', async () => {
    g = await startGrid({ workers: 2, slots: 2, prefetch: 1, balancers: 2 });
    await waitFor(async () => (await activeBalancer(g!)) === 'balancer-0', 'the primary to hold the lease (it goes first at start-up)', 30_000);
    const marks = markDir('marks-kill');
    const inputs = writeInputs(path.join(work, 'in-kill'), 300);
    const jobId = await submit(g, job, inputs, marks, 200);
    await waitFor(async () => ((await jobState(g!, jobId))?.tasksSucceeded ?? 0) >= 30, '30 tasks done', 120_000, 200);
    // the primary, unless a loaded machine already made the pair fail over: kill the active one
    const victim = await waitForValue(() => activeBalancer(g!), 'an active balancer', 30_000);
    const other = victim === 'balancer-0' ? 'balancer-1' : 'balancer-0';
    process.kill(g.node(victim).pid, 'SIGKILL');
    await waitFor(async () => (await activeBalancer(g!)) === other, `${other} to take the lease`, 30_000);
    await waitForJob(g, jobId, 300_000);
    assertOnce(g, jobId, marks, 300);
    const aux = (await balancerStatus(g, other))!;
    assert.ok(aux.epoch >= 2, `a new epoch, recorded through Raft (${aux.epoch}; a loaded machine may see more than one failover)`);
    assert.ok(aux.counters.tasksAdopted >= 1, 'the new active balancer adopted the running tasks the workers reported');
    // the text form says which one is active, and that the dead one is down
    const role = other === 'balancer-0' ? 'primary' : 'auxiliary';
    const c = await g.run(['cluster', '--data-dir', g.dataDir]);
    assert.match(c.stdout, new RegExp(`${other} .* ${role} +ACTIVE +${aux.epoch} `));
    assert.match(c.stdout, new RegExp(`${victim} .*UNREACHABLE`));
    const j = JSON.parse((await g.run(['cluster', '--json', '--data-dir', g.dataDir])).stdout) as { balancers: { name: string; role: string | null; active: boolean | null; epoch: number | null; pid: number | null }[] };
    const b1 = j.balancers.find((b) => b.name === other)!;
    assert.deepEqual([b1.role, b1.active, b1.epoch, typeof b1.pid], [role, true, aux.epoch, 'number']);
  });

  it('SIGSTOP of the primary beyond its lease: the auxiliary takes over; after SIGCONT the primary does not dispatch, nothing is recorded twice', async () => {
    g = await startGrid({ workers: 2, slots: 2, prefetch: 1, balancers: 2 });
    const first = await waitForValue(() => activeBalancer(g!), 'a balancer to hold the lease', 30_000);
    const second = first === 'balancer-0' ? 'balancer-1' : 'balancer-0';
    const marks = markDir('marks-stop');
    const inputs = writeInputs(path.join(work, 'in-stop'), 120);
    const jobId = await submit(g, job, inputs, marks, 200);
    await waitFor(async () => ((await jobState(g!, jobId))?.tasksSucceeded ?? 0) >= 10, '10 tasks done', 120_000, 200);
    const primary = g.node(first);
    process.kill(primary.pid, 'SIGSTOP');
    let resumed = false;
    try {
      await waitFor(async () => (await balancerStatus(g!, second))?.active === true, 'the other balancer to take the lease', 30_000);
      // and well beyond the primary's lease (the master's leaseMs is 300 ms)
      const before = (await jobState(g, jobId))!.tasksSucceeded;
      await waitFor(async () => ((await jobState(g!, jobId))?.tasksSucceeded ?? 0) >= before + 8, 'the auxiliary to run tasks', 60_000, 200);
      process.kill(primary.pid, 'SIGCONT');
      resumed = true;
      // it wakes up with an expired lease: it must not dispatch, and the masters refuse it
      await waitFor(async () => (await balancerStatus(g!, first)) !== undefined, 'the stopped balancer to answer again', 30_000);
      const p0 = (await balancerStatus(g, first))!;
      assert.equal(p0.active, false, 'the woken primary does not hold the lease');
      const s0 = (await jobState(g, jobId))!.tasksSucceeded;
      await waitFor(async () => ((await jobState(g!, jobId))?.tasksSucceeded ?? 0) >= Math.min(120, s0 + 10), 'more tasks done by the auxiliary', 120_000, 200);
      const p1 = (await balancerStatus(g, first))!;
      assert.equal(p1.counters.dispatched, p0.counters.dispatched, 'the fenced primary dispatched nothing after it woke up');
      assert.equal(p1.active, false);
    } finally {
      if (!resumed) process.kill(primary.pid, 'SIGCONT');
    }
    await waitForJob(g, jobId, 300_000);
    assertOnce(g, jobId, marks, 120);
    const log = fs.readFileSync(path.join(primary.dataDir, 'logs', `balancer-${primary.nodeId}.log`), 'utf8');
    assert.match(log, /"event":"lease:expired"/, 'the primary logged that its lease ran out');
  });

  it('a balancer that was never granted the lease says hello and receives no task (LEASE_HELD)', async () => {
    g = await startGrid({ workers: 1, slots: 2, balancers: 1 });
    await waitFor(async () => (await balancerStatus(g!, 'balancer'))?.active === true, 'the balancer to hold the lease', 30_000);
    const marks = markDir('marks-intruder');
    const intruder = clientSocket(testSecurity('balancers'), g.master);
    const inbox: Message[] = [];
    void (async () => {
      try {
        for await (const frames of intruder) inbox.push(decode(frames as Buffer[]));
      } catch {
        /* closed */
      }
    })();
    const id = newUuid();
    let seq = 0;
    const hello = () =>
      intruder.send(encode({ type: 'balancer_hello', node_uuid: id, protocol_version: PROTOCOL_VERSION, role: BalancerRole.primary, epoch: 0, request_seq: ++seq, fed: 0, credit_limit: 100_000 }));
    try {
      await hello();
      const jobId = await submit(g, job, writeInputs(path.join(work, 'in-intruder'), 20), marks, 50);
      // it keeps asking, as a balancer would, for the whole job
      const timer = setInterval(() => void hello().catch(() => undefined), 100);
      try {
        await waitForJob(g, jobId, 120_000);
      } finally {
        clearInterval(timer);
      }
      const refusals = inbox.filter((m) => m.type === 'error_reply' && m.error_code === ERROR_CODES.LEASE_HELD);
      assert.ok(refusals.length >= 2, `typed refusals: ${inbox.map((m) => m.type).join(',')}`);
      assert.equal(inbox.filter((m) => m.type === 'task_dispatch' || m.type === 'worker_request').length, 0, 'no task for it');
      assert.equal(inbox.filter((m) => m.type === 'lease_grant').length, 0);
      assertOnce(g, jobId, marks, 20);
    } finally {
      intruder.close();
    }
  });

  it('the active balancer killed 10 times in one job: the job completes, each task recorded once; with both down the CLI says so and the job waits, then continues', async function () {
    this.timeout(900_000);
    g = await startGrid({ workers: 2, slots: 2, prefetch: 1, balancers: 2, restart: 'worker,balancer', env: { GRID_DEV_RESTART_DELAY_MS: '1000', GRID_DEV_MAX_RESTARTS: '20' } });
    await waitFor(async () => (await activeBalancer(g!)) !== undefined, 'a balancer to hold the lease', 30_000);
    const marks = markDir('marks-ten');
    const n = 500;
    const jobId = await submit(g, job, writeInputs(path.join(work, 'in-ten'), n), marks, 100);
    for (let k = 0; k < 10; k++) {
      const active = (await waitForValue(() => activeBalancer(g!), 'an active balancer', 60_000))!;
      const other = active === 'balancer-0' ? 'balancer-1' : 'balancer-0';
      // the other one must be up (restarted) and on standby before the next kill
      await waitFor(async () => (await balancerStatus(g!, other)) !== undefined, `${other} up`, 60_000);
      const done = (await jobState(g, jobId))?.tasksSucceeded ?? 0;
      if (done >= n) break;
      process.kill(g.node(active).pid, 'SIGKILL');
      await waitFor(async () => (await activeBalancer(g!)) === other, `${other} to take over after kill ${k + 1}`, 60_000);
    }
    const mid = (await jobState(g, jobId))!;
    assert.ok(mid.tasksSucceeded < n, `the job outlived the 10 kills (${mid.tasksSucceeded}/${n} done)`);
    // both at once: frozen (dev restarts a killed node too fast to look at the grid without
    // one); the CLI says no balancer is up, the job waits, and goes on once they are back
    await waitFor(async () => (await balancerStatus(g!, 'balancer-0')) !== undefined && (await balancerStatus(g!, 'balancer-1')) !== undefined, 'both balancers up', 60_000);
    const frozen = [g.node('balancer-0').pid, g.node('balancer-1').pid];
    for (const pid of frozen) process.kill(pid, 'SIGSTOP');
    try {
      const c = await g.run(['cluster', '--data-dir', g.dataDir]);
      assert.match(c.stdout, /all 2 balancers are down: NO TASK IS DISPATCHED\. Jobs wait \(nothing is lost\) and continue when a balancer returns/);
      const before = (await jobState(g, jobId))!.tasksSucceeded;
      const after = (await jobState(g, jobId))!.tasksSucceeded;
      assert.ok(after - before <= 12, 'nothing new is dispatched while both are down (only results of tasks already running come in)');
    } finally {
      for (const pid of frozen) process.kill(pid, 'SIGCONT');
    }
    await waitForJob(g, jobId, 300_000);
    const rec = recorded(g, jobId);
    assert.equal(rec.finals, n, 'every task settled once');
    assert.deepEqual([...rec.perTask].filter(([, c]) => c < 1), []);
  });
});

async function waitForValue<T>(f: () => Promise<T | undefined>, what: string, timeoutMs: number): Promise<T> {
  let v: T | undefined;
  await waitFor(async () => (v = await f()) !== undefined, what, timeoutMs, 100);
  return v!;
}
