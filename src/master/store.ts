/**
 * The master's state: jobs, their fixed task lists, task states and results, in SQLite
 * (better-sqlite3, WAL, synchronous=FULL). Every change is a command applied in one
 * transaction, deterministically from its arguments (time comes in as nowMs), so the same
 * commands in the same order give the same state: the replicated state machine of phase 2.
 */
import fs from 'node:fs';
import Database from 'better-sqlite3';
import { JobState, NIL_UUID, TaskOutcome, TaskState } from '../messages';
import { GridError, assert } from '../common';
import { installCounts } from './views';

/** Bounds on a job, checked on submit (docs/master.md). */
export interface JobLimits {
  maxInputsPerJob: number;
  maxArgs: number;
}

export interface SubmitCommand {
  jobUuid: string;
  programFileUuid: string;
  programName: string;
  inputs: { fileUuid: string; name: string }[];
  chunkSize: number;
  maxRetries: number;
  taskTimeoutMs: number;
  memoryLimitMb: number;
  outputLimitBytes: number;
  args: string[];
  nowMs: number;
  /** the public key of the client that submitted it ('' with security off): only it and admins see the job */
  owner?: string;
}

export interface ResultCommand {
  jobUuid: string;
  taskIndex: number;
  attempt: number;
  workerUuid: string;
  outcome: number;
  final: boolean;
  exitCode: number;
  durationMs: number;
  logFileUuid: string;
  outputs: { fileUuid: string; name: string }[];
  error: string;
  logTail: string;
}

/** A task as the balancer and worker see it (task_dispatch). */
export interface TaskSpec {
  jobUuid: string;
  programFileUuid: string;
  programName: string;
  taskIndex: number;
  taskCount: number;
  attempt: number;
  maxRetries: number;
  timeoutMs: number;
  memoryLimitMb: number;
  outputLimitBytes: number;
  inputs: { fileUuid: string; name: string }[];
  args: string[];
}

export interface JobStatus {
  jobUuid: string;
  state: number;
  programName: string;
  taskCount: number;
  pending: number;
  running: number;
  succeeded: number;
  /** failed tasks plus cancelled ones (what job_status_response carries) */
  failed: number;
  /** of `failed`, the cancelled ones */
  cancelled: number;
  createdAtMs: number;
  finishedAtMs: number;
  error: string;
}

/** A job's --notify URL and how its delivery went (replicated: every master has it). */
export interface Notification {
  jobUuid: string;
  url: string;
  /** 0 pending, 1 delivered, 2 given up */
  state: number;
}

export interface TaskStatus {
  jobUuid: string;
  taskIndex: number;
  state: number;
  outcome: number;
  attempts: number;
  exitCode: number;
  durationMs: number;
  workerUuid: string;
  logFileUuid: string;
  error: string;
  logTail: string;
  inputNames: string[];
  outputs: { fileUuid: string; name: string }[];
}

/** What applying results asks the shell to do. */
export type StoreEffect =
  | { kind: 'job:settled'; jobUuid: string; state: number }
  | { kind: 'job:cancel-tasks'; jobUuid: string }
  /** a task was settled by a second result: exactly-once is broken (never expected; logged as an error) */
  | { kind: 'result:duplicate'; jobUuid: string; taskIndex: number; times: number };

