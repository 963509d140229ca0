// Three real `grid master --peers` processes on fixed loopback ports (docs/raft.md,
// "Guarantees"; Raft paper §5.2 election, §5.4 safety, §7 snapshots): a SIGKILLed leader is
// replaced within seconds and no accepted job is lost; with two of three dead the survivor
// refuses with NOT_LEADER (no quorum) and serves nothing; a follower that fell far behind
// catches up by snapshot; all three restarted keep their state.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import * as zmq from 'zeromq';
import { RemoteError, RpcClient, addServer, leaderHint } from '../../src/common';
import { JobState, MessageInput, MessageOf, newUuid } from '../../src/messages';
import { Cluster, submitMsg } from '../helpers/masters';
import { FakeBalancer } from '../helpers/fake-balancer';
import { TEST_TRUST_DIR, testSecurity } from '../helpers/security';


const status = (job: string): MessageInput<'job_status_request'> => ({ type: 'job_status_request', node_uuid: newUuid(), request_uuid: newUuid(), job_uuid: job });

describe('three masters on Raft (real processes)', function () {
  this.timeout(120_000);
  let root: string;
  let c: Cluster;

  beforeEach(async () => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'grid-raft-cluster-'));
    const cfg = path.join(root, 'master.json');
    // small snapshot interval so a lagging follower must be caught up by snapshot
    fs.writeFileSync(cfg, JSON.stringify({ snapshotEveryEntries: 20 }));
    c = new Cluster(root, cfg);
    await c.init(3);
    await Promise.all([0, 1, 2].map((i) => c.start(i)));
  });
  afterEach(async () => {
    await c.stopAll();
    if (process.env.GRID_KEEP_TMP) console.log(`kept ${root}`);
    else fs.rmSync(root, { recursive: true, force: true });
  });

  it('elects a new leader within seconds of a SIGKILL and loses no accepted job', async () => {
    await c.leader();
    const jobs: string[] = [];
    for (let i = 0; i < 5; i++) {
      const sub = submitMsg(10);
      assert.equal((await c.request(sub)).type, 'job_submit_response');
      jobs.push(sub.job_uuid);
    }
    const old = await c.leader();
    const t0 = Date.now();
    await c.kill(old);
    const next = await c.leader(10_000);
    const failoverMs = Date.now() - t0;
    assert.notEqual(next, old);
    assert.ok(failoverMs < 10_000, `failover took ${failoverMs} ms`);
    for (const j of jobs) {
      const s = (await c.request(status(j))) as unknown as MessageOf<'job_status_response'>;
      assert.equal(s.task_count, 10);
      assert.equal(s.state, JobState.running);
    }
    // a submit retried after the leader change is applied once
    const again = (await c.request({ ...submitMsg(10, jobs[0]), request_uuid: newUuid() })) as unknown as MessageOf<'job_submit_response'>;
    assert.equal(again.created, 0);
    const list = (await c.request({ type: 'job_list_request', node_uuid: newUuid(), request_uuid: newUuid(), limit: 100 })) as unknown as MessageOf<'job_list_response'>;
    assert.equal(list.job_uuids.length, 5);
  });

  it('with two of three dead, the survivor refuses with NOT_LEADER and serves nothing stale', async () => {
    const sub = submitMsg(3);
    await c.request(sub);
    const first = await c.leader();
    const follower = [0, 1, 2].find((i) => i !== first)!;
    await c.kill(follower);
    // read the leader again just before it is killed (killing the follower could have moved it)
    const l = await c.leader();
    await c.kill(l);
    const survivor = c.masters[[0, 1, 2].find((i) => i !== l && i !== follower)!]!;
    // It first still names the dead leader; once its election timeout passes it knows no
    // master leads, and it never answers from its (possibly stale) state.
    const t0 = Date.now();
    let last: unknown;
    while (Date.now() - t0 < 10_000) {
      const cl = new RpcClient({ security: testSecurity(), endpoint: survivor.endpoint, nodeUuid: newUuid(), log: c.log });
      try {
        await cl.request(status(sub.job_uuid), { timeoutMs: 2000 });
        assert.fail('a master without a quorum answered a read');
      } catch (e) {
        last = e;
        if (e instanceof RemoteError && e.code === 'NOT_LEADER' && leaderHint(e.message) === undefined) break;
        if (e instanceof RemoteError && (e.code === 'NOT_LEADER' || e.code === 'UNAVAILABLE')) {
          await new Promise((r) => setTimeout(r, 100));
          continue;
        }
        throw e;
      } finally {
        cl.close();
      }
    }
    assert.ok(last instanceof RemoteError && last.code === 'NOT_LEADER', String(last));
    assert.match((last as Error).message, /^leader=unknown;.*no quorum/);
  });

  it('catches a far-behind follower up by snapshot, and keeps everything across a full restart', async () => {
    const l = await c.leader();
    const f = [0, 1, 2].find((i) => i !== l)!;
    await c.kill(f);
    const jobs: string[] = [];
    for (let i = 0; i < 30; i++) {
      const sub = submitMsg(2);
      await c.request(sub);
      jobs.push(sub.job_uuid);
    }
    const lead = (await c.raft(await c.leader()))!;
    assert.ok(lead.counters.snapshots >= 1, 'the leader compacted its log');
    await c.start(f);
    const t0 = Date.now();
    for (;;) {
      const r = await c.raft(f);
      if (r && r.applied >= lead.applied) break;
      if (Date.now() - t0 > 15_000) throw new Error(`follower did not catch up: ${JSON.stringify(r)} vs ${lead.applied}`);
      await new Promise((res) => setTimeout(res, 100));
    }
    const logs = path.join(c.masters[f]!.dir, 'logs');
    const log = fs.readdirSync(logs).map((x) => fs.readFileSync(path.join(logs, x), 'utf8')).join('');
    assert.match(log, /raft:snapshot installed/, `follower ${f} (leader was ${l}): ${JSON.stringify(await c.raft(f))}\nleader: ${JSON.stringify(lead)}`);
    // restart all three: state intact
    await c.stopAll();
    await Promise.all([0, 1, 2].map((i) => c.start(i)));
    await c.leader();
    for (const j of [jobs[0]!, jobs[29]!]) {
      const s = (await c.request(status(j))) as unknown as MessageOf<'job_status_response'>;
      assert.equal(s.task_count, 2);
    }
  });

  it('hands leadership over on SIGTERM (no election timeout): the stopping leader transfers, exits 0, and the group serves on', async () => {
    const sub = submitMsg(2);
    await c.request(sub);
    const l = await c.leader(); // read just before the stop
    const before = (await c.raft(l))!.term;
    const proc = c.masters[l]!.proc!;
    await c.kill(l, 'SIGTERM');
    assert.equal(proc.exitCode, 0, 'a graceful stop exits 0');
    const logs = path.join(c.masters[l]!.dir, 'logs');
    const lines = fs.readdirSync(logs).flatMap((x) => fs.readFileSync(path.join(logs, x), 'utf8').split('\n')).filter((x) => x.includes('raft:leadership transferred for shutdown'));
    assert.equal(lines.length, 1, 'one hand-over logged');
    const rec = JSON.parse(lines[0]!) as { done: boolean; to: string };
    assert.equal(rec.done, true, `the transfer completed before the leader stopped: ${lines[0]}`);
    const next = await c.leader();
    assert.notEqual(next, l);
    assert.equal(rec.to, c.masters[next]!.endpoint, 'leadership went where the old leader sent it');
    assert.equal((await c.raft(next))!.term, before + 1, 'one term later: the target campaigned at once (TimeoutNow), no failed election');
    const s = (await c.request(status(sub.job_uuid))) as unknown as MessageOf<'job_status_response'>;
    assert.equal(s.task_count, 2);
  });

  it('installs, at start-up, a snapshot that was saved but not yet installed when the master crashed', async () => {
    const l = await c.leader();
    const f = [0, 1, 2].find((i) => i !== l)!;
    const first = submitMsg(1);
    await c.request(first);
    // f's state machine as of now, kept aside (f stopped, so the file is consistent)
    await c.kill(f, 'SIGTERM');
    const jobsDb = path.join(c.masters[f]!.dir, 'jobs.db');
    const old = path.join(root, 'jobs.db.old');
    fs.copyFileSync(jobsDb, old);
    for (const ext of ['-wal', '-shm']) if (fs.existsSync(jobsDb + ext)) fs.copyFileSync(jobsDb + ext, old + ext);
    // meanwhile the others compact far past it: f catches up by snapshot
    const jobs = [first.job_uuid];
    for (let i = 0; i < 30; i++) {
      const sub = submitMsg(1);
      await c.request(sub);
      jobs.push(sub.job_uuid);
    }
    const lead = (await c.raft(await c.leader()))!;
    await c.start(f);
    await waitApplied(f, lead.applied);
    await c.kill(f, 'SIGKILL');
    // the crash: raft storage holds the installed snapshot, the state machine is the old one
    for (const ext of ['', '-wal', '-shm']) fs.rmSync(jobsDb + ext, { force: true });
    fs.copyFileSync(old, jobsDb);
    for (const ext of ['-wal', '-shm']) if (fs.existsSync(old + ext)) fs.copyFileSync(old + ext, jobsDb + ext);
    await c.start(f);
    await waitApplied(f, lead.applied);
    await c.kill(f, 'SIGTERM');
    const db = new Database(jobsDb, { readonly: true, fileMustExist: true });
    try {
      const have = new Set((db.prepare('SELECT job_uuid FROM jobs').all() as { job_uuid: string }[]).map((r) => r.job_uuid));
      const missing = jobs.filter((j) => !have.has(j));
      assert.deepEqual(missing, [], 'every job is in the restarted master\'s state machine');
    } finally {
      db.close();
    }
  });

  async function waitApplied(i: number, index: number): Promise<void> {
    const t0 = Date.now();
    for (;;) {
      const r = await c.raft(i);
      if (r && r.applied >= index) return;
      if (Date.now() - t0 > 30_000) throw new Error(`master ${i} did not apply up to ${index}: ${JSON.stringify(r)}`);
      await new Promise((res) => setTimeout(res, 50));
    }
  }
});

