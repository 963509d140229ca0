/**
 * Read-only views of the master's job state for /metrics and the dashboard. They read the
 * store's SQLite database as it is on this master (on a follower: the replicated state up
 * to its applied index) and never change it. Statements are prepared per database handle,
 * because a Raft snapshot restore reopens the database.
 *
 * Counts by state come from small count tables that SQLite triggers keep in step with the
 * jobs and tasks tables (installCounts), inside the same transaction as every change, so
 * they are part of the replicated state and a scrape or a dashboard poll reads a few rows
 * instead of scanning every task: a GROUP BY over a million tasks measured 0.5-1 s, time
 * during which the master's event loop (and its Raft heartbeats) would stand still.
 */
import type Database from 'better-sqlite3';
import { keyFingerprint } from '../common';
import { JobState, TaskOutcome, TaskState } from '../messages';

export const JOB_STATE_NAMES = nameOf(JobState);
export const TASK_STATE_NAMES = nameOf(TaskState);
export const OUTCOME_NAMES = nameOf(TaskOutcome);

/** Most jobs one dashboard answer lists. */
export const MAX_VIEW_JOBS = 500;
/** Most tasks of one job one dashboard answer lists (the rest are counted, not listed). */
export const MAX_VIEW_TASKS = 2000;
/** Most characters of a task's log tail in a job's task list (the task view has the whole tail). */
export const TASK_LIST_TAIL_CHARS = 2000;

export interface JobView {
  jobId: string;
  program: string;
  state: string;
  /** fingerprint of the submitting client's key (`grid keys list` shows the same); null when unknown */
  owner: string | null;
  taskCount: number;
  tasks: Record<'pending' | 'running' | 'succeeded' | 'failed' | 'cancelled', number>;
  createdAtMs: number;
  finishedAtMs: number | null;
  error: string;
}

export interface TaskView {
  index: number;
  state: string;
  outcome: string;
  attempts: number;
  workerId: string | null;
  exitCode: number;
  durationMs: number | null;
  settledAtMs: number | null;
  error: string;
  logTail: string;
}

/**
 * Creates the count tables and their triggers when the database lacks them, filling them
 * from the rows already there (a database of an older grid, or an older leader's snapshot),
 * all in one transaction. Called by JobStore whenever it opens its database.
 */
export function installCounts(db: Database.Database): void {
  const has = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'count_job_tasks'").get() !== undefined;
  if (has) return;
  db.transaction(() => {
    db.exec(`
CREATE TABLE count_jobs (state INTEGER PRIMARY KEY, n INTEGER NOT NULL);
CREATE TABLE count_tasks (state INTEGER PRIMARY KEY, n INTEGER NOT NULL);
CREATE TABLE count_job_tasks (job_uuid TEXT NOT NULL, state INTEGER NOT NULL, n INTEGER NOT NULL, PRIMARY KEY (job_uuid, state)) WITHOUT ROWID;
INSERT INTO count_jobs (state, n) SELECT state, COUNT(*) FROM jobs GROUP BY state;
INSERT INTO count_tasks (state, n) SELECT state, COUNT(*) FROM tasks GROUP BY state;
INSERT INTO count_job_tasks (job_uuid, state, n) SELECT job_uuid, state, COUNT(*) FROM tasks GROUP BY job_uuid, state;
${countTriggers('jobs', [['count_jobs', ['state']]])}
${countTriggers('tasks', [
  ['count_tasks', ['state']],
  ['count_job_tasks', ['job_uuid', 'state']],
])}`);
  })();
}

/** INSERT/UPDATE OF state/DELETE triggers on `table` keeping each count table's n in step. */
function countTriggers(table: string, counts: [string, string[]][]): string {
  const up = (row: 'new' | 'old'): string =>
    counts
      .map(([t, keys]) => `INSERT INTO ${t} (${keys.join(', ')}, n) VALUES (${keys.map((k) => `${row}.${k}`).join(', ')}, 1) ON CONFLICT (${keys.join(', ')}) DO UPDATE SET n = n + 1;`)
      .join('\n  ');
  const down = (row: 'new' | 'old'): string => counts.map(([t, keys]) => `UPDATE ${t} SET n = n - 1 WHERE ${keys.map((k) => `${k} = ${row}.${k}`).join(' AND ')};`).join('\n  ');
  return `
CREATE TRIGGER ${table}_count_insert AFTER INSERT ON ${table} BEGIN
  ${up('new')}
END;
CREATE TRIGGER ${table}_count_update AFTER UPDATE OF state ON ${table} WHEN old.state IS NOT new.state BEGIN
  ${down('old')}
  ${up('new')}
END;
CREATE TRIGGER ${table}_count_delete AFTER DELETE ON ${table} BEGIN
  ${down('old')}
END;`;
}

const cache = new WeakMap<Database.Database, ReturnType<typeof prepare>>();

