// MasterClient on real sockets (docs/architecture.md, "Submit"): a request is re-sent with
// the SAME request_uuid until the master answers, including a master that only starts
// listening late (a restart), and fails with a clear error once the retry window is over.
import assert from 'node:assert/strict';
import { GridError, RpcServer, notLeader, silentLogger } from '../../src/common';
import { Message, MessageInput, newUuid } from '../../src/messages';
import { MasterClient } from '../../src/cli/master-client';
import { freePort, waitFor } from '../helpers/grid';
import { freshSecurity, testSecurity } from '../helpers/security';
import { MASTER_ACCESS } from '../../src/master/node';

function statusReply(m: Message & { type: 'job_status2_request' }, nodeUuid: string): MessageInput {
  return {
    type: 'job_status2_response',
    node_uuid: nodeUuid,
    request_uuid: m.request_uuid,
    job_uuid: m.job_uuid,
    state: 1,
    task_count: 3,
    tasks_pending: 0,
    tasks_running: 0,
    tasks_succeeded: 3,
    tasks_failed: 0,
    tasks_cancelled: 0,
    created_at_ms: 1,
    finished_at_ms: 2,
    program_name: 'job.js',
    error: '',
  };
}

describe('cli: MasterClient retries (same request_uuid) within masterRetryWindowMs', function () {
  const log = silentLogger();
  const closers: (() => void)[] = [];
  afterEach(() => {
    for (const c of closers.splice(0)) c();
  });

  it('re-sends the same request until an answer comes', async () => {
    const seen: string[] = [];
    const server = new RpcServer({
      security: freshSecurity('fake-master', ['masters'], true),
      access: MASTER_ACCESS,
      bind: 'tcp://127.0.0.1:0',
      nodeUuid: newUuid(),
      log,
      handler: (m) => {
        if (m.type !== 'job_status2_request') throw new GridError('UNEXPECTED', m.type);
        seen.push(m.request_uuid);
        // the first two copies are "lost"
        return seen.length <= 2 ? undefined : statusReply(m, newUuid());
      },
    });
    const endpoint = await server.start();
    closers.push(() => server.close());
    const c = new MasterClient({ endpoint, log, security: testSecurity(), masterRetryWindowMs: 10_000, masterRequestTimeoutMs: 300 });
    closers.push(() => c.close());
    const job = newUuid();
    const r = await c.jobStatus(job);
    assert.equal(r.job_uuid, job);
    assert.equal(r.tasks_succeeded, 3);
    // at least the two lost copies and the answered one; a slow machine may time out once more
    // before the answer arrives, so the count is a lower bound, the timeouts at least two
    assert.ok(seen.length >= 3, `seen ${seen.length}`);
    assert.ok(c.stats.timeouts >= 2, `timeouts ${c.stats.timeouts}`);
    assert.equal(new Set(seen).size, 1, 'every attempt carried the same request_uuid');
  });

  it('gets its answer from a master that starts listening after the first attempts', async () => {
    const port = await freePort();
    const endpoint = `tcp://127.0.0.1:${port}`;
    const c = new MasterClient({ endpoint, log, security: testSecurity(), masterRetryWindowMs: 15_000, masterRequestTimeoutMs: 200 });
    closers.push(() => c.close());
    const pending = c.jobStatus(newUuid());
    // the first attempts go nowhere (nobody listens yet): wait until two have timed out
    await waitFor(() => c.stats.timeouts >= 2, 'two attempts to time out', 10_000, 20);
    const server = new RpcServer({ security: freshSecurity('fake-master', ['masters'], true), access: MASTER_ACCESS, bind: endpoint, nodeUuid: newUuid(), log, handler: (m) => (m.type === 'job_status2_request' ? statusReply(m, newUuid()) : undefined) });
    await server.start();
    closers.push(() => server.close());
    const r = await pending;
    assert.equal(r.state, 1);
  });

  it('passes on a refusal (NOT_FOUND) at once, without retrying', async () => {
    let n = 0;
    const server = new RpcServer({
      security: freshSecurity('fake-master', ['masters'], true),
      access: MASTER_ACCESS,
      bind: 'tcp://127.0.0.1:0',
      nodeUuid: newUuid(),
      log,
      handler: () => {
        n++;
        throw new GridError('NOT_FOUND', 'no job like that');
      },
    });
    const endpoint = await server.start();
    closers.push(() => server.close());
    const c = new MasterClient({ endpoint, log, security: testSecurity(), masterRetryWindowMs: 10_000, masterRequestTimeoutMs: 1000 });
    closers.push(() => c.close());
    await assert.rejects(c.jobStatus(newUuid()), (e: unknown) => e instanceof GridError && e.code === 'NOT_FOUND' && /no job like that/.test(e.message));
    assert.equal(n, 1);
  });

  it('gives up after the window with "no master answers at <endpoint>"', async () => {
    const endpoint = `tcp://127.0.0.1:${await freePort()}`;
    let t = 0;
    // injected clock: every reading advances 100 ms, so the window closes without waiting for it
    const c = new MasterClient({ endpoint, log, security: testSecurity(), masterRetryWindowMs: 300, masterRequestTimeoutMs: 50, now: () => (t += 100) });
    closers.push(() => c.close());
    await assert.rejects(c.listJobs(10), (e: unknown) => {
      assert.ok(e instanceof GridError);
      assert.equal(e.code, 'UNAVAILABLE');
      assert.match(e.message, new RegExp(`no master answers at ${endpoint} after 300 ms; is \`grid dev\` \\(or \`grid master\`\\) running\\?`));
      return true;
    });
  });
});

