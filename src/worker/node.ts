/**
 * The worker node: the I/O shell around BalancerLink (liveness, result re-sends) and
 * TaskRun (one task's process). A DEALER talks to the balancer (docs/architecture.md,
 * "Balancer -> worker (Paranoid Pirate)", "Results", "Cancel"); a StorageClient fetches
 * programs and inputs and stores outputs and logs; a FUSE mount (or, with --staged, a local
 * download) makes inputs readable to task processes.
 *
 * A task's life: queued -> preparing (program, input stats, FUSE registration) -> running
 * (task_started) -> uploading (outputs, log) -> result sent until result_ack. The task's
 * slot is held from preparing to the end of the upload.
 */
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { Logger } from 'pino';
import * as zmq from 'zeromq';
import {
  CancelScope,
  ERROR_CODES,
  HELD_ENTRY_BYTES,
  HeldState,
  MAX_TEXT_BYTES,
  Message,
  MessageInput,
  MessageOf,
  NIL_UUID,
  PROTOCOL_VERSION,
  TaskOutcome,
  WorkerState,
  decode,
  encode,
  isUuid,
  newUuid,
} from '../messages';
import { AdminServer, GridError, RemoteError, SOFTWARE_VERSION, Security, SendQueue, clientSocket, createLogger, persistentNodeId, watchHandshake } from '../common';
import { StorageClient } from '../storage';
import { WorkerConfig, balancerEndpoints } from './config';
import { GridFs, isSafeName } from './fusefs';
import { OutcomeName } from './limits';
import { ExecutionJournal } from './journal';
import { BalancerLink, resultKey } from './link';
import { RunResult, TaskRun } from './runner';
import { JailIds, SandboxDecision, UidPool, missingTools, sandboxDecision } from './sandbox';
import { WorkerMetrics, WorkerSnapshot } from './metrics';
import { ProgramCache, ProgramLease } from './programs';

/** One task attempt from the balancer: the seed's worker_request (docs/protocol.md). */
type Dispatch = MessageOf<'worker_request'>;
type ResultMsg = MessageInput<'task_result'>;

/** Most cached file uuids announced in worker_ready (16 bytes each on the wire). */
export const MAX_ANNOUNCED_CACHED_FILES = 10_000;
/** Most input lengths remembered (files are immutable, so a known length never changes). */
const MAX_KNOWN_LENGTHS = 100_000;

/** One balancer of the pair (or the only one): its socket and what it last said about the lease. */
interface Conn {
  readonly endpoint: string;
  sock?: zmq.Dealer;
  out?: SendQueue;
  lastHeardMs: number;
  /** the epoch it announced in balancer_state */
  epoch: number;
  active: boolean;
  reconnects: number;
  /** when worker_ready was last sent on this connection */
  readySentMs: number;
  /** worker_ready sent, the balancer's greeting (balancer_state) not yet seen */
  awaitingGreeting: boolean;
}

interface TaskEntry {
  key: string;
  msg: Dispatch;
  state: 'queued' | 'preparing' | 'running' | 'uploading';
  run?: TaskRun;
  cancelled: boolean;
  log: Logger;
}

/** Cuts a string to at most maxBytes of UTF-8 without splitting a character. */
export function clipUtf8(s: string, maxBytes: number): string {
  const b = Buffer.from(s, 'utf8');
  if (b.length <= maxBytes) return s;
  let end = maxBytes;
  while (end > 0 && (b[end]! & 0xc0) === 0x80) end--;
  return b.subarray(0, end).toString('utf8');
}

export interface WorkerNodeOptions {
  log?: Logger;
  /**
   * Called once with an error the worker cannot go on after (the balancer refused our
   * version). Default: print one line to stderr, stop, exit 2.
   */
  onFatal?: (e: GridError) => void;
}