const SCHEMA = `
CREATE TABLE IF NOT EXISTS jobs (
  job_uuid TEXT PRIMARY KEY,
  seq INTEGER NOT NULL,
  program_file_uuid TEXT NOT NULL,
  program_name TEXT NOT NULL,
  chunk_size INTEGER NOT NULL,
  max_retries INTEGER NOT NULL,
  task_timeout_ms INTEGER NOT NULL,
  memory_limit_mb INTEGER NOT NULL,
  output_limit_bytes INTEGER NOT NULL,
  args TEXT NOT NULL,
  task_count INTEGER NOT NULL,
  state INTEGER NOT NULL,
  error TEXT NOT NULL DEFAULT '',
  created_at_ms INTEGER NOT NULL,
  finished_at_ms INTEGER NOT NULL DEFAULT 0,
  owner TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS jobs_seq ON jobs(seq);
CREATE TABLE IF NOT EXISTS job_inputs (
  job_uuid TEXT NOT NULL, idx INTEGER NOT NULL, file_uuid TEXT NOT NULL, name TEXT NOT NULL,
  PRIMARY KEY (job_uuid, idx)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS tasks (
  job_uuid TEXT NOT NULL, task_index INTEGER NOT NULL,
  state INTEGER NOT NULL, outcome INTEGER NOT NULL DEFAULT 0, attempts INTEGER NOT NULL DEFAULT 0,
  exit_code INTEGER NOT NULL DEFAULT 0, duration_ms INTEGER NOT NULL DEFAULT 0,
  worker_uuid TEXT NOT NULL DEFAULT '${NIL_UUID}', log_file_uuid TEXT NOT NULL DEFAULT '${NIL_UUID}',
  error TEXT NOT NULL DEFAULT '', log_tail TEXT NOT NULL DEFAULT '',
  settled_at_ms INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (job_uuid, task_index)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS tasks_open ON tasks(state) WHERE state < ${TaskState.succeeded};
CREATE TABLE IF NOT EXISTS attempts (
  job_uuid TEXT NOT NULL, task_index INTEGER NOT NULL, attempt INTEGER NOT NULL,
  worker_uuid TEXT NOT NULL, outcome INTEGER NOT NULL, final INTEGER NOT NULL,
  exit_code INTEGER NOT NULL, error TEXT NOT NULL, recorded_at_ms INTEGER NOT NULL,
  PRIMARY KEY (job_uuid, task_index, attempt)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS lease (
  id INTEGER PRIMARY KEY CHECK (id = 1), epoch INTEGER NOT NULL, holder TEXT NOT NULL, role TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (
  key TEXT PRIMARY KEY, value INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS accepted_results (
  job_uuid TEXT NOT NULL, task_index INTEGER NOT NULL, n INTEGER NOT NULL,
  PRIMARY KEY (job_uuid, task_index)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS notifications (
  job_uuid TEXT PRIMARY KEY, url TEXT NOT NULL, state INTEGER NOT NULL DEFAULT 0,
  attempts INTEGER NOT NULL DEFAULT 0, error TEXT NOT NULL DEFAULT '', done_at_ms INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS outputs (
  job_uuid TEXT NOT NULL, task_index INTEGER NOT NULL, idx INTEGER NOT NULL,
  file_uuid TEXT NOT NULL, name TEXT NOT NULL,
  PRIMARY KEY (job_uuid, task_index, idx)
) WITHOUT ROWID;
`;

export class JobStore {
  db!: Database.Database;
  private st!: ReturnType<JobStore['prepare']>;
  /**
   * Results that settled a task, applied by this process (GET /status `accepted`), and how many
   * of them settled a task that had already been settled once: always 0 unless exactly-once is
   * broken (each one is also logged as an error by the node).
   */
  readonly accepted = { results: 0, duplicates: 0 };

  constructor(
    readonly path: string,
    private readonly limits: JobLimits,
  ) {
    this.open();
  }

  private open(): void {
    this.db = new Database(this.path);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = FULL');
    this.db.exec(SCHEMA);
    // a database (or snapshot) from before jobs had owners
    if (!(this.db.prepare('PRAGMA table_info(jobs)').all() as { name: string }[]).some((c) => c.name === 'owner')) {
      this.db.exec("ALTER TABLE jobs ADD COLUMN owner TEXT NOT NULL DEFAULT ''");
    }
    installCounts(this.db); // counts by state for /metrics and the dashboard (views.ts)
    this.st = this.prepare();
  }

  /** The last Raft index applied to this state (0 for a new store). */
  appliedIndex(): number {
    return (this.st.getApplied.get() as { value: number } | undefined)?.value ?? 0;
  }

  /** Notes the last applied Raft index; called inside the transaction that applied it. */
  setApplied(index: number): void {
    this.st.setApplied.run(index);
  }

