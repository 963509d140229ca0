// Three real `grid master --peers` processes on fixed loopback ports (docs/raft.md,
// "Guarantees"; Raft paper §5.2 election, §5.4 safety, §7 snapshots): a SIGKILLed leader is
// replaced within seconds and no accepted job is lost; with two of three dead the survivor
// refuses with NOT_LEADER (no quorum) and serves nothing; a follower that fell far behind
// catches up by snapshot; all three restarted keep their state.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { RemoteError, RpcClient, leaderHint } from '../../src/common';
import { JobState, MessageInput, MessageOf, newUuid } from '../../src/messages';
import { Cluster, submitMsg } from '../helpers/masters';


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
      const cl = new RpcClient({ endpoint: survivor.endpoint, nodeUuid: newUuid(), log: c.log });
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
});