export class WorkerNode {
  readonly nodeId: string;
  readonly security: Security;
  readonly log: Logger;
  readonly storage: StorageClient;
  readonly fs?: GridFs;
  private readonly admin: AdminServer;
  private readonly metrics: WorkerMetrics;
  private readonly link: BalancerLink<ResultMsg>;
  /** one connection per balancer endpoint; results and task_started go to the followed one */
  private readonly conns: Conn[];
  private followed?: Conn;
  /** the highest lease epoch seen; a dispatch from an older one is refused (STALE_EPOCH) */
  private knownEpoch = 0;
  private ticker?: NodeJS.Timeout;
  private readonly tasks = new Map<string, TaskEntry>();
  private readonly queue: string[] = [];
  private readonly programs: ProgramCache;
  private readonly lengths = new Map<string, number>();
  private journal?: ExecutionJournal;
  /** whether tasks are jailed (sandbox.ts), and the uids of the running ones */
  private readonly sandbox: SandboxDecision;
  private readonly uids?: UidPool;
  private mountHealth: string | null = null;
  private stopping = false;
  private fatal = false;
  private readonly counts = { dispatched: 0, started: 0, ok: 0, failed: 0, cancelled: 0, results: 0, acks: 0, resends: 0, refusedFull: 0, duplicates: 0, staleRefused: 0, failovers: 0, holdingsSent: 0, reregistered: 0 };

  constructor(
    readonly cfg: WorkerConfig,
    private readonly opts: WorkerNodeOptions = {},
  ) {
    this.nodeId = persistentNodeId(cfg.dataDir, newUuid);
    this.log = opts.log ?? createLogger({ role: 'worker', nodeId: this.nodeId, file: path.join(cfg.dataDir, 'logs', `worker-${this.nodeId}.log`) });
    this.security = new Security({ mode: cfg.security, keyDir: cfg.dataDir, trustDir: cfg.trustDir, role: 'workers', enroll: cfg.enroll, log: this.log });
    this.storage = new StorageClient({
      security: this.security,
      endpoint: cfg.storage,
      nodeUuid: this.nodeId,
      log: this.log,
      requestTimeoutMs: cfg.storageRequestTimeoutMs,
      retries: cfg.storageRetries,
    });
    this.sandbox = sandboxDecision({ enabled: cfg.sandbox, euid: process.geteuid?.() ?? -1, missing: cfg.sandbox ? missingTools() : [] });
    if (this.sandbox.jail) this.uids = new UidPool(cfg.taskUidBase, cfg.slots + cfg.prefetch);
    if (!cfg.staged) {
      this.fs = new GridFs({
        allowOther: this.sandbox.jail, // task uids read their inputs
        mount: cfg.mount,
        source: this.storage,
        fuseChunkBytes: cfg.fuseChunkBytes,
        chunkCacheBytes: cfg.chunkCacheBytes,
        readAheadChunks: cfg.readAheadChunks,
        fuseOpTimeoutMs: cfg.fuseOpTimeoutMs,
        log: this.log,
      });
    }
    this.programs = new ProgramCache(
      path.join(cfg.dataDir, 'programs'),
      cfg.maxCachedPrograms,
      (uuid, dir, name) => this.fetchProgram(uuid, dir, name),
      (e, uuid) => this.log.warn({ err: e.message, fileId: uuid }, 'could not delete an evicted program'),
    );
    this.link = new BalancerLink<ResultMsg>(cfg, Date.now());
    this.conns = balancerEndpoints(cfg.balancer).map((endpoint) => ({ endpoint, lastHeardMs: Date.now(), epoch: 0, active: false, reconnects: 0, readySentMs: 0, awaitingGreeting: false }));
    this.metrics = new WorkerMetrics(this.nodeId, () => this.status() as WorkerSnapshot);
    this.admin = new AdminServer({ host: cfg.adminHost, port: cfg.adminPort, token: cfg.adminToken, health: () => this.health(), status: () => this.status(), metrics: this.metrics.node });
  }

  /** Mounts FUSE (refusing to start without it unless staged), serves admin, joins the balancer. */
  async start(): Promise<{ adminPort: number; mount: string | null }> {
    for (const d of ['programs', 'tasks']) await fsp.mkdir(path.join(this.cfg.dataDir, d), { recursive: true });
    // Task folders of a previous life are garbage: their tasks were re-dispatched.
    await fsp.rm(path.join(this.cfg.dataDir, 'tasks'), { recursive: true, force: true });
    await fsp.mkdir(path.join(this.cfg.dataDir, 'tasks'), { recursive: true });
    this.journal = new ExecutionJournal(this.cfg.dataDir, this.cfg.maxExecutionRecords, (e) => this.log.warn({ err: e.message }, 'execution journal write failed; the run goes unrecorded'));
    await this.loadProgramCache();
    if (this.fs) await this.fs.start();
    let adminPort: number;
    try {
      adminPort = await this.admin.start();
    } catch (e) {
      await this.fs?.stop();
      throw new GridError('CONFIG_INVALID', `cannot serve admin HTTP on port ${this.cfg.adminPort}: ${(e as Error).message}`, 'pick a free --admin-port, or 0 for any');
    }
    for (const c of this.conns) this.connect(c);
    this.ticker = setInterval(() => void this.tick(), Math.max(10, Math.floor(Math.min(this.cfg.heartbeatIntervalMs, this.cfg.resultResendMs) / 2)));
    if (!this.sandbox.jail && this.sandbox.warning) this.log.warn({ sandbox: false }, this.sandbox.warning);
    this.log.info({ balancer: this.cfg.balancer, storage: this.cfg.storage, slots: this.cfg.slots, prefetch: this.cfg.prefetch, mount: this.fs?.mount ?? null, staged: this.cfg.staged, sandbox: this.sandbox.jail, adminPort }, 'worker started');
    return { adminPort, mount: this.fs?.mount ?? null };
  }

