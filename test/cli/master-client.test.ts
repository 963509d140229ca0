// MasterClient on real sockets (docs/architecture.md, "Submit"): a request is re-sent with
// the SAME request_uuid until the master answers, including a master that only starts
// listening late (a restart), and fails with a clear error once the retry window is over.
import assert from 'node:assert/strict';
import { GridError, RpcServer, silentLogger } from '../../src/common';
import { Message, MessageInput, newUuid } from '../../src/messages';
import { MasterClient } from '../../src/cli/master-client';
import { freePort } from '../helpers/grid';

function statusReply(m: Message & { type: 'job_status_request' }, nodeUuid: string): MessageInput {
  return {
    type: 'job_status_response',
    node_uuid: nodeUuid,
    request_uuid: m.request_uuid,
    job_uuid: m.job_uuid,
    state: 1,
    task_count: 3,
    tasks_pending: 0,
    tasks_running: 0,
    tasks_succeeded: 3,
    tasks_failed: 0,
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
      bind: 'tcp://127.0.0.1:0',
      nodeUuid: newUuid(),
      log,
      handler: (m) => {
        if (m.type !== 'job_status_request') throw new GridError('UNEXPECTED', m.type);
        seen.push(m.request_uuid);
        // the first two copies are "lost"
        return seen.length <= 2 ? undefined : statusReply(m, newUuid());
      },
    });
    const endpoint = await server.start();
    closers.push(() => server.close());
    const c = new MasterClient({ endpoint, log, masterRetryWindowMs: 10_000, masterRequestTimeoutMs: 100 });
    closers.push(() => c.close());
    const job = newUuid();
    const r = await c.jobStatus(job);
    assert.equal(r.job_uuid, job);
    assert.equal(r.tasks_succeeded, 3);
    assert.equal(seen.length, 3);
    assert.equal(new Set(seen).size, 1, 'every attempt carried the same request_uuid');
  });

  it('gets its answer from a master that starts listening after the first attempts', async () => {
    const port = await freePort();
    const endpoint = `tcp://127.0.0.1:${port}`;
    const c = new MasterClient({ endpoint, log, masterRetryWindowMs: 15_000, masterRequestTimeoutMs: 200 });
    closers.push(() => c.close());
    const pending = c.jobStatus(newUuid());
    await new Promise((r) => setTimeout(r, 700));
    const server = new RpcServer({ bind: endpoint, nodeUuid: newUuid(), log, handler: (m) => (m.type === 'job_status_request' ? statusReply(m, newUuid()) : undefined) });
    await server.start();
    closers.push(() => server.close());
    const r = await pending;
    assert.equal(r.state, 1);
  });

  it('passes on a refusal (NOT_FOUND) at once, without retrying', async () => {
    let n = 0;
    const server = new RpcServer({
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
    const c = new MasterClient({ endpoint, log, masterRetryWindowMs: 10_000, masterRequestTimeoutMs: 1000 });
    closers.push(() => c.close());
    await assert.rejects(c.jobStatus(newUuid()), (e: unknown) => e instanceof GridError && e.code === 'NOT_FOUND' && /no job like that/.test(e.message));
    assert.equal(n, 1);
  });

  it('gives up after the window with "no master answers at <endpoint>"', async () => {
    const endpoint = `tcp://127.0.0.1:${await freePort()}`;
    let t = 0;
    // injected clock: every reading advances 100 ms, so the window closes without waiting for it
    const c = new MasterClient({ endpoint, log, masterRetryWindowMs: 300, masterRequestTimeoutMs: 50, now: () => (t += 100) });
    closers.push(() => c.close());
    await assert.rejects(c.listJobs(10), (e: unknown) => {
      assert.ok(e instanceof GridError);
      assert.equal(e.code, 'UNAVAILABLE');
      assert.match(e.message, new RegExp(`no master answers at ${endpoint} after 300 ms; is \`grid dev\` \\(or \`grid master\`\\) running\\?`));
      return true;
    });
  });
});
