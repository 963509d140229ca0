// End to end on a real `grid dev` (storage, master, balancer, 2 workers with FUSE): the
// README's quick start. Wordcount over the example texts equals the same program run
// locally over all of them; uploads are deduplicated; several outputs per task land in
// subfolders; a failing job exits 2 with its reason and log tail; cancel; teardown leaves
// no process and no mount behind. (docs/jobs.md, docs/architecture.md "Flows")
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { EXAMPLES, Grid, adminStatus, makeTmpDir, pidAlive, runGrid, startGrid, waitFor } from '../helpers/grid';
import { TaskFiles, assertExactlyOnce, assertResultsFolder, localOutputs } from '../helpers/exactly-once';
import { readExecutions } from '../../src/worker/journal';

const WORDCOUNT = path.join(EXAMPLES, 'wordcount', 'job.js');
const TEXTSTATS = path.join(EXAMPLES, 'textstats', 'job.js');
const DATA = path.join(EXAMPLES, 'wordcount', 'data');
const inputs = (): string[] =>
  fs
    .readdirSync(DATA)
    .sort()
    .map((f) => path.join(DATA, f));

function sumCounts(dir: string): Record<string, number> {
  const total: Record<string, number> = {};
  for (const t of fs.readdirSync(dir)) {
    const c = JSON.parse(fs.readFileSync(path.join(dir, t, 'counts.json'), 'utf8')) as Record<string, number>;
    for (const [w, n] of Object.entries(c)) total[w] = (total[w] ?? 0) + n;
  }
  return total;
}

