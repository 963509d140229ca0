/**
 * The worker's execution journal: one row per time a task's program actually ran on this
 * worker (job, task, attempt, pid, start, end, exit code, outcome), in SQLite at
 * <dataDir>/executions.db. It is the worker's own record, independent of what the balancer
 * or the master believe, so an operator (GET /status, `executions`) and the tests (which
 * read the file) can count real executions: "each task ran once" is measured, not assumed.
 *
 * A row is written when the process exists (start) and completed when it ends; a worker
 * killed mid-task leaves the row open (ended_at_ms = 0). The file survives restarts of the
 * worker (same data dir), so a journal covers every life of the node. Bounded: beyond the
 * worker's maxExecutionRecords setting the oldest rows are pruned.
 */
import path from 'node:path';
import Database from 'better-sqlite3';

/** Default bound of executions.db; the worker passes its maxExecutionRecords setting (docs/worker.md). */
export const MAX_EXECUTION_RECORDS = 100_000;

export interface ExecutionRecord {
  jobUuid: string;
  taskIndex: number;
  attempt: number;
  pid: number;
  startedAtMs: number;
  /** 0 while running, or when the worker died before the task ended */
  endedAtMs: number;
  /** -1 when killed by a signal or when the process never ended in this worker's life */
  exitCode: number;
  /** the runner's outcome name ('ok', 'exit_nonzero', ...), '' while open */
  outcome: string;
}

export const EXECUTIONS_FILE = 'executions.db';

const SCHEMA = `
CREATE TABLE IF NOT EXISTS executions (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  job_uuid TEXT NOT NULL, task_index INTEGER NOT NULL, attempt INTEGER NOT NULL,
  pid INTEGER NOT NULL, started_at_ms INTEGER NOT NULL,
  ended_at_ms INTEGER NOT NULL DEFAULT 0, exit_code INTEGER NOT NULL DEFAULT -1, outcome TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS executions_job ON executions(job_uuid, task_index);
`;

export class ExecutionJournal {
  private readonly db: Database.Database;
  private readonly st: ReturnType<ExecutionJournal['prepare']>;
  private closed = false;

  /**
   * A failed write (disk full, say) never fails the task or the worker: it is reported to
   * `onError` (the worker logs it) and the run goes unrecorded.
   */
  constructor(
    dataDir: string,
    private readonly maxRecords = MAX_EXECUTION_RECORDS,
    private readonly onError: (e: Error) => void = () => undefined,
  ) {
    this.db = new Database(path.join(dataDir, EXECUTIONS_FILE));
    this.db.pragma('journal_mode = WAL');
    // NORMAL in WAL mode: a committed row survives the worker's SIGKILL (not a power cut),
    // without an fsync per task start and end
    this.db.pragma('synchronous = NORMAL');
    this.db.exec(SCHEMA);
    this.st = this.prepare();
  }

  private prepare() {
    const d = this.db;
    return {
      start: d.prepare('INSERT INTO executions (job_uuid, task_index, attempt, pid, started_at_ms) VALUES (?, ?, ?, ?, ?)'),
      end: d.prepare('UPDATE executions SET ended_at_ms = ?, exit_code = ?, outcome = ? WHERE id = ?'),
      prune: d.prepare('DELETE FROM executions WHERE id <= (SELECT MAX(id) FROM executions) - ?'),
      count: d.prepare('SELECT COUNT(*) AS n, COALESCE(SUM(ended_at_ms = 0), 0) AS open FROM executions'),
    };
  }

  /** Notes that a task's process started; returns the row id to end it with. */
  started(jobUuid: string, taskIndex: number, attempt: number, pid: number, nowMs: number): number {
    if (this.closed) return 0;
    try {
      const id = Number(this.st.start.run(jobUuid, taskIndex, attempt, pid, nowMs).lastInsertRowid);
      this.st.prune.run(this.maxRecords); // a primary-key range: usually deletes one row or none
      return id;
    } catch (e) {
      this.onError(e as Error);
      return 0;
    }
  }

  /** Notes how the process of row `id` ended. */
  ended(id: number, exitCode: number, outcome: string, nowMs: number): void {
    if (this.closed || id <= 0) return; // closed by stop(): the row stays open, as after a crash
    try {
      this.st.end.run(nowMs, exitCode, outcome, id);
    } catch (e) {
      this.onError(e as Error);
    }
  }

  /** Counts for GET /status. */
  summary(): { recorded: number; open: number } {
    const r = this.st.count.get() as { n: number; open: number };
    return { recorded: r.n, open: r.open };
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.db.close();
  }
}

/** Every execution of `jobUuid` recorded in the journal of the worker whose data dir is `dataDir` (read-only). */
export function readExecutions(dataDir: string, jobUuid: string): ExecutionRecord[] {
  let db: Database.Database;
  try {
    db = new Database(path.join(dataDir, EXECUTIONS_FILE), { readonly: true, fileMustExist: true });
  } catch {
    return []; // this worker never ran anything
  }
  try {
    const rows = db.prepare('SELECT * FROM executions WHERE job_uuid = ? ORDER BY id').all(jobUuid) as Record<string, number | string>[];
    return rows.map((r) => ({
      jobUuid: r.job_uuid as string,
      taskIndex: r.task_index as number,
      attempt: r.attempt as number,
      pid: r.pid as number,
      startedAtMs: r.started_at_ms as number,
      endedAtMs: r.ended_at_ms as number,
      exitCode: r.exit_code as number,
      outcome: r.outcome as string,
    }));
  } finally {
    db.close();
  }
}
