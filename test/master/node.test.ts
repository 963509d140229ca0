// The master node on real sockets: clients, a balancer played by a test DEALER, hostile
// bytes, and a SIGKILL + restart of a real `grid master` process (docs/architecture.md, "Flows").
import assert from 'node:assert/strict';
import { ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as zmq from 'zeromq';
import { MasterNode, loadMasterConfig } from '../../src/master';
import { RpcClient, RemoteError, silentLogger } from '../../src/common';
import { submitMsg as submitN } from '../helpers/masters';
import { FakeBalancer } from '../helpers/fake-balancer';
import { waitFor } from '../helpers/grid';

const submitMsg = (n: number, jobUuid?: string) => submitN(n, jobUuid, 1);
import { ERROR_CODES, JobState, Message, MessageOf, NIL_UUID, PROTOCOL_VERSION, TaskOutcome, decode, encode, newUuid } from '../../src/messages';
import { TEST_NODE_SECURITY, testSecurity } from '../helpers/security';
import { clientSocket } from '../../src/common';

const BIN = path.resolve(__dirname, '../../../bin/grid.js');


async function until<T>(what: string, f: () => T | undefined | false, ms = 10_000): Promise<T> {
  const t0 = Date.now();
  for (;;) {
    const v = f();
    if (v) return v;
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

function result(bal: FakeBalancer, job: string, d: MessageOf<'task_dispatch'>, ok: boolean, final: boolean, epoch = bal.epoch) {
  return {
    type: 'task_result' as const,
    node_uuid: bal.id,
    job_uuid: job,
    worker_uuid: newUuid(),
    log_file_uuid: NIL_UUID,
    task_index: d.task_index,
    attempt: d.attempt,
    exit_code: ok ? 0 : 3,
    duration_ms: 1,
    outcome: ok ? TaskOutcome.ok : TaskOutcome.exit_nonzero,
    final: final ? 1 : 0,
    output_file_uuids: ok ? [newUuid()] : [],
    output_names: ok ? ['out'] : [],
    error: ok ? '' : 'exited with code 3',
    log_tail: ok ? '' : 'boom',
    epoch,
  };
}

type MasterStatus = { lease: { epoch: number; holder: string | null }; balancers: { nodeUuid: string; role: string; active: boolean }[]; counters: Record<string, number> };

describe('master node (real sockets)', function () {
  this.timeout(30_000);
  let dir: string;
  let node: MasterNode;
  let endpoint: string;
  let client: RpcClient;
  const log = silentLogger();
  const bals: FakeBalancer[] = [];

  async function startMaster(o: Record<string, unknown> = {}): Promise<void> {
    node = new MasterNode(loadMasterConfig({ dataDir: dir, bind: 'tcp://127.0.0.1:0', adminPort: 0, ...TEST_NODE_SECURITY, heartbeatIntervalMs: 100, leaseMs: 400, leaseNewLeaderWaitMs: 0, ...o }), log);
    ({ endpoint } = await node.start());
    client = new RpcClient({ security: testSecurity(), endpoint, nodeUuid: newUuid(), log });
  }
  /** A balancer; with `restartOf`, that one restarted: same node id, a new process (hellos numbered from 1, no epoch). */
  function balancer(role: 'primary' | 'auxiliary' = 'primary', restartOf?: FakeBalancer): FakeBalancer {
    restartOf?.close();
    const b = new FakeBalancer(endpoint, role, restartOf?.id);
    bals.push(b);
    return b;
  }
  const status = () => node.status() as MasterStatus;

  beforeEach(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'grid-master-node-'));
    await startMaster();
  });
  afterEach(async () => {
    for (const b of bals.splice(0)) b.close();
    client.close();
    await node.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('grants the lease (epoch through Raft), feeds tasks to the holder and settles the job from its results (docs/balancer.md)', async () => {
    const bal = balancer().renew();
    const [g] = await bal.waitFor('lease_grant');
    assert.equal(g!.epoch, 1);
    assert.equal(g!.lease_ms, 400);
    assert.equal(node.store.lease().epoch, 1, 'the epoch is in the replicated state');
    const sub = submitMsg(3);
    const r = (await client.request(sub)) as MessageOf<'job_submit_response'>;
    assert.equal(r.task_count, 3);
    const tasks = await bal.waitFor('task_dispatch', 3);
    assert.deepEqual(tasks.map((t) => [t.task_index, t.epoch]).sort(), [[0, 1], [1, 1], [2, 1]]);
    for (const t of tasks) await bal.send(result(bal, sub.job_uuid, t, true, true));
    // a duplicate result is acked again and recorded once
    await bal.send(result(bal, sub.job_uuid, tasks[0]!, true, true));
    await bal.waitFor('result_ack', 4);
    const st = (await client.request({ type: 'job_status_request', node_uuid: newUuid(), request_uuid: newUuid(), job_uuid: sub.job_uuid })) as MessageOf<'job_status_response'>;
    assert.equal(st.state, JobState.succeeded);
    assert.equal(st.tasks_succeeded, 3);
    const ts = (await client.request({ type: 'task_status_request', node_uuid: newUuid(), request_uuid: newUuid(), job_uuid: sub.job_uuid, task_index: 0 })) as MessageOf<'task_status_response'>;
    assert.equal(ts.output_names.length, 1);
    assert.equal(node.store.attemptCount(sub.job_uuid), 3);
    // active = holding an unexpired lease: a renewal delayed by a busy machine may leave a gap,
    // so wait for the renewing holder to be seen active rather than sample one instant
    const seen = () => status().balancers.map((b) => [b.nodeUuid, b.role, b.active]);
    await waitFor(() => JSON.stringify(seen()) === JSON.stringify([[bal.id, 'primary', true]]), 'the renewing holder to show active in /status', 10_000);
  });

  it('sends no more than the credit allows, in batches, and more as the credit grows', async () => {
    node.feed.s.feedBatchMax = 2;
    const bal = balancer();
    bal.limit = 3; // holds what it gets (nothing settles): room for 3 in all
    bal.renew();
    await bal.waitFor('lease_grant');
    const sub = submitMsg(7);
    await client.request(sub);
    await bal.waitFor('task_dispatch', 3);
    // several renewals later, still 3: the limit is fed + room, and nothing was settled
    const seq = bal.seq;
    await until('three more renewals', () => bal.seq >= seq + 3);
    assert.equal(bal.of('task_dispatch').length, 3, 'credit 3: the master sent 3, not 7');
    bal.limit = 10;
    const all = await bal.waitFor('task_dispatch', 7);
    assert.deepEqual(all.map((t) => t.task_index), [0, 1, 2, 3, 4, 5, 6], 'in task order, none twice');
    assert.ok(node.feed.counters.batches >= 4, `batches of at most 2: ${node.feed.counters.batches}`);
  });

  it('a balancer never granted the lease gets LEASE_HELD and no task; a stale epoch is refused with STALE_EPOCH', async () => {
    const primary = balancer().renew();
    await primary.waitFor('lease_grant');
    const sub = submitMsg(2);
    await client.request(sub);
    const tasks = await primary.waitFor('task_dispatch', 2);
    const intruder = balancer('primary').renew(); // a second "primary", as a script would do
    const [refused] = await intruder.waitFor('error_reply', 1, 10_000, (e) => e.error_code === ERROR_CODES.LEASE_HELD);
    assert.match(refused!.message, /holds epoch 1/);
    await intruder.waitFor('error_reply', 3, 10_000, (e) => e.error_code === ERROR_CODES.LEASE_HELD);
    assert.equal(intruder.of('task_dispatch').length, 0, 'no task for a balancer without the lease');
    assert.equal(intruder.of('lease_grant').length, 0);
    // a result from it (any epoch) is refused, typed, and not recorded
    await intruder.send(result(intruder, sub.job_uuid, tasks[0]!, true, true, 1));
    const [stale] = await intruder.waitFor('error_reply', 1, 10_000, (e) => e.error_code === ERROR_CODES.STALE_EPOCH);
    assert.match(stale!.message, /epoch 1 refused: the dispatch lease is epoch 1 held by/);
    assert.equal(node.store.attemptCount(sub.job_uuid), 0);
    assert.ok(status().counters.staleEpochRefused >= 1);
  });

  it('the auxiliary takes over only once the primary stops renewing (lease expiry), with a new epoch; the old epoch is then refused', async () => {
    const primary = balancer().renew();
    await primary.waitFor('lease_grant');
    const aux = balancer('auxiliary').renew();
    await aux.waitFor('error_reply', 2, 10_000, (e) => e.error_code === ERROR_CODES.LEASE_HELD);
    const sub = submitMsg(2);
    await client.request(sub);
    const tasks = await primary.waitFor('task_dispatch', 2);
    primary.renewing = false; // as if SIGSTOPped or killed
    const [g] = await aux.waitFor('lease_grant');
    assert.equal(g!.epoch, 2);
    const fed = await aux.waitFor('task_dispatch', 2);
    assert.deepEqual(fed.map((t) => [t.task_index, t.epoch]), [[0, 2], [1, 2]], 'a new epoch feeds every open task again');
    // the old holder comes back: refused, and its result under epoch 1 too
    primary.renewing = true;
    await primary.waitFor('error_reply', 1, 10_000, (e) => e.error_code === ERROR_CODES.LEASE_HELD);
    await primary.send(result(primary, sub.job_uuid, tasks[0]!, true, true, 1));
    await primary.waitFor('error_reply', 1, 10_000, (e) => e.error_code === ERROR_CODES.STALE_EPOCH);
    await aux.send(result(aux, sub.job_uuid, fed[0]!, true, true));
    await aux.waitFor('result_ack');
    assert.equal(node.store.attemptCount(sub.job_uuid), 1, 'recorded once, from the holder');
  });

  it('refuses a hello of another protocol version with VERSION_MISMATCH', async () => {
    const bal = balancer();
    bal.protocol = PROTOCOL_VERSION + 1;
    await bal.hello();
    const [e] = await bal.waitFor('error_reply');
    assert.equal(e!.error_code, ERROR_CODES.VERSION_MISMATCH);
    assert.match(e!.message, new RegExp(`protocol ${PROTOCOL_VERSION + 1}, this master speaks ${PROTOCOL_VERSION}`));
    assert.equal(bal.of('lease_grant').length, 0);
  });

  it('forgets a balancer that falls silent (heartbeatIntervalMs x livenessMissed), and knows it again at its next hello', async () => {
    const bal = balancer().renew();
    await until('the balancer is known', () => status().balancers.length === 1);
    bal.renewing = false;
    await until('the silent balancer is forgotten', () => status().balancers.length === 0);
    assert.ok(status().counters.balancersForgotten >= 1);
    bal.renewing = true;
    await until('known again', () => status().balancers.length === 1);
  });

  it('splits results into batches of maxResultBatch and acks each once committed', async () => {
    client.close();
    await node.stop();
    await startMaster({ maxResultBatch: 2 });
    const bal = balancer().renew();
    await bal.waitFor('lease_grant');
    const sub = submitMsg(7);
    await client.request(sub);
    const tasks = await bal.waitFor('task_dispatch', 7);
    for (const t of tasks) void bal.send(result(bal, sub.job_uuid, t, true, true));
    await bal.waitFor('result_ack', 7);
    const c = status().counters;
    assert.equal(c.results, 7);
    assert.ok(c.resultBatches >= 4, `7 results in batches of at most 2: ${c.resultBatches} batches`);
    assert.equal(node.store.attemptCount(sub.job_uuid), 7);
  });

  it('a cancelled job: the holder is sent task_cancel and its tasks are not fed again', async () => {
    const bal = balancer().renew();
    await bal.waitFor('lease_grant');
    const sub = submitMsg(3);
    await client.request(sub);
    await bal.waitFor('task_dispatch', 3);
    await client.request({ type: 'job_cancel_request', node_uuid: newUuid(), request_uuid: newUuid(), job_uuid: sub.job_uuid });
    const [c] = await bal.waitFor('task_cancel');
    assert.equal(c!.job_uuid, sub.job_uuid);
    // it restarts: a new epoch re-feeds every open task, none of the cancelled job
    const again = balancer('primary', bal).renew();
    await again.waitFor('lease_grant', 1, 10_000, (g) => g.epoch === 2);
    const seq = again.seq;
    await until('a few renewals under epoch 2', () => again.seq >= seq + 3);
    assert.equal(again.of('task_dispatch').filter((t) => t.epoch === 2).length, 0);
  });

  it('knows its workers from worker_status forwarded by the lease holder only', async () => {
    const bal = balancer().renew();
    await bal.waitFor('lease_grant');
    const other = balancer('auxiliary').renew();
    const w1 = newUuid();
    const w2 = newUuid();
    await other.send({ type: 'worker_status', node_uuid: w2, job_uuid: NIL_UUID, state: 0 }); // not the holder: ignored
    await bal.send({ type: 'worker_status', node_uuid: w1, job_uuid: NIL_UUID, state: 1 });
    type WithWorkers = { workers: { workerUuid: string; state: string }[] };
    await until('the worker known', () => (node.status() as WithWorkers).workers.length === 1);
    assert.deepEqual((node.status() as WithWorkers).workers.map((w) => [w.workerUuid, w.state]), [[w1, 'busy']]);
    await until('forgotten after liveness of silence', () => (node.status() as WithWorkers).workers.length === 0);
  });

  it('answers a retried submit with the same job and no duplicate', async () => {
    const sub = submitMsg(2);
    await client.request(sub);
    const again = (await client.request({ ...sub, request_uuid: newUuid() })) as MessageOf<'job_submit_response'>;
    assert.equal(again.created, 0);
    const list = (await client.request({ type: 'job_list_request', node_uuid: newUuid(), request_uuid: newUuid(), limit: 10 })) as MessageOf<'job_list_response'>;
    assert.deepEqual(list.job_uuids, [sub.job_uuid]);
  });

  it('answers job_list2_request with each job owner, and still job_list_request (older clients; docs/protocol.md "Versioning")', async () => {
    const sub = submitMsg(1);
    await client.request(sub);
    const v2 = (await client.request({ type: 'job_list2_request', node_uuid: newUuid(), request_uuid: newUuid(), limit: 10 })) as MessageOf<'job_list2_response'>;
    assert.equal(v2.type, 'job_list2_response');
    assert.equal(v2.job_uuids[0], sub.job_uuid);
    assert.equal(v2.owner_keys.length, v2.job_uuids.length);
    // the submitting client's own public key, the one its CURVE handshake proved
    assert.equal(v2.owner_keys[0], testSecurity().publicKey);
    const v1 = (await client.request({ type: 'job_list_request', node_uuid: newUuid(), request_uuid: newUuid(), limit: 10 })) as MessageOf<'job_list_response'>;
    assert.equal(v1.type, 'job_list_response');
    assert.deepEqual(v1.job_uuids, v2.job_uuids);
  });

  it('gives typed errors for unknown jobs and keeps serving after hostile bytes', async () => {
    await assert.rejects(client.request({ type: 'job_status_request', node_uuid: newUuid(), request_uuid: newUuid(), job_uuid: newUuid() }), (e: unknown) => e instanceof RemoteError && e.code === 'NOT_FOUND');
    const raw = clientSocket(testSecurity(), endpoint);
    try {
      await raw.send([Buffer.from([1, 2, 3])]);
      const m = decode((await raw.receive()) as Buffer[]);
      assert.equal(m.type, 'error_reply');
      assert.match((m as MessageOf<'error_reply'>).message, /TRUNCATED/);
    } finally {
      raw.close();
    }
    const sub = submitMsg(1);
    assert.equal(((await client.request(sub)) as MessageOf<'job_submit_response'>).task_count, 1);
  });

  it('a balancer that restarted (hello with epoch 0) gets a new epoch and every open task again; a final failure fails the job and cancels its tasks', async () => {
    const sub = submitMsg(2);
    await client.request(sub);
    const bal = balancer().renew();
    const tasks = await bal.waitFor('task_dispatch', 2);
    await bal.send(result(bal, sub.job_uuid, tasks[0]!, false, false));
    await bal.waitFor('result_ack', 1);
    // it restarts: same node id, no soft state, hellos numbered from 1 (balancer.md, "The lease")
    const again = balancer('primary', bal).renew();
    await again.waitFor('lease_grant', 1, 10_000, (g) => g.epoch === 2);
    const fed = await again.waitFor('task_dispatch', 2, 10_000, (t) => t.epoch === 2);
    const t0 = fed.filter((t) => t.task_index === tasks[0]!.task_index).map((t) => t.attempt);
    assert.deepEqual(t0, [1], 'the new epoch carries the next attempt');
    await again.send(result(again, sub.job_uuid, { ...tasks[0]!, attempt: 1 }, false, true));
    await again.waitFor('task_cancel', 1);
    const st = (await client.request({ type: 'job_status_request', node_uuid: newUuid(), request_uuid: newUuid(), job_uuid: sub.job_uuid })) as MessageOf<'job_status_response'>;
    assert.equal(st.state, JobState.failed);
    assert.match(st.error, /exited with code 3/);
    // job_status_response (42/43) folds the cancelled task into tasks_failed, for older clients;
    // job_status2_response (50/51) counts it apart (docs/protocol.md, "Versioning")
    assert.deepEqual([st.tasks_failed, st.tasks_succeeded], [2, 0]);
    const st2 = (await client.request({ type: 'job_status2_request', node_uuid: newUuid(), request_uuid: newUuid(), job_uuid: sub.job_uuid })) as MessageOf<'job_status2_response'>;
    assert.equal(st2.state, JobState.failed);
    assert.deepEqual([st2.task_count, st2.tasks_failed, st2.tasks_cancelled, st2.tasks_succeeded], [2, 1, 1, 0]);
    assert.equal(st2.error, st.error);
  });
});

describe('grid master process', function () {
  this.timeout(30_000);
  let dir: string;
  const procs: ChildProcess[] = [];
  after(() => {
    for (const p of procs) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
    fs.rmSync(dir, { recursive: true, force: true });
  });

  function start(): Promise<{ proc: ChildProcess; endpoint: string }> {
    const proc = spawn(process.execPath, [BIN, 'master', '--data-dir', dir, '--bind', 'tcp://127.0.0.1:0', '--admin-port', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
    procs.push(proc);
    return new Promise((resolve, reject) => {
      let out = '';
      proc.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
        const m = /GRID_READY (.*)\n/.exec(out);
        if (m) resolve({ proc, endpoint: JSON.parse(m[1]!).endpoints.clients });
      });
      proc.on('exit', (code) => reject(new Error(`master exited ${code} before ready: ${out}`)));
    });
  }

  it('loses no accepted job when SIGKILLed and restarted', async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'grid-master-proc-'));
    const log = silentLogger();
    let { proc, endpoint } = await start();
    let client = new RpcClient({ security: testSecurity(), endpoint, nodeUuid: newUuid(), log });
    const sub = submitMsg(5);
    await client.request(sub);
    client.close();
    proc.kill('SIGKILL');
    await new Promise((r) => proc.once('exit', r));
    ({ proc, endpoint } = await start());
    client = new RpcClient({ security: testSecurity(), endpoint, nodeUuid: newUuid(), log });
    try {
      const st = (await client.request({ type: 'job_status_request', node_uuid: newUuid(), request_uuid: newUuid(), job_uuid: sub.job_uuid })) as MessageOf<'job_status_response'>;
      assert.equal(st.task_count, 5);
      assert.equal(st.state, JobState.running);
    } finally {
      client.close();
      proc.kill('SIGTERM');
      const code = await new Promise((r) => proc.once('exit', (c) => r(c)));
      assert.equal(code, 0, 'SIGTERM stops the master cleanly');
    }
  });
});
