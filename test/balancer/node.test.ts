// The balancer node on real sockets: the test plays the master (a ROUTER) and workers
// (DEALERs) around an in-process BalancerNode, and runs the real `grid balancer` process
// (docs/architecture.md "Master -> balancer", "Balancer -> worker", "Results"; docs/balancer.md).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import * as zmq from 'zeromq';
import { bindServer, clientSocket, releaseServer, serverSocket, silentLogger as quietLog } from '../../src/common';
import { TEST_NODE_SECURITY, freshSecurity, testSecurity } from '../helpers/security';
import { BalancerNode, loadBalancerConfig } from '../../src/balancer';
import { SOFTWARE_VERSION } from '../../src/common';
import { notLeader } from '../../src/common/leader';
import { DispatchEvent } from '../../src/balancer';
import { ERROR_CODES, Message, MessageInput, MessageOf, NIL_UUID, PROTOCOL_VERSION, TaskOutcome, decode, encode, newUuid } from '../../src/messages';
import { taskMsg } from './helpers';

const BIN = path.resolve(__dirname, '../../../bin/grid.js');
const HB_MS = 100;

async function until<T>(what: string, f: () => T | undefined | false, ms = 5000): Promise<T> {
  const t0 = Date.now();
  for (;;) {
    const v = f();
    if (v) return v;
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

function get(port: number, p: string): Promise<{ code: number; body: string }> {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path: p }, (res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve({ code: res.statusCode!, body }));
    }).on('error', reject);
  });
}

/**
 * The test's master: a ROUTER that records what it gets, heartbeats the balancer once it
 * said hello, and (while beating) answers every hello with lease_grant epoch 1, as the
 * leader does for the holder. As a follower (`followerOf` set: the leader's endpoint, or null for "unknown")
 * it answers every message with error_reply NOT_LEADER, built the way masters build it.
 */
class FakeMaster {
  readonly id = newUuid();
  readonly sec = freshSecurity('fake-masters', ['masters'], true);
  readonly sock = serverSocket(this.sec);
  readonly inbox: Message[] = [];
  peer?: Buffer;
  beating = true;
  followerOf: string | null | undefined = undefined;
  private timer?: NodeJS.Timeout;
  endpoint = '';
  async start(): Promise<string> {
    this.endpoint = await bindServer(this.sock, this.sec, 'tcp://127.0.0.1:0', quietLog());
    void (async () => {
      try {
        for await (const [peer, ...frames] of this.sock) {
          const m = decode(frames as Buffer[]);
          this.inbox.push(m);
          if (this.followerOf !== undefined) {
            const e = notLeader(this.followerOf ?? undefined);
            const reply = encode({ type: 'error_reply', node_uuid: this.id, request_uuid: NIL_UUID, error_code: e.wireCode, message: e.describe() });
            await this.sock.send([peer as Buffer, ...reply]);
            continue;
          }
          if (m.type === 'balancer_hello') {
            this.peer = peer as Buffer;
            if (this.beating) void this.send({ type: 'lease_grant', node_uuid: this.id, epoch: 1, request_seq: m.request_seq, lease_ms: 60_000 });
          }
        }
      } catch {
        /* closed */
      }
    })();
    this.timer = setInterval(() => {
      if (this.beating && this.peer) void this.send({ type: 'generic_message', node_uuid: this.id });
    }, HB_MS);
    return this.endpoint;
  }
  /** Sends are chained: a ZeroMQ socket takes one send at a time (a second one throws EBUSY). */
  private chain: Promise<void> = Promise.resolve();
  send(m: MessageInput): Promise<void> {
    const frames = [this.peer!, ...encode(m)];
    this.chain = this.chain.then(() => this.sock.send(frames)).catch(() => undefined);
    return this.chain;
  }
  of<T extends Message['type']>(type: T): MessageOf<T>[] {
    return this.inbox.filter((m) => m.type === type) as MessageOf<T>[];
  }
  close(): void {
    clearInterval(this.timer);
    this.sock.close();
    releaseServer(this.sec);
  }
}