// A leader cut off from its followers (both SIGKILLed): what its waiting clients get.
// docs/raft.md "The master's shell": a change not committed within proposalTimeoutMs, and a
// read whose leadership check (read barrier) does not complete within it, are refused with
// UNAVAILABLE; a leader that steps down (check quorum, thesis §6.2) rejects everything in
// flight with NOT_LEADER at once.
describe('an isolated Raft leader (real processes)', function () {
  this.timeout(120_000);
  let root: string;
  let c: Cluster;

  async function group(cfg: Record<string, unknown>): Promise<number> {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'grid-raft-isolated-'));
    const file = path.join(root, 'master.json');
    fs.writeFileSync(file, JSON.stringify(cfg));
    c = new Cluster(root, file);
    await c.init(3);
    await Promise.all([0, 1, 2].map((i) => c.start(i)));
    await c.request(submitMsg(1), 60_000);
    const l = await c.leader(60_000);
    for (const i of [0, 1, 2].filter((x) => x !== l)) await c.kill(i);
    return l;
  }
  afterEach(async () => {
    await c?.stopAll();
    fs.rmSync(root, { recursive: true, force: true });
  });

  const ask = async (l: number, m: MessageInput, timeoutMs: number) => {
    const cl = new RpcClient({ security: testSecurity(), endpoint: c.masters[l]!.endpoint, nodeUuid: newUuid(), log: c.log });
    try {
      return await cl.request(m, { timeoutMs, retries: 0 });
    } finally {
      cl.close();
    }
  };

  it('refuses a proposal and a read it cannot commit or confirm within proposalTimeoutMs with UNAVAILABLE', async () => {
    // elections slow (100 ticks of 50 ms = 5-10 s), so the leader is still leader while its proposal times out
    const l = await group({ proposalTimeoutMs: 300, electionTicks: 100 });
    const sub = submitMsg(1);
    await assert.rejects(ask(l, sub, 30_000), (e: unknown) => {
      assert.ok(e instanceof RemoteError, String(e));
      assert.equal(e.code, 'UNAVAILABLE');
      assert.match(e.message, /the masters did not commit this change within 300 ms/);
      return true;
    });
    await assert.rejects(ask(l, status(sub.job_uuid), 30_000), (e: unknown) => {
      assert.ok(e instanceof RemoteError, String(e));
      assert.equal(e.code, 'UNAVAILABLE');
      assert.match(e.message, /could not confirm its leadership within 300 ms/);
      return true;
    });
  });

  // docs/balancer.md "Failover" (results are acknowledged end to end): the master acks a
  // result batch only once it is committed; a leader that cannot commit it never acks it, the
  // balancer keeps it and re-sends it to the next leader, and it is recorded once.
  it('never acknowledges a result batch it could not commit; the re-sent result is recorded once by the next leader', async () => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'grid-raft-isolated-'));
    const file = path.join(root, 'master.json');
    fs.writeFileSync(file, JSON.stringify({ proposalTimeoutMs: 60_000 })); // the batch waits until the leader steps down
    c = new Cluster(root, file);
    await c.init(3);
    await Promise.all([0, 1, 2].map((i) => c.start(i)));
    const sub = submitMsg(1);
    await c.request(sub, 60_000);
    const l = await c.leader(60_000);
    const others = [0, 1, 2].filter((x) => x !== l);
    const bal = new FakeBalancer(c.masters[l]!.endpoint).renew();
    try {
      const [d] = await bal.waitFor('task_dispatch', 1, 30_000);
      assert.ok(bal.epoch > 0, 'the balancer holds the lease');
      for (const i of others) await c.kill(i);
      await bal.send(bal.okResult(d!));
      // the isolated leader cannot commit the batch: it steps down (check quorum) and rejects it
      const t0 = Date.now();
      while ((await c.raft(l))?.role === 'leader') {
        if (Date.now() - t0 > 30_000) throw new Error('the isolated leader did not step down');
        await new Promise((r) => setTimeout(r, 50));
      }
      assert.equal(bal.of('result_ack').length, 0, 'a result that was never committed is never acknowledged');
      // the group comes back; the balancer follows the new leader, keeps its epoch and re-sends
      for (const i of others) await c.start(i);
      const l2 = await c.leader(60_000);
      bal.moveTo(c.masters[l2]!.endpoint);
      const grants = bal.of('lease_grant').length;
      await bal.waitFor('lease_grant', grants + 1, 30_000);
      await bal.send(bal.okResult(d!));
      await bal.waitFor('result_ack', 1, 30_000);
      await bal.send(bal.okResult(d!)); // a second copy (its ack lost, say): acked, recorded once
      await bal.waitFor('result_ack', 2, 30_000);
      const js = (await c.request(status(sub.job_uuid), 30_000)) as unknown as MessageOf<'job_status_response'>;
      assert.equal(js.state, JobState.succeeded);
      const ts = (await c.request({ type: 'task_status_request', node_uuid: newUuid(), request_uuid: newUuid(), job_uuid: sub.job_uuid, task_index: 0 }, 30_000)) as unknown as MessageOf<'task_status_response'>;
      assert.equal(ts.attempts, 1, 'recorded once: one attempt, whatever reached the masters twice');
    } finally {
      bal.close();
    }
  });

  it('rejects requests in flight with NOT_LEADER when it loses leadership (check quorum)', async () => {
    // proposals may wait a minute; the leader steps down after one election timeout without a majority
    const l = await group({ proposalTimeoutMs: 60_000 });
    const settled = await Promise.allSettled([ask(l, submitMsg(1), 90_000), ask(l, status(newUuid()), 90_000)]);
    for (const r of settled) {
      assert.equal(r.status, 'rejected', 'no answer from a leader without a majority');
      const e = (r as PromiseRejectedResult).reason as unknown;
      assert.ok(e instanceof RemoteError, String(e));
      assert.equal(e.code, 'NOT_LEADER');
    }
    assert.notEqual((await c.raft(l))!.role, 'leader');
  });
});

