// Deterministic tests of the balancer pair's lease view (src/balancer/pair.ts) and of the
// dispatcher's fencing and failover adoption built on it, with injected time
// (docs/balancer.md, "The pair", "The lease", "Failover").
import assert from 'node:assert/strict';
import { LeaseHolder } from '../../src/balancer/pair';
import { CancelScope, ERROR_CODES, HELD_ENTRY_BYTES, HeldState, NIL_UUID, TaskOutcome, newUuid } from '../../src/messages';
import { dispatchedTo, events, grantMsg, heartbeat, makeDispatcher, readyMsg, resultMsg, taskMsg, toMaster, toWorker, wire } from './helpers';

const A = '00000000-0000-4000-8000-00000000000a';
const B = '00000000-0000-4000-8000-00000000000b';

function holder(): LeaseHolder {
  return new LeaseHolder({ leaseRenewMs: 100, leaseSafetyMarginMs: 100 });
}

describe('balancer pair: the lease as this balancer sees it', () => {
  it('measures the lease from when the request was SENT, minus the safety margin', () => {
    const h = holder();
    const seq = h.request(1000);
    assert.equal(h.onGrant(1, seq, 400, 1150), 'activated', 'the grant arrived 150 ms later');
    assert.equal(h.active(1299), true);
    assert.equal(h.active(1300), false, 'sent at 1000 + 400 - 100 margin: over at 1300, not 1450');
    assert.equal(h.epoch, 1);
  });

  it('renewal just before expiry extends it; a grant that arrives after its own end changes nothing', () => {
    const h = holder();
    h.onGrant(1, h.request(0), 400, 10);
    const s2 = h.request(290);
    assert.equal(h.onGrant(1, s2, 400, 299), 'renewed');
    assert.equal(h.active(589), true);
    assert.equal(h.active(590), false);
    const s3 = h.request(600);
    assert.equal(h.onGrant(1, s3, 400, 900), 'ignored', 'sent at 600: it ended at 900 already');
    assert.equal(h.active(900), false);
  });

  it('a clock step backwards cannot revive an expired lease; a step forwards ends it', () => {
    const h = holder();
    h.onGrant(1, h.request(1000), 400, 1000);
    assert.equal(h.active(5000), false, 'a jump forward: expired');
    assert.equal(h.active(1100), false, 'time is clamped: going back to 1100 does not make it valid again');
    const s = h.request(1200); // sent "at" 5000 after the clamp
    assert.equal(h.onGrant(1, s, 400, 1250), 'renewed');
    assert.equal(h.active(5299), true);
  });

  it('ignores grants of an older epoch or of a request it does not know; a newer epoch activates again', () => {
    const h = holder();
    h.onGrant(2, h.request(0), 400, 0);
    assert.equal(h.onGrant(1, h.request(10), 400, 10), 'ignored');
    assert.equal(h.onGrant(2, 999, 400, 10), 'ignored', 'unknown request_seq of the held epoch');
    assert.equal(h.onGrant(3, h.request(20), 400, 20), 'activated');
  });

  it('a new epoch is taken even from a late grant (tasks fed under it are kept), but dispatching waits for a valid renewal', () => {
    const h = holder();
    const seq = h.request(0);
    assert.equal(h.onGrant(1, seq, 400, 350), 'activated', 'arrived after its own end (0 + 400 - 100)');
    assert.equal(h.epoch, 1);
    assert.equal(h.claimedEpoch, 1, 'it asks as the holder of epoch 1: no new epoch needed');
    assert.equal(h.active(350), false, 'no dispatch on a grant that is not valid on its own clock');
    assert.equal(h.onGrant(1, h.request(360), 400, 370), 'renewed');
    assert.equal(h.active(370), true);
    const u = holder();
    assert.equal(u.onGrant(2, 12345, 400, 0), 'activated', 'a request too old to remember: the epoch still counts');
    assert.equal(u.active(0), false);
  });

  it('a refusal ends the lease at once and makes the next request claim epoch 0 (a new epoch is needed)', () => {
    const h = holder();
    h.onGrant(1, h.request(0), 400, 0);
    assert.equal(h.onRefused(10), true, 'it held an epoch: drop its state');
    assert.equal(h.active(10), false);
    assert.equal(h.claimedEpoch, 0);
    assert.equal(h.onRefused(20), false, 'only once');
  });
});