describe('e2e: grid dev + wordcount (the quick start)', function () {
  this.timeout(120_000);
  let g: Grid | undefined;
  let work: string;

  before(async () => {
    g = await startGrid({ workers: 2, slots: 2 });
    work = makeTmpDir('grid-e2e-work-');
  });
  after(async () => {
    await g?.stop();
    fs.rmSync(work, { recursive: true, force: true });
  });

  function grid(): Grid {
    assert.ok(g, 'grid started');
    return g;
  }

  let jobId = '';
  let expected: TaskFiles[] = [];

  it('submit --wait runs every task and exits 0', async () => {
    const r = await grid().run(['submit', WORDCOUNT, '--inputs', ...inputs(), '--chunk-size', '2', '--wait', '--json']);
    assert.equal(r.code, 0, `stdout: ${r.stdout}\nstderr: ${r.stderr}\nworker-0: ${grid().nodeOutput('worker-0')}`);
    const s = JSON.parse(r.stdout.trim().split('\n').pop()!) as { jobId: string; state: string; taskCount: number; tasksSucceeded: number };
    assert.equal(s.state, 'succeeded');
    assert.equal(s.taskCount, Math.ceil(inputs().length / 2));
    assert.equal(s.tasksSucceeded, s.taskCount);
    jobId = s.jobId;
    expected = await localOutputs(WORDCOUNT, inputs(), { chunkSize: 2 });
    const rep = await assertExactlyOnce(grid(), jobId, expected);
    assert.deepEqual(rep.okRuns, [1, 1, 1]);
  });

  it('the exactly-once check fails on an injected double run, double acceptance or wrong byte', async () => {
    assert.ok(jobId, 'the submit test ran');
    // a second run of task 1 that ended ok, in the journal of the worker that ran it
    const w = grid()
      .refreshState()
      .nodes.filter((n) => n.role === 'worker')
      .find((n) => readExecutions(n.dataDir, jobId).some((r) => r.taskIndex === 1))!;
    const wdb = new Database(path.join(w.dataDir, 'executions.db'));
    try {
      const id = wdb
        .prepare("INSERT INTO executions (job_uuid, task_index, attempt, pid, started_at_ms, ended_at_ms, exit_code, outcome) VALUES (?, 1, 0, 1, 1, 2, 0, 'ok')")
        .run(jobId).lastInsertRowid;
      await assert.rejects(assertExactlyOnce(grid(), jobId, expected, { checkResults: false }), /task 1 ran to success 2 times/);
      wdb.prepare('DELETE FROM executions WHERE id = ?').run(id);
    } finally {
      wdb.close();
    }
    // the master accepting a second result for task 2
    const mdb = new Database(path.join(grid().node('master').dataDir, 'jobs.db'));
    try {
      mdb.prepare('UPDATE accepted_results SET n = 2 WHERE job_uuid = ? AND task_index = 2').run(jobId);
      await assert.rejects(assertExactlyOnce(grid(), jobId, expected, { checkResults: false }), /master accepted 2 results for task 2/);
      mdb.prepare('UPDATE accepted_results SET n = 1 WHERE job_uuid = ? AND task_index = 2').run(jobId);
    } finally {
      mdb.close();
    }
    // a results folder with one byte changed, or one task folder too many
    const out = path.join(work, 'tamper');
    assert.equal((await grid().run(['results', jobId, '--out', out])).code, 0);
    assertResultsFolder(out, expected);
    const f = path.join(out, '0', 'counts.json');
    const b = fs.readFileSync(f);
    b[0]! ^= 1;
    fs.writeFileSync(f, b);
    assert.throws(() => assertResultsFolder(out, expected), /task 0: counts\.json differs/);
    b[0]! ^= 1;
    fs.writeFileSync(f, b);
    fs.mkdirSync(path.join(out, '3'));
    assert.throws(() => assertResultsFolder(out, expected), /exactly 3 task folders/);
    // and untouched, it passes again
    await assertExactlyOnce(grid(), jobId, expected);
  });

  it('results equal the same program run locally over all inputs', async () => {
    assert.ok(jobId, 'the submit test ran');
    const out = path.join(work, 'results');
    const r = await grid().run(['results', jobId, '--out', out]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(fs.readdirSync(out).sort(), ['0', '1', '2']);
    const local = path.join(work, 'local');
    fs.mkdirSync(local);
    execFileSync(process.execPath, [WORDCOUNT, ...inputs()], { cwd: local, env: { PATH: process.env.PATH } });
    const expected = JSON.parse(fs.readFileSync(path.join(local, 'counts.json'), 'utf8')) as Record<string, number>;
    assert.deepEqual(sumCounts(out), expected);
    // and the documented combine script agrees
    const combined = execFileSync(process.execPath, [path.join(EXAMPLES, 'wordcount', 'combine.js'), out, 'all'], { encoding: 'utf8' });
    assert.deepEqual(JSON.parse(combined), expected);
  });

  it('status, jobs and logs show the job', async () => {
    const st = await grid().run(['status', jobId, '--json', '--tasks']);
    assert.equal(st.code, 0, st.stderr);
    const s = JSON.parse(st.stdout) as { state: string; tasks: { state: string; inputs: string[]; outputs: { name: string }[] }[] };
    assert.equal(s.state, 'succeeded');
    assert.deepEqual(s.tasks.map((t) => t.inputs), [['alice.txt', 'frankenstein.txt'], ['moby-dick.txt', 'pride-and-prejudice.txt'], ['two-cities.txt']]);
    for (const t of s.tasks) assert.deepEqual(t.outputs.map((o) => o.name), ['counts.json']);
    const jobs = await grid().run(['jobs']);
    assert.match(jobs.stdout, new RegExp(`${jobId} succeeded`));
    const prefix = await grid().run(['status', jobId.slice(0, 8)]);
    assert.match(prefix.stdout, new RegExp(`job ${jobId}  succeeded  program job.js`));
    const logs = await grid().run(['logs', jobId, '--task', '1']);
    assert.equal(logs.code, 0, logs.stderr);
    assert.match(logs.stdout, /counted .*\/moby-dick\.txt/);
    assert.match(logs.stdout, new RegExp(`task 1 of 3 \\(job ${jobId}\\)`), 'GRID_TASK_INDEX, GRID_TASK_COUNT and GRID_JOB_ID were set');
  });

  it('a second submit of the same files uploads nothing', async () => {
    const r = await grid().run(['submit', WORDCOUNT, '--inputs', ...inputs(), '--args', '5']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /uploaded 0 of 6 files \(0 bytes\); 6 already stored/);
    assert.match(r.stdout.trim(), /^[0-9a-f-]{36}$/);
  });

  it('several outputs per task land in DIR/<task>/<subfolder>/<name>', async () => {
    const r = await grid().run(['submit', TEXTSTATS, '--inputs', ...inputs(), '--chunk-size', '3', '--wait']);
    assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
    const id = r.stdout.split('\n')[0]!.trim();
    await assertExactlyOnce(grid(), id, await localOutputs(TEXTSTATS, inputs(), { chunkSize: 3 }));
    const out = path.join(work, 'textstats');
    assert.equal((await grid().run(['results', id, '--out', out])).code, 0);
    for (const [i, file] of inputs().entries()) {
      const task = String(Math.floor(i / 3));
      const name = path.basename(file);
      const text = fs.readFileSync(file, 'utf8');
      assert.equal(fs.readFileSync(path.join(out, task, 'upper', name), 'utf8'), text.toUpperCase());
      const stats = JSON.parse(fs.readFileSync(path.join(out, task, 'stats', `${name}.json`), 'utf8')) as { bytes: number; words: number };
      assert.equal(stats.bytes, Buffer.byteLength(text));
      assert.equal(stats.words, (text.match(/\S+/g) ?? []).length);
    }
  });

  it('a failing job: --wait exits 2 and prints the reason and the log tail', async () => {
    const bad = path.join(work, 'bad-job.js');
    fs.writeFileSync(bad, "console.log('about to fail on ' + process.argv[2].split('/').pop());\nconsole.error('boom: no such thing');\nprocess.exit(7);\n");
    const r = await grid().run(['submit', bad, '--inputs', inputs()[0]!, '--retries', '0', '--wait']);
    assert.equal(r.code, 2, `${r.stdout}\n${r.stderr}`);
    assert.match(r.stdout, /failed/);
    assert.match(r.stdout, /task 0 failed \(exit_nonzero, exit code 7, 1 attempt\) inputs: alice\.txt/);
    assert.match(r.stdout, /boom: no such thing/);
    assert.match(r.stdout, /about to fail on alice\.txt/);
  });

  it('cancel stops a running job', async () => {
    const slow = path.join(work, 'slow-job.js');
    fs.writeFileSync(slow, 'setTimeout(() => {}, 600000);\n');
    const r = await grid().run(['submit', slow, '--inputs', inputs()[0]!]);
    assert.equal(r.code, 0, r.stderr);
    const id = r.stdout.trim();
    // wait until it runs, so the cancel reaches a worker
    await waitFor(async () => JSON.parse((await grid().run(['status', id, '--json'])).stdout).tasksRunning === 1, 'the slow task to start', 30_000, 200);
    // the worker running it, and the task's pid, from the workers' admin /status
    let pid = 0;
    let worker = '';
    await waitFor(
      async () => {
        for (const n of grid().refreshState().nodes.filter((x) => x.role === 'worker')) {
          const st = (await adminStatus(n.adminPort)) as { running?: { jobUuid: string; pid: number }[] } | undefined;
          const t = st?.running?.find((x) => x.jobUuid === id && x.pid > 0);
          if (t) [pid, worker] = [t.pid, n.name];
        }
        return pid > 0;
      },
      'a worker to report the running task with its pid',
      30_000,
    );
    assert.ok(pidAlive(pid), 'the task process runs before the cancel');
    const c = await grid().run(['cancel', id]);
    assert.equal(c.code, 0, c.stderr);
    assert.match(c.stdout, new RegExp(`job ${id} is cancelled`));
    // the task's process is killed, and the worker's journal says so
    await waitFor(() => !pidAlive(pid), `task process ${pid} to be killed`, 30_000);
    const dir = grid().node(worker).dataDir;
    await waitFor(() => readExecutions(dir, id).some((r) => r.endedAtMs > 0), 'the run to end in the journal', 30_000);
    assert.deepEqual(
      readExecutions(dir, id).map((r) => [r.pid, r.outcome]),
      [[pid, 'cancelled']],
    );
    const res = await grid().run(['results', id, '--out', path.join(work, 'cancelled')]);
    assert.equal(res.code, 2, 'results of a cancelled job exit 2');
    assert.match(res.stderr, /is cancelled/);
  });

  it('a second grid dev on the same data dir is refused, and the running grid is untouched', async () => {
    const before = grid().refreshState().nodes.map((n) => [n.name, n.pid]);
    const r = await runGrid(['dev', '--port-base', '0', '--data-dir', grid().dataDir, '--workers', '1'], { timeoutMs: 60_000 });
    assert.equal(r.code, 1, `${r.stdout}\n${r.stderr}`);
    assert.match(r.stderr, new RegExp(`BAD_REQUEST: a grid dev \\(pid ${grid().dev.pid}\\) already runs with data dir ${grid().dataDir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
    assert.match(r.stderr, /stop it first, or use another --data-dir/);
    assert.deepEqual(grid().refreshState().nodes.map((n) => [n.name, n.pid]), before, 'same nodes, same pids');
    for (const [, pid] of before) assert.ok(pidAlive(pid as number));
    const jobs = await grid().run(['jobs']);
    assert.equal(jobs.code, 0, jobs.stderr);
  });

  it('teardown stops every node and leaves no FUSE mount', async () => {
    const s = grid().refreshState();
    const tmp = grid().tmp;
    await grid().stop();
    for (const n of s.nodes) assert.ok(!pidAlive(n.pid), `${n.name} (pid ${n.pid}) stopped`);
    assert.ok(!fs.readFileSync('/proc/mounts', 'utf8').includes(tmp), 'no mount under the grid dir');
    assert.ok(!fs.existsSync(tmp), 'temp dir removed');
    g = undefined;
  });
});
