/**
 * Exactly-once, measured three independent ways on a real grid, and every output byte checked
 * against the same program run locally:
 *
 *   const expected = await localOutputs(job, inputs, { chunkSize: 2, args: ['0'] });
 *   await assertExactlyOnce(g, jobId, expected);
 *
 * 1. RAN: every worker's own execution journal (<worker data dir>/executions.db, written by
 *    the worker when the task's process starts and ends) holds, per task, exactly one run that
 *    ended `ok` (or at most `maxOkRunsPerTask`), no run still open unless its worker was killed
 *    (`killedWorkers`), and no failed run unless `allowFailedRuns`.
 * 2. ACCEPTED: every master's `accepted_results` counter (jobs.db) says each task was settled
 *    by exactly one result, and the accepted (worker, attempt) is a run that ended `ok` in
 *    that worker's journal (so the result the master kept came from a real execution).
 * 3. DELIVERED: `grid results` writes exactly N task folders, each holding exactly the files
 *    the local run produced, byte for byte.
 *
 * Any violation throws an AssertionError naming the task and what was counted.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { TaskOutcome, TaskState } from '../../src/messages';
import { readExecutions } from '../../src/worker/journal';
import { Grid, adminStatus, makeTmpDir, waitFor } from './grid';

/** Files of one task: path relative to the task folder ('/' separated) -> bytes. */
export type TaskFiles = Map<string, Buffer>;

/** How many local runs of a job's program go at once in localOutputs. */
export const LOCAL_RUN_CONCURRENCY = 4;
/** Longest one local run of a test program may take. */
export const LOCAL_RUN_TIMEOUT_MS = 60_000;
/** How long followers get to apply the last results before the counters are compared. */
export const APPLY_WAIT_MS = 20_000;

/** Every file under dir, relative, '/' separated, with its bytes. */
export function readTree(dir: string): TaskFiles {
  const out: TaskFiles = new Map();
  const walk = (rel: string): void => {
    for (const e of fs.readdirSync(path.join(dir, rel), { withFileTypes: true })) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) walk(r);
      else out.set(r, fs.readFileSync(path.join(dir, r)));
    }
  };
  walk('');
  return out;
}

export interface LocalRunOptions {
  chunkSize?: number;
  args?: string[];
  /** GRID_JOB_ID given to the local runs (only matters to programs that print it) */
  jobId?: string;
}

/**
 * Runs `node program <chunk>` locally once per task, each in a fresh empty folder with the
 * task's environment (as docs/jobs.md describes), and returns every file each run left.
 * A run that exits non-zero throws: the expected outputs of a test job must be computable.
 */