  /** The whole state as bytes (a Raft snapshot). */
  capture(): Buffer {
    return this.db.serialize();
  }

  /** Replaces the whole state with a snapshot's bytes (written atomically, then reopened). */
  restore(data: Buffer): void {
    this.db.close();
    const tmp = `${this.path}.restore`;
    const fd = fs.openSync(tmp, 'w');
    try {
      fs.writeSync(fd, data);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    for (const ext of ['-wal', '-shm']) fs.rmSync(this.path + ext, { force: true });
    fs.renameSync(tmp, this.path);
    this.open();
  }

  private prepare() {
    const d = this.db;
    return {
      getApplied: d.prepare("SELECT value FROM meta WHERE key = 'applied_index'"),
      setApplied: d.prepare("INSERT INTO meta (key, value) VALUES ('applied_index', ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value"),
      jobByUuid: d.prepare('SELECT * FROM jobs WHERE job_uuid = ?'),
      maxSeq: d.prepare('SELECT COALESCE(MAX(seq), 0) AS s FROM jobs'),
      insertJob: d.prepare(`INSERT INTO jobs (job_uuid, seq, program_file_uuid, program_name, chunk_size, max_retries,
        task_timeout_ms, memory_limit_mb, output_limit_bytes, args, task_count, state, created_at_ms, owner)
        VALUES (@job_uuid, @seq, @program_file_uuid, @program_name, @chunk_size, @max_retries, @task_timeout_ms,
        @memory_limit_mb, @output_limit_bytes, @args, @task_count, @state, @created_at_ms, @owner)`),
      ownerOf: d.prepare('SELECT owner FROM jobs WHERE job_uuid = ?'),
      listJobsOf: d.prepare('SELECT job_uuid, owner FROM jobs WHERE owner = ? ORDER BY seq DESC LIMIT ?'),
      insertInput: d.prepare('INSERT INTO job_inputs (job_uuid, idx, file_uuid, name) VALUES (?, ?, ?, ?)'),
      insertTask: d.prepare('INSERT INTO tasks (job_uuid, task_index, state) VALUES (?, ?, ?)'),
      task: d.prepare('SELECT * FROM tasks WHERE job_uuid = ? AND task_index = ?'),
      inputsOf: d.prepare('SELECT file_uuid, name FROM job_inputs WHERE job_uuid = ? AND idx >= ? AND idx < ? ORDER BY idx'),
      outputsOf: d.prepare('SELECT file_uuid, name FROM outputs WHERE job_uuid = ? AND task_index = ? ORDER BY idx'),
      counts: d.prepare('SELECT state, COUNT(*) AS n FROM tasks WHERE job_uuid = ? GROUP BY state'),
      markRunning: d.prepare(`UPDATE tasks SET state = ${TaskState.running}, worker_uuid = ?, attempts = MAX(attempts, ? + 1)
        WHERE job_uuid = ? AND task_index = ? AND state IN (${TaskState.pending}, ${TaskState.running})`),
      insertAttempt: d.prepare(`INSERT OR IGNORE INTO attempts (job_uuid, task_index, attempt, worker_uuid, outcome, final,
        exit_code, error, recorded_at_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`),
      noteAttempt: d.prepare(`UPDATE tasks SET attempts = MAX(attempts, ? + 1), outcome = ?, exit_code = ?, duration_ms = ?,
        worker_uuid = ?, log_file_uuid = ?, error = ?, log_tail = ?, state = CASE WHEN state = ${TaskState.running} THEN ${TaskState.pending} ELSE state END
        WHERE job_uuid = ? AND task_index = ? AND state < ${TaskState.succeeded}`),
      settle: d.prepare(`UPDATE tasks SET state = ?, attempts = MAX(attempts, ? + 1), outcome = ?, exit_code = ?, duration_ms = ?,
        worker_uuid = ?, log_file_uuid = ?, error = ?, log_tail = ?, settled_at_ms = ?
        WHERE job_uuid = ? AND task_index = ? AND state < ${TaskState.succeeded}`),
      countAccepted: d.prepare('INSERT INTO accepted_results (job_uuid, task_index, n) VALUES (?, ?, 1) ON CONFLICT DO UPDATE SET n = n + 1 RETURNING n'),
      acceptedOf: d.prepare('SELECT task_index, n FROM accepted_results WHERE job_uuid = ? ORDER BY task_index'),
      insertOutput: d.prepare('INSERT INTO outputs (job_uuid, task_index, idx, file_uuid, name) VALUES (?, ?, ?, ?, ?)'),
      setJobState: d.prepare(`UPDATE jobs SET state = ?, error = ?, finished_at_ms = ? WHERE job_uuid = ? AND state = ${JobState.running}`),
      cancelTasks: d.prepare(`UPDATE tasks SET state = ${TaskState.cancelled}, outcome = ${TaskOutcome.cancelled}, settled_at_ms = ?
        WHERE job_uuid = ? AND state < ${TaskState.succeeded}`),
      openTasks: d.prepare(`SELECT t.job_uuid, t.task_index, t.attempts FROM tasks t JOIN jobs j ON j.job_uuid = t.job_uuid
        WHERE t.state < ${TaskState.succeeded} AND j.state = ${JobState.running} ORDER BY j.seq, t.task_index`),
      openRunningFirst: d.prepare(`SELECT t.job_uuid, t.task_index FROM tasks t JOIN jobs j ON j.job_uuid = t.job_uuid
        WHERE t.state < ${TaskState.succeeded} AND j.state = ${JobState.running} ORDER BY t.state DESC, j.seq, t.task_index`),
      getLease: d.prepare('SELECT epoch, holder, role FROM lease WHERE id = 1'),
      setLease: d.prepare(`INSERT INTO lease (id, epoch, holder, role) VALUES (1, ?, ?, ?)
        ON CONFLICT(id) DO UPDATE SET epoch = excluded.epoch, holder = excluded.holder, role = excluded.role WHERE excluded.epoch > lease.epoch`),
      listJobs: d.prepare('SELECT job_uuid, owner FROM jobs ORDER BY seq DESC LIMIT ?'),
      setNotify: d.prepare('INSERT INTO notifications (job_uuid, url) VALUES (?, ?) ON CONFLICT(job_uuid) DO UPDATE SET url = excluded.url, state = 0, attempts = 0, error = \'\''),
      notified: d.prepare('UPDATE notifications SET state = ?, attempts = ?, error = ?, done_at_ms = ? WHERE job_uuid = ? AND state = 0'),
      dueNotifications: d.prepare(`SELECT n.job_uuid AS jobUuid, n.url AS url, n.state AS state FROM notifications n JOIN jobs j ON j.job_uuid = n.job_uuid
        WHERE n.state = 0 AND j.state != ${JobState.running} LIMIT ?`),
      notification: d.prepare('SELECT job_uuid AS jobUuid, url, state, attempts, error FROM notifications WHERE job_uuid = ?'),
      taskCount: d.prepare('SELECT COUNT(*) AS n FROM tasks WHERE job_uuid = ?'),
    };
  }

  /** Stores a job and its fixed task list; a job that already exists is left as it is. */
  submit(c: SubmitCommand): { created: boolean; taskCount: number } {
    const existing = this.st.jobByUuid.get(c.jobUuid) as { task_count: number } | undefined;
    if (existing) return { created: false, taskCount: existing.task_count };
    this.validateSubmit(c);
    const taskCount = Math.ceil(c.inputs.length / c.chunkSize);
    this.db.transaction(() => {
      const seq = (this.st.maxSeq.get() as { s: number }).s + 1;
      this.st.insertJob.run({
        job_uuid: c.jobUuid,
        seq,
        program_file_uuid: c.programFileUuid,
        program_name: c.programName,
        chunk_size: c.chunkSize,
        max_retries: c.maxRetries,
        task_timeout_ms: c.taskTimeoutMs,
        memory_limit_mb: c.memoryLimitMb,
        output_limit_bytes: c.outputLimitBytes,
        args: JSON.stringify(c.args),
        task_count: taskCount,
        state: JobState.running,
        created_at_ms: c.nowMs,
        owner: c.owner ?? '',
      });
      c.inputs.forEach((inp, i) => this.st.insertInput.run(c.jobUuid, i, inp.fileUuid, inp.name));
      for (let t = 0; t < taskCount; t++) this.st.insertTask.run(c.jobUuid, t, TaskState.pending);
    })();
    return { created: true, taskCount };
  }

  /** Throws a typed error for a job that must not be accepted; deterministic. */
  validateSubmit(c: SubmitCommand): void {
    if (c.inputs.length === 0) throw new GridError('BAD_REQUEST', 'a job needs at least one input file', 'pass --inputs FILE...');
    if (c.inputs.length > this.limits.maxInputsPerJob) {
      throw new GridError('TOO_LARGE', `a job may have at most ${this.limits.maxInputsPerJob} inputs, this one has ${c.inputs.length}`, 'split it into several jobs');
    }
    if (c.args.length > this.limits.maxArgs) throw new GridError('TOO_LARGE', `a job may have at most ${this.limits.maxArgs} arguments`);
    if (!(c.chunkSize >= 1)) throw new GridError('BAD_REQUEST', 'chunk size must be at least 1');
    if (!(c.taskTimeoutMs >= 1)) throw new GridError('BAD_REQUEST', 'task timeout must be at least 1 ms');
    if (!(c.memoryLimitMb >= 16)) throw new GridError('BAD_REQUEST', 'memory limit must be at least 16 MB');
  }

  /** A worker started an attempt. Ignored for settled tasks. */
  taskStarted(jobUuid: string, taskIndex: number, attempt: number, workerUuid: string): void {
    this.st.markRunning.run(workerUuid, attempt, jobUuid, taskIndex);
  }

  /**
   * Records a batch of results in one transaction (one fsync). Each (job, task, attempt) is
   * recorded once; the first final result settles the task; later ones change nothing.
   */
  recordResults(results: ResultCommand[], nowMs: number): StoreEffect[] {
    const effects: StoreEffect[] = [];
    this.db.transaction(() => {
      const touched = new Set<string>();
      for (const r of results) {
        const ins = this.st.insertAttempt.run(r.jobUuid, r.taskIndex, r.attempt, r.workerUuid, r.outcome, r.final ? 1 : 0, r.exitCode, r.error, nowMs);
        if (ins.changes === 0) continue; // this attempt was recorded before
        const common = [r.exitCode, r.durationMs, r.workerUuid, r.logFileUuid, r.error, r.logTail] as const;
        if (!r.final) {
          this.st.noteAttempt.run(r.attempt, r.outcome, ...common, r.jobUuid, r.taskIndex);
          continue;
        }
        const state = r.outcome === TaskOutcome.ok ? TaskState.succeeded : TaskState.failed;
        const upd = this.st.settle.run(state, r.attempt, r.outcome, ...common, nowMs, r.jobUuid, r.taskIndex);
        if (upd.changes === 0) continue; // already settled (or cancelled)
        const { n } = this.st.countAccepted.get(r.jobUuid, r.taskIndex) as { n: number };
        this.accepted.results++;
        if (n > 1) {
          this.accepted.duplicates++;
          effects.push({ kind: 'result:duplicate', jobUuid: r.jobUuid, taskIndex: r.taskIndex, times: n });
        }
        if (state === TaskState.succeeded) r.outputs.forEach((o, i) => this.st.insertOutput.run(r.jobUuid, r.taskIndex, i, o.fileUuid, o.name));
        touched.add(r.jobUuid);
        if (state === TaskState.failed) {
          const why = `task ${r.taskIndex} failed after ${r.attempt + 1} attempt(s): ${r.error || 'no reason given'}`;
          if (this.st.setJobState.run(JobState.failed, why, nowMs, r.jobUuid).changes > 0) {
            this.st.cancelTasks.run(nowMs, r.jobUuid);
            effects.push({ kind: 'job:settled', jobUuid: r.jobUuid, state: JobState.failed }, { kind: 'job:cancel-tasks', jobUuid: r.jobUuid });
          }
        }
      }
      for (const jobUuid of touched) {
        const s = this.jobStatus(jobUuid);
        if (s && s.state === JobState.running && s.succeeded === s.taskCount) {
          this.st.setJobState.run(JobState.succeeded, '', nowMs, jobUuid);
          effects.push({ kind: 'job:settled', jobUuid, state: JobState.succeeded });
        }
      }
    })();
    return effects;
  }

  /**
   * How many final results settled each task of a job (task index -> count; tasks never
   * settled by a result are absent). Exactly-once recording means every count is 1; the
   * counter is kept apart from the task row so a bug that settles a task twice shows here.
   */
  acceptedResults(jobUuid: string): Map<number, number> {
    return new Map((this.st.acceptedOf.all(jobUuid) as { task_index: number; n: number }[]).map((r) => [r.task_index, r.n]));
  }

  /** Cancels a running job; false when it is unknown. Settled jobs stay as they are. */
  cancel(jobUuid: string, nowMs: number): { found: boolean; cancelled: boolean } {
    if (!this.st.jobByUuid.get(jobUuid)) return { found: false, cancelled: false };
    let cancelled = false;
    this.db.transaction(() => {
      cancelled = this.st.setJobState.run(JobState.cancelled, 'cancelled by the user', nowMs, jobUuid).changes > 0;
      if (cancelled) this.st.cancelTasks.run(nowMs, jobUuid);
    })();
    return { found: true, cancelled };
  }

  jobStatus(jobUuid: string): JobStatus | undefined {
    const j = this.st.jobByUuid.get(jobUuid) as Record<string, unknown> | undefined;
    if (!j) return undefined;
    const n = [0, 0, 0, 0, 0];
    for (const row of this.st.counts.all(jobUuid) as { state: number; n: number }[]) n[row.state] = row.n;
    return {
      jobUuid,
      state: j.state as number,
      programName: j.program_name as string,
      taskCount: j.task_count as number,
      pending: n[TaskState.pending]!,
      running: n[TaskState.running]!,
      succeeded: n[TaskState.succeeded]!,
      failed: n[TaskState.failed]! + n[TaskState.cancelled]!,
      cancelled: n[TaskState.cancelled]!,
      createdAtMs: j.created_at_ms as number,
      finishedAtMs: j.finished_at_ms as number,
      error: j.error as string,
    };
  }

  /** The owner key of a job ('' = none recorded), or undefined when there is no such job. */
  jobOwner(jobUuid: string): string | undefined {
    return (this.st.ownerOf.get(jobUuid) as { owner: string } | undefined)?.owner;
  }

  /** The newest jobs, or with `owner` only that key's. */
  listJobs(limit: number, owner?: string): string[] {
    return this.listJobsWithOwners(limit, owner).map((r) => r.jobUuid);
  }

  /** listJobs with each job's owner key ('' = none recorded). */
  listJobsWithOwners(limit: number, owner?: string): { jobUuid: string; owner: string }[] {
    const rows = owner === undefined ? this.st.listJobs.all(limit) : this.st.listJobsOf.all(owner, limit);
    return (rows as { job_uuid: string; owner: string }[]).map((r) => ({ jobUuid: r.job_uuid, owner: r.owner }));
  }

  taskStatus(jobUuid: string, taskIndex: number): TaskStatus | undefined {
    const t = this.st.task.get(jobUuid, taskIndex) as Record<string, unknown> | undefined;
    if (!t) return undefined;
    const j = this.st.jobByUuid.get(jobUuid) as { chunk_size: number };
    const inputs = this.st.inputsOf.all(jobUuid, taskIndex * j.chunk_size, (taskIndex + 1) * j.chunk_size) as { name: string }[];
    const outputs = (this.st.outputsOf.all(jobUuid, taskIndex) as { file_uuid: string; name: string }[]).map((o) => ({ fileUuid: o.file_uuid, name: o.name }));
    return {
      jobUuid,
      taskIndex,
      state: t.state as number,
      outcome: t.outcome as number,
      attempts: t.attempts as number,
      exitCode: t.exit_code as number,
      durationMs: t.duration_ms as number,
      workerUuid: t.worker_uuid as string,
      logFileUuid: t.log_file_uuid as string,
      error: t.error as string,
      logTail: t.log_tail as string,
      inputNames: inputs.map((i) => i.name),
      outputs,
    };
  }

  /** The dispatch form of one task, for its next attempt. */
  taskSpec(jobUuid: string, taskIndex: number, attempt: number): TaskSpec {
    const j = this.st.jobByUuid.get(jobUuid) as Record<string, unknown> | undefined;
    assert(j, `job ${jobUuid} exists`);
    const chunk = j.chunk_size as number;
    const inputs = (this.st.inputsOf.all(jobUuid, taskIndex * chunk, (taskIndex + 1) * chunk) as { file_uuid: string; name: string }[]).map((r) => ({
      fileUuid: r.file_uuid,
      name: r.name,
    }));
    return {
      jobUuid,
      programFileUuid: j.program_file_uuid as string,
      programName: j.program_name as string,
      taskIndex,
      taskCount: j.task_count as number,
      attempt,
      maxRetries: j.max_retries as number,
      timeoutMs: j.task_timeout_ms as number,
      memoryLimitMb: j.memory_limit_mb as number,
      outputLimitBytes: j.output_limit_bytes as number,
      inputs,
      args: JSON.parse(j.args as string) as string[],
    };
  }

  /** Every task of a running job that is not settled, oldest job first. */
  openTasks(): { jobUuid: string; taskIndex: number; attempts: number }[] {
    return (this.st.openTasks.all() as { job_uuid: string; task_index: number; attempts: number }[]).map((r) => ({
      jobUuid: r.job_uuid,
      taskIndex: r.task_index,
      attempts: r.attempts,
    }));
  }

  /** Keys ("job/index") of every open task, running ones first (a new lease holder adopts those). */
  openTaskKeys(): string[] {
    return (this.st.openRunningFirst.all() as { job_uuid: string; task_index: number }[]).map((r) => `${r.job_uuid}/${r.task_index}`);
  }

  /** The dispatch lease as recorded through Raft (epoch 0: never granted). */
  lease(): { epoch: number; holder: string; role: 'primary' | 'auxiliary' } {
    const r = this.st.getLease.get() as { epoch: number; holder: string; role: 'primary' | 'auxiliary' } | undefined;
    return r ?? { epoch: 0, holder: '', role: 'primary' };
  }

  /** Records a new lease epoch; an older or equal epoch changes nothing (idempotent apply). */
  setLease(epoch: number, holder: string, role: 'primary' | 'auxiliary'): boolean {
    return this.st.setLease.run(epoch, holder, role).changes > 0;
  }

  /** Results recorded per (job, task, attempt): for tests and /status. */
  attemptCount(jobUuid: string): number {
    return (this.db.prepare('SELECT COUNT(*) AS n FROM attempts WHERE job_uuid = ?').get(jobUuid) as { n: number }).n;
  }

  /** Sets (or replaces) the URL a job's final status is posted to. NOT_FOUND for an unknown job. */
  setNotify(jobUuid: string, url: string): void {
    if (!this.st.jobByUuid.get(jobUuid)) throw new GridError('NOT_FOUND', `no job ${jobUuid}`, 'check the id (see `grid jobs`)');
    this.st.setNotify.run(jobUuid, url);
  }

  /** Records how a notification ended (delivered or given up); the first record wins. */
  notified(jobUuid: string, delivered: boolean, attempts: number, error: string, nowMs: number): void {
    this.st.notified.run(delivered ? 1 : 2, attempts, error, nowMs, jobUuid);
  }

  /** Notifications of finished jobs not delivered (nor given up) yet, at most `limit`. */
  dueNotifications(limit: number): Notification[] {
    return this.st.dueNotifications.all(limit) as Notification[];
  }

  notification(jobUuid: string): (Notification & { attempts: number; error: string }) | undefined {
    return this.st.notification.get(jobUuid) as (Notification & { attempts: number; error: string }) | undefined;
  }

  close(): void {
    this.db.close();
  }
}
