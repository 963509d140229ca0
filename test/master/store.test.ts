// JobStore: the master's state machine over a real SQLite file (docs/master.md).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { JobStore, ResultCommand } from '../../src/master/store';
import { JobState, NIL_UUID, TaskOutcome, TaskState, newUuid } from '../../src/messages';
import { GridError } from '../../src/common';

const limits = { maxInputsPerJob: 1000, maxArgs: 10 };

function submitCmd(n: number, chunkSize = 1, jobUuid = newUuid()) {
  return {
    jobUuid,
    programFileUuid: newUuid(),
    programName: 'job.js',
    inputs: Array.from({ length: n }, (_, i) => ({ fileUuid: newUuid(), name: `in${i}.txt` })),
    chunkSize,
    maxRetries: 2,
    taskTimeoutMs: 1000,
    memoryLimitMb: 256,
    outputLimitBytes: 1 << 20,
    args: ['a', 'b'],
    nowMs: 1000,
  };
}

function result(jobUuid: string, taskIndex: number, attempt: number, ok: boolean, final = true): ResultCommand {
  return {
    jobUuid,
    taskIndex,
    attempt,
    workerUuid: newUuid(),
    outcome: ok ? TaskOutcome.ok : TaskOutcome.exit_nonzero,
    final,
    exitCode: ok ? 0 : 1,
    durationMs: 5,
    logFileUuid: NIL_UUID,
    outputs: ok ? [{ fileUuid: newUuid(), name: 'out.txt' }] : [],
    error: ok ? '' : 'exited with code 1',
    logTail: '',
  };
}