export async function localOutputs(program: string, inputs: string[], o: LocalRunOptions = {}): Promise<TaskFiles[]> {
  const chunk = o.chunkSize ?? 1;
  const count = Math.ceil(inputs.length / chunk);
  const tmp = makeTmpDir('grid-local-run-');
  const result: TaskFiles[] = new Array(count);
  try {
    let next = 0;
    const runOne = async (i: number): Promise<void> => {
      const cwd = path.join(tmp, String(i));
      fs.mkdirSync(cwd);
      const env = {
        PATH: process.env.PATH ?? '/usr/bin:/bin',
        GRID_JOB_ID: o.jobId ?? '00000000-0000-0000-0000-000000000000',
        GRID_TASK_INDEX: String(i),
        GRID_TASK_COUNT: String(count),
        GRID_ARGS: JSON.stringify(o.args ?? []),
      };
      await new Promise<void>((resolve, reject) => {
        execFile(process.execPath, [program, ...inputs.slice(i * chunk, (i + 1) * chunk)], { cwd, env, timeout: LOCAL_RUN_TIMEOUT_MS }, (e, _out, err) =>
          e ? reject(new Error(`local run of task ${i} failed: ${e.message}\n${err}`)) : resolve(),
        );
      });
      result[i] = readTree(cwd);
    };
    await Promise.all(
      Array.from({ length: Math.min(LOCAL_RUN_CONCURRENCY, count) }, async () => {
        while (next < count) await runOne(next++);
      }),
    );
    return result;
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

/** Checks a folder written by `grid results`: exactly the task folders and bytes expected. */
export function assertResultsFolder(dir: string, expected: TaskFiles[]): void {
  const folders = fs.readdirSync(dir).sort((a, b) => Number(a) - Number(b));
  assert.deepEqual(folders, expected.map((_, i) => String(i)), `results folder holds exactly ${expected.length} task folders`);
  expected.forEach((want, i) => {
    const got = readTree(path.join(dir, String(i)));
    assert.deepEqual([...got.keys()].sort(), [...want.keys()].sort(), `task ${i}: output file names`);
    for (const [name, bytes] of want) assert.ok(got.get(name)!.equals(bytes), `task ${i}: ${name} differs from the local run (${got.get(name)!.length} bytes, want ${bytes.length})`);
  });
}

export interface ExactlyOnceOptions {
  /** worker node names SIGKILLed during the job: their runs may be left open */
  killedWorkers?: string[];
  /** master node names killed during the job: their (stale) jobs.db need not be complete */
  staleMasters?: string[];
  /** runs that ended other than ok are expected (a job with retries) */
  allowFailedRuns?: boolean;
  /**
   * Most runs ending ok per task. 1 (default) = the task's program ran to success once.
   * A fault test may allow more only where the grid documents a re-run (say why there).
   */
  maxOkRunsPerTask?: number;
  /** download with `grid results` and compare (default true) */
  checkResults?: boolean;
}

export interface ExactlyOnceReport {
  /** task index -> runs that ended ok, over every worker */
  okRuns: number[];
  /** runs of any outcome, over every worker */
  totalRuns: number;
  /** runs left open by killed workers */
  openRuns: number;
  /** masters whose counters were checked complete */
  mastersChecked: string[];
}

interface AcceptedRow {
  task_index: number;
  n: number;
}

function readMaster(dbPath: string, jobId: string): { accepted: Map<number, number>; finals: Map<number, { worker: string; attempts: number[] }> } | undefined {
  let db: Database.Database;
  try {
    db = new Database(dbPath, { readonly: true, fileMustExist: true });
  } catch {
    return undefined;
  }
  try {
    const accepted = new Map((db.prepare('SELECT task_index, n FROM accepted_results WHERE job_uuid = ?').all(jobId) as AcceptedRow[]).map((r) => [r.task_index, r.n]));
    // the accepted result: the worker that settled the task, and its final ok attempt(s)
    const rows = db
      .prepare(
        `SELECT t.task_index, t.worker_uuid, a.attempt FROM tasks t JOIN attempts a
         ON a.job_uuid = t.job_uuid AND a.task_index = t.task_index AND a.worker_uuid = t.worker_uuid AND a.final = 1 AND a.outcome = ${TaskOutcome.ok}
         WHERE t.job_uuid = ? AND t.state = ${TaskState.succeeded}`,
      )
      .all(jobId) as { task_index: number; worker_uuid: string; attempt: number }[];
    const finals = new Map<number, { worker: string; attempts: number[] }>();
    for (const r of rows) {
      const f = finals.get(r.task_index) ?? { worker: r.worker_uuid, attempts: [] };
      f.attempts.push(r.attempt);
      finals.set(r.task_index, f);
    }
    return { accepted, finals };
  } finally {
    db.close();
  }
}

/**
 * Asserts that job `jobId` on grid `g` ran, was accepted and was delivered exactly once per
 * task, with outputs equal to `expected` (one entry per task, from localOutputs).
 */
export async function assertExactlyOnce(g: Grid, jobId: string, expected: TaskFiles[], o: ExactlyOnceOptions = {}): Promise<ExactlyOnceReport> {
  const n = expected.length;
  const killed = new Set(o.killedWorkers ?? []);
  const stale = new Set(o.staleMasters ?? []);
  const maxOk = o.maxOkRunsPerTask ?? 1;
  const state = g.refreshState();

  // 1. RAN: the workers' journals
  const workerIds = new Map<string, string>(); // node uuid -> node name
  const okRuns = Array<number>(n).fill(0);
  const okKeys = new Set<string>(); // `${worker uuid} ${task} ${attempt}`
  let totalRuns = 0;
  let openRuns = 0;
  for (const w of state.nodes.filter((x) => x.role === 'worker')) {
    let id = '';
    try {
      id = fs.readFileSync(path.join(w.dataDir, 'node-id'), 'utf8').trim();
    } catch {
      // never started
    }
    workerIds.set(id, w.name);
    for (const r of readExecutions(w.dataDir, jobId)) {
      assert.ok(r.taskIndex >= 0 && r.taskIndex < n, `${w.name} ran task ${r.taskIndex}, which job ${jobId} (${n} tasks) does not have`);
      totalRuns++;
      if (r.endedAtMs === 0) {
        openRuns++;
        assert.ok(killed.has(w.name), `${w.name} left a run of task ${r.taskIndex} (attempt ${r.attempt}) open, yet it was not killed`);
        continue;
      }
      if (r.outcome === 'ok') {
        okRuns[r.taskIndex]!++;
        okKeys.add(`${id} ${r.taskIndex} ${r.attempt}`);
      } else {
        assert.ok(o.allowFailedRuns, `${w.name} ran task ${r.taskIndex} (attempt ${r.attempt}) and it ended ${r.outcome} (exit ${r.exitCode}); no failed run was expected`);
      }
    }
  }
  okRuns.forEach((k, i) => {
    assert.ok(k >= 1, `task ${i}: no worker journal shows a run that ended ok`);
    assert.ok(k <= maxOk, `task ${i} ran to success ${k} times (allowed: ${maxOk})`);
  });

  // 2. ACCEPTED: every master's counter; complete on the live ones
  const masters = state.nodes.filter((x) => x.role === 'master');
  const checked: string[] = [];
  for (const m of masters) {
    const dbPath = path.join(m.dataDir, 'jobs.db');
    const complete = !stale.has(m.name);
    if (complete) {
      try {
        await waitFor(() => (readMaster(dbPath, jobId)?.accepted.size ?? 0) >= n, `${m.name} to apply the results of all ${n} tasks`, APPLY_WAIT_MS);
      } catch (e) {
        // say where each master's Raft stands, so a lagging follower can be told from a lost entry
        const raft = await Promise.all(masters.map(async (x) => `${x.name}: accepted ${readMaster(path.join(x.dataDir, 'jobs.db'), jobId)?.accepted.size ?? '-'}; raft ${JSON.stringify(((await adminStatus(x.adminPort)) as { raft?: unknown } | undefined)?.raft ?? 'no answer')}`));
        throw new Error(`${(e as Error).message}\n${raft.join('\n')}\n--- dev (tail):\n${g.devOutput().slice(-4000)}`);
      }
    }
    const st = readMaster(dbPath, jobId);
    if (!st) {
      assert.ok(!complete, `${m.name} has no jobs.db`);
      continue;
    }
    for (const [i, k] of st.accepted) {
      assert.ok(i >= 0 && i < n, `${m.name} accepted a result for task ${i}, which the job does not have`);
      assert.equal(k, 1, `${m.name} accepted ${k} results for task ${i}`);
    }
    if (!complete) continue;
    checked.push(m.name);
    assert.equal(st.accepted.size, n, `${m.name} accepted results for ${st.accepted.size} of ${n} tasks`);
    for (let i = 0; i < n; i++) {
      const f = st.finals.get(i);
      assert.ok(f, `${m.name}: task ${i} is not succeeded with a final ok result`);
      assert.ok(
        f.attempts.some((a) => okKeys.has(`${f.worker} ${i} ${a}`)),
        `${m.name}: the accepted result of task ${i} (worker ${workerIds.get(f.worker) ?? f.worker}, attempt ${f.attempts.join('/')}) matches no run that ended ok in that worker's journal`,
      );
    }
  }
  assert.ok(checked.length > 0, 'no master was checked');

  // 3. DELIVERED: the results folder, byte for byte
  if (o.checkResults ?? true) {
    const out = makeTmpDir('grid-results-check-');
    try {
      const r = await g.run(['results', jobId, '--out', path.join(out, 'r')]);
      assert.equal(r.code, 0, `grid results failed: ${r.stdout}\n${r.stderr}`);
      assertResultsFolder(path.join(out, 'r'), expected);
    } finally {
      fs.rmSync(out, { recursive: true, force: true });
    }
  }
  return { okRuns, totalRuns, openRuns, mastersChecked: checked };
}
