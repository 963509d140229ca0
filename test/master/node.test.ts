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

const submitMsg = (n: number, jobUuid?: string) => submitN(n, jobUuid, 1);
import { JobState, Message, MessageOf, NIL_UUID, PROTOCOL_VERSION, TaskOutcome, decode, encode, newUuid } from '../../src/messages';

const BIN = path.resolve(__dirname, '../../../bin/grid.js');


/** A test DEALER that plays the balancer. */
class FakeBalancer {
  readonly id = newUuid();
  readonly sock = new zmq.Dealer({ linger: 0 });
  readonly inbox: Message[] = [];
  constructor(endpoint: string) {
    this.sock.connect(endpoint);
    void (async () => {
      try {
        for await (const frames of this.sock) this.inbox.push(decode(frames as Buffer[]));
      } catch {
        /* closed */
      }
    })();
  }
  send(m: Parameters<typeof encode>[0]) {
    return this.sock.send(encode(m));
  }
  async waitFor<T extends Message['type']>(type: T, count = 1, ms = 5000): Promise<MessageOf<T>[]> {
    const t0 = Date.now();
    for (;;) {
      const got = this.inbox.filter((m) => m.type === type) as MessageOf<T>[];
      if (got.length >= count) return got;
      if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${count} ${type}, have ${got.length}`);
      await new Promise((r) => setTimeout(r, 10));
    }
  }
  close() {
    this.sock.close();
  }
}

function result(job: string, d: MessageOf<'task_dispatch'>, ok: boolean, final: boolean) {
  return {
    type: 'task_result' as const,
    node_uuid: newUuid(),
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
  };
}

describe('master node (real sockets)', function () {
  this.timeout(30_000);
  let dir: string;
  let node: MasterNode;
  let endpoint: string;
  let client: RpcClient;
  const log = silentLogger();

  beforeEach(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'grid-master-node-'));
    node = new MasterNode(loadMasterConfig({ dataDir: dir, bind: 'tcp://127.0.0.1:0', adminPort: 0, heartbeatIntervalMs: 100 }), log);
    ({ endpoint } = await node.start());
    client = new RpcClient({ endpoint, nodeUuid: newUuid(), log });
  });
  afterEach(async () => {
    client.close();
    await node.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('accepts a job, pushes its tasks to the balancer and settles it from results', async () => {
    const bal = new FakeBalancer(endpoint);
    try {
      await bal.send({ type: 'balancer_hello', node_uuid: bal.id, protocol_version: PROTOCOL_VERSION });
      await bal.waitFor('generic_message');
      const sub = submitMsg(3);
      const r = (await client.request(sub)) as MessageOf<'job_submit_response'>;
      assert.equal(r.type, 'job_submit_response');
      assert.equal(r.task_count, 3);
      const tasks = await bal.waitFor('task_dispatch', 3);
      assert.deepEqual(tasks.map((t) => t.task_index).sort(), [0, 1, 2]);
      for (const t of tasks) await bal.send(result(sub.job_uuid, t, true, true));
      // a duplicate result is acked again and recorded once
      await bal.send(result(sub.job_uuid, tasks[0]!, true, true));
      await bal.waitFor('result_ack', 4);
      const st = (await client.request({ type: 'job_status_request', node_uuid: newUuid(), request_uuid: newUuid(), job_uuid: sub.job_uuid })) as MessageOf<'job_status_response'>;
      assert.equal(st.state, JobState.succeeded);
      assert.equal(st.tasks_succeeded, 3);
      const ts = (await client.request({ type: 'task_status_request', node_uuid: newUuid(), request_uuid: newUuid(), job_uuid: sub.job_uuid, task_index: 0 })) as MessageOf<'task_status_response'>;
      assert.equal(ts.output_names.length, 1);
      assert.equal(node.store.attemptCount(sub.job_uuid), 3);
    } finally {
      bal.close();
    }
  });

  it('answers a retried submit with the same job and no duplicate', async () => {
    const sub = submitMsg(2);
    await client.request(sub);
    const again = (await client.request({ ...sub, request_uuid: newUuid() })) as MessageOf<'job_submit_response'>;
    assert.equal(again.created, 0);
    const list = (await client.request({ type: 'job_list_request', node_uuid: newUuid(), request_uuid: newUuid(), limit: 10 })) as MessageOf<'job_list_response'>;
    assert.deepEqual(list.job_uuids, [sub.job_uuid]);
  });

  it('gives typed errors for unknown jobs and keeps serving after hostile bytes', async () => {
    await assert.rejects(client.request({ type: 'job_status_request', node_uuid: newUuid(), request_uuid: newUuid(), job_uuid: newUuid() }), (e: unknown) => e instanceof RemoteError && e.code === 'NOT_FOUND');
    const raw = new zmq.Dealer({ linger: 0 });
    raw.connect(endpoint);
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

  it('re-sends open tasks to a balancer that says hello again, and fails a job on a final failure', async () => {
    const sub = submitMsg(2);
    await client.request(sub);
    const bal = new FakeBalancer(endpoint);
    try {
      await bal.send({ type: 'balancer_hello', node_uuid: bal.id, protocol_version: PROTOCOL_VERSION });
      const tasks = await bal.waitFor('task_dispatch', 2);
      await bal.send(result(sub.job_uuid, tasks[0]!, false, false));
      await bal.waitFor('result_ack', 1);
      await bal.send({ type: 'balancer_hello', node_uuid: bal.id, protocol_version: PROTOCOL_VERSION });
      const again = await bal.waitFor('task_dispatch', 4);
      const t0 = again.filter((t) => t.task_index === tasks[0]!.task_index).map((t) => t.attempt);
      assert.deepEqual(t0, [0, 1], 'the second dispatch carries the next attempt');
      await bal.send(result(sub.job_uuid, { ...tasks[0]!, attempt: 1 }, false, true));
      await bal.waitFor('task_cancel', 1);
      const st = (await client.request({ type: 'job_status_request', node_uuid: newUuid(), request_uuid: newUuid(), job_uuid: sub.job_uuid })) as MessageOf<'job_status_response'>;
      assert.equal(st.state, JobState.failed);
      assert.match(st.error, /exited with code 3/);
    } finally {
      bal.close();
    }
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
    let client = new RpcClient({ endpoint, nodeUuid: newUuid(), log });
    const sub = submitMsg(5);
    await client.request(sub);
    client.close();
    proc.kill('SIGKILL');
    await new Promise((r) => proc.once('exit', r));
    ({ proc, endpoint } = await start());
    client = new RpcClient({ endpoint, nodeUuid: newUuid(), log });
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