/** A test worker: a DEALER that heartbeats with worker_status while `beating`. */
class FakeWorker {
  readonly sock: zmq.Dealer;
  readonly inbox: Message[] = [];
  beating = true;
  private timer?: NodeJS.Timeout;
  constructor(
    endpoint: string,
    readonly id = newUuid(),
  ) {
    const sock = (this.sock = clientSocket(testSecurity('workers'), endpoint));
    void (async () => {
      try {
        for await (const frames of sock) this.inbox.push(decode(frames as Buffer[]));
      } catch {
        /* closed */
      }
    })();
    this.timer = setInterval(() => {
      if (this.beating) void this.send({ type: 'worker_status', node_uuid: this.id, job_uuid: NIL_UUID, state: 0 });
    }, HB_MS);
  }
  send(m: MessageInput): Promise<void> {
    return this.sock.send(encode(m));
  }
  ready(slots: number, prefetch: number, software = SOFTWARE_VERSION): Promise<void> {
    return this.send({ type: 'worker_ready', node_uuid: this.id, protocol_version: PROTOCOL_VERSION, slots, prefetch, software_version: software, cached_file_uuids: [] });
  }
  result(job: string, index: number, attempt: number, outcome: number = TaskOutcome.ok): Promise<void> {
    return this.send({
      type: 'task_result', node_uuid: this.id, job_uuid: job, worker_uuid: this.id, log_file_uuid: NIL_UUID, task_index: index, attempt,
      exit_code: 0, duration_ms: 3, outcome, final: 0, output_file_uuids: [newUuid()], output_names: ['out.txt'], error: '', log_tail: 'done', epoch: 1,
    });
  }
  of<T extends Message['type']>(type: T): MessageOf<T>[] {
    return this.inbox.filter((m) => m.type === type) as MessageOf<T>[];
  }
  close(): void {
    clearInterval(this.timer);
    this.sock.close();
  }
}