  /** Graceful stop: tell the balancer, kill tasks, unmount. Safe to call twice. */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    if (this.ticker) clearInterval(this.ticker);
    this.queue.length = 0;
    try {
      const bye = this.conns.map((c) => this.sendTo(c, { type: 'worker_disconnect', node_uuid: this.nodeId }));
      await Promise.race([Promise.all(bye), new Promise((r) => setTimeout(r, 500))]);
    } catch {
      // the balancer will find out by silence
    }
    const running = [...this.tasks.values()];
    for (const t of running) {
      t.cancelled = true;
      t.run?.cancel({ reason: 'cancelled', error: 'worker stopped' });
    }
    await Promise.race([this.idle(), new Promise((r) => setTimeout(r, 3000))]);
    for (const c of this.conns) c.sock?.close();
    this.storage.close();
    await this.fs?.stop();
    await this.admin.close();
    this.journal?.close();
    this.log.info('worker stopped');
  }

  private async idle(): Promise<void> {
    while (this.tasks.size > 0) await new Promise((r) => setTimeout(r, 20));
  }

  // ---- balancer link --------------------------------------------------------------------------

  private connect(c: Conn): void {
    let sock: zmq.Dealer;
    try {
      sock = clientSocket(this.security, c.endpoint, { sendHighWaterMark: 10_000, receiveHighWaterMark: 10_000, sendTimeout: this.cfg.heartbeatIntervalMs }, (d) =>
        watchHandshake(d, this.security, c.endpoint, (e) => this.log.error({ event: 'auth:refused', balancer: c.endpoint, err: e.message, hint: e.hint }, 'the balancer refused this worker')),
      );
    } catch (e) {
      // no key known for this balancer yet (it enrolls when it starts): try again at the next liveness check
      this.log.warn({ balancer: c.endpoint, err: (e as Error).message }, 'balancer not reachable yet');
      c.sock = undefined;
      c.out = undefined;
      c.lastHeardMs = Date.now();
      return;
    }
    c.sock = sock;
    c.out = new SendQueue(sock);
    c.lastHeardMs = Date.now();
    void this.receive(c, sock);
    c.readySentMs = Date.now();
    c.awaitingGreeting = true;
    void this.sendTo(c, this.readyMessage());
  }

  private reconnect(c: Conn): void {
    this.log.warn({ balancer: c.endpoint, silentMs: this.cfg.livenessMissed * this.cfg.heartbeatIntervalMs }, 'balancer silent; reconnecting');
    c.sock?.close();
    c.reconnects++;
    c.active = false;
    this.connect(c);
    if (c === this.followed) for (const r of this.link.reconnected(Date.now())) void this.sendTo(c, r);
  }

  /**
   * Follows the balancer that announced the highest active epoch: tells it every attempt
   * held here (worker_holding), so it adopts running work instead of dispatching it again,
   * then sends it every result not yet acknowledged.
   */
  private follow(c: Conn, epoch: number): void {
    const was = this.followed;
    this.knownEpoch = epoch;
    this.followed = c;
    if (was && was !== c) this.counts.failovers++;
    this.log.info({ event: 'balancer:followed', balancer: c.endpoint, epoch, from: was?.endpoint ?? null, held: this.tasks.size, unacked: this.link.pending }, 'following the active balancer');
    void this.sendTo(c, this.holdingMessage(epoch));
    this.counts.holdingsSent++;
    for (const r of this.link.reconnected(Date.now())) void this.sendTo(c, r);
  }

  private holdingMessage(epoch: number): MessageInput<'worker_holding'> {
    const held: { job: string; index: number; attempt: number; state: number }[] = [];
    for (const t of this.tasks.values()) {
      held.push({ job: t.msg.job_uuid, index: t.msg.task_index, attempt: t.msg.attempt, state: t.state === 'queued' ? HeldState.queued : HeldState.running });
    }
    for (const r of this.link.pendingResults()) held.push({ job: r.job_uuid, index: r.task_index, attempt: r.attempt, state: HeldState.finished });
    const entries = Buffer.alloc(held.length * HELD_ENTRY_BYTES);
    held.forEach((h, i) => {
      entries.writeUInt32LE(h.index, i * HELD_ENTRY_BYTES);
      entries.writeUInt32LE(h.attempt, i * HELD_ENTRY_BYTES + 4);
      entries.writeUInt32LE(h.state, i * HELD_ENTRY_BYTES + 8);
    });
    return { type: 'worker_holding', node_uuid: this.nodeId, epoch, entries_length: entries.length, job_uuids: held.map((h) => h.job), entries };
  }

  private readyMessage(): MessageInput<'worker_ready'> {
    const cached = this.fs ? this.fs.cache.cachedFiles().slice(0, MAX_ANNOUNCED_CACHED_FILES) : [];
    return {
      type: 'worker_ready',
      node_uuid: this.nodeId,
      protocol_version: PROTOCOL_VERSION,
      slots: this.cfg.slots,
      prefetch: this.cfg.prefetch,
      software_version: SOFTWARE_VERSION,
      cached_file_uuids: cached,
    };
  }

  /** To the followed (active) balancer; with none known yet, results wait for one. */
  private async send(m: MessageInput): Promise<void> {
    if (this.followed) await this.sendTo(this.followed, m);
  }

  private async sendTo(c: Conn, m: MessageInput): Promise<void> {
    const out = c.out;
    if (!out) return;
    try {
      await out.send(encode(m));
    } catch (e) {
      if (!this.stopping) this.log.warn({ err: (e as Error).message, type: m.type, balancer: c.endpoint }, 'send to balancer failed; will retry via heartbeat/resend');
    }
  }

  private async receive(c: Conn, sock: zmq.Dealer): Promise<void> {
    try {
      for await (const frames of sock) {
        if (sock !== c.sock) return;
        let m: Message;
        try {
          m = decode(frames as Buffer[]);
        } catch (e) {
          this.log.warn({ err: (e as Error).message }, 'undecodable message from balancer dropped');
          continue;
        }
        c.lastHeardMs = Date.now();
        if (c === this.followed) this.link.heard(c.lastHeardMs);
        try {
          this.handle(c, m);
        } catch (e) {
          this.log.error({ err: e, type: m.type }, 'handling a balancer message failed (bug)');
        }
      }
    } catch (e) {
      if (sock === c.sock && !this.stopping) this.log.warn({ err: (e as Error).message }, 'balancer receive loop ended');
    }
  }

  private handle(c: Conn, m: Message): void {
    switch (m.type) {
      case 'generic_message':
        return;
      case 'balancer_state': {
        c.awaitingGreeting = false;
        c.epoch = m.epoch;
        c.active = m.active === 1;
        if (c.active && m.epoch > this.knownEpoch) this.follow(c, m.epoch);
        else if (c.active && m.epoch === this.knownEpoch && this.followed !== c) this.follow(c, m.epoch);
        else if (c.active && c === this.followed) this.link.heard(Date.now());
        return;
      }
      case 'worker_request':
        if (m.program_length > 0) {
          // the seed's inline program: this grid runs stored programs only (program_file_uuid)
          void this.sendTo(c, {
            type: 'error_reply',
            node_uuid: this.nodeId,
            request_uuid: NIL_UUID,
            error_code: ERROR_CODES.BAD_REQUEST,
            message: `worker_request of job ${m.job_uuid} task ${m.task_index} carries an inline program (${m.program_length} bytes); this worker runs stored programs only: store it and name it by program_file_uuid with program_length 0`,
          });
          return;
        }
        if (m.epoch < this.knownEpoch) {
          // fencing: a balancer that lost the lease must not start work here
          this.counts.staleRefused++;
          void this.sendTo(c, {
            type: 'error_reply',
            node_uuid: this.nodeId,
            request_uuid: NIL_UUID,
            error_code: ERROR_CODES.STALE_EPOCH,
            message: `worker_request of job ${m.job_uuid} task ${m.task_index} under epoch ${m.epoch} refused: this worker follows epoch ${this.knownEpoch}`,
          });
          return;
        }
        if (m.epoch > this.knownEpoch || this.followed !== c) {
          c.active = true;
          c.epoch = m.epoch;
          this.follow(c, m.epoch);
        }
        return this.onDispatch(m);
      case 'task_cancel':
        // scope attempt: a copy of a task that another worker already runs (balancer.md, "Failover")
        return m.scope === CancelScope.attempt ? this.onCancel(m.job_uuid, { index: m.task_index, attempt: m.attempt }) : this.onCancel(m.job_uuid);
      case 'result_ack':
        if (this.link.ack(resultKey(m.job_uuid, m.task_index, m.attempt))) this.counts.acks++;
        return;
      case 'error_reply':
        return this.onErrorReply(m, c);
      default:
        this.log.warn({ type: m.type }, 'unexpected message from balancer ignored');
    }
  }

  private onErrorReply(m: MessageOf<'error_reply'>, c: Conn): void {
    if (m.error_code === ERROR_CODES.UNAVAILABLE && /send worker_ready/.test(m.message)) {
      // The balancer does not know us (it restarted, or declared us lost): register again, at
      // most once per heartbeat interval (its errors keep coming until the new one is read).
      // Errors in flight answer messages sent before our last worker_ready: ignore them until
      // the balancer's greeting (balancer_state) came, unless that takes a liveness period.
      const now = Date.now();
      const waited = now - c.readySentMs >= this.cfg.livenessMissed * this.cfg.heartbeatIntervalMs;
      if (!c.awaitingGreeting || waited) {
        c.readySentMs = now;
        c.awaitingGreeting = true;
        this.counts.reregistered++;
        this.log.warn({ balancer: c.endpoint, err: m.message }, 'balancer does not know this worker; sending worker_ready again');
        void this.sendTo(c, this.readyMessage());
      }
      return;
    }
    if (m.error_code === ERROR_CODES.VERSION_MISMATCH) {
      const e = new GridError(
        'VERSION_MISMATCH',
        `the balancer at ${this.cfg.balancer} refused this worker (protocol ${PROTOCOL_VERSION}, software ${SOFTWARE_VERSION}): ${m.message}`,
        'run the same grid version on every node',
      );
      this.log.error({ err: e.message }, 'version mismatch; exiting');
      if (this.fatal) return;
      this.fatal = true;
      if (this.opts.onFatal) return this.opts.onFatal(e);
      process.stderr.write(`grid worker: ${e.code}: ${e.describe()}\n`);
      void this.stop().finally(() => process.exit(2));
      return;
    }
    this.log.warn({ code: m.error_code, err: m.message }, 'balancer answered with an error');
  }

  private async tick(): Promise<void> {
    if (this.stopping) return;
    const now = Date.now();
    const a = this.link.tick(now);
    const silentMs = this.cfg.livenessMissed * this.cfg.heartbeatIntervalMs;
    for (const c of this.conns) if (now - c.lastHeardMs >= silentMs) this.reconnect(c);
    // heartbeats to every balancer (the standby must know its workers before it takes over)
    if (a.heartbeat) for (const c of this.conns) void this.sendTo(c, this.statusMessage());
    for (const r of a.resend) {
      this.counts.resends++;
      void this.send(r);
    }
    if (this.fs) this.mountHealth = await this.fs.health();
  }

  private statusMessage(): MessageInput<'worker_status'> {
    const running = [...this.tasks.values()].find((t) => t.state !== 'queued');
    return { type: 'worker_status', node_uuid: this.nodeId, job_uuid: running?.msg.job_uuid ?? NIL_UUID, state: running ? WorkerState.busy : WorkerState.idle };
  }

  // ---- tasks ------------------------------------------------------------------------------------

  private onDispatch(m: Dispatch): void {
    const key = resultKey(m.job_uuid, m.task_index, m.attempt);
    const log = this.log.child({ jobId: m.job_uuid, taskIndex: m.task_index, attempt: m.attempt });
    if (this.tasks.has(key)) {
      this.counts.duplicates++;
      return;
    }
    const done = this.link.get(key);
    if (done) {
      // already ran; our result or its ack was lost
      this.counts.duplicates++;
      void this.send(done);
      return;
    }
    this.counts.dispatched++;
    if (this.stopping || this.tasks.size >= this.cfg.slots + this.cfg.prefetch) {
      this.counts.refusedFull++;
      log.warn({ held: this.tasks.size }, 'dispatch beyond slots + prefetch refused');
      this.finish({ key, msg: m, state: 'queued', cancelled: false, log }, this.bareResult('worker_error', this.stopping ? 'worker is stopping' : `worker is full (${this.cfg.slots} slots + ${this.cfg.prefetch} prefetch)`));
      return;
    }
    this.tasks.set(key, { key, msg: m, state: 'queued', cancelled: false, log });
    this.queue.push(key);
    log.info({ program: m.program_name, inputs: m.num_input_files }, 'task queued');
    this.pump();
  }

  /** Cancels every task of a job, or only one attempt of one task (`one`). */
  private onCancel(jobUuid: string, one?: { index: number; attempt: number }): void {
    const hit = (m: Dispatch) => m.job_uuid === jobUuid && (!one || (m.task_index === one.index && m.attempt === one.attempt));
    for (let i = this.queue.length - 1; i >= 0; i--) {
      const t = this.tasks.get(this.queue[i]!);
      if (t && hit(t.msg)) {
        this.queue.splice(i, 1);
        this.tasks.delete(t.key);
        this.counts.cancelled++;
        t.log.info(one ? 'queued task dropped (another worker runs it)' : 'queued task dropped (job cancelled)');
      }
    }
    for (const t of this.tasks.values()) {
      if (!hit(t.msg) || t.cancelled) continue;
      t.cancelled = true;
      t.log.info('cancelling task');
      t.run?.cancel();
    }
  }

  private running(): number {
    let n = 0;
    for (const t of this.tasks.values()) if (t.state !== 'queued') n++;
    return n;
  }

  private pump(): void {
    while (!this.stopping && this.queue.length > 0 && this.running() < this.cfg.slots) {
      const t = this.tasks.get(this.queue.shift()!);
      if (!t) continue;
      t.state = 'preparing';
      void this.execute(t);
    }
  }

  private bareResult(outcome: OutcomeName, error: string): RunResult {
    return { outcome, exitCode: -1, durationMs: 0, error, logTail: '', logPath: '', workDir: '', outputs: [], peakRssBytes: 0, pid: 0 };
  }

  private async execute(t: TaskEntry): Promise<void> {
    const m = t.msg;
    const taskDir = path.join(this.cfg.dataDir, 'tasks', `${m.job_uuid}-${m.task_index}-${m.attempt}`);
    let result: RunResult;
    let outputs: { uuid: string; name: string }[] = [];
    let logUuid = NIL_UUID;
    // this task's own view of the FUSE mount: only its inputs
    const view = this.fs?.openView();
    let ids: JailIds | undefined;
    let program: ProgramLease | undefined;
    try {
      await fsp.rm(taskDir, { recursive: true, force: true });
      await fsp.mkdir(taskDir, { recursive: true, mode: 0o700 });
      if (!isUuid(m.program_file_uuid)) throw new GridError('BAD_REQUEST', `bad program file uuid ${m.program_file_uuid}`);
      // pinned until the task's process has ended: never evicted under a running task
      program = this.programs.acquire(m.program_file_uuid, m.program_name);
      const programPath = await program.path;
      const inputPaths = await this.inputs(m, taskDir, view);
      if (t.cancelled) {
        result = this.bareResult('cancelled', 'task was cancelled before it started');
      } else {
        t.state = 'running';
        ids = this.uids?.acquire();
        const run = new TaskRun(
          {
            jobUuid: m.job_uuid,
            taskIndex: m.task_index,
            taskCount: m.task_count,
            args: m.args,
            programPath,
            inputPaths,
            timeoutMs: m.timeout_ms || this.cfg.defaultTaskTimeoutMs,
            memoryLimitMb: m.memory_limit_mb || this.cfg.defaultMemoryLimitMb,
            outputLimitBytes: m.output_limit_bytes || this.cfg.defaultOutputLimitBytes,
            taskDir,
            jail: ids && { ...ids, inputsDir: this.inputsDir(taskDir, view, inputPaths.length) },
          },
          this.cfg,
          t.log,
        );
        t.run = run;
        let execId = 0;
        void run.started.then((pid) => {
          if (pid > 0) execId = this.journal?.started(m.job_uuid, m.task_index, m.attempt, pid, Date.now()) ?? 0;
          if (pid <= 0 || this.stopping) return;
          this.counts.started++;
          void this.send({ type: 'task_started', node_uuid: this.nodeId, job_uuid: m.job_uuid, worker_uuid: this.nodeId, task_index: m.task_index, attempt: m.attempt, epoch: m.epoch });
        });
        result = await run.start();
        await run.started; // its journal row is written (a microtask that has run by now)
        this.journal?.ended(execId, result.exitCode, result.outcome, Date.now());
        if (t.cancelled && result.outcome !== 'ok') result = { ...result, outcome: 'cancelled', error: result.outcome === 'cancelled' ? result.error : 'task was cancelled' };
      }
      // the balancer re-dispatches on worker_disconnect; no upload, no result
      if (this.stopping) throw new GridError('UNAVAILABLE', 'worker stopped');
      t.state = 'uploading';
      if (result.outcome === 'ok') {
        try {
          for (const o of result.outputs) outputs.push({ uuid: (await this.storage.putFile(o.path)).fileUuid, name: o.name });
        } catch (e) {
          outputs = [];
          result = { ...result, outcome: 'worker_error', error: `worker could not store the task's outputs: ${(e as Error).message}; the task will be retried` };
        }
      }
      if (result.logPath) {
        try {
          logUuid = (await this.storage.putFile(result.logPath)).fileUuid;
        } catch (e) {
          t.log.warn({ err: (e as Error).message }, 'could not store the task log');
        }
      }
    } catch (e) {
      const msg = e instanceof GridError ? e.describe() : (e as Error).message;
      t.log.warn({ err: msg }, 'task could not be prepared');
      result = this.bareResult(t.cancelled ? 'cancelled' : 'worker_error', `worker could not prepare the task: ${msg}`);
    } finally {
      program?.release();
      if (ids) this.uids?.release(ids);
      if (view) this.fs?.closeView(view);
      await fsp.rm(taskDir, { recursive: true, force: true }).catch(() => undefined);
    }
    if (this.stopping) {
      this.tasks.delete(t.key);
      return;
    }
    this.finish(t, result, outputs, logUuid);
  }

  private finish(t: TaskEntry, r: RunResult, outputs: { uuid: string; name: string }[] = [], logUuid = NIL_UUID): void {
    const m = t.msg;
    const msg: ResultMsg = {
      type: 'task_result',
      node_uuid: this.nodeId,
      job_uuid: m.job_uuid,
      worker_uuid: this.nodeId,
      log_file_uuid: logUuid,
      task_index: m.task_index,
      attempt: m.attempt,
      exit_code: r.exitCode,
      duration_ms: Math.min(r.durationMs, 0xffffffff),
      outcome: TaskOutcome[r.outcome],
      final: 0, // the balancer decides finality
      output_file_uuids: outputs.map((o) => o.uuid),
      output_names: outputs.map((o) => o.name),
      error: clipUtf8(r.error, MAX_TEXT_BYTES),
      log_tail: clipUtf8(r.logTail, MAX_TEXT_BYTES),
      epoch: m.epoch,
    };
    this.tasks.delete(t.key);
    this.counts.results++;
    if (r.outcome === 'ok') this.counts.ok++;
    else if (r.outcome === 'cancelled') this.counts.cancelled++;
    else this.counts.failed++;
    this.metrics.taskFinished(r.outcome, r.durationMs);
    if (!this.link.addResult(t.key, msg, Date.now())) this.log.warn({ max: this.cfg.maxUnackedResults }, 'too many unacknowledged results; dropped the oldest');
    t.log.info({ outcome: r.outcome, exitCode: r.exitCode, durationMs: r.durationMs, outputs: outputs.length, error: r.error || undefined }, 'task finished');
    void this.send(msg);
    this.pump();
  }

  /** Fetches a program into <dataDir>/programs/<uuid>/<name> for the program cache (programs.ts). */
  private async fetchProgram(fileUuid: string, dir: string, programName: string): Promise<string> {
    const name = isSafeName(programName) ? programName : 'job.js';
    let data: Buffer;
    try {
      data = await this.storage.readWhole(fileUuid);
    } catch (e) {
      if (!(e instanceof RemoteError && e.code === 'TOO_LARGE')) throw this.storageError('program', fileUuid, e);
      await fsp.mkdir(dir, { recursive: true });
      await this.storage.downloadTo(fileUuid, path.join(dir, name));
      return path.join(dir, name);
    }
    await fsp.mkdir(dir, { recursive: true });
    const tmp = path.join(dir, `.${name}.${process.pid}.tmp`);
    await fsp.writeFile(tmp, data);
    await fsp.rename(tmp, path.join(dir, name));
    return path.join(dir, name);
  }

  private async loadProgramCache(): Promise<void> {
    const root = path.join(this.cfg.dataDir, 'programs');
    for (const uuid of await fsp.readdir(root).catch(() => [] as string[])) {
      const files = (await fsp.readdir(path.join(root, uuid)).catch(() => [] as string[])).filter((f) => !f.startsWith('.'));
      if (isUuid(uuid) && files.length === 1) this.programs.adopt(uuid, path.join(root, uuid, files[0]!));
      else await fsp.rm(path.join(root, uuid), { recursive: true, force: true });
    }
  }

  private storageError(what: string, fileUuid: string, e: unknown): GridError {
    if (e instanceof GridError && e.code === 'NOT_FOUND') return new GridError('NOT_FOUND', `${what} ${fileUuid} is not in storage`, 'upload it again and resubmit');
    return new GridError('UNAVAILABLE', `cannot fetch ${what} ${fileUuid} from storage ${this.cfg.storage}: ${(e as Error).message}`);
  }

  /** Input paths for the task: in the FUSE mount, or downloaded into the task folder (staged). */
  private async inputs(m: Dispatch, taskDir: string, view: string | undefined): Promise<string[]> {
    const out: string[] = [];
    for (let i = 0; i < m.input_file_uuids.length; i++) {
      const uuid = m.input_file_uuids[i]!;
      const name = m.input_files[i] ?? '';
      if (!isSafeName(name)) throw new GridError('BAD_REQUEST', `input name ${JSON.stringify(name)} is not a plain file name`, 'submit inputs with base names only');
      if (this.fs && view) {
        out.push(this.fs.register(view, uuid, name, await this.length(uuid)));
      } else {
        const dir = path.join(taskDir, 'inputs', String(i));
        await fsp.mkdir(dir, { recursive: true });
        const dest = path.join(dir, name);
        await this.storage.downloadTo(uuid, dest).catch((e: unknown) => {
          throw this.storageError('input', uuid, e);
        });
        out.push(dest);
      }
    }
    return out;
  }

  /** The host folder holding a task's inputs, bound into its sandbox ('' = no inputs). */
  private inputsDir(taskDir: string, view: string | undefined, inputs: number): string {
    if (inputs === 0) return '';
    return this.fs && view ? this.fs.viewPath(view) : path.join(taskDir, 'inputs');
  }

  private async length(uuid: string): Promise<number> {
    const known = this.lengths.get(uuid);
    if (known !== undefined) return known;
    let st;
    try {
      st = await this.storage.stat(uuid);
    } catch (e) {
      throw this.storageError('input', uuid, e);
    }
    if (!st.exists) throw new GridError('NOT_FOUND', `input ${uuid} is not in storage`, 'upload it again and resubmit');
    if (this.lengths.size >= MAX_KNOWN_LENGTHS) this.lengths.clear();
    this.lengths.set(uuid, st.length);
    return st.length;
  }

  // ---- admin ------------------------------------------------------------------------------------

  health(): string | null {
    if (this.stopping) return 'stopping';
    if (this.fatal) return 'refused by the balancer (version mismatch)';
    return this.fs ? this.mountHealth : null;
  }

  status(): unknown {
    return {
      role: 'worker',
      nodeId: this.nodeId,
      balancer: this.cfg.balancer,
      storage: this.cfg.storage,
      slots: this.cfg.slots,
      prefetch: this.cfg.prefetch,
      staged: this.cfg.staged,
      running: [...this.tasks.values()]
        .filter((t) => t.state !== 'queued')
        .map((t) => ({ jobUuid: t.msg.job_uuid, taskIndex: t.msg.task_index, attempt: t.msg.attempt, state: t.state, pid: t.run?.pid ?? 0 })),
      queued: this.queue.length,
      unackedResults: this.link.pending,
      reconnects: this.conns.reduce((n, c) => n + c.reconnects, 0),
      balancers: this.conns.map((c) => ({ endpoint: c.endpoint, epoch: c.epoch, active: c.active, followed: c === this.followed })),
      epoch: this.knownEpoch,
      programsCached: this.programs.stats().cached,
      programs: this.programs.stats(),
      executions: this.journal?.summary() ?? null,
      fuse: this.fs ? this.fs.stats() : null,
      counts: { ...this.counts },
    };
  }
}