// The servers file (docs/security.md) can name an old key for an endpoint: a port reused by a
// new master, a master given a new key. A master that made its peer socket with that key
// (peers are connected at start, before the peer enrolled its own line) must notice, when the
// connection fails, that the file now names another key, and reconnect with it; libzmq alone
// retries forever with the old one and the peer is never reached.
describe('a Raft peer whose key in the servers file was stale (real processes)', function () {
  this.timeout(120_000);
  let root: string;
  let c: Cluster;
  afterEach(async () => {
    await c?.stopAll();
    fs.rmSync(root, { recursive: true, force: true });
  });

  it('is reached once it enrolls its real key: it catches up and applies everything', async () => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'grid-raft-stale-key-'));
    const file = path.join(root, 'master.json');
    fs.writeFileSync(file, '{}');
    c = new Cluster(root, file);
    await c.init(3);
    const late = c.masters[2]!;
    addServer(TEST_TRUST_DIR, late.endpoint, zmq.curveKeyPair().publicKey); // some earlier server's key
    await Promise.all([c.start(0), c.start(1)]);
    for (let i = 0; i < 3; i++) await c.request(submitMsg(2), 30_000);
    const lead = (await c.raft(await c.leader()))!;
    await c.start(2);
    const t0 = Date.now();
    for (;;) {
      const r = await c.raft(2);
      if (r && r.applied >= lead.applied) break;
      if (Date.now() - t0 > 15_000) throw new Error(`master 2 was never reached with its real key: ${JSON.stringify(r)} vs leader applied ${lead.applied}`);
      await new Promise((res) => setTimeout(res, 100));
    }
  });
});
