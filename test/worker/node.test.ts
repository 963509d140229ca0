// A real `grid worker` process driven by a ZeroMQ ROUTER that plays the balancer in this
// test, against a real `grid storage` process (docs/architecture.md, "Balancer -> worker
// (Paranoid Pirate)", "Results", "Cancel"; docs/worker.md).
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import * as zmq from 'zeromq';
import { silentLogger } from '../../src/common';
import { CancelScope, ERROR_CODES, Message, MessageInput, MessageOf, NIL_UUID, PROTOCOL_VERSION, TaskOutcome, WorkerState, decode, encode, newUuid } from '../../src/messages';
import { StorageClient } from '../../src/storage';
import { readExecutions } from '../../src/worker/journal';
import { Proc, fuseMounts, startGrid } from './helpers';
import { freshSecurity, testSecurity } from '../helpers/security';
import { bindServer, releaseServer, serverSocket } from '../../src/common';
import { taskVisibleDir } from '../helpers/grid';

const BALANCER_ID = newUuid();

/** The balancer, played by a ROUTER in the test. */
class FakeBalancer {
  readonly sec = freshSecurity('fake-balancers', ['balancers'], true);
  readonly sock = serverSocket(this.sec);
  readonly inbox: { m: Message; peer: Buffer; at: number }[] = [];
  endpoint = '';
  heartbeats = true;
  /** answer worker_ready with VERSION_MISMATCH */
  refuseVersion = false;
  private timer?: NodeJS.Timeout;
  private peers = new Map<string, Buffer>();

  async start(): Promise<void> {
    this.endpoint = await bindServer(this.sock, this.sec, 'tcp://127.0.0.1:0', silentLogger());
    void (async () => {
      try {
        for await (const [peer, ...frames] of this.sock) {
          const m = decode(frames as Buffer[]);
          this.inbox.push({ m, peer: peer as Buffer, at: Date.now() });
          this.peers.set(m.node_uuid, peer as Buffer);
          if (m.type === 'worker_ready' && this.refuseVersion) {
            await this.sendTo(m.node_uuid, { type: 'error_reply', node_uuid: BALANCER_ID, request_uuid: NIL_UUID, error_code: ERROR_CODES.VERSION_MISMATCH, message: 'balancer speaks protocol 99, worker 1' });
          }
        }
      } catch {
        /* closed */
      }
    })();
    this.timer = setInterval(() => {
      if (!this.heartbeats) return;
      for (const id of this.peers.keys()) void this.sendTo(id, { type: 'generic_message', node_uuid: BALANCER_ID }).catch(() => undefined);
    }, 100);
  }

  sendTo(workerId: string, m: MessageInput): Promise<void> {
    const peer = this.peers.get(workerId);
    if (!peer) throw new Error(`no peer ${workerId}`);
    return this.sock.send([peer, ...encode(m)]);
  }

  of<T extends Message['type']>(type: T, from?: string): MessageOf<T>[] {
    return this.inbox.filter((e) => e.m.type === type && (!from || e.m.node_uuid === from)).map((e) => e.m as MessageOf<T>);
  }