function prepare(db: Database.Database) {
  return {
    jobsByState: db.prepare('SELECT state, n FROM count_jobs'),
    tasksByState: db.prepare('SELECT state, n FROM count_tasks'),
    recent: db.prepare('SELECT job_uuid, program_name, state, task_count, created_at_ms, finished_at_ms, error, owner FROM jobs ORDER BY seq DESC LIMIT ?'),
    recentIn: db.prepare('SELECT job_uuid, program_name, state, task_count, created_at_ms, finished_at_ms, error, owner FROM jobs WHERE state = ? ORDER BY seq DESC LIMIT ?'),
    job: db.prepare('SELECT job_uuid, program_name, state, task_count, created_at_ms, finished_at_ms, error, owner FROM jobs WHERE job_uuid = ?'),
    counts: db.prepare('SELECT state, n FROM count_job_tasks WHERE job_uuid = ?'),
    tasks: db.prepare(`SELECT task_index, state, outcome, attempts, exit_code, duration_ms, worker_uuid, error,
      substr(log_tail, -${TASK_LIST_TAIL_CHARS}) AS log_tail, settled_at_ms FROM tasks WHERE job_uuid = ? ORDER BY task_index LIMIT ? OFFSET ?`),
    task: db.prepare(`SELECT task_index, state, outcome, attempts, exit_code, duration_ms, worker_uuid, error, log_tail, settled_at_ms
      FROM tasks WHERE job_uuid = ? AND task_index = ?`),
  };
}

function st(db: Database.Database): ReturnType<typeof prepare> {
  let s = cache.get(db);
  if (!s) {
    s = prepare(db);
    cache.set(db, s);
  }
  return s;
}

/** Count of jobs in each state (every state present, 0 when none). */
export function jobsByState(db: Database.Database): Record<string, number> {
  return countBy(st(db).jobsByState.all() as { state: number; n: number }[], JOB_STATE_NAMES);
}

/** Count of tasks in each state, over every job this master holds. */
export function tasksByState(db: Database.Database): Record<string, number> {
  return countBy(st(db).tasksByState.all() as { state: number; n: number }[], TASK_STATE_NAMES);
}

/** The newest jobs first, optionally only those in one state. */
export function recentJobs(db: Database.Database, limit: number, state?: number): JobView[] {
  const n = Math.max(1, Math.min(limit, MAX_VIEW_JOBS));
  const rows = (state === undefined ? st(db).recent.all(n) : st(db).recentIn.all(state, n)) as JobRow[];
  return rows.map((r) => jobView(db, r));
}

export function jobById(db: Database.Database, jobUuid: string): JobView | undefined {
  const r = st(db).job.get(jobUuid) as JobRow | undefined;
  return r ? jobView(db, r) : undefined;
}

/** Tasks of a job from `offset`, at most MAX_VIEW_TASKS, log tails cut to TASK_LIST_TAIL_CHARS. */
export function jobTasks(db: Database.Database, jobUuid: string, offset = 0, limit = MAX_VIEW_TASKS): TaskView[] {
  const rows = st(db).tasks.all(jobUuid, Math.max(1, Math.min(limit, MAX_VIEW_TASKS)), Math.max(0, offset)) as TaskRow[];
  return rows.map(taskView);
}

export function taskByIndex(db: Database.Database, jobUuid: string, index: number): TaskView | undefined {
  const r = st(db).task.get(jobUuid, index) as TaskRow | undefined;
  return r ? taskView(r) : undefined;
}

interface JobRow {
  job_uuid: string;
  program_name: string;
  state: number;
  task_count: number;
  created_at_ms: number;
  finished_at_ms: number;
  error: string;
  /** the submitting client's public key ('' before jobs had owners, or with security off) */
  owner: string;
}

interface TaskRow {
  task_index: number;
  state: number;
  outcome: number;
  attempts: number;
  exit_code: number;
  duration_ms: number;
  worker_uuid: string;
  error: string;
  log_tail: string;
  settled_at_ms: number;
}

const NIL = '00000000-0000-0000-0000-000000000000';

function jobView(db: Database.Database, r: JobRow): JobView {
  const c = countBy(st(db).counts.all(r.job_uuid) as { state: number; n: number }[], TASK_STATE_NAMES);
  return {
    jobId: r.job_uuid,
    program: r.program_name,
    state: JOB_STATE_NAMES[r.state] ?? String(r.state),
    owner: r.owner ? keyFingerprint(r.owner) : null,
    taskCount: r.task_count,
    tasks: { pending: c.pending!, running: c.running!, succeeded: c.succeeded!, failed: c.failed!, cancelled: c.cancelled! },
    createdAtMs: r.created_at_ms,
    finishedAtMs: r.finished_at_ms || null,
    error: r.error,
  };
}

function taskView(r: TaskRow): TaskView {
  const settled = r.state >= TaskState.succeeded;
  return {
    index: r.task_index,
    state: TASK_STATE_NAMES[r.state] ?? String(r.state),
    outcome: OUTCOME_NAMES[r.outcome] ?? String(r.outcome),
    attempts: r.attempts,
    workerId: r.worker_uuid === NIL ? null : r.worker_uuid,
    exitCode: r.exit_code,
    durationMs: settled || r.duration_ms > 0 ? r.duration_ms : null,
    settledAtMs: r.settled_at_ms || null,
    error: r.error,
    logTail: r.log_tail,
  };
}

function countBy(rows: { state: number; n: number }[], names: Record<number, string>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const name of Object.values(names)) out[name] = 0;
  for (const r of rows) out[names[r.state] ?? String(r.state)] = r.n;
  return out;
}

function nameOf(e: Record<string, number>): Record<number, string> {
  return Object.fromEntries(Object.entries(e).map(([k, v]) => [v, k]));
}