// docs/architecture.md "Replicated masters": a follower answers NOT_LEADER `leader=<endpoint>;`
// (or `leader=unknown;`); the client re-sends the SAME request to the named leader at once,
// waits masterLeaderWaitMs when no leader is known, and moves to the next master on a timeout.
describe('cli: MasterClient follows the leader of a replicated group (real sockets)', function () {
  const log = silentLogger();
  const closers: (() => void)[] = [];
  afterEach(() => {
    for (const c of closers.splice(0)) c();
  });

  /** A test master: answers as `answer` says and records what it saw. */
  async function master(answer: (m: Message, n: number) => 'lead' | 'silent' | { follower: string | undefined }): Promise<{ endpoint: string; seen: Message[] }> {
    const seen: Message[] = [];
    const server = new RpcServer({
      security: freshSecurity('fake-master', ['masters'], true),
      access: MASTER_ACCESS,
      bind: 'tcp://127.0.0.1:0',
      nodeUuid: newUuid(),
      log,
      handler: (m) => {
        seen.push(m);
        const a = answer(m, seen.length);
        if (a === 'silent') return undefined;
        if (a !== 'lead') throw notLeader(a.follower);
        if (m.type === 'job_status2_request') return statusReply(m, newUuid());
        if (m.type === 'job_submit_request') return { type: 'job_submit_response', node_uuid: newUuid(), request_uuid: m.request_uuid, job_uuid: m.job_uuid, task_count: 2, created: 1 } as MessageInput;
        throw new GridError('UNEXPECTED', m.type);
      },
    });
    const endpoint = await server.start();
    closers.push(() => server.close());
    return { endpoint, seen };
  }

  function client(endpoint: string | string[], o: { windowMs?: number; timeoutMs?: number; leaderWaitMs?: number } = {}): MasterClient {
    const c = new MasterClient({ endpoint, log, security: testSecurity(), masterRetryWindowMs: o.windowMs ?? 10_000, masterRequestTimeoutMs: o.timeoutMs ?? 1_000, masterLeaderWaitMs: o.leaderWaitMs ?? 20 });
    closers.push(() => c.close());
    return c;
  }

  it('re-sends the same submit (request_uuid, job_uuid) to the leader a follower names, at once', async () => {
    const leader = await master(() => 'lead');
    const follower = await master(() => ({ follower: leader.endpoint }));
    const c = client([follower.endpoint, leader.endpoint]);
    const jobUuid = newUuid();
    const r = await c.submit({
      job_uuid: jobUuid,
      program_file_uuid: newUuid(),
      chunk_size: 1,
      max_retries: 0,
      task_timeout_ms: 1000,
      memory_limit_mb: 64,
      output_limit_bytes: 1024,
      input_file_uuids: [newUuid(), newUuid()],
      input_names: ['a', 'b'],
      args: [],
      program_name: 'job.js',
    });
    assert.equal(r.job_uuid, jobUuid);
    assert.equal(follower.seen.length, 1);
    assert.equal(leader.seen.length, 1);
    const [f, l] = [follower.seen[0]!, leader.seen[0]!] as (Message & { type: 'job_submit_request' })[];
    assert.equal(l.request_uuid, f!.request_uuid, 'same request_uuid');
    assert.equal(l.job_uuid, jobUuid, 'same job_uuid');
    assert.equal(c.stats.redirects, 1);
    assert.equal(c.stats.noLeader, 0);
    assert.equal(c.current, leader.endpoint, 'the next request goes straight to the leader');
    await c.jobStatus(newUuid());
    assert.equal(follower.seen.length, 1, 'the follower is not asked again');
  });

  it('follows a leader that is not in its list (a comma list given as one string)', async () => {
    const leader = await master(() => 'lead');
    const follower = await master(() => ({ follower: leader.endpoint }));
    const c = client(follower.endpoint);
    assert.equal((await c.jobStatus(newUuid())).state, 1);
    assert.equal(c.current, leader.endpoint);
  });

  it('waits masterLeaderWaitMs and asks the next master while no leader is known (an election)', async () => {
    const a = await master(() => ({ follower: undefined }));
    // b is a candidate for its first two requests, then wins the election
    const b = await master((_m, n) => (n <= 2 ? { follower: undefined } : 'lead'));
    const c = client(`${a.endpoint},${b.endpoint}`, { leaderWaitMs: 30 });
    assert.equal((await c.jobStatus(newUuid())).tasks_succeeded, 3);
    assert.equal(b.seen.length, 3);
    assert.ok(a.seen.length >= 2, `a asked between b's answers (${a.seen.length})`);
    assert.equal(c.stats.noLeader, a.seen.length + 2, 'every leader=unknown answer paused');
    const ids = new Set([...a.seen, ...b.seen].map((m) => (m as { request_uuid: string }).request_uuid));
    assert.equal(ids.size, 1, 'one request_uuid throughout');
  });

  it('backs off its pauses while no leader is known: masterLeaderWaitMs doubled up to masterLeaderWaitMaxMs, with equal jitter (src/common/backoff.ts)', async () => {
    const candidate = await master((_m, n) => (n <= 6 ? { follower: undefined } : 'lead'));
    const slept: number[] = [];
    const mk = (random: () => number): MasterClient => {
      const c = new MasterClient({ endpoint: candidate.endpoint, log, security: testSecurity(), masterRetryWindowMs: 60_000, masterRequestTimeoutMs: 1_000, masterLeaderWaitMs: 100, masterLeaderWaitMaxMs: 500, random, sleep: async (ms) => void slept.push(ms) });
      closers.push(() => c.close());
      return c;
    };
    assert.equal((await mk(() => 0).jobStatus(newUuid())).state, 1);
    assert.deepEqual(slept, [50, 100, 200, 250, 250, 250], 'random 0: half of 100, 200, 400, 500 (capped), ...');
    assert.equal(candidate.seen.length, 7, 'one attempt after each pause');
  });

  it('ignores a hint that is not an endpoint (treated as no leader known) instead of crashing', async () => {
    const leader = await master(() => 'lead');
    const odd = await master(() => ({ follower: 'not-an-endpoint' }));
    const c = client([odd.endpoint, leader.endpoint]);
    assert.equal((await c.jobStatus(newUuid())).state, 1);
    assert.equal(c.stats.noLeader, 1);
    assert.equal(c.current, leader.endpoint);
  });

  it('moves to the next master after a timeout (a dead leader)', async () => {
    const dead = `tcp://127.0.0.1:${await freePort()}`;
    const silent = await master(() => 'silent');
    const leader = await master(() => 'lead');
    // timeouts long enough that the live leader always answers within one (a slow machine)
    const c = client([dead, silent.endpoint, leader.endpoint], { timeoutMs: 1_000 });
    assert.equal((await c.jobStatus(newUuid())).state, 1);
    assert.equal(c.stats.timeouts, 2);
    assert.equal(silent.seen.length, 1);
  });

  it('fails after the window with "no master leads ... no quorum?" when every master knows no leader', async () => {
    const a = await master(() => ({ follower: undefined }));
    const dead1 = `tcp://127.0.0.1:${await freePort()}`;
    const dead2 = `tcp://127.0.0.1:${await freePort()}`;
    const c = client([dead1, a.endpoint, dead2], { windowMs: 3_000, timeoutMs: 300, leaderWaitMs: 50 });
    await assert.rejects(c.listJobs(10), (e: unknown) => {
      assert.ok(e instanceof GridError);
      assert.equal(e.code, 'UNAVAILABLE');
      assert.match(e.message, new RegExp(`^no master leads: asked ${dead1}, ${a.endpoint}, ${dead2} for 3000 ms and every master that answered knows no leader; no quorum\\?`));
      assert.match(e.describe(), /grid cluster/);
      return true;
    });
    assert.ok(a.seen.length >= 2, 'the survivor was asked again after the dead ones');
  });

  it('does not spin when two followers name each other (stale hints): pauses after one round', async () => {
    let aEndpoint = '';
    const b = await master(() => ({ follower: aEndpoint }));
    const a = await master(() => ({ follower: b.endpoint }));
    aEndpoint = a.endpoint;
    const c = client([a.endpoint, b.endpoint], { windowMs: 800, leaderWaitMs: 100 });
    await assert.rejects(c.jobStatus(newUuid()), /no master leads: .*kept pointing elsewhere/);
    const asked = a.seen.length + b.seen.length;
    // without the pause this would be thousands of round trips in 800 ms; with it, one round
    // (the first ask plus 2 hops) per 100 ms pause at most
    assert.ok(asked <= 3 * (800 / 100 + 2), `asked ${asked} times`);
    assert.ok(c.stats.noLeader >= 2, 'paused');
  });
});