  async waitFor<T extends Message['type']>(type: T, pred: (m: MessageOf<T>) => boolean = () => true, count = 1, ms = 60_000): Promise<MessageOf<T>[]> {
    const t0 = Date.now();
    for (;;) {
      const got = this.of(type).filter(pred);
      if (got.length >= count) return got;
      if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${count} ${type}, have ${got.length}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.sock.close();
    releaseServer(this.sec);
  }
}

function get(port: number, p: string): Promise<{ code: number; body: string }> {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path: p }, (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ code: res.statusCode ?? 0, body }));
    }).on('error', reject);
  });
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** Waits for a condition (never for a fixed time). */
async function until(cond: () => boolean | Promise<boolean>, what: string, ms = 20_000): Promise<void> {
  const t0 = Date.now();
  while (!(await cond())) {
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/** A task program that blocks until the file `gate` exists, then writes o.txt. */
const gated = (gate: string, out = 'done'): string =>
  `const fs = require('fs'); (function w() { if (fs.existsSync(${JSON.stringify(gate)})) { fs.writeFileSync('o.txt', ${JSON.stringify(out)}); return; } setTimeout(w, 20); })();`;

describe('worker node (real processes)', function () {
  this.timeout(90_000);
  let tmp: string;
  /** gate files, where the sandboxed tasks can see them */
  let gates: string;
  let storage: Proc | undefined;
  let client: StorageClient;
  const workers: Proc[] = [];
  const balancers: FakeBalancer[] = [];

  before(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'grid-worker-node-'));
    gates = taskVisibleDir();
    storage = await startGrid(['storage', '--data-dir', path.join(tmp, 'storage'), '--bind', 'tcp://127.0.0.1:0', '--admin-port', '0']);
    const endpoint = (storage.ready.endpoints as { clients: string }).clients;
    client = new StorageClient({ security: testSecurity(), endpoint, nodeUuid: newUuid(), log: silentLogger() });
  });

  after(async () => {
    for (const w of workers) await w.stop();
    for (const b of balancers) b.close();
    client?.close();
    await storage?.stop();
    // no mount of ours may survive, whatever happened above
    for (const m of fuseMounts().filter((m) => m.startsWith(tmp))) {
      await new Promise((r) => require('node:child_process').execFile('fusermount', ['-uz', m], r));
      assert.fail(`mount ${m} was left behind`);
    }
    fs.rmSync(tmp, { recursive: true, force: true });
    fs.rmSync(gates, { recursive: true, force: true });
  });

  async function balancer(): Promise<FakeBalancer> {
    const b = new FakeBalancer();
    await b.start();
    balancers.push(b);
    return b;
  }

  async function worker(b: FakeBalancer, extra: string[] = [], cfg: Record<string, unknown> = {}): Promise<Proc & { id: string; dataDir: string; adminPort: number }> {
    const dataDir = path.join(tmp, `worker-${workers.length}`);
    fs.mkdirSync(dataDir, { recursive: true });
    const cfgFile = path.join(dataDir, 'worker.json');
    // liveness 30 x 100 ms: on a loaded machine a 300 ms stall would make the worker reconnect
    // with a new routing id, and this fake balancer would dispatch to the old one (lost)
    fs.writeFileSync(cfgFile, `// test config\n${JSON.stringify({ heartbeatIntervalMs: 100, livenessMissed: 30, resultResendMs: 300, memoryPollIntervalMs: 50, outputPollIntervalMs: 50, ...cfg })}\n`);
    const storageEp = (storage!.ready.endpoints as { clients: string }).clients;
    const p = await startGrid(['worker', '--balancer', b.endpoint, '--storage', storageEp, '--data-dir', dataDir, '--admin-port', '0', '--slots', '2', '--config', cfgFile, ...extra]);
    workers.push(p);
    return Object.assign(p, { id: p.ready.nodeId as string, dataDir, adminPort: p.ready.adminPort as number });
  }

  async function dispatch(b: FakeBalancer, workerId: string, program: string, inputs: { data: Buffer; name: string }[], over: Partial<MessageInput<'worker_request'>> = {}) {
    const prog = await client.putBuffer(Buffer.from(program));
    const ins = await Promise.all(inputs.map((i) => client.putBuffer(i.data)));
    const m: MessageInput<'worker_request'> = {
      type: 'worker_request',
      node_uuid: BALANCER_ID,
      job_uuid: newUuid(),
      program: Buffer.alloc(0), // program_length and the counts follow from the lists
      program_file_uuid: prog.fileUuid,
      task_index: 4,
      task_count: 9,
      attempt: 0,
      max_retries: 2,
      timeout_ms: 30_000,
      memory_limit_mb: 256,
      output_limit_bytes: 64 * 1024 * 1024,
      epoch: 1,
      input_file_uuids: ins.map((i) => i.fileUuid),
      input_files: inputs.map((i) => i.name),
      args: ['x', 'y z'],
      program_name: 'job.js',
      ...over,
    };
    await b.sendTo(workerId, m);
    return m;
  }

  const HASHER = `
    const fs = require('fs'); const crypto = require('crypto');
    const lines = process.argv.slice(2).map((p) => require('path').basename(p) + ' ' + crypto.createHash('sha256').update(fs.readFileSync(p)).digest('hex'));
    fs.writeFileSync('hashes.txt', lines.join('\\n') + '\\n');
    fs.mkdirSync('meta');
    fs.writeFileSync('meta/env.json', JSON.stringify({ job: process.env.GRID_JOB_ID, idx: process.env.GRID_TASK_INDEX, n: process.env.GRID_TASK_COUNT, args: JSON.parse(process.env.GRID_ARGS), paths: process.argv.slice(2) }));
    console.log('hashed ' + lines.length + ' inputs');
  `;

  it('joins with worker_ready, heartbeats, runs a task reading inputs through FUSE, and re-sends its result until acked', async () => {
    const b = await balancer();
    const w = await worker(b);
    const [ready] = await b.waitFor('worker_ready', (m) => m.node_uuid === w.id);
    assert.equal(ready!.protocol_version, PROTOCOL_VERSION);
    assert.equal(ready!.slots, 2);
    assert.equal(ready!.prefetch, 1);
    assert.match(ready!.software_version, /^\d+\.\d+\.\d+/);
    const [st] = await b.waitFor('worker_status', (m) => m.node_uuid === w.id);
    assert.equal(st!.state, WorkerState.idle);
    assert.equal(st!.job_uuid, NIL_UUID);

    const big = randomBytes(5 * 1024 * 1024 + 77);
    const smallIn = Buffer.from('small input\n');
    const d = await dispatch(b, w.id, HASHER, [{ data: big, name: 'big.bin' }, { data: smallIn, name: 'small.txt' }]);
    const [started] = await b.waitFor('task_started', (m) => m.job_uuid === d.job_uuid);
    assert.equal(started!.worker_uuid, w.id);
    assert.equal(started!.task_index, 4);
    const [r] = await b.waitFor('task_result', (m) => m.job_uuid === d.job_uuid);
    assert.equal(r!.outcome, TaskOutcome.ok, r!.error + r!.log_tail);
    assert.equal(r!.exit_code, 0);
    assert.equal(r!.final, 0);
    assert.equal(r!.worker_uuid, w.id);
    assert.deepEqual(r!.output_names, ['hashes.txt', 'meta/env.json']);
    const hashes = (await client.readWhole(r!.output_file_uuids[0]!)).toString();
    assert.equal(hashes, `big.bin ${sha(big)}\nsmall.txt ${sha(smallIn)}\n`);
    const env = JSON.parse((await client.readWhole(r!.output_file_uuids[1]!)).toString());
    assert.deepEqual(env.args, ['x', 'y z']);
    assert.equal(env.job, d.job_uuid);
    assert.equal(env.idx, '4');
    assert.equal(env.n, '9');
    // as root the task sees its inputs in its sandbox view (docs/operations.md, "Containment")
    const inputsAt = process.geteuid?.() === 0 ? '/tmp/.grid/inputs' : path.join(w.dataDir, 'mnt');
    assert.equal(env.paths[0], path.join(inputsAt, d.input_file_uuids[0]!, 'big.bin'), 'inputs are read through the FUSE mount');
    assert.notEqual(r!.log_file_uuid, NIL_UUID);
    assert.match((await client.readWhole(r!.log_file_uuid)).toString(), /hashed 2 inputs/);
    assert.match(r!.log_tail, /hashed 2 inputs/);

    // not acknowledged: sent again (after resultResendMs, then backing off); acknowledged: no more
    await b.waitFor('task_result', (m) => m.job_uuid === d.job_uuid, 2);
    await b.sendTo(w.id, { type: 'result_ack', node_uuid: BALANCER_ID, job_uuid: d.job_uuid, task_index: 4, attempt: 0 });
    await until(async () => JSON.parse((await get(w.adminPort, '/status')).body).unackedResults === 0, 'the worker to take the ack');
    const n = b.of('task_result').filter((m) => m.job_uuid === d.job_uuid).length;
    // the worker's own clock: 10 more heartbeats (100 ms each) span more than the next re-send pause (at most 2 x 300 ms)
    await b.waitFor('worker_status', (m) => m.node_uuid === w.id, b.of('worker_status', w.id).length + 10);
    assert.equal(b.of('task_result').filter((m) => m.job_uuid === d.job_uuid).length, n, 'no re-send after result_ack');

    // the task folder is gone; admin answers
    assert.deepEqual(fs.readdirSync(path.join(w.dataDir, 'tasks')), []);
    const h = await get(w.adminPort, '/healthz');
    assert.equal(h.code, 200);
    const s = JSON.parse((await get(w.adminPort, '/status')).body);
    assert.equal(s.slots, 2);
    assert.equal(s.counts.ok, 1);
    assert.ok(s.fuse.cache.bytes > 0);
    assert.equal(s.fuse.files, 0, 'inputs leave the mount when their task is done');
  });

  it('reports failures with their log tail, and cancels a running job', async () => {
    const b = await balancer();
    const w = await worker(b);
    await b.waitFor('worker_ready', (m) => m.node_uuid === w.id);
    const bad = await dispatch(b, w.id, `console.error('bad things'); process.exit(5);`, []);
    const slow = await dispatch(b, w.id, `console.log('sleeping'); setInterval(() => {}, 1000);`, [], { task_index: 1 });
    const [rb] = await b.waitFor('task_result', (m) => m.job_uuid === bad.job_uuid);
    assert.equal(rb!.outcome, TaskOutcome.exit_nonzero);
    assert.equal(rb!.exit_code, 5);
    assert.match(rb!.log_tail, /bad things/);
    assert.match(rb!.error, /exited with code 5/);
    await b.waitFor('task_started', (m) => m.job_uuid === slow.job_uuid);
    const [busy] = await b.waitFor('worker_status', (m) => m.node_uuid === w.id && m.job_uuid === slow.job_uuid);
    assert.equal(busy!.state, WorkerState.busy);
    await b.sendTo(w.id, { type: 'task_cancel', node_uuid: BALANCER_ID, job_uuid: slow.job_uuid, task_index: 0, attempt: 0, scope: 0 });
    const [rc] = await b.waitFor('task_result', (m) => m.job_uuid === slow.job_uuid);
    assert.equal(rc!.outcome, TaskOutcome.cancelled);
    assert.equal(rc!.exit_code, -1);

    const missing = await dispatch(b, w.id, 'console.log(1)', [], { task_index: 2, input_file_uuids: [newUuid()], input_files: ['gone.txt'] });
    const [rm] = await b.waitFor('task_result', (m) => m.job_uuid === missing.job_uuid);
    assert.equal(rm!.outcome, TaskOutcome.worker_error);
    assert.match(rm!.error, /is not in storage/);
  });

  it('task_cancel scope attempt stops that attempt only (a copy another worker keeps, docs/balancer.md "Failover")', async () => {
    const b = await balancer();
    const w = await worker(b);
    await b.waitFor('worker_ready', (m) => m.node_uuid === w.id);
    const prog = `setInterval(() => {}, 1000);`;
    const one = await dispatch(b, w.id, prog, [], { task_index: 1, attempt: 2 });
    const two = await dispatch(b, w.id, prog, [], { job_uuid: one.job_uuid, task_index: 2 });
    await b.waitFor('task_started', (m) => m.job_uuid === one.job_uuid && m.task_index === 1);
    await b.waitFor('task_started', (m) => m.job_uuid === one.job_uuid && m.task_index === 2);
    // another attempt number of task 1 changes nothing; attempt 2 of task 1 is stopped
    await b.sendTo(w.id, { type: 'task_cancel', node_uuid: BALANCER_ID, job_uuid: one.job_uuid, task_index: 1, attempt: 0, scope: CancelScope.attempt });
    await b.sendTo(w.id, { type: 'task_cancel', node_uuid: BALANCER_ID, job_uuid: one.job_uuid, task_index: 1, attempt: 2, scope: CancelScope.attempt });
    const [rc] = await b.waitFor('task_result', (m) => m.job_uuid === one.job_uuid);
    assert.deepEqual([rc!.task_index, rc!.attempt, rc!.outcome], [1, 2, TaskOutcome.cancelled]);
    // task 2 of the same job still runs: a heartbeat after that result still says busy with
    // the job, and no result of task 2 came; only the job-wide cancel stops it
    const mark = b.inbox.length;
    await until(() => b.inbox.slice(mark).some((e) => e.m.type === 'worker_status' && e.m.node_uuid === w.id), 'a heartbeat after the cancelled result');
    const beat = b.inbox.slice(mark).find((e) => e.m.type === 'worker_status')!.m as MessageOf<'worker_status'>;
    assert.deepEqual([beat.state, beat.job_uuid], [WorkerState.busy, one.job_uuid]);
    assert.equal(b.of('task_result').filter((m) => m.task_index === 2).length, 0);
    await b.sendTo(w.id, { type: 'task_cancel', node_uuid: BALANCER_ID, job_uuid: two.job_uuid, task_index: 0, attempt: 0, scope: CancelScope.job });
    const r2 = await b.waitFor('task_result', (m) => m.job_uuid === one.job_uuid && m.task_index === 2);
    assert.equal(r2[0]!.outcome, TaskOutcome.cancelled);
  });

  it('reconnects when the balancer goes silent, sends worker_ready again and re-sends unacked results', async () => {
    const b = await balancer();
    // periodic re-sends far apart: a result seen again soon after the reconnect comes from the reconnect
    const w = await worker(b, [], { resultResendMs: 600_000 });
    await b.waitFor('worker_ready', (m) => m.node_uuid === w.id);
    const d = await dispatch(b, w.id, `require('fs').writeFileSync('o.txt', 'done');`, []);
    await b.waitFor('task_result', (m) => m.job_uuid === d.job_uuid);
    b.heartbeats = false; // the balancer "dies" (silent)
    await b.waitFor('worker_ready', (m) => m.node_uuid === w.id, 2);
    const readyAt = b.inbox.filter((e) => e.m.type === 'worker_ready').map((e) => e.at)[1]!;
    b.heartbeats = true;
    // the unacked result survives the reconnect and is sent again on the new connection
    // (once at the end of the task, once by the reconnect: periodic re-sends are 10 min apart)
    await b.waitFor('task_result', (m) => m.job_uuid === d.job_uuid, 2);
    const after = b.inbox.filter((e) => e.m.type === 'task_result' && (e.m as MessageOf<'task_result'>).job_uuid === d.job_uuid && e.at >= readyAt);
    assert.ok(after.length >= 1);
    const s = JSON.parse((await get(w.adminPort, '/status')).body);
    assert.ok(s.reconnects >= 1);
    // sent once at the end of the task, then once per reconnect (a stall may add one)
    const sent = b.of('task_result').filter((m) => m.job_uuid === d.job_uuid).length;
    assert.ok(sent >= 2 && sent <= 1 + s.reconnects, `sent ${sent} times with ${s.reconnects} reconnect(s)`);
  });

  it('runs staged (no FUSE) when asked, with inputs in the task folder', async () => {
    const b = await balancer();
    const w = await worker(b, ['--staged']);
    assert.equal(w.ready.mount, null);
    await b.waitFor('worker_ready', (m) => m.node_uuid === w.id);
    const data = randomBytes(3 * 1024 * 1024);
    const d = await dispatch(b, w.id, HASHER, [{ data, name: 'in.bin' }]);
    const [r] = await b.waitFor('task_result', (m) => m.job_uuid === d.job_uuid);
    assert.equal(r!.outcome, TaskOutcome.ok, r!.error + r!.log_tail);
    assert.equal((await client.readWhole(r!.output_file_uuids[0]!)).toString(), `in.bin ${sha(data)}\n`);
    const env = JSON.parse((await client.readWhole(r!.output_file_uuids[1]!)).toString());
    assert.ok(env.paths[0].startsWith(process.geteuid?.() === 0 ? '/tmp/.grid/inputs/0/' : path.join(w.dataDir, 'tasks')), env.paths[0]);
  });

  it('with sandbox = false (or not root) says so at start, and runs tasks as its own user', async () => {
    const b = await balancer();
    const w = await worker(b, [], { sandbox: false });
    await b.waitFor('worker_ready', (m) => m.node_uuid === w.id);
    const logFile = path.join(w.dataDir, 'logs', `worker-${w.id}.log`);
    await until(() => fs.existsSync(logFile) && /task sandbox is off/.test(fs.readFileSync(logFile, 'utf8')), 'the start-up warning');
    const line = fs.readFileSync(logFile, 'utf8').split('\n').find((l) => /task sandbox is off/.test(l))!;
    assert.equal(JSON.parse(line).level, 40, 'a warning');
    const d = await dispatch(b, w.id, `require('fs').writeFileSync('uid.txt', String(process.getuid()))`, []);
    const [r] = await b.waitFor('task_result', (m) => m.job_uuid === d.job_uuid);
    assert.equal(r!.outcome, TaskOutcome.ok, r!.error + r!.log_tail);
    assert.equal((await client.readWhole(r!.output_file_uuids[0]!)).toString(), String(process.getuid!()));
  });

  it('exits non-zero with one clear line on VERSION_MISMATCH, and stops gracefully on SIGTERM', async () => {
    const b = await balancer();
    b.refuseVersion = true;
    const w = await worker(b);
    const code = await new Promise<number | null>((r) => (w.proc.exitCode !== null ? r(w.proc.exitCode) : w.proc.once('exit', (c) => r(c))));
    assert.notEqual(code, 0);
    assert.match(w.stderr(), /VERSION_MISMATCH: the balancer at tcp:\/\/127\.0\.0\.1:\d+ refused this worker.*protocol 99/);
    assert.ok(!fuseMounts().includes(path.join(w.dataDir, 'mnt')), 'unmounted on the way out');

    const b2 = await balancer();
    const w2 = await worker(b2);
    await b2.waitFor('worker_ready', (m) => m.node_uuid === w2.id);
    assert.ok(fuseMounts().includes(path.join(w2.dataDir, 'mnt')));
    await w2.stop();
    assert.equal(w2.proc.exitCode, 0);
    await b2.waitFor('worker_disconnect', (m) => m.node_uuid === w2.id);
    assert.ok(!fuseMounts().includes(path.join(w2.dataDir, 'mnt')), 'unmounted on SIGTERM');
  });

  // ---- gaps: duplicate dispatch, slots + prefetch, queued cancel, upload failure, cache, SIGTERM

  const results = (b: FakeBalancer, job: string) => b.of('task_result').filter((m) => m.job_uuid === job);
  const status = async (w: { adminPort: number }) => JSON.parse((await get(w.adminPort, '/status')).body);

  it('runs a dispatch received twice once, and answers a dispatch of a finished task with its result, not a new run', async () => {
    const b = await balancer();
    const w = await worker(b);
    await b.waitFor('worker_ready', (m) => m.node_uuid === w.id);
    const gate = path.join(gates, `dup-${newUuid()}`);
    const d = await dispatch(b, w.id, gated(gate), []);
    await b.waitFor('task_started', (m) => m.job_uuid === d.job_uuid);
    await b.sendTo(w.id, d); // the same (job, task, attempt) again while it runs
    await until(async () => (await status(w)).counts.duplicates === 1, 'the duplicate to be noticed');
    fs.writeFileSync(gate, '');
    const [r] = await b.waitFor('task_result', (m) => m.job_uuid === d.job_uuid);
    assert.equal(r!.outcome, TaskOutcome.ok, r!.error);
    const sent = results(b, d.job_uuid).length;
    await b.sendTo(w.id, d); // and once more after it finished (its result not yet acked)
    await b.waitFor('task_result', (m) => m.job_uuid === d.job_uuid, sent + 1);
    assert.equal((await status(w)).counts.duplicates, 2);
    assert.equal(b.of('task_started').filter((m) => m.job_uuid === d.job_uuid).length, 1, 'started once');
    const runs = readExecutions(w.dataDir, d.job_uuid);
    assert.deepEqual(runs.map((x) => [x.taskIndex, x.attempt, x.outcome]), [[4, 0, 'ok']], 'the journal shows one run');
  });

  it('refuses a dispatch beyond slots + prefetch, and drops a queued task of a cancelled job without running it', async () => {
    const b = await balancer();
    const w = await worker(b); // --slots 2, prefetch 1
    await b.waitFor('worker_ready', (m) => m.node_uuid === w.id);
    const gate = path.join(gates, `full-${newUuid()}`);
    const a0 = await dispatch(b, w.id, gated(gate), [], { task_index: 0 });
    const a1 = await dispatch(b, w.id, gated(gate), [], { task_index: 1, job_uuid: a0.job_uuid });
    await b.waitFor('task_started', (m) => m.job_uuid === a0.job_uuid, 2);
    const queued = await dispatch(b, w.id, gated(gate), [], { task_index: 0 });
    await until(async () => (await status(w)).queued === 1, 'the third task to queue');
    const extra = await dispatch(b, w.id, gated(gate), [], { task_index: 0 });
    const [full] = await b.waitFor('task_result', (m) => m.job_uuid === extra.job_uuid);
    assert.equal(full!.outcome, TaskOutcome.worker_error);
    assert.match(full!.error, /worker is full \(2 slots \+ 1 prefetch\)/);
    assert.equal((await status(w)).counts.refusedFull, 1);

    await b.sendTo(w.id, { type: 'task_cancel', node_uuid: BALANCER_ID, job_uuid: queued.job_uuid, task_index: 0, attempt: 0, scope: 0 });
    await until(async () => (await status(w)).queued === 0, 'the queued task to be dropped');
    fs.writeFileSync(gate, '');
    await b.waitFor('task_result', (m) => m.job_uuid === a0.job_uuid, 2);
    assert.ok(a1);
    // the worker is idle again (both slots free), and the dropped task never ran nor reported
    await until(async () => (await status(w)).running.length === 0, 'the worker to be idle');
    assert.deepEqual(results(b, queued.job_uuid), [], 'a queued task of a cancelled job is dropped silently');
    assert.deepEqual(readExecutions(w.dataDir, queued.job_uuid), [], 'and never ran');
    assert.equal(readExecutions(w.dataDir, a0.job_uuid).length, 2);
  });

  it('reports worker_error when the outputs cannot be stored (storage died mid-task)', async () => {
    const own = await startGrid(['storage', '--data-dir', path.join(tmp, `storage-${newUuid()}`), '--bind', 'tcp://127.0.0.1:0', '--admin-port', '0']);
    const ownEp = (own.ready.endpoints as { clients: string }).clients;
    const ownClient = new StorageClient({ security: testSecurity(), endpoint: ownEp, nodeUuid: newUuid(), log: silentLogger() });
    try {
      const b = await balancer();
      const dataDir = path.join(tmp, `worker-up-${newUuid()}`);
      fs.mkdirSync(dataDir, { recursive: true });
      const cfgFile = path.join(dataDir, 'worker.json');
      fs.writeFileSync(cfgFile, JSON.stringify({ heartbeatIntervalMs: 100, livenessMissed: 30, resultResendMs: 300, storageRequestTimeoutMs: 300, storageRetries: 1 }));
      const p = await startGrid(['worker', '--balancer', b.endpoint, '--storage', ownEp, '--data-dir', dataDir, '--admin-port', '0', '--slots', '1', '--staged', '--config', cfgFile]);
      workers.push(p);
      const id = p.ready.nodeId as string;
      await b.waitFor('worker_ready', (m) => m.node_uuid === id);
      const gate = path.join(gates, `up-${newUuid()}`);
      const prog = await ownClient.putBuffer(Buffer.from(gated(gate)));
      const job = newUuid();
      await b.sendTo(id, {
        type: 'worker_request', node_uuid: BALANCER_ID, job_uuid: job, program: Buffer.alloc(0), program_file_uuid: prog.fileUuid, task_index: 0, task_count: 1, attempt: 0, max_retries: 2,
        timeout_ms: 30_000, memory_limit_mb: 256, output_limit_bytes: 1 << 20, epoch: 1, input_file_uuids: [], input_files: [], args: [], program_name: 'job.js',
      });
      await b.waitFor('task_started', (m) => m.job_uuid === job);
      ownClient.close();
      await new Promise<void>((r) => {
        own.proc.once('exit', () => r());
        own.proc.kill('SIGKILL');
      });
      fs.writeFileSync(gate, '');
      const [r] = await b.waitFor('task_result', (m) => m.job_uuid === job);
      assert.equal(r!.outcome, TaskOutcome.worker_error);
      assert.match(r!.error, /worker could not store the task's outputs: .*; the task will be retried/);
      assert.deepEqual(r!.output_file_uuids, []);
      assert.equal(r!.log_file_uuid, NIL_UUID, 'the log could not be stored either');
      // the program itself ran to success: the journal says so
      assert.deepEqual(readExecutions(dataDir, job).map((x) => x.outcome), ['ok']);
    } finally {
      ownClient.close();
      await own.stop();
    }
  });

  it('keeps at most maxCachedPrograms programs, evicting the least recently used', async () => {
    const b = await balancer();
    const w = await worker(b, [], { maxCachedPrograms: 1 });
    await b.waitFor('worker_ready', (m) => m.node_uuid === w.id);
    const run = async (src: string) => {
      const d = await dispatch(b, w.id, src, []);
      const [r] = await b.waitFor('task_result', (m) => m.job_uuid === d.job_uuid);
      assert.equal(r!.outcome, TaskOutcome.ok, r!.error);
      return d.program_file_uuid;
    };
    const p1 = await run(`require('fs').writeFileSync('o.txt', '1');`);
    assert.deepEqual(fs.readdirSync(path.join(w.dataDir, 'programs')), [p1]);
    const p2 = await run(`require('fs').writeFileSync('o.txt', '2');`);
    await until(() => fs.readdirSync(path.join(w.dataDir, 'programs')).join() === p2, `programs/ to hold only ${p2}`);
    assert.equal((await status(w)).programsCached, 1);
    assert.equal(await run(`require('fs').writeFileSync('o.txt', '1');`), p1, 'an evicted program is fetched again');
    await until(() => fs.readdirSync(path.join(w.dataDir, 'programs')).join() === p1, `programs/ to hold only ${p1}`);
  });

  it('on SIGTERM during a task: kills the task, sends no result, says worker_disconnect, unmounts, exits 0', async () => {
    const b = await balancer();
    const w = await worker(b);
    await b.waitFor('worker_ready', (m) => m.node_uuid === w.id);
    const d = await dispatch(b, w.id, gated(path.join(tmp, `never-${newUuid()}`)), []);
    await b.waitFor('task_started', (m) => m.job_uuid === d.job_uuid);
    const pid = ((await status(w)).running as { pid: number }[])[0]!.pid;
    assert.ok(pid > 0 && alive(pid));
    await w.stop();
    assert.equal(w.proc.exitCode, 0, w.stderr());
    await b.waitFor('worker_disconnect', (m) => m.node_uuid === w.id);
    assert.ok(!alive(pid), 'the task process was killed');
    assert.deepEqual(results(b, d.job_uuid), [], 'no result: the balancer re-dispatches it');
    assert.ok(!fuseMounts().includes(path.join(w.dataDir, 'mnt')));
    assert.deepEqual(readExecutions(w.dataDir, d.job_uuid).map((x) => [x.pid, x.outcome]), [[pid, 'cancelled']]);
  });
});