describe('balancer node on real sockets', function () {
  this.timeout(20_000);
  let dir: string;
  let master: FakeMaster;
  let node: BalancerNode | undefined;
  const closers: (() => void)[] = [];

  beforeEach(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'grid-balancer-'));
    master = new FakeMaster();
    await master.start();
  });

  afterEach(async () => {
    for (const c of closers.splice(0)) c();
    await node?.stop();
    node = undefined;
    master.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  function worker(endpoint: string, id?: string): FakeWorker {
    const w = new FakeWorker(endpoint, id);
    closers.push(() => w.close());
    return w;
  }

  async function startNode(o: { master?: string; taskDeadlineSlackMs?: number; queuedDeadlineMs?: number } = {}): Promise<{ endpoint: string; adminPort: number }> {
    const cfg = loadBalancerConfig({
      dataDir: dir,
      ...TEST_NODE_SECURITY,
      master: o.master ?? master.endpoint,
      ...(o.taskDeadlineSlackMs !== undefined ? { taskDeadlineSlackMs: o.taskDeadlineSlackMs } : {}),
      ...(o.queuedDeadlineMs !== undefined ? { queuedDeadlineMs: o.queuedDeadlineMs } : {}),
      bind: 'tcp://127.0.0.1:0',
      adminPort: 0,
      heartbeatIntervalMs: HB_MS,
      tickMs: 20,
      retryBackoffBaseMs: 50,
      resultResendMs: 300,
    });
    node = new BalancerNode(cfg);
    return node.start();
  }

  it('says hello, dispatches, forwards results until acked, re-dispatches a silent worker\'s task, survives hostile bytes', async () => {
    master.beating = false; // not yet: /healthz must say 503 until the master is heard
    const { endpoint, adminPort } = await startNode();
    await until('balancer_hello', () => master.of('balancer_hello').length > 0);
    assert.equal(master.of('balancer_hello')[0]!.protocol_version, PROTOCOL_VERSION);
    const h0 = await get(adminPort, '/healthz');
    assert.equal(h0.code, 503);
    assert.match(h0.body, /no word from the master/);
    master.beating = true;
    await until('/healthz 200', () => node!.dispatcher.masterConnected);
    assert.equal((await get(adminPort, '/healthz')).code, 200);

    // a worker joins and gets one task (slots 1 + prefetch 0)
    const a = worker(endpoint);
    await a.ready(1, 0);
    await until('greeting', () => a.of('balancer_state').some((x) => x.active === 1));
    const job = newUuid();
    await master.send(taskMsg(job, 0, { maxRetries: 2 }));
    await master.send(taskMsg(job, 1, { maxRetries: 2 }));
    await master.send(taskMsg(job, 1, { maxRetries: 2 })); // a duplicate is ignored
    const d0 = await until('task 0 at A', () => a.of('worker_request')[0]);
    assert.deepEqual([d0.job_uuid, d0.task_index, d0.attempt], [job, 0, 0]);
    assert.equal(d0.node_uuid, node!.nodeId);

    await a.send({ type: 'task_started', node_uuid: a.id, job_uuid: job, worker_uuid: a.id, task_index: 0, attempt: 0, epoch: 1 });
    await until('task_started at the master', () => master.of('task_started').length === 1);
    await a.result(job, 0, 0);
    const r0 = await until('result at the master', () => master.of('task_result')[0]);
    assert.deepEqual([r0.task_index, r0.attempt, r0.final, r0.outcome, r0.worker_uuid, r0.output_names[0], r0.epoch], [0, 0, 1, TaskOutcome.ok, a.id, 'out.txt', 1]);
    // not acked by the master: re-sent after resultResendMs, and the worker is not acked yet
    await until('result re-sent', () => master.of('task_result').filter((r) => r.task_index === 0).length >= 2);
    assert.equal(a.of('result_ack').length, 0, 'the worker keeps its result until the master recorded it');
    await master.send({ type: 'result_ack', node_uuid: master.id, job_uuid: job, task_index: 0, attempt: 0 });
    await until('result_ack at A (end to end)', () => a.of('result_ack').length === 1);
    await until('unacked drained', () => node!.dispatcher.status(Date.now()).unackedResults === 0);

    // task 1 went to A after its slot freed; A falls silent, B joins: task 1 moves to B at attempt 1
    await until('task 1 at A', () => a.of('worker_request').find((m) => m.task_index === 1));
    const b = worker(endpoint);
    await b.ready(2, 1);
    a.beating = false;
    const d1 = await until('task 1 at B', () => b.of('worker_request').find((m) => m.task_index === 1));
    assert.equal(d1.attempt, 1);
    const lost = await until('lost result of task 1 at the master', () => master.of('task_result').find((r) => r.task_index === 1));
    assert.deepEqual([lost.attempt, lost.outcome, lost.final, lost.worker_uuid], [0, TaskOutcome.lost, 0, a.id]);

    // hostile bytes on the worker endpoint: error_reply DECODE_ERROR, and the node keeps serving
    const evil = clientSocket(testSecurity('workers'), endpoint);
    closers.push(() => evil.close());
    await evil.send([Buffer.from([63, 1, 2, 3]), Buffer.from('junk')]);
    const [f0, ...rest] = (await evil.receive()) as Buffer[];
    const err = decode([f0!, ...rest]) as MessageOf<'error_reply'>;
    assert.equal(err.type, 'error_reply');
    assert.equal(err.error_code, ERROR_CODES.DECODE_ERROR);
    await b.result(job, 1, 1);
    await until('final result of task 1', () => master.of('task_result').find((r) => r.task_index === 1 && r.final === 1));
    await master.send({ type: 'result_ack', node_uuid: master.id, job_uuid: job, task_index: 1, attempt: 1 });
    await until('B acked', () => b.of('result_ack').some((x) => x.task_index === 1 && x.attempt === 1));

    // A comes back talking: it is unknown now and is told to re-register
    a.beating = true;
    const un = await until('UNAVAILABLE at A', () => a.of('error_reply').find((e) => e.error_code === ERROR_CODES.UNAVAILABLE));
    assert.match(un.message, /send worker_ready/);

    // a worker of another version is refused, naming both versions
    const c = worker(endpoint);
    await c.ready(1, 0, '0.0.0-other');
    const vm = await until('VERSION_MISMATCH', () => c.of('error_reply')[0]);
    assert.equal(vm.error_code, ERROR_CODES.VERSION_MISMATCH);
    assert.ok(vm.message.includes('0.0.0-other') && vm.message.includes(SOFTWARE_VERSION), vm.message);

    const st = JSON.parse((await get(adminPort, '/status')).body);
    assert.equal(st.role, 'balancer');
    assert.deepEqual(st.workers.map((w: { workerId: string }) => w.workerId), [b.id]);
    assert.equal(st.counters.tasksDuplicate, 1);
    assert.ok(st.server.decodeErrors >= 1);
    assert.ok(fs.readdirSync(path.join(dir, 'logs')).some((f) => f === `balancer-${node!.nodeId}.log`));
  });

  it('says hello again when the master falls silent', async () => {
    await startNode();
    const seen: DispatchEvent[] = [];
    node!.eventListeners.push((e) => seen.push(e));
    await until('first hello', () => master.of('balancer_hello').length >= 1);
    await until('connected', () => node!.dispatcher.masterConnected);
    // hellos repeat every leaseRenewMs as renewals; what counts is a new hello because of silence
    master.beating = false;
    await until('a hello because the master fell silent', () => seen.find((e) => e.type === 'master:hello' && e.reason === 'silent'));
    assert.equal(node!.dispatcher.masterConnected, false);
    assert.ok(seen.some((e) => e.type === 'master:lost'));
    master.beating = true;
    await until('connected again', () => node!.dispatcher.masterConnected);
  });

  it('follows NOT_LEADER to the leader, takes tasks from it, moves on when it falls silent and re-sends unacked results there', async () => {
    // three masters: m1 is a follower naming m2 (the leader, `master`), m3 takes over later
    const m1 = new FakeMaster();
    const m3 = new FakeMaster();
    closers.push(() => m1.close(), () => m3.close());
    await m1.start();
    await m3.start();
    m1.followerOf = master.endpoint;
    m3.beating = false; // not leader yet: silent until it is
    const seen: DispatchEvent[] = [];
    const { endpoint, adminPort } = await startNode({ master: `${m1.endpoint},${master.endpoint},${m3.endpoint}` });
    node!.eventListeners.push((e) => seen.push(e));
    await until('hello at m1', () => m1.of('balancer_hello').length > 0);
    await until('hello at m2 (the leader m1 named)', () => master.of('balancer_hello').length > 0);
    await until('connected to m2', () => node!.dispatcher.masterConnected);
    assert.equal(node!.dispatcher.currentMaster, master.endpoint);
    const redirect = seen.find((e) => e.type === 'master:redirect');
    assert.deepEqual(redirect, { type: 'master:redirect', from: m1.endpoint, to: master.endpoint, why: 'not-leader', hint: master.endpoint });

    // tasks from the leader reach a worker; its result goes to the leader, which does not ack it
    const a = worker(endpoint);
    await a.ready(2, 0);
    const job = newUuid();
    await master.send(taskMsg(job, 0));
    await until('task 0 at A', () => a.of('worker_request').find((m) => m.task_index === 0));
    await a.result(job, 0, 0);
    await until('result at m2', () => master.of('task_result').length > 0);

    // m2 dies (silent); the balancer moves to m3, the next in its list, which now leads
    master.beating = false;
    m3.beating = true;
    await until('hello at m3', () => m3.of('balancer_hello').length > 0);
    await until('connected to m3', () => node!.dispatcher.masterConnected && node!.dispatcher.currentMaster === m3.endpoint);
    assert.ok(seen.some((e) => e.type === 'master:redirect' && e.from === master.endpoint && e.to === m3.endpoint && e.why === 'silent'));
    const r = await until('unacked result re-sent to m3', () => m3.of('task_result').find((x) => x.task_index === 0));
    assert.deepEqual([r.attempt, r.final, r.outcome], [0, 1, TaskOutcome.ok]);
    await m3.send({ type: 'result_ack', node_uuid: m3.id, job_uuid: job, task_index: 0, attempt: 0 });
    await until('unacked drained', () => node!.dispatcher.status(Date.now()).unackedResults === 0);
    await m3.send(taskMsg(job, 1));
    await until('task 1 (from m3) at A', () => a.of('worker_request').find((m) => m.task_index === 1));

    const st = JSON.parse((await get(adminPort, '/status')).body);
    assert.equal(st.master.endpoint, m3.endpoint);
    assert.deepEqual(st.master.endpoints, [m1.endpoint, master.endpoint, m3.endpoint]);
    assert.equal(st.master.state, 'connected');
    assert.ok(st.counters.masterRedirects >= 2);
    // nothing more reached m2 after the move (the old DEALER is closed)
    const atM2 = master.inbox.length;
    await new Promise((res) => setTimeout(res, 3 * HB_MS));
    assert.equal(master.inbox.length, atM2);
  });

  it('settles an attempt whose result never comes as lost at its deadline and retries it; the late result is acked and ignored', async () => {
    const { endpoint } = await startNode({ taskDeadlineSlackMs: 100, queuedDeadlineMs: 100 });
    await until('connected', () => node!.dispatcher.masterConnected);
    const a = worker(endpoint); // keeps heartbeating: never declared lost
    await a.ready(1, 0);
    await until('greeting', () => a.of('balancer_state').some((x) => x.active === 1));
    const job = newUuid();
    await master.send({ ...taskMsg(job, 0, { maxRetries: 1 }), timeout_ms: 100 });
    await until('attempt 0 at A', () => a.of('worker_request').find((m) => m.attempt === 0));
    await a.send({ type: 'task_started', node_uuid: a.id, job_uuid: job, worker_uuid: a.id, task_index: 0, attempt: 0, epoch: 1 });
    const lost = await until('lost result at the master', () => master.of('task_result').find((r) => r.attempt === 0));
    assert.deepEqual([lost.outcome, lost.final, lost.worker_uuid], [TaskOutcome.lost, 0, a.id]);
    assert.match(lost.error, /within 200 ms of task_started/);
    await until('attempt 1 at A (the only worker)', () => a.of('worker_request').find((m) => m.attempt === 1));
    await a.result(job, 0, 0); // attempt 0, too late
    await until('late result acked', () => a.of('result_ack').some((x) => x.attempt === 0));
    await a.result(job, 0, 1);
    const fin = await until('final result of attempt 1', () => master.of('task_result').find((r) => r.attempt === 1));
    assert.deepEqual([fin.outcome, fin.final], [TaskOutcome.ok, 1]);
    assert.equal(master.of('task_result').filter((r) => r.attempt === 0 && r.outcome === TaskOutcome.ok).length, 0, 'the late result is not forwarded');
    assert.equal(node!.dispatcher.status(Date.now()).counters.deadlinesMissed, 1);
  });

  it('a worker that reconnects with a new routing id loses what it held (re-queued) and is asked to register again', async () => {
    const { endpoint } = await startNode();
    await until('connected', () => node!.dispatcher.masterConnected);
    const a = worker(endpoint);
    await a.ready(1, 0);
    await until('greeting', () => a.of('balancer_state').some((x) => x.active === 1));
    const job = newUuid();
    await master.send(taskMsg(job, 0, { maxRetries: 2 }));
    await until('task 0 at A', () => a.of('worker_request')[0]);
    // the same worker id on a new socket (its DEALER reconnected): the old routing id is gone
    a.beating = false;
    const again = worker(endpoint, a.id);
    await again.send({ type: 'worker_status', node_uuid: a.id, job_uuid: job, state: 1 });
    const e = await until('UNAVAILABLE on the new connection', () => again.of('error_reply').find((x) => x.error_code === ERROR_CODES.UNAVAILABLE));
    assert.match(e.message, /reconnected.*send worker_ready/);
    const lost = await until('the attempt reported lost', () => master.of('task_result').find((r) => r.task_index === 0));
    assert.deepEqual([lost.attempt, lost.outcome, lost.final], [0, TaskOutcome.lost, 0]);
    await again.ready(1, 0);
    const d1 = await until('attempt 1 on the new connection', () => again.of('worker_request').find((m) => m.attempt === 1));
    assert.equal(d1.task_index, 0);
  });

  it('runs as `grid balancer`, announces GRID_READY and stops on SIGTERM', async () => {
    // a comma list of masters: the first is the one that answers
    const child = spawn(process.execPath, [BIN, 'balancer', '--master', `${master.endpoint},tcp://127.0.0.1:1`, '--bind', 'tcp://127.0.0.1:0', '--admin-port', '0', '--data-dir', dir], { stdio: ['ignore', 'pipe', 'pipe'] });
    closers.push(() => {
      if (child.exitCode === null) child.kill('SIGKILL');
    });
    let out = '';
    child.stdout.on('data', (c) => (out += c));
    const line = await until('GRID_READY', () => out.split('\n').find((l) => l.startsWith('GRID_READY ')));
    const info = JSON.parse(line.slice('GRID_READY '.length));
    assert.equal(info.role, 'balancer');
    assert.match(info.endpoints.workers, /^tcp:\/\/127\.0\.0\.1:\d+$/);
    await until('hello from the process', () => master.of('balancer_hello').length > 0);
    let health = 0;
    for (let i = 0; i < 100 && health !== 200; i++) {
      health = (await get(info.adminPort, '/healthz')).code;
      if (health !== 200) await new Promise((r) => setTimeout(r, 50));
    }
    assert.equal(health, 200, '/healthz turns 200 once the master answered');
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    child.kill('SIGTERM');
    assert.equal(await exited, 0);
  });

  it('refuses a bad flag with CONFIG_INVALID and exits 1', async () => {
    const child = spawn(process.execPath, [BIN, 'balancer', '--bind', 'not-an-endpoint', '--data-dir', dir], { stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    child.stderr.on('data', (c) => (err += c));
    const code = await new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
    assert.equal(code, 1);
    assert.match(err, /CONFIG_INVALID: setting bind must be an endpoint/);
  });
});