describe('master JobStore', () => {
  let dir: string;
  let store: JobStore;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'grid-master-store-'));
    store = new JobStore(path.join(dir, 'jobs.db'), limits);
  });
  afterEach(() => {
    store.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('splits inputs into ceil(n / chunk) fixed tasks', () => {
    const c = submitCmd(7, 3);
    assert.deepEqual(store.submit(c), { created: true, taskCount: 3 });
    const last = store.taskSpec(c.jobUuid, 2, 0);
    assert.deepEqual(last.inputs.map((i) => i.name), ['in6.txt']);
    assert.deepEqual(store.taskSpec(c.jobUuid, 0, 0).inputs.map((i) => i.name), ['in0.txt', 'in1.txt', 'in2.txt']);
    assert.deepEqual(last.args, ['a', 'b']);
    assert.equal(store.openTasks().length, 3);
  });

  it('applies a retried submit once', () => {
    const c = submitCmd(4);
    store.submit(c);
    assert.deepEqual(store.submit({ ...c, inputs: c.inputs.slice(0, 1) }), { created: false, taskCount: 4 });
    assert.equal(store.listJobs(10).length, 1);
  });

  it('refuses bad jobs with typed errors', () => {
    assert.throws(() => store.submit(submitCmd(0)), (e: unknown) => e instanceof GridError && e.code === 'BAD_REQUEST');
    assert.throws(() => store.submit(submitCmd(1001)), (e: unknown) => e instanceof GridError && e.code === 'TOO_LARGE');
    assert.throws(() => store.submit({ ...submitCmd(1), chunkSize: 0 }), (e: unknown) => e instanceof GridError && e.code === 'BAD_REQUEST');
  });

  it('records each result once and settles the job when every task succeeded', () => {
    const c = submitCmd(3);
    store.submit(c);
    store.recordResults([result(c.jobUuid, 0, 0, true), result(c.jobUuid, 1, 0, true)], 2000);
    // a duplicate of an attempt and a late second final result change nothing
    store.recordResults([result(c.jobUuid, 0, 0, true), result(c.jobUuid, 0, 1, true)], 2001);
    assert.equal(store.taskStatus(c.jobUuid, 0)!.outputs.length, 1);
    assert.equal(store.jobStatus(c.jobUuid)!.state, JobState.running);
    const effects = store.recordResults([result(c.jobUuid, 2, 0, true)], 3000);
    assert.deepEqual(effects, [{ kind: 'job:settled', jobUuid: c.jobUuid, state: JobState.succeeded }]);
    const s = store.jobStatus(c.jobUuid)!;
    assert.equal(s.succeeded, 3);
    assert.equal(s.finishedAtMs, 3000);
    assert.equal(store.openTasks().length, 0);
  });

  it('fails the job on a final failure and cancels its other tasks', () => {
    const c = submitCmd(3);
    store.submit(c);
    store.recordResults([result(c.jobUuid, 1, 0, false, false)], 2000);
    const t = store.taskStatus(c.jobUuid, 1)!;
    assert.equal(t.state, TaskState.pending);
    assert.equal(t.attempts, 1);
    const effects = store.recordResults([result(c.jobUuid, 1, 1, false, true)], 3000);
    assert.equal(effects.length, 2);
    const s = store.jobStatus(c.jobUuid)!;
    assert.equal(s.state, JobState.failed);
    assert.match(s.error, /task 1 failed after 2 attempt\(s\): exited with code 1/);
    assert.equal(store.taskStatus(c.jobUuid, 0)!.state, TaskState.cancelled);
    assert.equal(store.openTasks().length, 0);
  });

  it('keeps everything across a reopen (restart)', () => {
    const c = submitCmd(2);
    store.submit(c);
    store.recordResults([result(c.jobUuid, 0, 0, true)], 2000);
    store.close();
    store = new JobStore(path.join(dir, 'jobs.db'), limits);
    assert.equal(store.jobStatus(c.jobUuid)!.succeeded, 1);
    assert.deepEqual(store.openTasks().map((t) => t.taskIndex), [1]);
  });

  it('cancels a running job and leaves settled ones alone', () => {
    const c = submitCmd(2);
    store.submit(c);
    assert.deepEqual(store.cancel(c.jobUuid, 5), { found: true, cancelled: true });
    assert.deepEqual(store.cancel(c.jobUuid, 6), { found: true, cancelled: false });
    assert.deepEqual(store.cancel(newUuid(), 6), { found: false, cancelled: false });
    assert.equal(store.jobStatus(c.jobUuid)!.state, JobState.cancelled);
    // a succeeded job stays succeeded, its tasks and outputs untouched
    const done = submitCmd(2);
    store.submit(done);
    store.recordResults([result(done.jobUuid, 0, 0, true), result(done.jobUuid, 1, 0, true)], 7);
    assert.equal(store.jobStatus(done.jobUuid)!.state, JobState.succeeded);
    const before = [0, 1].map((i) => store.taskStatus(done.jobUuid, i));
    assert.deepEqual(store.cancel(done.jobUuid, 8), { found: true, cancelled: false });
    assert.equal(store.jobStatus(done.jobUuid)!.state, JobState.succeeded);
    assert.equal(store.jobStatus(done.jobUuid)!.finishedAtMs, 7);
    assert.deepEqual([0, 1].map((i) => store.taskStatus(done.jobUuid, i)), before);
  });

  it('counts the results that settled each task: a repeated or late result is not accepted again', () => {
    const c = submitCmd(2);
    store.submit(c);
    store.recordResults([result(c.jobUuid, 0, 0, true)], 1);
    store.recordResults([result(c.jobUuid, 0, 0, true), result(c.jobUuid, 0, 1, true), result(c.jobUuid, 1, 0, true)], 2);
    store.recordResults([result(c.jobUuid, 1, 0, true)], 3);
    assert.deepEqual([...store.acceptedResults(c.jobUuid)], [
      [0, 1],
      [1, 1],
    ]);
    assert.deepEqual(store.accepted, { results: 2, duplicates: 0 });
  });

  it('reports a second settling of one task as a duplicate effect (the check can fail)', () => {
    const c = submitCmd(2);
    store.submit(c);
    store.recordResults([result(c.jobUuid, 0, 0, true)], 1);
    // injected: task 0 is opened again behind the store's back, as a broken settle guard would
    store.db.prepare('UPDATE tasks SET state = ? WHERE job_uuid = ? AND task_index = 0').run(TaskState.running, c.jobUuid);
    const effects = store.recordResults([{ ...result(c.jobUuid, 0, 1, true), outputs: [] }], 2);
    assert.deepEqual(effects.filter((e) => e.kind === 'result:duplicate'), [{ kind: 'result:duplicate', jobUuid: c.jobUuid, taskIndex: 0, times: 2 }]);
    assert.deepEqual(store.accepted, { results: 2, duplicates: 1 });
    assert.equal(store.acceptedResults(c.jobUuid).get(0), 2);
  });
});
