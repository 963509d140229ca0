// The master's read views (src/master/views.ts): counts by state kept by SQLite triggers
// must always equal a full count of the jobs and tasks tables, through every kind of change
// the state machine makes, after a snapshot restore, and when an older database (without
// the count tables) is opened (docs/operations.md "Metrics").
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { JobStore, ResultCommand } from '../../src/master/store';
import { jobById, jobTasks, jobsByState, recentJobs, tasksByState } from '../../src/master/views';
import { keyFingerprint, newKeyPair } from '../../src/common';
import { NIL_UUID, TaskOutcome, newUuid } from '../../src/messages';

const limits = { maxInputsPerJob: 1000, maxArgs: 10 };

function submit(store: JobStore, n: number): string {
  const jobUuid = newUuid();
  store.submit({
    jobUuid,
    programFileUuid: newUuid(),
    programName: 'job.js',
    inputs: Array.from({ length: n }, (_, i) => ({ fileUuid: newUuid(), name: `in${i}.txt` })),
    chunkSize: 1,
    maxRetries: 1,
    taskTimeoutMs: 1000,
    memoryLimitMb: 256,
    outputLimitBytes: 1 << 20,
    args: [],
    nowMs: 1000,
  });
  return jobUuid;
}

function result(jobUuid: string, taskIndex: number, ok: boolean, final = true, attempt = 0): ResultCommand {
  return {
    jobUuid,
    taskIndex,
    attempt,
    workerUuid: newUuid(),
    outcome: ok ? TaskOutcome.ok : TaskOutcome.exit_nonzero,
    final,
    exitCode: ok ? 0 : 1,
    durationMs: 7,
    logFileUuid: NIL_UUID,
    outputs: [],
    error: ok ? '' : 'exited with code 1',
    logTail: ok ? 'fine\n' : 'boom\n',
  };
}

/** The counts a full scan gives, named like the views'. */
function scanned(db: Database.Database): { jobs: Record<string, number>; tasks: Record<string, number> } {
  const names = { jobs: ['running', 'succeeded', 'failed', 'cancelled'], tasks: ['pending', 'running', 'succeeded', 'failed', 'cancelled'] };
  const count = (table: 'jobs' | 'tasks'): Record<string, number> => {
    const out: Record<string, number> = Object.fromEntries(names[table].map((n) => [n, 0]));
    for (const r of db.prepare(`SELECT state, COUNT(*) AS n FROM ${table} GROUP BY state`).all() as { state: number; n: number }[]) out[names[table][r.state]!] = r.n;
    return out;
  };
  return { jobs: count('jobs'), tasks: count('tasks') };
}

describe('master views: counts by state', () => {
  let dir: string;
  let store: JobStore;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'grid-master-views-'));
    store = new JobStore(path.join(dir, 'jobs.db'), limits);
  });
  afterEach(() => {
    store.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const agree = (what: string): void => {
    const s = scanned(store.db);
    assert.deepEqual({ jobs: jobsByState(store.db), tasks: tasksByState(store.db) }, s, what);
    // the master's /status reports open tasks as pending + running (only running jobs have them)
    assert.equal(s.tasks.pending! + s.tasks.running!, store.openTasks().length, `${what}: open tasks`);
  };

  it('stay equal to a full count through submit, start, retry, success, failure and cancel', () => {
    agree('empty');
    const ok = submit(store, 3);
    const bad = submit(store, 2);
    const cancelled = submit(store, 4);
    agree('submitted');
    store.taskStarted(ok, 0, 0, newUuid());
    store.taskStarted(bad, 0, 0, newUuid());
    agree('started');
    store.recordResults([result(ok, 0, false, false)], 2000); // a retry: back to pending
    agree('retry');
    store.recordResults([result(ok, 0, true, true, 1), result(ok, 1, true), result(ok, 2, true), result(bad, 0, false)], 3000);
    agree('settled');
    store.cancel(cancelled, 4000);
    agree('cancelled');
    assert.deepEqual(jobsByState(store.db), { running: 0, succeeded: 1, failed: 1, cancelled: 1 });
    assert.deepEqual(tasksByState(store.db), { pending: 0, running: 0, succeeded: 3, failed: 1, cancelled: 5 });
    const j = jobById(store.db, ok)!;
    assert.equal(j.state, 'succeeded');
    assert.deepEqual(j.tasks, { pending: 0, running: 0, succeeded: 3, failed: 0, cancelled: 0 });
    assert.deepEqual(recentJobs(store.db, 10).map((x) => x.jobId), [cancelled, bad, ok], 'newest first');
    assert.deepEqual(recentJobs(store.db, 10, 2).map((x) => x.jobId), [bad], 'only failed jobs');
    const t = jobTasks(store.db, bad);
    assert.equal(t[0]!.state, 'failed');
    assert.equal(t[0]!.logTail, 'boom\n');
    assert.equal(t[1]!.state, 'cancelled');
  });

  it('come back right after a snapshot restore', () => {
    const a = submit(store, 2);
    store.recordResults([result(a, 0, true)], 2000);
    const snap = store.capture();
    submit(store, 5);
    store.restore(snap);
    agree('restored');
    assert.deepEqual(tasksByState(store.db), { pending: 1, running: 0, succeeded: 1, failed: 0, cancelled: 0 });
  });

  it('are filled from the rows already there when an older database is opened', () => {
    const a = submit(store, 3);
    store.recordResults([result(a, 2, true)], 2000);
    store.close();
    // an older grid's database: no count tables, no triggers
    const d = new Database(path.join(dir, 'jobs.db'));
    d.exec('DROP TABLE count_jobs; DROP TABLE count_tasks; DROP TABLE count_job_tasks; DROP TRIGGER jobs_count_insert; DROP TRIGGER jobs_count_update; DROP TRIGGER jobs_count_delete; DROP TRIGGER tasks_count_insert; DROP TRIGGER tasks_count_update; DROP TRIGGER tasks_count_delete;');
    d.prepare('UPDATE tasks SET state = 3 WHERE task_index = 0').run();
    d.close();
    store = new JobStore(path.join(dir, 'jobs.db'), limits);
    agree('opened');
    assert.deepEqual(tasksByState(store.db), { pending: 1, running: 0, succeeded: 1, failed: 1, cancelled: 0 });
    store.taskStarted(a, 1, 0, newUuid());
    agree('and kept in step from then on');
  });

  it("name a job's owner by its key's fingerprint (the dashboard's owner column), null when it has none", () => {
    const key = newKeyPair().publicKey;
    const owned = newUuid();
    store.submit({ jobUuid: owned, programFileUuid: newUuid(), programName: 'job.js', inputs: [{ fileUuid: newUuid(), name: 'a' }], chunkSize: 1, maxRetries: 1, taskTimeoutMs: 1000, memoryLimitMb: 256, outputLimitBytes: 1 << 20, args: [], nowMs: 1000, owner: key });
    const anon = submit(store, 1);
    assert.equal(jobById(store.db, owned)!.owner, keyFingerprint(key));
    assert.equal(jobById(store.db, anon)!.owner, null);
    assert.deepEqual(recentJobs(store.db, 10).map((j) => j.owner), [null, keyFingerprint(key)]);
  });
});
