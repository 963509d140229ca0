// The `grid` client's edge cases, as real processes against a master played by an RpcServer
// in this test (so job ids, task states and logs are exactly what the case needs) and a real
// storage node: an ambiguous id prefix, `logs` of a task that never ran / whose log was not
// stored / out of range, and `results` of a partly failed job (docs/operations.md, README).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { GridError, RpcServer, silentLogger } from '../../src/common';
import { JobState, Message, MessageInput, NIL_UUID, TaskOutcome, TaskState, newUuid } from '../../src/messages';
import { StorageNode } from '../../src/storage/server';
import { client as storageClient, startNode } from '../storage/helpers';
import { makeTmpDir, runGrid } from '../helpers/grid';
import { freshSecurity, testSecurity } from '../helpers/security';
import { MASTER_ACCESS } from '../../src/master/node';

interface FakeTask {
  state: number;
  outcome: number;
  attempts: number;
  logFileUuid: string;
  logTail: string;
  error: string;
  outputs: { fileUuid: string; name: string }[];
}

interface FakeJob {
  state: number;
  tasks: FakeTask[];
}

describe('cli: client edge cases (fake master, real storage, real `grid` processes)', function () {
  this.timeout(60_000);
  const jobs = new Map<string, FakeJob>();
  const MASTER_ID = newUuid();
  let tmp: string;
  let master: RpcServer;
  let storage: StorageNode;
  let env: NodeJS.ProcessEnv;

  function handle(m: Message): MessageInput | undefined {
    switch (m.type) {
      case 'job_list2_request': {
        const ids = [...jobs.keys()].slice(0, m.limit);
        return { type: 'job_list2_response', node_uuid: MASTER_ID, request_uuid: m.request_uuid, job_uuids: ids, owner_keys: ids.map(() => '') };
      }
      case 'job_status2_request': {
        const j = jobs.get(m.job_uuid);
        if (!j) throw new GridError('NOT_FOUND', `no job ${m.job_uuid}`);
        const n = (s: number) => j.tasks.filter((t) => t.state === s).length;
        return {
          type: 'job_status2_response',
          node_uuid: MASTER_ID,
          request_uuid: m.request_uuid,
          job_uuid: m.job_uuid,
          state: j.state,
          task_count: j.tasks.length,
          tasks_pending: n(TaskState.pending),
          tasks_running: n(TaskState.running),
          tasks_succeeded: n(TaskState.succeeded),
          tasks_failed: n(TaskState.failed),
          tasks_cancelled: n(TaskState.cancelled),
          created_at_ms: 1,
          finished_at_ms: 2,
          program_name: 'job.js',
          error: j.state === JobState.failed ? 'task 1 failed after 1 attempt(s): exit code 3' : '',
        };
      }
      case 'task_status_request': {
        const t = jobs.get(m.job_uuid)?.tasks[m.task_index];
        if (!t) throw new GridError('NOT_FOUND', `no task ${m.task_index}`);
        return {
          type: 'task_status_response',
          node_uuid: MASTER_ID,
          request_uuid: m.request_uuid,
          job_uuid: m.job_uuid,
          worker_uuid: NIL_UUID,
          log_file_uuid: t.logFileUuid,
          task_index: m.task_index,
          attempts: t.attempts,
          exit_code: t.state === TaskState.failed ? 3 : 0,
          duration_ms: 5,
          state: t.state,
          outcome: t.outcome,
          output_file_uuids: t.outputs.map((o) => o.fileUuid),
          output_names: t.outputs.map((o) => o.name),
          input_names: [`in${m.task_index}.txt`],
          error: t.error,
          log_tail: t.logTail,
        };
      }
      default:
        throw new GridError('UNEXPECTED', `the fake master does not answer ${m.type}`);
    }
  }

  before(async () => {
    tmp = makeTmpDir('grid-cli-edge-');
    master = new RpcServer({ security: freshSecurity('fake-master', ['masters'], true), access: MASTER_ACCESS, bind: 'tcp://127.0.0.1:0', nodeUuid: MASTER_ID, log: silentLogger(), handler: (m) => handle(m) });
    const masterEp = await master.start();
    storage = await startNode(path.join(tmp, 'storage'));
    env = { GRID_MASTER: masterEp, GRID_STORAGE: storage.endpoint, GRID_DATA_DIR: path.join(tmp, 'no-dev'), GRID_MASTER_RETRY_WINDOW_MS: '5000' };
  });
  after(async () => {
    master?.close();
    await storage?.stop();
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  const task = (over: Partial<FakeTask> = {}): FakeTask => ({ state: TaskState.succeeded, outcome: TaskOutcome.ok, attempts: 1, logFileUuid: NIL_UUID, logTail: '', error: '', outputs: [], ...over });

  it('an ambiguous id prefix is refused, naming how many jobs match; a unique one resolves', async () => {
    const a = 'abcd1234-0000-4000-8000-000000000001';
    const b = 'abcd1299-0000-4000-8000-000000000002';
    jobs.set(a, { state: JobState.succeeded, tasks: [task()] });
    jobs.set(b, { state: JobState.succeeded, tasks: [task()] });
    const amb = await runGrid(['status', 'abcd12'], { env });
    assert.equal(amb.code, 1, amb.stderr);
    assert.match(amb.stderr, /^grid: BAD_REQUEST: 2 recent jobs start with abcd12.*give more of the id/s);
    assert.doesNotMatch(amb.stderr, /\n\s+at /, 'no stack trace');
    const one = await runGrid(['status', 'abcd1299'], { env });
    assert.equal(one.code, 0, one.stderr);
    assert.match(one.stdout, new RegExp(`job ${b}`));
    const none = await runGrid(['status', 'ffff'], { env });
    assert.equal(none.code, 1);
    assert.match(none.stderr, /NOT_FOUND: no recent job id starts with ffff/);
  });

  it('logs: a task that never ran, one whose log was not stored (the tail is shown), a stored log, and --task out of range', async () => {
    const c = storageClient(storage.endpoint);
    try {
      const stored = await c.putBuffer(Buffer.from('line one\nline two (no newline at the end)'));
      const id = newUuid();
      jobs.set(id, {
        state: JobState.running,
        tasks: [
          task({ state: TaskState.pending, attempts: 0, outcome: TaskOutcome.none }),
          task({ state: TaskState.failed, outcome: TaskOutcome.worker_error, logTail: 'tail the worker reported\n' }),
          task({ logFileUuid: stored.fileUuid }),
        ],
      });
      const never = await runGrid(['logs', id, '--task', '0'], { env });
      assert.equal(never.code, 0, never.stderr);
      assert.equal(never.stdout, '');
      assert.match(never.stderr, /\(task 0: the task has not run yet\)/);
      const noLog = await runGrid(['logs', id, '--task', '1'], { env });
      assert.equal(noLog.code, 0, noLog.stderr);
      assert.equal(noLog.stdout, 'tail the worker reported\n');
      assert.match(noLog.stderr, /\(task 1: no log was stored for its last attempt; shown is the log tail the worker reported\)/);
      const all = await runGrid(['logs', id], { env });
      assert.equal(all.code, 0, all.stderr);
      assert.match(all.stdout, /==> task 0 \(pending, 0 attempt\(s\), inputs in0\.txt\) <==\n==> task 1 \(failed.*\n.*tail the worker reported\n==> task 2 \(succeeded, 1 attempt\(s\), inputs in2\.txt\) <==\nline one\nline two \(no newline at the end\)\n$/);
      for (const bad of ['3', '-1', 'x']) {
        const r = await runGrid(['logs', id, '--task', bad], { env });
        assert.equal(r.code, 1, `--task ${bad}: ${r.stderr}`);
        assert.match(r.stderr, new RegExp(`BAD_REQUEST: --task must be a task index from 0 to 2, got "${bad.replace('-', '\\-')}"`));
      }
    } finally {
      c.close();
    }
  });

  it('results of a partly failed job: writes the succeeded tasks byte for byte, names what is missing, exits 2', async () => {
    const c = storageClient(storage.endpoint);
    try {
      const o0 = Buffer.from('output of task 0\n');
      const o2 = Buffer.from([0, 1, 2, 255, 254]);
      const f0 = await c.putBuffer(o0);
      const f2 = await c.putBuffer(o2);
      const id = newUuid();
      jobs.set(id, {
        state: JobState.failed,
        tasks: [
          task({ outputs: [{ fileUuid: f0.fileUuid, name: 'a.txt' }] }),
          task({ state: TaskState.failed, outcome: TaskOutcome.exit_nonzero, error: 'exited with code 3' }),
          task({ outputs: [{ fileUuid: f2.fileUuid, name: 'sub/b.bin' }] }),
          task({ state: TaskState.cancelled, outcome: TaskOutcome.cancelled, attempts: 0 }),
        ],
      });
      const out = path.join(tmp, 'partial');
      const r = await runGrid(['results', id, '--out', out, '--json'], { env });
      assert.equal(r.code, 2, `${r.stdout}\n${r.stderr}`);
      assert.deepEqual(JSON.parse(r.stdout), { jobId: id, state: 'failed', out, tasks: 4, tasksWithOutputs: 2, tasksFailed: 1, tasksCancelled: 1, tasksUnfinished: 0, files: 2, bytes: o0.length + o2.length });
      assert.match(r.stderr, new RegExp(`job ${id} is failed \\(1 failed, 1 cancelled\\): only the outputs of its 2 succeeded tasks were written`));
      assert.deepEqual(fs.readdirSync(out).sort(), ['0', '2']);
      assert.ok(fs.readFileSync(path.join(out, '0', 'a.txt')).equals(o0));
      assert.ok(fs.readFileSync(path.join(out, '2', 'sub', 'b.bin')).equals(o2));
    } finally {
      c.close();
    }
  });
});
