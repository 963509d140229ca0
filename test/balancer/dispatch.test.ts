// Scenario tests of the pure dispatch state machine with fake time (docs/balancer.md;
// docs/architecture.md "Master -> balancer", "Balancer -> worker (Paranoid Pirate)",
// "Results", "Cancel").
import assert from 'node:assert/strict';
import { notLeader } from '../../src/common/leader';
import { DispatchOutput } from '../../src/balancer';
import { ERROR_CODES, NIL_UUID, PROTOCOL_VERSION, TaskOutcome, newUuid } from '../../src/messages';
import {
  ackMsg,
  checkOutputs,
  connected,
  dispatchedTo,
  events,
  heartbeat,
  grantMsg,
  LONG_LEASE_MS,
  makeDispatcher,
  masterAcks,
  readyMsg,
  resultMsg,
  statusMsg,
  taskMsg,
  toMaster,
  toWorker,
  wire,
} from './helpers';

const M1 = 'tcp://10.0.0.1:7700';
const M2 = 'tcp://10.0.0.2:7700';
const M3 = 'tcp://10.0.0.3:7700';

/** A follower's answer, built like the masters build it (GridError NOT_LEADER -> error_reply). */
function notLeaderReply(leader: string | undefined) {
  const e = notLeader(leader);
  return wire<'error_reply'>({ type: 'error_reply', node_uuid: newUuid(), request_uuid: NIL_UUID, error_code: e.wireCode, message: e.describe() });
}

/** The kinds of a batch in order, with masterLink endpoints and message types: ordering matters to the shell. */
function masterTrace(out: DispatchOutput[]): string[] {
  return out.flatMap((o) => (o.kind === 'masterLink' ? [`link ${o.endpoint}`] : o.kind === 'toMaster' ? [`send ${(o.msg as { type: string }).type}`] : []));
}

const A = '00000000-0000-4000-8000-00000000000a';
const B = '00000000-0000-4000-8000-00000000000b';
const C = '00000000-0000-4000-8000-00000000000c';