describe('dispatcher: fencing and failover adoption', () => {
  function started(role: 'primary' | 'auxiliary' = 'auxiliary') {
    const d = makeDispatcher({ role, adoptWaitMs: 500 });
    d.start(0);
    d.onMaster(heartbeat(newUuid()), 0);
    return d;
  }

  it('a balancer never granted the lease dispatches nothing and refuses to ack results', () => {
    const d = started();
    d.onWorker(A, readyMsg(A, 2, 0), 0);
    const refused = d.onMaster(wire<'error_reply'>({ type: 'error_reply', node_uuid: newUuid(), request_uuid: NIL_UUID, error_code: ERROR_CODES.LEASE_HELD, message: 'held' }), 10);
    assert.equal(events(refused, 'master:error').length, 0, 'LEASE_HELD is the lease answer, not an error');
    const t = d.onMaster(taskMsg(newUuid(), 0, { epoch: 1 }), 20);
    assert.equal(events(t, 'task:stale').length, 1, 'a task under an epoch it does not hold is dropped');
    assert.equal(dispatchedTo(t).length, 0);
    assert.equal(toWorker(d.tick(1000), A, 'balancer_state')[0]!.active, 0, 'workers are told it is on standby');
    const hello = toMaster(d.tick(1100), 'balancer_hello')[0]!;
    assert.deepEqual([hello.role, hello.epoch], [1, 0], 'auxiliary, holding no epoch');
  });

  it('stops dispatching when the lease runs out without renewal (fencing), and resumes after a renewal', () => {
    const d = makeDispatcher({ role: 'primary', adoptWaitMs: 0 });
    d.start(0); // hello seq 1 at 0
    d.onMaster(heartbeat(newUuid()), 0);
    d.onMaster(grantMsg(1, 1, 400), 10); // valid until 0 + 400 - 100
    d.onWorker(A, readyMsg(A, 1, 0), 20);
    const job = newUuid();
    assert.equal(dispatchedTo(d.onMaster(taskMsg(job, 0), 30)).length, 1);
    d.onWorker(A, resultMsg(A, job, 0, 0), 40);
    const expired = d.tick(300);
    assert.deepEqual(events(expired, 'lease:expired').map((e) => e.epoch), [1]);
    assert.equal(toWorker(expired, A, 'balancer_state')[0]!.active, 0);
    assert.equal(dispatchedTo(d.onMaster(taskMsg(job, 1), 310)).length, 0, 'no dispatch after the lease ran out');
    // the renewal sent at the tick of 300 (seq n) comes back: same epoch, dispatching again
    const seq = toMaster(d.tick(400), 'balancer_hello')[0]!.request_seq;
    const back = d.onMaster(grantMsg(1, seq, 400), 410);
    assert.deepEqual(dispatchedTo(back).map((x) => [x.m.task_index, x.m.epoch]), [[1, 1]], 'renewed: the waiting task goes out');
  });

  it('on a new epoch it tells the workers, waits for what they hold, adopts running attempts and re-dispatches only the rest', () => {
    const d = started();
    d.onWorker(A, readyMsg(A, 2, 0), 0);
    d.onWorker(B, readyMsg(B, 2, 0), 0);
    const act = d.onMaster(grantMsg(2, 1, 100_000), 50);
    assert.deepEqual(events(act, 'lease:activated'), [{ type: 'lease:activated', epoch: 2, waitingFor: 2 }]);
    assert.deepEqual(toWorker(act, undefined, 'balancer_state').map((m) => [m.epoch, m.active]), [[2, 1], [2, 1]]);
    const job = newUuid();
    // the master feeds the open tasks of the new epoch before the workers answered
    for (let i = 0; i < 3; i++) assert.equal(dispatchedTo(d.onMaster(taskMsg(job, i, { epoch: 2 }), 60)).length, 0, 'no dispatch while adopting');
    // A runs task 1 (attempt 0) since before the failover, and has task 2's result unacked
    const entries = Buffer.alloc(2 * HELD_ENTRY_BYTES);
    entries.writeUInt32LE(1, 0);
    entries.writeUInt32LE(0, 4);
    entries.writeUInt32LE(HeldState.running, 8);
    entries.writeUInt32LE(2, 12);
    entries.writeUInt32LE(0, 16);
    entries.writeUInt32LE(HeldState.finished, 20);
    d.onWorker(A, wire<'worker_holding'>({ type: 'worker_holding', node_uuid: A, epoch: 2, entries_length: entries.length, job_uuids: [job, job], entries }), 70);
    const done = d.onWorker(B, wire<'worker_holding'>({ type: 'worker_holding', node_uuid: B, epoch: 2, entries_length: 0, job_uuids: [], entries: Buffer.alloc(0) }), 80);
    assert.deepEqual(events(done, 'lease:adopted').map((e) => [e.epoch, e.timedOut]), [[2, false]]);
    assert.deepEqual(dispatchedTo(done).map((x) => [x.workerId, x.m.task_index, x.m.epoch]), [[B, 0, 2]], 'only the task nobody holds is dispatched');
    assert.deepEqual(d.taskInfo(job, 1), { state: 'running', attempt: 0, workerId: A, notBeforeMs: 0, deadlineMs: d.taskInfo(job, 1)!.deadlineMs });
    // A's result of the adopted task 2 goes to the master once, under the new epoch
    const r = d.onWorker(A, resultMsg(A, job, 2, 0, 1, 1), 90);
    assert.deepEqual(toMaster(r, 'task_result').map((m) => [m.task_index, m.attempt, m.epoch, m.final]), [[2, 0, 2, 1]]);
    assert.equal(d.counters.tasksAdopted, 2);
  });

  it('a balancer activated with no worker yet waits for workers to join and report (a restarted holder), at most adoptWaitMs', () => {
    const d = started();
    const act = d.onMaster(grantMsg(1, 1, 100_000), 0);
    assert.deepEqual(events(act, 'lease:activated').map((e) => e.waitingFor), [0]);
    assert.equal(events(act, 'lease:adopted').length, 0, 'not finished with nobody registered');
    const job = newUuid();
    d.onMaster(taskMsg(job, 0), 10);
    d.onMaster(taskMsg(job, 1), 10);
    d.onWorker(A, readyMsg(A, 2, 0), 100); // joins: greeted with the lease state, awaited
    const entries = Buffer.alloc(HELD_ENTRY_BYTES);
    entries.writeUInt32LE(0, 0);
    entries.writeUInt32LE(0, 4);
    entries.writeUInt32LE(HeldState.running, 8);
    const done = d.onWorker(A, wire<'worker_holding'>({ type: 'worker_holding', node_uuid: A, epoch: 1, entries_length: entries.length, job_uuids: [job], entries }), 120);
    assert.deepEqual(events(done, 'lease:adopted').map((e) => [e.adopted, e.timedOut]), [[1, false]]);
    assert.deepEqual(dispatchedTo(done).map((x) => x.m.task_index), [1], 'task 0 runs on A since before the restart: not dispatched again');
    const lonely = started();
    lonely.onMaster(grantMsg(1, 1, 100_000), 0);
    lonely.onMaster(taskMsg(job, 0), 10);
    assert.deepEqual(events(lonely.tick(500), 'lease:adopted').map((e) => e.timedOut), [true], 'nobody joined within adoptWaitMs');
  });

  function holdingOf(worker: string, epoch: number, job: string, held: [number, number, number][]) {
    const entries = Buffer.alloc(held.length * HELD_ENTRY_BYTES);
    held.forEach(([index, attempt, state], i) => {
      entries.writeUInt32LE(index, i * HELD_ENTRY_BYTES);
      entries.writeUInt32LE(attempt, i * HELD_ENTRY_BYTES + 4);
      entries.writeUInt32LE(state, i * HELD_ENTRY_BYTES + 8);
    });
    return wire<'worker_holding'>({ type: 'worker_holding', node_uuid: worker, epoch, entries_length: entries.length, job_uuids: held.map(() => job), entries });
  }

  it('a late reporter (after adoptWaitMs) is told to cancel its copy of a task dispatched again meanwhile, so it does not run twice', () => {
    const d = started();
    d.onWorker(B, readyMsg(B, 2, 0), 0); // joined first: the re-dispatch picks B
    d.onWorker(A, readyMsg(A, 2, 0), 0);
    d.onMaster(grantMsg(2, 1, 100_000), 0);
    const job = newUuid();
    d.onMaster(taskMsg(job, 0, { epoch: 2, attempt: 1 }), 10); // the master counts attempt 0 as started
    d.onWorker(B, holdingOf(B, 2, job, []), 20);
    // A is slow to answer: adoption ends without it, and task 0 goes out again, to B
    const t = d.tick(500);
    assert.deepEqual(events(t, 'lease:adopted').map((e) => e.timedOut), [true]);
    assert.deepEqual(dispatchedTo(t).map((x) => [x.workerId, x.m.task_index, x.m.attempt]), [[B, 0, 1]]);
    // A's worker_holding arrives now: it has run attempt 0 of task 0 since before the failover
    const late = d.onWorker(A, holdingOf(A, 2, job, [[0, 0, HeldState.running]]), 600);
    assert.deepEqual(
      toWorker(late, A, 'task_cancel').map((m) => [m.job_uuid, m.task_index, m.attempt, m.scope]),
      [[job, 0, 0, CancelScope.attempt]],
      "A's copy is cancelled (that attempt only, not the job)",
    );
    assert.equal(toWorker(late, B, 'task_cancel').length, 0, "B's copy, the epoch's attempt, is kept (its result is always recorded)");
    assert.deepEqual(events(late, 'task:copy-cancelled').map((e) => [e.workerId, e.attempt, e.keptOn, e.keptAttempt]), [[A, 0, B, 1]]);
    assert.deepEqual([d.taskInfo(job, 0)!.workerId, d.taskInfo(job, 0)!.attempt], [B, 1]);
    // A's cancelled copy reports (outcome cancelled): stale, acknowledged, never forwarded
    const cancelled = d.onWorker(A, resultMsg(A, job, 0, 0, TaskOutcome.cancelled), 610);
    assert.equal(toMaster(cancelled, 'task_result').length, 0);
    assert.equal(toWorker(cancelled, A, 'result_ack').length, 1);
    // B's result is the task's result
    const r = d.onWorker(B, resultMsg(B, job, 0, 1), 620);
    assert.deepEqual(toMaster(r, 'task_result').map((m) => [m.task_index, m.attempt, m.final]), [[0, 1, 1]]);
    assert.equal(d.counters.copiesCancelled, 1);
    // a second report of an adopted task by another worker during adoption is not a late report
    const e = started();
    e.onWorker(A, readyMsg(A, 2, 0), 0);
    e.onWorker(B, readyMsg(B, 2, 0), 0);
    e.onMaster(grantMsg(2, 1, 100_000), 0);
    e.onMaster(taskMsg(job, 0, { epoch: 2, attempt: 1 }), 10);
    e.onWorker(A, holdingOf(A, 2, job, [[0, 0, HeldState.running]]), 20);
    assert.equal(toWorker(e.onWorker(B, holdingOf(B, 2, job, [[0, 0, HeldState.finished]]), 30), undefined, 'task_cancel').length, 0);
  });

  it('adoption ends after adoptWaitMs when a worker never answers', () => {
    const d = started();
    d.onWorker(A, readyMsg(A, 1, 0), 0);
    d.onMaster(grantMsg(1, 1, 100_000), 0);
    d.onMaster(taskMsg(newUuid(), 0), 10);
    d.onWorker(A, { ...readyMsg(A, 1, 0), type: 'worker_status', job_uuid: NIL_UUID, state: 0 } as never, 100);
    assert.equal(dispatchedTo(d.tick(499)).length, 0);
    const t = d.tick(501);
    assert.deepEqual(events(t, 'lease:adopted').map((e) => e.timedOut), [true]);
    assert.equal(dispatchedTo(t).length, 1);
  });

  it('a refusal after holding the lease drops every task and result (the new holder gets them from the master and the workers)', () => {
    const d = makeDispatcher({ role: 'primary', adoptWaitMs: 0 });
    d.start(0);
    d.onMaster(grantMsg(1, 1, 100_000), 0);
    d.onWorker(A, readyMsg(A, 1, 0), 0);
    const job = newUuid();
    d.onMaster(taskMsg(job, 0), 0);
    d.onMaster(taskMsg(job, 1), 0);
    d.onWorker(A, resultMsg(A, job, 0, 0), 10);
    const out = d.onMaster(wire<'error_reply'>({ type: 'error_reply', node_uuid: newUuid(), request_uuid: NIL_UUID, error_code: ERROR_CODES.LEASE_HELD, message: 'held by another' }), 20);
    assert.deepEqual(events(out, 'lease:refused').map((e) => [e.epoch, e.dropped]), [[1, 1]]);
    const st = d.status(20);
    assert.deepEqual([st.active, st.tasksHeld, st.unackedResults], [false, 0, 0]);
    assert.equal(toWorker(d.onWorker(A, resultMsg(A, job, 1, 0), 30), A, 'result_ack').length, 0, 'a standby acks no result: the worker keeps it for the active one');
  });
});