describe('balancer dispatch state machine', () => {
  describe('master link (architecture.md "Master -> balancer")', () => {
    it('says hello at start and every interval until the master answers, then renews every leaseRenewMs (the hello is the heartbeat)', () => {
      const d = makeDispatcher();
      const out0 = checkOutputs(d.start(0));
      assert.equal(toMaster(out0, 'balancer_hello').length, 1);
      assert.equal(toMaster(out0, 'balancer_hello')[0]!.protocol_version, PROTOCOL_VERSION);
      assert.equal(toMaster(d.tick(999), 'balancer_hello').length, 0);
      assert.equal(toMaster(d.tick(1000), 'balancer_hello').length, 1, 'unanswered hello repeats after one interval');
      assert.equal(d.masterConnected, false);
      const heard = d.onMaster(heartbeat(newUuid()), 1100);
      assert.equal(events(heard, 'master:heard').length, 1);
      assert.equal(d.masterConnected, true);
      const t = d.tick(2000);
      assert.equal(toMaster(t, 'balancer_hello').length, 1, 'a renewal (lease request, credit and heartbeat in one)');
      assert.equal(events(t, 'master:hello').length, 0, 'a renewal is not a new hello');
      assert.equal(toMaster(d.tick(2050), 'balancer_hello').length, 0, 'at most one per leaseRenewMs');
      assert.equal(toMaster(d.tick(2100), 'balancer_hello').length, 1);
    });

    it('repeats an unanswered hello with backoff and jitter: masterHelloRetryBaseMs doubled up to masterHelloRetryMaxMs, reset by an answer', () => {
      const hellosAt = (d: ReturnType<typeof makeDispatcher>, fromMs: number, toMs: number): number[] => {
        const at: number[] = [];
        for (let t = fromMs; t <= toMs; t++) if (toMaster(d.tick(t), 'balancer_hello').length > 0) at.push(t);
        return at;
      };
      const d = makeDispatcher({ masterHelloRetryBaseMs: 100, masterHelloRetryMaxMs: 400, random: () => 0 });
      d.start(0);
      // equal jitter at random 0: half of 100, 200, 400, 400, ...
      assert.deepEqual(hellosAt(d, 1, 1000), [50, 150, 350, 550, 750, 950]);
      d.onMaster(heartbeat(newUuid()), 1000);
      const e = makeDispatcher({ masterHelloRetryBaseMs: 100, masterHelloRetryMaxMs: 400, random: () => 1 });
      e.start(0);
      assert.deepEqual(hellosAt(e, 1, 1000), [100, 300, 700], 'random 1: the whole 100, 200, 400');
      // heard, then silent: the silent hello starts the backoff from the base again
      e.onMaster(heartbeat(newUuid()), 1000);
      const lost = e.tick(4001);
      assert.deepEqual(events(lost, 'master:hello').map((x) => x.reason), ['silent']);
      assert.deepEqual(hellosAt(e, 4002, 4400), [4101, 4301]);
    });

    it('re-sends hello after livenessMissed silent intervals and dedupes the re-sent tasks', () => {
      const d = connected();
      const job = newUuid();
      d.onMaster(taskMsg(job, 0), 0);
      assert.equal(events(d.tick(3000), 'master:hello').length, 0, 'silent exactly 3000 ms is still alive');
      const lost = d.tick(3001);
      assert.equal(events(lost, 'master:lost').length, 1);
      assert.deepEqual(events(lost, 'master:hello').map((e) => e.reason), ['silent']);
      assert.equal(d.masterConnected, false);
      // the (restarted) master answers with every open task: the one held is ignored
      const again = d.onMaster(taskMsg(job, 0), 3100);
      assert.equal(events(again, 'task:duplicate').length, 1);
      assert.equal(d.status(3100).tasksHeld, 1);
    });

    it('logs an error_reply from the master (e.g. VERSION_MISMATCH) and keeps saying hello', () => {
      const d = makeDispatcher();
      d.start(0);
      // an error_reply is still a message from the master: log it
      const out = d.onMaster(
        { type: 'error_reply', node_uuid: newUuid(), request_uuid: newUuid(), error_code: ERROR_CODES.VERSION_MISMATCH, message: 'balancer speaks protocol 9' },
        10,
      );
      assert.equal(events(out, 'master:error')[0]!.code, ERROR_CODES.VERSION_MISMATCH);
      // and the hellos continue: every leaseRenewMs while the link counts as answered
      const later = [d.tick(100), d.tick(200), d.tick(300)];
      assert.deepEqual(later.map((o) => toMaster(o, 'balancer_hello').length), [1, 1, 1], 'hellos continue after the error');
      assert.ok(toMaster(later[2]!, 'balancer_hello')[0]!.request_seq > toMaster(later[0]!, 'balancer_hello')[0]!.request_seq);
    });
  });

  describe('dispatch (architecture.md "Balancer -> worker")', () => {
    it('fills slots + prefetch and no more, FIFO, then refills as results come back', () => {
      const d = connected();
      checkOutputs(d.onWorker(A, readyMsg(A, 2, 1), 0));
      const job = newUuid();
      const sent: number[] = [];
      for (let i = 0; i < 5; i++) for (const x of dispatchedTo(d.onMaster(taskMsg(job, i), 0))) sent.push(x.m.task_index);
      assert.deepEqual(sent, [0, 1, 2], 'capacity = slots + prefetch = 3, in task order');
      assert.equal(d.workerLoad(A), 3);
      assert.equal(d.status(0).tasksQueued, 2);
      const out = checkOutputs(d.onWorker(A, resultMsg(A, job, 1, 0), 10));
      assert.deepEqual(toWorker(out, A, 'result_ack'), [], 'acked end to end: only after the master recorded it');
      assert.deepEqual(toWorker(masterAcks(d, out, 11), A, 'result_ack').map((a) => a.task_index), [1]);
      assert.deepEqual(dispatchedTo(out).map((x) => x.m.task_index), [3]);
      assert.equal(d.workerLoad(A), 3);
    });

    it('prefers the worker caching most inputs; ties go to the least loaded', () => {
      const d = connected();
      const [f1, f2, f3] = [newUuid(), newUuid(), newUuid()];
      d.onWorker(A, readyMsg(A, 4, 0), 0);
      d.onWorker(B, readyMsg(B, 4, 0, [f1, f2]), 0);
      const job = newUuid();
      const o1 = dispatchedTo(d.onMaster(taskMsg(job, 0, { inputs: [f1, f2] }), 0));
      assert.equal(o1[0]!.workerId, B, 'B announced f1 and f2');
      const o2 = dispatchedTo(d.onMaster(taskMsg(job, 1, { inputs: [f3] }), 0));
      assert.equal(o2[0]!.workerId, A, 'no cache hit anywhere: least loaded (A has 0, B has 1)');
      // A learned f3 from what it was sent; now B and A have load 1 each
      const o3 = dispatchedTo(d.onMaster(taskMsg(job, 2, { inputs: [f3, newUuid()] }), 0));
      assert.equal(o3[0]!.workerId, A, 'A caches f3 since it was dispatched there');
      const ev = events(d.onMaster(taskMsg(job, 3, { inputs: [f1] }), 0), 'task:dispatched');
      assert.equal(ev[0]!.workerId, B);
      assert.equal(ev[0]!.cacheHits, 1);
    });

    it('bounds the per-worker cache LRU (maxCachedFilesPerWorker)', () => {
      const d = connected({ maxCachedFilesPerWorker: 2 });
      const files = [newUuid(), newUuid(), newUuid()];
      d.onWorker(A, readyMsg(A, 3, 0, files), 0);
      assert.equal(d.status(0).workers[0]!.cachedFiles, 2);
      d.onWorker(B, readyMsg(B, 3, 0), 0);
      const job = newUuid();
      // a task on a new file: no hits, equal load, join order -> A (A now has load 1)
      assert.equal(dispatchedTo(d.onMaster(taskMsg(job, 0, { inputs: [newUuid()] }), 0))[0]!.workerId, A);
      // files[0] was evicted (oldest of 3 with a bound of 2): least load wins -> B
      assert.equal(dispatchedTo(d.onMaster(taskMsg(job, 1, { inputs: [files[0]!] }), 0))[0]!.workerId, B);
      // files[2] is remembered: A wins although it is not less loaded than B
      assert.equal(dispatchedTo(d.onMaster(taskMsg(job, 2, { inputs: [files[2]!] }), 0))[0]!.workerId, A);
    });
  });

  describe('liveness (Paranoid Pirate)', () => {
    it('heartbeats every worker each interval and declares a silent one lost: its tasks go elsewhere, attempts counted', () => {
      const d = connected();
      d.onWorker(A, readyMsg(A, 2, 0), 0);
      const job = newUuid();
      d.onMaster(taskMsg(job, 0, { maxRetries: 2 }), 0);
      d.onMaster(taskMsg(job, 1, { maxRetries: 2 }), 0);
      assert.equal(d.workerLoad(A), 2);
      d.onWorker(B, readyMsg(B, 2, 0), 1500);
      const beats = d.tick(1500);
      assert.deepEqual(toWorker(beats, undefined, 'balancer_state').map((m) => [m.epoch, m.active]), [[1, 1], [1, 1]], 'one heartbeat (with the lease state) to each worker');
      d.onWorker(B, statusMsg(B), 2900); // B keeps talking, A does not
      assert.equal(events(d.tick(3000), 'worker:lost').length, 0);
      const out = checkOutputs(d.tick(3001));
      assert.deepEqual(events(out, 'worker:lost'), [{ type: 'worker:lost', workerId: A, reason: 'silent', tasks: 2 }]);
      const lost = toMaster(out, 'task_result');
      assert.deepEqual(lost.map((r) => [r.task_index, r.attempt, r.outcome, r.final, r.worker_uuid]), [
        [0, 0, TaskOutcome.lost, 0, A],
        [1, 0, TaskOutcome.lost, 0, A],
      ]);
      const re = dispatchedTo(out);
      assert.deepEqual(re.map((x) => [x.workerId, x.m.task_index, x.m.attempt]), [
        [B, 0, 1],
        [B, 1, 1],
      ]);
      assert.deepEqual(d.workerIds(), [B]);
    });

    it('a lost task with no attempts left settles failed (final = 1)', () => {
      const d = connected();
      d.onWorker(A, readyMsg(A, 1, 0), 0);
      const job = newUuid();
      d.onMaster(taskMsg(job, 0, { maxRetries: 0 }), 0);
      const out = d.onWorker(A, { type: 'worker_disconnect', node_uuid: A }, 10);
      const r = toMaster(out, 'task_result');
      assert.equal(r.length, 1);
      assert.equal(r[0]!.final, 1);
      assert.equal(r[0]!.outcome, TaskOutcome.lost);
      assert.equal(events(out, 'task:settled').length, 1);
      assert.equal(d.taskInfo(job, 0), undefined);
    });

    it('a worker that says worker_ready again loses what it held (restart) and is re-added', () => {
      const d = connected();
      d.onWorker(A, readyMsg(A, 1, 0), 0);
      const job = newUuid();
      d.onMaster(taskMsg(job, 0), 0);
      const out = d.onWorker(A, readyMsg(A, 1, 0), 100);
      assert.equal(events(out, 'worker:lost')[0]!.reason, 'rejoined');
      assert.equal(events(out, 'worker:joined')[0]!.rejoined, true);
      // only worker around, so the retry goes back to it, at attempt 1
      assert.deepEqual(dispatchedTo(out).map((x) => [x.workerId, x.m.attempt]), [[A, 1]]);
    });

    it('a registered worker seen on a new connection loses its tasks and is asked to re-register', () => {
      const d = connected();
      d.onWorker(A, readyMsg(A, 1, 0), 0, 'conn-1');
      d.onWorker(B, readyMsg(B, 1, 0), 0, 'conn-b');
      const job = newUuid();
      d.onMaster(taskMsg(job, 0), 0);
      assert.equal(d.taskInfo(job, 0)!.workerId, A);
      assert.equal(events(d.onWorker(A, statusMsg(A), 10, 'conn-1'), 'worker:lost').length, 0);
      const out = d.onWorker(A, statusMsg(A), 20, 'conn-2');
      assert.equal(events(out, 'worker:lost')[0]!.reason, 'reconnected');
      assert.equal(toWorker(out, A, 'error_reply')[0]!.error_code, ERROR_CODES.UNAVAILABLE);
      assert.deepEqual(dispatchedTo(out).map((x) => [x.workerId, x.m.attempt]), [[B, 1]]);
    });

    it('asks an unknown (or declared lost) worker to re-register, acking but ignoring its results', () => {
      const d = connected();
      const s = d.onWorker(C, statusMsg(C), 0);
      const err = toWorker(s, C, 'error_reply');
      assert.equal(err[0]!.error_code, ERROR_CODES.UNAVAILABLE);
      assert.match(err[0]!.message, /send worker_ready/);
      const job = newUuid();
      const r = d.onWorker(C, resultMsg(C, job, 0, 0), 0);
      assert.equal(toWorker(r, C, 'result_ack').length, 1);
      assert.equal(toMaster(r, 'task_result').length, 0);
      assert.deepEqual(d.workerIds(), []);
    });

    it('refuses a worker of another protocol or software version with VERSION_MISMATCH naming both', () => {
      const d = connected();
      const o1 = d.onWorker(A, readyMsg(A, 1, 0, [], { protocol: PROTOCOL_VERSION + 1 }), 0);
      const e1 = toWorker(o1, A, 'error_reply')[0]!;
      assert.equal(e1.error_code, ERROR_CODES.VERSION_MISMATCH);
      assert.match(e1.message, new RegExp(`protocol ${PROTOCOL_VERSION + 1}.*protocol ${PROTOCOL_VERSION}`));
      const o2 = d.onWorker(B, readyMsg(B, 1, 0, [], { software: '0.0.9' }), 0);
      const e2 = toWorker(o2, B, 'error_reply')[0]!;
      assert.equal(e2.error_code, ERROR_CODES.VERSION_MISMATCH);
      assert.match(e2.message, /"0\.0\.9".*"test-1\.0"/);
      assert.deepEqual(d.workerIds(), []);
      assert.equal(events(o2, 'worker:refused').length, 1);
    });
  });

  describe('results and retries (architecture.md "Results")', () => {
    it('forwards ok with final = 1, re-sends until the master acks, then acks the worker (end to end)', () => {
      const d = connected();
      d.onWorker(A, readyMsg(A, 1, 0), 0);
      const job = newUuid();
      d.onMaster(taskMsg(job, 0), 0);
      const out = d.onWorker(A, resultMsg(A, job, 0, 0), 100);
      assert.equal(toWorker(out, A, 'result_ack').length, 0, 'the worker keeps it until the master has it');
      const fwd = toMaster(out, 'task_result');
      assert.deepEqual(fwd.map((r) => [r.final, r.outcome, r.worker_uuid]), [[1, TaskOutcome.ok, A]]);
      // heartbeats keep the master alive, but no ack: re-sent after resultResendMs
      d.onMaster(heartbeat(newUuid()), 2000);
      assert.equal(toMaster(d.tick(2099), 'task_result').length, 0);
      assert.equal(toMaster(d.tick(2100), 'task_result').length, 1);
      // the master re-sends the task (e.g. after a hello) before it acked: still a duplicate
      assert.equal(events(d.onMaster(taskMsg(job, 0), 2200), 'task:duplicate').length, 1);
      assert.deepEqual(toWorker(d.onMaster(ackMsg(job, 0, 0), 2300), A, 'result_ack').map((a) => a.task_index), [0]);
      d.onMaster(heartbeat(newUuid()), 4000);
      assert.equal(toMaster(d.tick(4200), 'task_result').length, 0, 'acked results are forgotten');
      assert.equal(d.status(4200).unackedResults, 0);
    });

    it('a failure with retries left goes to the master with final = 0, backs off, then retries on another worker', () => {
      const d = connected();
      d.onWorker(A, readyMsg(A, 2, 0), 0);
      d.onWorker(B, readyMsg(B, 1, 0), 0);
      const job = newUuid();
      const first = dispatchedTo(d.onMaster(taskMsg(job, 0, { maxRetries: 2 }), 0));
      assert.equal(first[0]!.workerId, A);
      const out = d.onWorker(A, resultMsg(A, job, 0, 0, TaskOutcome.exit_nonzero), 100);
      assert.deepEqual(toMaster(out, 'task_result').map((r) => [r.attempt, r.final]), [[0, 0]]);
      assert.equal(dispatchedTo(out).length, 0, 'not before the backoff');
      assert.equal(events(out, 'task:retry')[0]!.delayMs, 500, 'retryBackoffBaseMs * 2^0');
      assert.equal(dispatchedTo(d.tick(599)).length, 0);
      const again = dispatchedTo(d.tick(600));
      assert.deepEqual(again.map((x) => [x.workerId, x.m.attempt]), [[B, 1]], 'B, although A is less loaded');
      // attempt 1 fails on B: backoff 1000 ms, then A (B failed it last, A failed it first: both failed; A least loaded)
      const out2 = d.onWorker(B, resultMsg(B, job, 0, 1, TaskOutcome.timeout), 700);
      assert.equal(events(out2, 'task:retry')[0]!.delayMs, 1000);
      assert.deepEqual(dispatchedTo(d.tick(1700)).map((x) => x.m.attempt), [2]);
    });

    it('jitters the retry backoff between half and all of min(max, base * 2^attempt) (src/common/backoff.ts)', () => {
      for (const [rnd, want] of [[0, 500], [0.5, 750], [1, 1000]] as const) {
        const d = connected({ retryBackoffBaseMs: 500, retryBackoffMaxMs: 10_000, random: () => rnd });
        d.onWorker(A, readyMsg(A, 1, 0), 0);
        const job = newUuid();
        d.onMaster(taskMsg(job, 0, { maxRetries: 5, attempt: 1 }), 0);
        const out = d.onWorker(A, resultMsg(A, job, 0, 1, TaskOutcome.exit_nonzero), 0);
        assert.equal(events(out, 'task:retry')[0]!.delayMs, want, `random ${rnd}`);
        assert.equal(dispatchedTo(d.tick(want - 1)).length, 0, 'not before its backoff');
        assert.equal(dispatchedTo(d.tick(want)).length, 1, 'at the end of its backoff');
      }
    });

    it('caps the backoff at retryBackoffMaxMs', () => {
      const d = connected({ retryBackoffBaseMs: 500, retryBackoffMaxMs: 1500 });
      d.onWorker(A, readyMsg(A, 1, 0), 0);
      const job = newUuid();
      d.onMaster(taskMsg(job, 0, { maxRetries: 10, attempt: 5 }), 0);
      const out = d.onWorker(A, resultMsg(A, job, 0, 5, TaskOutcome.exit_nonzero), 0);
      assert.equal(events(out, 'task:retry')[0]!.delayMs, 1500);
    });

    it('the last allowed failure is forwarded with final = 1 and the task is forgotten', () => {
      const d = connected();
      d.onWorker(A, readyMsg(A, 1, 0), 0);
      const job = newUuid();
      d.onMaster(taskMsg(job, 0, { maxRetries: 1, attempt: 1 }), 0);
      const out = d.onWorker(A, resultMsg(A, job, 0, 1, TaskOutcome.memory_limit), 10);
      assert.deepEqual(toMaster(out, 'task_result').map((r) => [r.attempt, r.final, r.outcome]), [[1, 1, TaskOutcome.memory_limit]]);
      assert.equal(events(out, 'task:settled').length, 1);
      assert.equal(d.taskInfo(job, 0), undefined);
      assert.equal(d.workerLoad(A), 0);
    });

    it('a duplicate waits for the master ack; duplicate and stale results are then acknowledged but ignored', () => {
      const d = connected();
      d.onWorker(A, readyMsg(A, 1, 0), 0);
      d.onWorker(B, readyMsg(B, 1, 0), 0);
      const job = newUuid();
      d.onMaster(taskMsg(job, 0), 0);
      d.onMaster(taskMsg(job, 1), 0);
      d.onWorker(A, resultMsg(A, job, 0, 0), 10);
      const early = d.onWorker(A, resultMsg(A, job, 0, 0), 15);
      assert.equal(toWorker(early, A, 'result_ack').length, 0, 'forwarded, not yet recorded: no ack');
      assert.equal(toMaster(early, 'task_result').length, 0, 'and not forwarded twice');
      d.onMaster(ackMsg(job, 0, 0), 16);
      const dup = d.onWorker(A, resultMsg(A, job, 0, 0), 20);
      assert.equal(toWorker(dup, A, 'result_ack').length, 1);
      assert.equal(toMaster(dup, 'task_result').length, 0);
      assert.equal(events(dup, 'result:ignored').length, 1);
      // task 1 on B: B is declared lost, the task goes to A at attempt 1; B's late result is stale
      for (let t = 1000; t <= 3000; t += 1000) d.onWorker(A, statusMsg(A), t);
      const lost = d.tick(3100);
      assert.deepEqual(dispatchedTo(lost).map((x) => [x.workerId, x.m.task_index, x.m.attempt]), [[A, 1, 1]]);
      const stale = d.onWorker(A, resultMsg(A, job, 1, 0), 3200);
      assert.equal(toWorker(stale, A, 'result_ack').length, 1);
      assert.equal(toMaster(stale, 'task_result').length, 0);
      assert.equal(events(stale, 'result:ignored')[0]!.why, 'stale');
      assert.equal(d.taskInfo(job, 1)!.attempt, 1);
    });

    it('forwards task_started from the worker holding the attempt only', () => {
      const d = connected();
      d.onWorker(A, readyMsg(A, 1, 0), 0);
      d.onWorker(B, readyMsg(B, 1, 0), 0);
      const job = newUuid();
      d.onMaster(taskMsg(job, 0), 0);
      const msg = { type: 'task_started' as const, node_uuid: A, job_uuid: job, worker_uuid: A, task_index: 0, attempt: 0, epoch: 1 };
      assert.deepEqual(toMaster(d.onWorker(A, msg, 5), 'task_started').map((m) => [m.job_uuid, m.worker_uuid]), [[job, A]]);
      assert.equal(toMaster(d.onWorker(B, { ...msg, node_uuid: B, worker_uuid: B }, 5), 'task_started').length, 0);
    });
  });

  describe('cancel (architecture.md "Cancel")', () => {
    it("drops the job's queued tasks, tells the workers running them, and ignores their late results", () => {
      const d = connected();
      d.onWorker(A, readyMsg(A, 1, 0), 0);
      d.onWorker(B, readyMsg(B, 1, 0), 0);
      const job = newUuid();
      const other = newUuid();
      for (let i = 0; i < 3; i++) d.onMaster(taskMsg(job, i), 0);
      d.onMaster(taskMsg(other, 0), 0);
      assert.equal(d.status(0).tasksQueued, 2);
      const out = d.onMaster({ type: 'task_cancel', node_uuid: newUuid(), job_uuid: job, task_index: 0, attempt: 0, scope: 0 }, 10);
      assert.deepEqual(
        toWorker(out, undefined, 'task_cancel').map((m) => m.job_uuid),
        [job, job],
      );
      assert.deepEqual(events(out, 'task:cancelled'), [{ type: 'task:cancelled', jobUuid: job, dropped: 1, running: 2 }]);
      // the freed capacity goes to the other job at once
      assert.deepEqual(dispatchedTo(out).map((x) => x.m.job_uuid), [other]);
      const late = d.onWorker(B, resultMsg(B, job, 1, 0, TaskOutcome.cancelled), 20);
      assert.equal(toWorker(late, B, 'result_ack').length, 1);
      assert.equal(toMaster(late, 'task_result').length, 0);
      assert.equal(d.status(20).tasksHeld, 1);
    });
  });

  describe('bounds', () => {
    it('credit: each hello asks for at most maxQueuedTasks - held more tasks; a task over the bound is dropped with a reason', () => {
      const d = connected({ maxQueuedTasks: 2 });
      d.onWorker(A, readyMsg(A, 1, 0), 0);
      const job = newUuid();
      const h0 = toMaster(d.tick(100), 'balancer_hello')[0]!;
      assert.deepEqual([h0.fed, h0.credit_limit, h0.epoch], [0, 2, 1], 'room for 2');
      d.onMaster(taskMsg(job, 0), 100);
      d.onMaster(taskMsg(job, 1), 100);
      const h1 = toMaster(d.tick(200), 'balancer_hello')[0]!;
      assert.deepEqual([h1.fed, h1.credit_limit], [2, 2], 'no room: the limit does not grow');
      const out = d.onMaster(taskMsg(job, 2), 200); // a master that ignored the credit
      const ref = events(out, 'task:refused');
      assert.equal(ref.length, 1);
      assert.match(ref[0]!.reason, /maxQueuedTasks = 2/);
      assert.equal(d.status(200).tasksHeld, 2);
      const r = d.onWorker(A, resultMsg(A, job, 0, 0), 250);
      masterAcks(d, r, 260);
      const h2 = toMaster(d.tick(300), 'balancer_hello')[0]!;
      assert.deepEqual([h2.fed, h2.credit_limit], [3, 4], 'one settled: room for one more');
    });

    it('refuses workers over maxWorkers with UNAVAILABLE', () => {
      const d = connected({ maxWorkers: 1 });
      d.onWorker(A, readyMsg(A, 1, 0), 0);
      const out = d.onWorker(B, readyMsg(B, 1, 0), 0);
      assert.equal(toWorker(out, B, 'error_reply')[0]!.error_code, ERROR_CODES.UNAVAILABLE);
      assert.deepEqual(d.workerIds(), [A]);
    });

    it('refuses a worker with 0 slots', () => {
      const d = connected();
      const out = d.onWorker(A, readyMsg(A, 0, 3), 0);
      assert.equal(toWorker(out, A, 'error_reply')[0]!.error_code, ERROR_CODES.BAD_REQUEST);
    });

    it('over maxUnackedResults a worker result is not acked (the worker re-sends it later)', () => {
      const d = connected({ maxUnackedResults: 1 });
      d.onWorker(A, readyMsg(A, 2, 0), 0);
      const job = newUuid();
      d.onMaster(taskMsg(job, 0), 0);
      d.onMaster(taskMsg(job, 1), 0);
      d.onWorker(A, resultMsg(A, job, 0, 0), 10);
      const out = d.onWorker(A, resultMsg(A, job, 1, 0), 10);
      assert.equal(toWorker(out, A, 'result_ack').length, 0);
      assert.equal(toMaster(out, 'task_result').length, 0);
      assert.equal(events(out, 'result:refused').length, 1);
      assert.deepEqual(toWorker(d.onMaster(ackMsg(job, 0, 0), 20), A, 'result_ack').map((a) => a.task_index), [0]);
      const again = d.onWorker(A, resultMsg(A, job, 1, 0), 30);
      assert.equal(toMaster(again, 'task_result').length, 1);
      assert.deepEqual(toWorker(masterAcks(d, again, 40), A, 'result_ack').map((a) => a.task_index), [1]);
    });

    it('answers a message type workers must not send with UNEXPECTED', () => {
      const d = connected();
      const out = d.onWorker(A, { type: 'job_list_request', node_uuid: A, request_uuid: newUuid(), limit: 1 }, 0);
      assert.equal(toWorker(out, A, 'error_reply')[0]!.error_code, ERROR_CODES.UNEXPECTED);
    });
  });
  describe('replicated masters (architecture.md "Replicated masters")', () => {
    it('NOT_LEADER with a hint: moves the link to the named leader and says hello there at once', () => {
      const d = makeDispatcher({ masters: [M1, M2, M3] });
      assert.equal(d.currentMaster, M1);
      assert.deepEqual(masterTrace(d.start(0)), ['send balancer_hello']);
      const out = checkOutputs(d.onMaster(notLeaderReply(M3), 5));
      assert.deepEqual(masterTrace(out), [`link ${M3}`, 'send balancer_hello'], 'the new link first, then the hello on it');
      assert.deepEqual(events(out, 'master:redirect'), [{ type: 'master:redirect', from: M1, to: M3, why: 'not-leader', hint: M3 }]);
      assert.equal(events(out, 'master:heard').length, 0, 'a follower is no answer');
      assert.equal(d.masterConnected, false);
      assert.equal(d.currentMaster, M3);
      d.onMaster(heartbeat(newUuid()), 10);
      assert.equal(d.masterConnected, true);
      const st = d.status(10).master;
      assert.deepEqual([st.endpoint, st.endpoints], [M3, [M1, M2, M3]]);
    });

    it('NOT_LEADER without a leader (election): next master, hellos at least masterRedirectMinMs apart', () => {
      const d = makeDispatcher({ masters: [M1, M2, M3], masterRedirectMinMs: 200 });
      d.start(0);
      const a = d.onMaster(notLeaderReply(undefined), 5);
      assert.deepEqual(masterTrace(a), [`link ${M2}`, 'send balancer_hello'], 'the first redirect says hello at once');
      assert.equal(events(a, 'master:redirect')[0]!.hint, null);
      const b = d.onMaster(notLeaderReply(undefined), 10);
      assert.deepEqual(masterTrace(b), [`link ${M3}`], 'moved, but no hello 5 ms after the last redirect hello');
      assert.equal(toMaster(d.tick(204), 'balancer_hello').length, 0);
      const due = d.tick(205);
      assert.deepEqual(masterTrace(due), ['send balancer_hello'], 'hello once the minimum gap is over');
      assert.deepEqual(events(due, 'master:hello').map((e) => e.reason), ['redirect']);
      // a hint naming a master outside the list is followed too
      const outside = 'tcp://10.0.0.9:7700';
      const c = d.onMaster(notLeaderReply(outside), 700);
      assert.deepEqual(masterTrace(c), [`link ${outside}`, 'send balancer_hello']);
      assert.equal(d.currentMaster, outside);
    });

    it('NOT_LEADER to a result after a leader change: unacked results are re-sent on the new link once it answers', () => {
      const d = makeDispatcher({ masters: [M1, M2], resultResendMs: 2000, adoptWaitMs: 0 });
      d.start(0);
      d.onMaster(heartbeat(newUuid()), 0);
      d.onMaster(grantMsg(1, 1, LONG_LEASE_MS), 0);
      d.onWorker(A, readyMsg(A, 1, 0), 0);
      const job = newUuid();
      d.onMaster(taskMsg(job, 0), 0);
      assert.equal(toMaster(d.onWorker(A, resultMsg(A, job, 0, 0), 100), 'task_result').length, 1);
      // M1 lost leadership and answers the result (or a heartbeat) with NOT_LEADER naming M2
      const out = d.onMaster(notLeaderReply(M2), 150);
      assert.deepEqual(masterTrace(out), [`link ${M2}`, 'send balancer_hello']);
      assert.equal(toMaster(d.tick(160), 'task_result').length, 0, 'not before the new master answered');
      d.onMaster(heartbeat(newUuid()), 170);
      const resent = d.tick(180);
      assert.deepEqual(toMaster(resent, 'task_result').map((r) => [r.task_index, r.final]), [[0, 1]], 'at once, not after resultResendMs');
      d.onMaster(taskMsg(job, 0), 190); // the new leader re-sends its open task: deduplicated
      assert.equal(d.status(190).tasksHeld, 0);
      d.onMaster(ackMsg(job, 0, 0), 200);
      assert.equal(d.status(200).unackedResults, 0);
    });

    it('a silent master is skipped: next in the list, and on to the next while hellos go unanswered', () => {
      const d = makeDispatcher({ masters: [M1, M2, M3] });
      d.start(0);
      d.onMaster(heartbeat(newUuid()), 0);
      assert.equal(masterTrace(d.tick(3000)).includes(`link ${M2}`), false, 'silent exactly the liveness time is alive');
      const lost = d.tick(3001);
      assert.equal(events(lost, 'master:lost').length, 1);
      assert.deepEqual(events(lost, 'master:redirect').map((e) => [e.from, e.to, e.why]), [[M1, M2, 'silent']]);
      assert.deepEqual(masterTrace(lost), [`link ${M2}`, 'send balancer_hello']);
      // M2 is dead too: hellos repeat each interval, then after the liveness time M3 is tried
      assert.deepEqual(masterTrace(d.tick(4001)), ['send balancer_hello']);
      const next = d.tick(6002);
      assert.deepEqual(events(next, 'master:redirect').map((e) => [e.from, e.to, e.why]), [[M2, M3, 'unanswered']]);
      assert.deepEqual(masterTrace(next), [`link ${M3}`, 'send balancer_hello']);
      d.onMaster(heartbeat(newUuid()), 6100);
      assert.equal(d.masterConnected, true);
      assert.equal(d.currentMaster, M3);
      // wraps around the list
      const wrap = d.tick(9200);
      assert.deepEqual(events(wrap, 'master:redirect').map((e) => e.to), [M1]);
    });

    it('with one master, silence keeps the same link (no reconnect) and says hello again', () => {
      const d = connected();
      const out = d.tick(3001);
      assert.deepEqual(masterTrace(out), ['send balancer_hello']);
      assert.equal(events(out, 'master:redirect').length, 0);
      assert.equal(events(d.tick(100_000), 'master:redirect').length, 0, 'unanswered hellos never move a single master');
    });
  });

  describe('per-attempt deadlines', () => {
    // timeout_ms is 10_000 in taskMsg
    const o = { taskDeadlineSlackMs: 1000, queuedDeadlineMs: 5000, defaultTaskTimeoutMs: 60_000 };

    it('an attempt with no result by its deadline is settled lost and retried elsewhere; its late result is acked and ignored', () => {
      const d = connected(o);
      d.onWorker(A, readyMsg(A, 1, 0), 0);
      const job = newUuid();
      assert.equal(dispatchedTo(d.onMaster(taskMsg(job, 0, { maxRetries: 2 }), 0))[0]!.workerId, A);
      d.onWorker(A, { type: 'task_started', node_uuid: A, job_uuid: job, worker_uuid: A, task_index: 0, attempt: 0, epoch: 1 }, 100);
      assert.equal(d.taskInfo(job, 0)!.deadlineMs, 100 + 10_000 + 1000, 'from task_started: timeout + slack');
      d.onWorker(B, readyMsg(B, 1, 0), 200);
      for (const t of [5000, 10_000, 11_100]) {
        d.onWorker(A, statusMsg(A), t); // A stays alive the whole time
        d.onWorker(B, statusMsg(B), t);
        assert.equal(events(d.tick(t), 'task:deadline').length, 0, `not yet at ${t}`);
      }
      d.onWorker(A, statusMsg(A), 11_101);
      d.onWorker(B, statusMsg(B), 11_101);
      const out = checkOutputs(d.tick(11_101));
      assert.deepEqual(events(out, 'task:deadline').map((e) => [e.workerId, e.attempt, e.budgetMs, e.from]), [[A, 0, 11_000, 'task_started']]);
      const lost = toMaster(out, 'task_result');
      assert.deepEqual(lost.map((r) => [r.attempt, r.outcome, r.final, r.worker_uuid]), [[0, TaskOutcome.lost, 0, A]]);
      assert.match(lost[0]!.error, /no result from worker .* within 11000 ms of task_started/);
      assert.deepEqual(dispatchedTo(out).map((x) => [x.workerId, x.m.attempt]), [[B, 1]], 'retried at once on the other worker');
      assert.equal(d.workerLoad(A), 0, "A's slot is free again");
      assert.equal(d.status(11_101).counters.deadlinesMissed, 1);
      // the result of attempt 0 arrives late: acknowledged so A forgets it, but ignored
      const late = d.onWorker(A, resultMsg(A, job, 0, 0), 11_200);
      assert.equal(toWorker(late, A, 'result_ack').length, 1);
      assert.deepEqual(events(late, 'result:ignored').map((e) => e.why), ['stale']);
      assert.equal(toMaster(late, 'task_result').length, 0);
      assert.deepEqual(d.taskInfo(job, 0), { state: 'running', attempt: 1, workerId: B, notBeforeMs: 0, deadlineMs: 11_101 + 11_000 + 5000 });
    });

    it('a prefetched attempt without task_started gets queuedDeadlineMs more; timeout_ms 0 uses defaultTaskTimeoutMs; the last attempt settles failed', () => {
      const d = connected(o);
      d.onWorker(A, readyMsg(A, 1, 1), 0);
      const job = newUuid();
      const spec = taskMsg(job, 0, { maxRetries: 0 });
      d.onMaster(wire<'task_dispatch'>({ ...spec, timeout_ms: 0 }), 0);
      assert.equal(d.taskInfo(job, 0)!.deadlineMs, 60_000 + 1000 + 5000);
      for (let t = 1000; t <= 66_000; t += 1000) {
        d.onWorker(A, statusMsg(A), t);
        d.tick(t);
      }
      assert.equal(d.taskInfo(job, 0)!.state, 'running');
      d.onWorker(A, statusMsg(A), 66_001);
      const out = d.tick(66_001);
      assert.deepEqual(events(out, 'task:deadline').map((e) => [e.budgetMs, e.from]), [[66_000, 'dispatch']]);
      assert.deepEqual(toMaster(out, 'task_result').map((r) => [r.outcome, r.final]), [[TaskOutcome.lost, 1]]);
      assert.equal(d.taskInfo(job, 0), undefined, 'settled: no attempts left');
      assert.equal(d.status(66_001).counters.settledFailed, 1);
    });

    it('a result in time clears the deadline (nothing fires later)', () => {
      const d = connected(o);
      d.onWorker(A, readyMsg(A, 1, 0), 0);
      const job = newUuid();
      d.onMaster(taskMsg(job, 0), 0);
      d.onWorker(A, resultMsg(A, job, 0, 0), 500);
      d.onMaster(ackMsg(job, 0, 0), 600);
      for (let t = 1000; t <= 40_000; t += 1000) {
        d.onWorker(A, statusMsg(A), t);
        assert.equal(events(d.tick(t), 'task:deadline').length, 0);
      }
    });
  });
});
