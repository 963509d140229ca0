/**
 * The balancer's dispatch logic as a pure state machine (docs/balancer.md). No sockets, no
 * timers, no clock: every input carries `nowMs`, and every call returns one batch of
 * outputs (messages to send and events to log) that the shell executes in order.
 *
 * Ordering contract with the shell: outputs are executed in array order. The machine
 * relies on one thing only: messages to one peer are sent in the order they appear (so a
 * worker sees result_ack before anything that follows it, and the master sees a non-final
 * result of an attempt before the final result of a later attempt).
 *
 * Inputs: `start`, `onMaster(msg)`, `onWorker(workerId, msg)`, `tick`. Workers are named by
 * the node_uuid they send; the shell maps that to a ZeroMQ routing id.
 *
 * Replicated masters: the machine decides which master to talk to (MasterCursor over the
 * configured list, NOT_LEADER hints, silence) and says so with a `masterLink` output; the
 * shell then opens a new connection there and sends every later `toMaster` on it, and drops
 * whatever still arrives on the old one (so `onMaster` always means "the current master").
 */
import {
  BalancerRole,
  CancelScope,
  ERROR_CODES,
  HELD_ENTRY_BYTES,
  HeldState,
  Message,
  MessageInput,
  MessageOf,
  NIL_UUID,
  TaskOutcome,
  WorkerState,
} from '../messages';
import { backoffDelayMs } from '../common/backoff';
import { assert } from '../common/errors';
import { leaderHint } from '../common/leader';
import {
  AdoptedRec,
  DispatchCounters,
  DispatchEvent,
  DispatchOptions,
  DispatchOutput,
  DispatchStatus,
  LOST_WHY,
  LostReason,
  TaskSpec,
  errorReply,
  resultKey,
  taskKey,
} from './contract';
import { MasterLink } from './master-link';
import { ResultOutbox } from './outbox';
import { LeaseHolder } from './pair';
import { HeldTask, TaskTable } from './tasks';
import { WorkerRec, WorkerRegistry } from './workers';

export * from './contract';

const U32_MAX = 0xffffffff;
/** worker_request.program: tasks name a stored program, never an inline one */
const EMPTY = Buffer.alloc(0);

export class Dispatcher {
  private readonly table = new TaskTable();
  private readonly tasks = this.table.tasks;
  private readonly queue = this.table.queue;
  private readonly backoff = this.table.backoff;
  private readonly byJob = this.table.byJob;
  private readonly registry: WorkerRegistry;
  private readonly workers: Map<string, WorkerRec>;
  private readonly outbox = new ResultOutbox();
  private readonly unacked = this.outbox.unacked;
  private readonly settledUnacked = this.outbox.settledUnacked;
  private readonly link: MasterLink;
  /** lower bound of every running attempt's deadline, so tick scans only when one may be due */
  private nextDeadlineMs = Infinity;
  private workerBeatSentMs = -Infinity;
  private started = false;
  /** this balancer's view of the dispatch lease (pure, src/balancer/pair.ts) */
  readonly lease: LeaseHolder;
  /** task_dispatch received from the master in the current epoch (the credit's base) */
  private fed = 0;
  /** since becoming active: workers that have not yet reported what they hold */
  private adopting: { untilMs: number; waiting: Set<string>; adopted: number; reported: number } | null = null;
  private readonly adopted = new Map<string, AdoptedRec>();
  /** results of adopted attempts whose task has not been fed yet (not acknowledged) */
  private readonly parked = new Map<string, { workerId: string; msg: MessageOf<'task_result'>; sinceMs: number }>();
  private wasActive = false;
  readonly counters: DispatchCounters = {
    tasksReceived: 0,
    tasksDuplicate: 0,
    tasksRefused: 0,
    dispatched: 0,
    retries: 0,
    settledOk: 0,
    settledFailed: 0,
    workersJoined: 0,
    workersLost: 0,
    workersRefused: 0,
    resultsForwarded: 0,
    resultsResent: 0,
    resultsIgnored: 0,
    resultsRefused: 0,
    jobsCancelled: 0,
    masterHellos: 0,
    masterRedirects: 0,
    deadlinesMissed: 0,
    leaseActivations: 0,
    leaseRefusals: 0,
    tasksAdopted: 0,
    staleTasks: 0,
    copiesCancelled: 0,
  };

  constructor(readonly o: DispatchOptions) {
    this.registry = new WorkerRegistry(o.maxCachedFilesPerWorker);
    this.workers = this.registry.workers;
    this.link = new MasterLink(
      o.masters,
      {
        livenessMs: this.livenessMs,
        masterRedirectMinMs: o.masterRedirectMinMs,
        leaseRenewMs: o.leaseRenewMs,
        helloRetry: { baseMs: o.masterHelloRetryBaseMs, maxMs: o.masterHelloRetryMaxMs },
        random: o.random,
      },
      { helloMsg: (nowMs) => this.helloMsg(nowMs), linkMoved: () => this.outbox.allDue(), counters: this.counters },
    );
    this.lease = new LeaseHolder({ leaseRenewMs: o.leaseRenewMs, leaseSafetyMarginMs: o.leaseSafetyMarginMs });
  }

  private get livenessMs(): number {
    return this.o.livenessMissed * this.o.heartbeatIntervalMs;
  }

  // ---- inputs ------------------------------------------------------------------------------

  /** First call: says hello to the master. */
  start(nowMs: number): DispatchOutput[] {
    assert(!this.started, 'Dispatcher.start called twice');
    this.started = true;
    const out: DispatchOutput[] = [];
    this.link.start(out, nowMs);
    return out;
  }

  /** Any message that arrived on the master connection. */
  onMaster(m: Message, nowMs: number): DispatchOutput[] {
    const out: DispatchOutput[] = [];
    if (m.type === 'error_reply' && m.error_code === ERROR_CODES.NOT_LEADER) {
      // A follower (docs/architecture.md, "Replicated masters"): it is not our master and
      // proves nothing about the leader, so it does not count as an answer. Go where it says.
      this.link.redirect(out, nowMs, 'not-leader', leaderHint(m.message));
      this.dispatchPass(out, nowMs);
      return out;
    }
    // Any message from the master proves it is there and has our hello (docs/architecture.md,
    // "Master -> balancer"): it only talks to a balancer that said hello.
    if (this.link.heard(nowMs)) this.emit(out, { type: 'master:heard', first: true });
    switch (m.type) {
      case 'generic_message':
        break;
      case 'lease_grant':
        this.onGrant(out, m, nowMs);
        break;
      case 'task_dispatch':
        if (m.epoch !== this.lease.epoch || this.lease.claimedEpoch === 0) {
          // fed under an epoch this balancer does not hold (a grant lost, or already refused)
          this.counters.staleTasks++;
          this.emit(out, { type: 'task:stale', jobUuid: m.job_uuid, taskIndex: m.task_index, epoch: m.epoch });
          break;
        }
        this.fed++;
        this.onTaskDispatch(out, m, nowMs);
        break;
      case 'result_ack':
        this.onResultAck(out, m);
        break;
      case 'task_cancel':
        // the master cancels jobs; one attempt is only ever cancelled by a balancer
        if (m.scope === CancelScope.job) this.onCancel(out, m.job_uuid);
        else this.emit(out, { type: 'master:unexpected', msgType: 'task_cancel (scope attempt)' });
        break;
      case 'error_reply':
        if (m.error_code === ERROR_CODES.LEASE_HELD) this.onRefused(out, m.message, nowMs);
        else this.emit(out, { type: 'master:error', code: m.error_code, message: m.message });
        break;
      default:
        this.emit(out, { type: 'master:unexpected', msgType: m.type });
    }
    this.dispatchPass(out, nowMs);
    return out;
  }

  // ---- the lease (docs/balancer.md, "The lease") ------------------------------------------

  private onGrant(out: DispatchOutput[], m: MessageOf<'lease_grant'>, nowMs: number): void {
    const r = this.lease.onGrant(m.epoch, m.request_seq, m.lease_ms, nowMs);
    if (r !== 'activated') return;
    // A new epoch: whatever this balancer held belongs to an older one (workers report it).
    this.dropSoftState();
    this.fed = 0;
    // a late grant gives the epoch but no valid lease yet: active once a renewal is (tick)
    this.wasActive = this.lease.active(nowMs);
    this.counters.leaseActivations++;
    const waiting = new Set(this.workers.keys());
    // With no worker registered yet (this balancer just started), wait too: workers that ran
    // tasks for the previous holder join within a heartbeat and report them.
    this.adopting = { untilMs: nowMs + this.o.adoptWaitMs, waiting, adopted: 0, reported: 0 };
    this.emit(out, { type: 'lease:activated', epoch: m.epoch, waitingFor: waiting.size });
    // Tell every worker at once (they answer with worker_holding), and ask for tasks now.
    this.stateToWorkers(out, nowMs);
    this.link.renew(out, nowMs); // asks for tasks at once (credit for the new epoch)
  }

  private onRefused(out: DispatchOutput[], reason: string, nowMs: number): void {
    const had = this.lease.onRefused(nowMs);
    this.counters.leaseRefusals++;
    if (!had) return;
    const dropped = this.tasks.size;
    this.dropSoftState();
    this.wasActive = false;
    this.emit(out, { type: 'lease:refused', epoch: this.lease.epoch, reason, dropped });
    this.stateToWorkers(out, nowMs);
  }

  /**
   * Forgets every task, result and adoption (soft state of an epoch this balancer no longer
   * holds). Nothing is lost: the master feeds open tasks again, and workers keep results
   * until the master acknowledged them (acks are end to end).
   */
  private dropSoftState(): void {
    this.table.clear();
    this.outbox.clear();
    this.adopted.clear();
    this.parked.clear();
    this.adopting = null;
    this.nextDeadlineMs = Infinity;
    for (const w of this.workers.values()) {
      w.assigned.clear();
      w.adoptedKeys.clear();
    }
  }

  private stateToWorkers(out: DispatchOutput[], nowMs: number): void {
    this.workerBeatSentMs = nowMs;
    for (const w of this.workers.values()) this.toWorker(out, w.id, this.stateMsg(nowMs));
  }

  private stateMsg(nowMs: number): MessageInput<'balancer_state'> {
    return { type: 'balancer_state', node_uuid: this.o.nodeUuid, epoch: this.lease.epoch, active: this.lease.active(nowMs) ? 1 : 0 };
  }

  /** May this balancer dispatch now (lease held, adoption finished)? */
  private canDispatch(nowMs: number): boolean {
    return this.lease.active(nowMs) && this.adopting === null;
  }

  /** worker_holding: what a worker holds, answering balancer_state of the new epoch. */
  private onHolding(out: DispatchOutput[], w: WorkerRec, m: MessageOf<'worker_holding'>, nowMs: number): void {
    // Taken even while the lease is briefly expired (a late renewal under load): what a worker
    // holds is a fact of this epoch, and it is not sent again. Not after a refusal (lost).
    if (m.epoch !== this.lease.epoch || this.lease.claimedEpoch === 0) return;
    if (m.entries.length !== m.num_tasks * HELD_ENTRY_BYTES) {
      this.toWorker(out, w.id, errorReply(this.o.nodeUuid, ERROR_CODES.BAD_REQUEST, `worker_holding has ${m.entries.length} bytes of entries for ${m.num_tasks} tasks; each entry is ${HELD_ENTRY_BYTES} bytes`));
      return;
    }
    for (let i = 0; i < m.num_tasks; i++) {
      const jobUuid = m.job_uuids[i]!;
      const taskIndex = m.entries.readUInt32LE(i * HELD_ENTRY_BYTES);
      const attempt = m.entries.readUInt32LE(i * HELD_ENTRY_BYTES + 4);
      const state = m.entries.readUInt32LE(i * HELD_ENTRY_BYTES + 8);
      if (state !== HeldState.queued && state !== HeldState.running && state !== HeldState.finished) continue;
      const key = taskKey(jobUuid, taskIndex);
      const t = this.tasks.get(key);
      if (t) {
        if (t.state !== 'running') {
          this.adoptInto(out, t, w, attempt, state, nowMs);
          if (this.adopting) this.adopting.adopted++;
        } else if (t.workerId !== w.id && !t.adopted) this.lateHolding(out, t, w, attempt);
        continue;
      }
      if (w.assigned.size + w.adoptedKeys.size >= w.slots + w.prefetch + this.o.maxUnackedResults) continue;
      this.adopted.set(key, { workerId: w.id, attempt, state, sinceMs: nowMs });
      w.adoptedKeys.add(key);
      if (this.adopting) this.adopting.adopted++;
    }
    if (this.adopting) {
      this.adopting.waiting.delete(w.id);
      this.adopting.reported++;
      if (this.adopting.waiting.size === 0) this.finishAdoption(out, false);
    }
  }

  private finishAdoption(out: DispatchOutput[], timedOut: boolean): void {
    const a = this.adopting!;
    this.adopting = null;
    this.emit(out, { type: 'lease:adopted', epoch: this.lease.epoch, adopted: a.adopted, timedOut });
  }

  /**
   * A worker reports an attempt of a task that this balancer already dispatched again, to
   * another worker, in this epoch (its worker_holding came after adoptWaitMs): two copies
   * would run. The reporter's copy is cancelled (task_cancel, scope attempt: that attempt
   * only); the re-dispatched one is kept, because its attempt number is the one the master
   * handed out for this epoch, so its result is always recorded, while the reporter's attempt
   * may already be settled at the master (declared lost before the failover) and its result
   * would then be ignored there and the task never settle. The cancelled copy's result is
   * stale here (acknowledged, ignored).
   */
  private lateHolding(out: DispatchOutput[], t: HeldTask, w: WorkerRec, attempt: number): void {
    this.toWorker(out, w.id, { type: 'task_cancel', node_uuid: this.o.nodeUuid, job_uuid: t.spec.job_uuid, task_index: t.spec.task_index, attempt, scope: CancelScope.attempt });
    this.counters.copiesCancelled++;
    this.emit(out, { type: 'task:copy-cancelled', jobUuid: t.spec.job_uuid, taskIndex: t.spec.task_index, attempt, workerId: w.id, keptOn: t.workerId!, keptAttempt: t.attempt });
  }

  /** A held task becomes running on the worker that reported it (no new dispatch). */
  private adoptInto(out: DispatchOutput[], t: HeldTask, w: WorkerRec, attempt: number, state: number, nowMs: number): void {
    this.queue.delete(t.key);
    this.backoff.delete(t.key);
    t.state = 'running';
    t.workerId = w.id;
    t.attempt = attempt;
    t.dispatchedAtMs = nowMs;
    t.adopted = true;
    t.started = state !== HeldState.queued;
    this.setDeadline(t, nowMs);
    w.assigned.add(t.key);
    this.counters.tasksAdopted++;
    this.emit(out, { type: 'task:adopted', jobUuid: t.spec.job_uuid, taskIndex: t.spec.task_index, attempt, workerId: w.id });
  }

  /**
   * A message from a worker, named by the node_uuid it carries. `connectionId` names the
   * connection it came on (the shell passes the ZeroMQ routing id): when a registered worker
   * shows up on a new connection, messages sent on the old one may have been lost, so its
   * tasks are treated as lost and it is asked to re-register.
   */
  onWorker(workerId: string, m: Message, nowMs: number, connectionId?: string): DispatchOutput[] {
    const out: DispatchOutput[] = [];
    if (m.type === 'worker_ready') {
      this.onReady(out, workerId, m, nowMs, connectionId);
      this.dispatchPass(out, nowMs);
      return out;
    }
    const w = this.workers.get(workerId);
    if (m.type === 'error_reply') {
      this.emit(out, { type: 'worker:error', workerId, code: m.error_code, message: m.message });
      if (w) w.lastSeenMs = nowMs;
      return out;
    }
    const workerTypes = ['worker_status', 'task_started', 'task_result', 'worker_disconnect', 'worker_holding'];
    if (!workerTypes.includes(m.type)) {
      this.emit(out, { type: 'worker:unexpected', workerId, msgType: m.type });
      this.toWorker(out, workerId, errorReply(this.o.nodeUuid, ERROR_CODES.UNEXPECTED, `the balancer does not take ${m.type} messages from workers; send it to the node that serves it`));
      return out;
    }
    if (!w) {
      // Chosen rule (docs/balancer.md): a worker we do not know (never joined, or declared
      // lost) is told to re-register; its results are still acknowledged so it can forget
      // them, but they are stale (the attempt was already counted as lost).
      if (m.type === 'worker_disconnect') return out;
      if (m.type === 'task_result' && this.lease.active(nowMs)) {
        this.ackWorker(out, workerId, m);
        this.ignoredResult(out, workerId, m);
      }
      this.emit(out, { type: 'worker:unknown', workerId, msgType: m.type });
      this.toWorker(out, workerId, errorReply(this.o.nodeUuid, ERROR_CODES.UNAVAILABLE, `unknown worker ${workerId} (never joined or declared lost after ${this.livenessMs} ms of silence); send worker_ready to re-register`));
      return out;
    }
    if (connectionId !== undefined && w.connectionId !== undefined && connectionId !== w.connectionId) {
      this.loseWorker(out, w, 'reconnected', nowMs);
      this.toWorker(out, workerId, errorReply(this.o.nodeUuid, ERROR_CODES.UNAVAILABLE, `worker ${workerId} reconnected, so tasks sent to it may be lost and were re-queued; send worker_ready to re-register`));
      this.dispatchPass(out, nowMs);
      return out;
    }
    w.lastSeenMs = nowMs;
    switch (m.type) {
      case 'worker_status':
        w.state = m.state;
        w.jobUuid = m.job_uuid;
        // The seed's worker status reaches the masters, through the active balancer only.
        if (this.lease.active(nowMs)) out.push({ kind: 'toMaster', msg: { type: 'worker_status', node_uuid: w.id, job_uuid: m.job_uuid, state: m.state } });
        break;
      case 'task_started':
        this.onStarted(out, w, m, nowMs);
        break;
      case 'task_result':
        this.onResult(out, w, m, nowMs);
        break;
      case 'worker_disconnect':
        this.loseWorker(out, w, 'disconnect', nowMs);
        break;
      case 'worker_holding':
        this.onHolding(out, w, m, nowMs);
        break;
    }
    this.dispatchPass(out, nowMs);
    return out;
  }

  /** Time passes: liveness, heartbeats, backoffs ending, result re-sends, hellos. */
  tick(nowMs: number): DispatchOutput[] {
    const out: DispatchOutput[] = [];
    if (this.started) this.link.tick(out, nowMs);
    for (const w of [...this.workers.values()]) {
      if (nowMs - w.lastSeenMs > this.livenessMs) this.loseWorker(out, w, 'silent', nowMs);
    }
    this.expireDeadlines(out, nowMs);
    const active = this.lease.active(nowMs);
    if (this.wasActive && !active) {
      // No renewal in time: stop dispatching (fencing) and tell the workers at once.
      this.wasActive = false;
      this.emit(out, { type: 'lease:expired', epoch: this.lease.epoch });
      this.stateToWorkers(out, nowMs);
    } else if (!this.wasActive && active) {
      this.wasActive = true;
      // workers follow only an active balancer: those still to report get the full wait now
      if (this.adopting) this.adopting.untilMs = Math.max(this.adopting.untilMs, nowMs + this.o.adoptWaitMs);
      this.stateToWorkers(out, nowMs);
    }
    if (this.adopting && nowMs >= this.adopting.untilMs) this.finishAdoption(out, true);
    for (const [k, a] of [...this.adopted]) {
      if (nowMs - a.sinceMs <= this.o.adoptSpecWaitMs) continue;
      // never fed: the task settled or was cancelled meanwhile
      this.adopted.delete(k);
      this.workers.get(a.workerId)?.adoptedKeys.delete(k);
    }
    for (const [k, p] of [...this.parked]) {
      if (nowMs - p.sinceMs <= this.o.adoptSpecWaitMs) continue;
      this.parked.delete(k);
      this.ackWorker(out, p.workerId, p.msg);
      this.ignoredResult(out, p.workerId, p.msg);
    }
    if (nowMs - this.workerBeatSentMs >= this.o.heartbeatIntervalMs) this.stateToWorkers(out, nowMs);
    this.table.releaseDue(nowMs);
    if (this.link.state === 'connected') {
      for (const msg of this.outbox.due(nowMs, this.o.resultResendMs)) {
        this.counters.resultsResent++;
        out.push({ kind: 'toMaster', msg });
      }
    }
    this.dispatchPass(out, nowMs);
    return out;
  }

  private helloMsg(nowMs: number): MessageInput<'balancer_hello'> {
    const room = Math.max(0, this.o.maxQueuedTasks - this.tasks.size - this.adopted.size);
    return {
      type: 'balancer_hello',
      node_uuid: this.o.nodeUuid,
      protocol_version: this.o.protocolVersion,
      role: this.o.role === 'primary' ? BalancerRole.primary : BalancerRole.auxiliary,
      epoch: this.lease.claimedEpoch,
      request_seq: this.lease.request(nowMs),
      fed: this.fed,
      credit_limit: this.fed + room,
    };
  }

  private onTaskDispatch(out: DispatchOutput[], m: TaskSpec, nowMs: number): void {
    this.counters.tasksReceived++;
    const key = taskKey(m.job_uuid, m.task_index);
    // Dedupe (the master re-sends every open task after each hello).
    if (this.tasks.has(key) || this.settledUnacked.has(key)) {
      this.counters.tasksDuplicate++;
      this.emit(out, { type: 'task:duplicate', jobUuid: m.job_uuid, taskIndex: m.task_index });
      return;
    }
    if (this.tasks.size >= this.o.maxQueuedTasks) {
      this.counters.tasksRefused++;
        this.emit(out, {
        type: 'task:refused',
        jobUuid: m.job_uuid,
        taskIndex: m.task_index,
        reason: `the balancer holds maxQueuedTasks = ${this.o.maxQueuedTasks} tasks; dropped, the master re-sends it after the next hello`,
      });
      return;
    }
    const t = this.table.add(m);
    const a = this.adopted.get(key);
    const w = a && this.workers.get(a.workerId);
    if (a) {
      this.adopted.delete(key);
      w?.adoptedKeys.delete(key);
    }
    if (a && w) {
      // A worker runs (or ran) this attempt since before the failover: adopt, do not re-run.
      this.adoptInto(out, t, w, a.attempt, a.state, nowMs);
      for (const [rk, p] of [...this.parked]) {
        if (!rk.startsWith(`${key}/`)) continue;
        this.parked.delete(rk);
        const pw = this.workers.get(p.workerId);
        if (pw) this.onResult(out, pw, p.msg, nowMs);
      }
      return;
    }
    this.emit(out, { type: 'task:queued', jobUuid: m.job_uuid, taskIndex: m.task_index, attempt: m.attempt });
  }

  private onResultAck(out: DispatchOutput[], m: MessageOf<'result_ack'>): void {
    const u = this.outbox.ack(m.job_uuid, m.task_index, m.attempt);
    if (!u) return;
    // end to end: the worker forgets its result only once the master recorded it
    if (u.workerId !== undefined) this.ackWorker(out, u.workerId, m);
    this.emit(out, { type: 'result:acked', jobUuid: m.job_uuid, taskIndex: m.task_index, attempt: m.attempt });
  }

  private onCancel(out: DispatchOutput[], jobUuid: string): void {
    const keys = this.byJob.get(jobUuid);
    this.counters.jobsCancelled++;
    let dropped = 0;
    let runningTasks = 0;
    const running = new Set<string>();
    for (const key of [...(keys ?? [])]) {
      const t = this.tasks.get(key)!;
      if (t.state === 'running') {
        runningTasks++;
        running.add(t.workerId!);
        this.workers.get(t.workerId!)?.assigned.delete(key);
      } else dropped++;
      this.forget(t);
    }
    for (const wid of running) this.toWorker(out, wid, { type: 'task_cancel', node_uuid: this.o.nodeUuid, job_uuid: jobUuid, task_index: 0, attempt: 0, scope: CancelScope.job });
    this.emit(out, { type: 'task:cancelled', jobUuid, dropped, running: runningTasks });
  }

  private toMasterResult(out: DispatchOutput[], msg: MessageInput<'task_result'>, taskKeyStr: string, nowMs: number, lost: boolean, workerId?: string): void {
    this.outbox.add(msg, taskKeyStr, nowMs, lost, workerId);
    this.counters.resultsForwarded++;
    out.push({ kind: 'toMaster', msg });
  }

  // ---- worker side -------------------------------------------------------------------------

  private onReady(out: DispatchOutput[], workerId: string, m: MessageOf<'worker_ready'>, nowMs: number, connectionId: string | undefined): void {
    if (m.protocol_version !== this.o.protocolVersion || m.software_version !== this.o.softwareVersion) {
      this.refuseWorker(
        out,
        workerId,
        ERROR_CODES.VERSION_MISMATCH,
        `worker ${workerId} runs protocol ${m.protocol_version} / software ${JSON.stringify(m.software_version)}, this balancer runs protocol ${this.o.protocolVersion} / software ${JSON.stringify(this.o.softwareVersion)}; run the same grid version on every node`,
      );
      return;
    }
    if (m.slots < 1) {
      this.refuseWorker(out, workerId, ERROR_CODES.BAD_REQUEST, `worker ${workerId} announced 0 slots; a worker needs at least 1 slot to take tasks`);
      return;
    }
    const old = this.workers.get(workerId);
    // A worker that says ready again has restarted or lost us: whatever it held is lost.
    if (old) this.loseWorker(out, old, 'rejoined', nowMs);
    if (this.workers.size >= this.o.maxWorkers) {
      this.refuseWorker(out, workerId, ERROR_CODES.UNAVAILABLE, `the balancer has maxWorkers = ${this.o.maxWorkers} workers; try again later or raise maxWorkers`);
      return;
    }
    const w: WorkerRec = {
      id: workerId,
      connectionId,
      slots: m.slots,
      prefetch: m.prefetch,
      assigned: new Set(),
      cache: this.registry.newCache(),
      lastSeenMs: nowMs,
      joinedMs: nowMs,
      state: WorkerState.idle,
      jobUuid: NIL_UUID,
      dispatched: 0,
      results: 0,
      adoptedKeys: new Set(),
    };
    const cached = m.cached_file_uuids;
    // keep the last maxCachedFilesPerWorker of the announced list (bounded LRU)
    for (let i = Math.max(0, cached.length - this.o.maxCachedFilesPerWorker); i < cached.length; i++) this.registry.touchCache(w, cached[i]!);
    this.workers.set(workerId, w);
    // joined while adopting: its worker_holding (answering the greeting below) is awaited too
    if (this.adopting && this.lease.active(nowMs)) this.adopting.waiting.add(workerId);
    this.counters.workersJoined++;
    this.emit(out, { type: 'worker:joined', workerId, slots: m.slots, prefetch: m.prefetch, cached: w.cache.size, rejoined: !!old });
    // Greet at once (with the lease state) so the worker knows it is heard, and whether to follow us.
    this.toWorker(out, workerId, this.stateMsg(nowMs));
  }

  private refuseWorker(out: DispatchOutput[], workerId: string, code: number, reason: string): void {
    this.counters.workersRefused++;
    this.emit(out, { type: 'worker:refused', workerId, code, reason });
    this.toWorker(out, workerId, errorReply(this.o.nodeUuid, code, reason));
  }

  private onStarted(out: DispatchOutput[], w: WorkerRec, m: MessageOf<'task_started'>, nowMs: number): void {
    const t = this.tasks.get(taskKey(m.job_uuid, m.task_index));
    if (!t || t.state !== 'running' || t.workerId !== w.id || t.attempt !== m.attempt) return;
    t.started = true;
    // The attempt runs now: its own timeout (plus slack) counts from here, not from dispatch.
    this.setDeadline(t, nowMs);
    this.emit(out, { type: 'task:started', jobUuid: m.job_uuid, taskIndex: m.task_index, attempt: m.attempt, workerId: w.id });
    out.push({ kind: 'toMaster', msg: { ...m, node_uuid: this.o.nodeUuid, worker_uuid: w.id, epoch: this.lease.epoch } });
  }

  private onResult(out: DispatchOutput[], w: WorkerRec, m: MessageOf<'task_result'>, nowMs: number): void {
    const key = taskKey(m.job_uuid, m.task_index);
    const t = this.tasks.get(key);
    const rk = resultKey(m.job_uuid, m.task_index, m.attempt);
    if (!this.lease.active(nowMs)) return; // not ours to acknowledge: the worker re-sends it to the active balancer
    if (!t || t.state !== 'running' || t.workerId !== w.id || t.attempt !== m.attempt) {
      const u = this.unacked.get(rk);
      if (u && u.workerId === w.id) return; // forwarded, waiting for the master: acked end to end
      const a = this.adopted.get(key);
      if (a && a.workerId === w.id && a.attempt === m.attempt && !this.parked.has(rk)) {
        // adopted, but its task has not come from the master yet: hold it until it does
        if (this.parked.size < this.o.maxUnackedResults) this.parked.set(rk, { workerId: w.id, msg: m, sinceMs: nowMs });
        return;
      }
      this.ackWorker(out, w.id, m);
      this.ignoredResult(out, w.id, m);
      return;
    }
    if (this.unacked.size >= this.o.maxUnackedResults) {
      // Backpressure: not acknowledged, so the worker keeps it and re-sends it later. The
      // attempt is done, not lost: its deadline moves so the wait for room does not expire it.
      this.counters.resultsRefused++;
      t.deadlineMs = Math.max(t.deadlineMs, nowMs + this.o.taskDeadlineSlackMs);
      this.emit(out, {
        type: 'result:refused',
        jobUuid: m.job_uuid,
        taskIndex: m.task_index,
        attempt: m.attempt,
        reason: `maxUnackedResults = ${this.o.maxUnackedResults} results wait for the master's acknowledgement; the worker re-sends this one`,
      });
      return;
    }
    w.results++;
    w.assigned.delete(key);
    const ok = m.outcome === TaskOutcome.ok;
    const retry = !ok && t.attempt < t.spec.max_retries;
    const fwd: MessageInput<'task_result'> = { ...m, node_uuid: this.o.nodeUuid, worker_uuid: w.id, final: retry ? 0 : 1, epoch: this.lease.epoch };
    this.toMasterResult(out, fwd, key, nowMs, false, w.id);
    if (retry) this.retry(out, t, m.outcome, w.id, nowMs, true);
    else this.settle(out, t, m.outcome, w.id);
  }

  private ignoredResult(out: DispatchOutput[], workerId: string, m: MessageOf<'task_result'>): void {
    this.counters.resultsIgnored++;
    const u = this.unacked.get(resultKey(m.job_uuid, m.task_index, m.attempt));
    const why = u && !u.lost ? 'duplicate' : 'stale';
    this.emit(out, { type: 'result:ignored', jobUuid: m.job_uuid, taskIndex: m.task_index, attempt: m.attempt, workerId, why });
  }

  private ackWorker(out: DispatchOutput[], workerId: string, m: { job_uuid: string; task_index: number; attempt: number }): void {
    this.toWorker(out, workerId, { type: 'result_ack', node_uuid: this.o.nodeUuid, job_uuid: m.job_uuid, task_index: m.task_index, attempt: m.attempt });
  }

  /** Worker silent, disconnected or re-joined: each unfinished task's attempt is `lost`. */
  private loseWorker(out: DispatchOutput[], w: WorkerRec, reason: LostReason, nowMs: number): void {
    this.workers.delete(w.id);
    this.counters.workersLost++;
    this.emit(out, { type: 'worker:lost', workerId: w.id, reason, tasks: w.assigned.size });
    for (const key of w.assigned) {
      const t = this.tasks.get(key)!;
      assert(t.state === 'running' && t.workerId === w.id, `task ${key} assigned to ${w.id} is running there`);
      const why = LOST_WHY[reason](this.livenessMs);
      this.settleLost(out, t, w.id, nowMs, `worker ${w.id} was lost (${why}) while holding this attempt`);
    }
    w.assigned.clear();
    for (const k of w.adoptedKeys) this.adopted.delete(k);
    w.adoptedKeys.clear();
    if (this.adopting?.waiting.delete(w.id) && this.adopting.waiting.size === 0 && this.adopting.reported > 0) this.finishAdoption(out, false);
  }

  /**
   * Settles a running attempt as outcome `lost` (its worker is gone, or it passed its
   * deadline): a made-up task_result goes to the master, and the task is re-queued at once
   * with attempt + 1 if attempts remain, else it settles failed. The caller frees the
   * worker's capacity. A late result of this attempt is then stale: acknowledged, ignored.
   */
  private settleLost(out: DispatchOutput[], t: HeldTask, workerId: string, nowMs: number, error: string): void {
    const retry = t.attempt < t.spec.max_retries;
    const msg: MessageInput<'task_result'> = {
      type: 'task_result',
      node_uuid: this.o.nodeUuid,
      job_uuid: t.spec.job_uuid,
      worker_uuid: workerId,
      log_file_uuid: NIL_UUID,
      task_index: t.spec.task_index,
      attempt: t.attempt,
      exit_code: -1,
      duration_ms: Math.min(U32_MAX, Math.max(0, nowMs - t.dispatchedAtMs)),
      outcome: TaskOutcome.lost,
      final: retry ? 0 : 1,
      output_file_uuids: [],
      output_names: [],
      error,
      log_tail: '',
      epoch: this.lease.epoch,
    };
    // Lost results bypass maxUnackedResults: they are bounded by maxQueuedTasks instead.
    this.toMasterResult(out, msg, t.key, nowMs, true);
    // A lost attempt is not the task's fault: re-queue at once (no backoff), elsewhere.
    if (retry) this.retry(out, t, TaskOutcome.lost, workerId, nowMs, false);
    else this.settle(out, t, TaskOutcome.lost, workerId);
  }

  // ---- deadlines ---------------------------------------------------------------------------

  /** How long an attempt may run: its own timeout (or the default for 0) plus the slack. */
  private runBudgetMs(t: HeldTask): number {
    return (t.spec.timeout_ms || this.o.defaultTaskTimeoutMs) + this.o.taskDeadlineSlackMs;
  }

  /**
   * At dispatch (not started): the attempt may first wait in the worker's prefetch queue,
   * so it gets queuedDeadlineMs more; at task_started the budget counts from then.
   */
  private setDeadline(t: HeldTask, nowMs: number): void {
    t.deadlineMs = nowMs + this.runBudgetMs(t) + (t.started ? 0 : this.o.queuedDeadlineMs);
    if (t.deadlineMs < this.nextDeadlineMs) this.nextDeadlineMs = t.deadlineMs;
  }

  /**
   * Settles every running attempt past its deadline as lost. Without this a task whose
   * result was lost on a worker that stays alive would be held forever. Scans only when the
   * earliest deadline may have passed (nextDeadlineMs is a lower bound of all of them).
   */
  private expireDeadlines(out: DispatchOutput[], nowMs: number): void {
    if (nowMs <= this.nextDeadlineMs) return;
    let next = Infinity;
    for (const w of this.workers.values()) {
      for (const key of [...w.assigned]) {
        const t = this.tasks.get(key)!;
        if (nowMs <= t.deadlineMs) {
          if (t.deadlineMs < next) next = t.deadlineMs;
          continue;
        }
        const budgetMs = this.runBudgetMs(t) + (t.started ? 0 : this.o.queuedDeadlineMs);
        const from = t.started ? 'task_started' : 'dispatch';
        this.counters.deadlinesMissed++;
        this.emit(out, { type: 'task:deadline', jobUuid: t.spec.job_uuid, taskIndex: t.spec.task_index, attempt: t.attempt, workerId: w.id, budgetMs, from });
        // The worker's own timeout has long run out, so it no longer runs this attempt: free
        // its capacity (keeping it would leak a slot for good when the result was lost).
        w.assigned.delete(key);
        this.settleLost(
          out,
          t,
          w.id,
          nowMs,
          `no result from worker ${w.id} within ${budgetMs} ms of ${from} (task timeout ${t.spec.timeout_ms || this.o.defaultTaskTimeoutMs} ms + taskDeadlineSlackMs ${this.o.taskDeadlineSlackMs} ms${t.started ? '' : ` + queuedDeadlineMs ${this.o.queuedDeadlineMs} ms`}); the result was lost or the worker hung`,
        );
      }
    }
    this.nextDeadlineMs = next;
  }

  private retry(out: DispatchOutput[], t: HeldTask, outcome: number, workerId: string, nowMs: number, withBackoff: boolean): void {
    const failed = t.attempt;
    const delayMs = withBackoff ? backoffDelayMs(failed, { baseMs: this.o.retryBackoffBaseMs, maxMs: this.o.retryBackoffMaxMs }, this.o.random) : 0;
    t.attempt = failed + 1;
    t.workerId = undefined;
    t.started = false;
    t.deadlineMs = Infinity;
    if (!t.failedOn.includes(workerId)) t.failedOn.push(workerId);
    if (t.failedOn.length > 16) t.failedOn.shift(); // bounded: only the recent ones matter
    this.counters.retries++;
    if (delayMs > 0) {
      t.state = 'backoff';
      t.notBeforeMs = nowMs + delayMs;
      this.backoff.set(t.key, t);
    } else {
      t.state = 'queued';
      this.queue.set(t.key, t);
    }
    this.emit(out, { type: 'task:retry', jobUuid: t.spec.job_uuid, taskIndex: t.spec.task_index, attempt: t.attempt, outcome, delayMs, failedOn: workerId });
  }

  private settle(out: DispatchOutput[], t: HeldTask, outcome: number, workerId: string): void {
    if (outcome === TaskOutcome.ok) this.counters.settledOk++;
    else this.counters.settledFailed++;
    this.forget(t);
    this.emit(out, { type: 'task:settled', jobUuid: t.spec.job_uuid, taskIndex: t.spec.task_index, attempt: t.attempt, outcome, workerId });
  }

  private forget(t: HeldTask): void {
    this.table.forget(t);
  }

  // ---- dispatch ----------------------------------------------------------------------------

  /**
   * Hands queued tasks, oldest first, to workers with free capacity (slots + prefetch).
   * Each step either dispatches one task or stops because no worker has room, so the pass
   * costs O(dispatched x workers).
   */
  private dispatchPass(out: DispatchOutput[], nowMs: number): void {
    if (this.adopting && nowMs >= this.adopting.untilMs) this.finishAdoption(out, true);
    if (this.queue.size === 0 || !this.canDispatch(nowMs)) return; // fencing: no lease, no dispatch
    for (const t of this.queue.values()) {
      const w = this.registry.pickWorker(t);
      if (!w) return;
      this.queue.delete(t.key);
      t.state = 'running';
      t.workerId = w.id;
      t.dispatchedAtMs = nowMs;
      t.adopted = false;
      t.started = false;
      this.setDeadline(t, nowMs);
      w.assigned.add(t.key);
      w.dispatched++;
      assert(w.assigned.size <= w.slots + w.prefetch, `worker ${w.id} within capacity`);
      let hits = 0;
      for (const f of t.spec.input_file_uuids) {
        if (w.cache.has(f)) hits++;
        this.registry.touchCache(w, f);
      }
      this.counters.dispatched++;
      this.emit(out, { type: 'task:dispatched', jobUuid: t.spec.job_uuid, taskIndex: t.spec.task_index, attempt: t.attempt, workerId: w.id, cacheHits: hits });
      this.toWorker(out, w.id, this.workerRequest(t.spec, t.attempt));
    }
  }

  /**
   * The task as the seed's worker_request (docs/protocol.md): the seed's fields and frames
   * first (no inline program: program_length 0; the input names as the input paths), the
   * grid's after them. Under this balancer's epoch, with the attempt it dispatches.
   */
  private workerRequest(spec: TaskSpec, attempt: number): MessageInput<'worker_request'> {
    return {
      type: 'worker_request',
      node_uuid: this.o.nodeUuid,
      job_uuid: spec.job_uuid,
      program_length: 0,
      num_input_files: spec.input_names.length,
      program_file_uuid: spec.program_file_uuid,
      task_index: spec.task_index,
      task_count: spec.task_count,
      attempt,
      max_retries: spec.max_retries,
      timeout_ms: spec.timeout_ms,
      memory_limit_mb: spec.memory_limit_mb,
      num_args: spec.args.length,
      output_limit_bytes: spec.output_limit_bytes,
      epoch: this.lease.epoch,
      program: EMPTY,
      input_files: spec.input_names,
      input_file_uuids: spec.input_file_uuids,
      args: spec.args,
      program_name: spec.program_name,
    };
  }

  // ---- helpers -----------------------------------------------------------------------------

  private toWorker(out: DispatchOutput[], workerId: string, msg: MessageInput): void {
    out.push({ kind: 'toWorker', workerId, msg });
  }

  private emit(out: DispatchOutput[], event: DispatchEvent): void {
    out.push({ kind: 'event', event });
  }

  // ---- queries (for /status and tests) -----------------------------------------------------

  get masterConnected(): boolean {
    return this.link.state === 'connected';
  }

  /** The master endpoint the link points at (the shell connects there at start). */
  get currentMaster(): string {
    return this.link.endpoint;
  }

  /** Where a task is, or undefined when not held. */
  taskInfo(jobUuid: string, taskIndex: number): { state: HeldTask['state']; attempt: number; workerId?: string; notBeforeMs: number; deadlineMs: number } | undefined {
    const t = this.tasks.get(taskKey(jobUuid, taskIndex));
    return t && { state: t.state, attempt: t.attempt, workerId: t.workerId, notBeforeMs: t.notBeforeMs, deadlineMs: t.deadlineMs };
  }

  workerLoad(workerId: string): number | undefined {
    return this.workers.get(workerId)?.assigned.size;
  }

  workerIds(): string[] {
    return [...this.workers.keys()];
  }

  status(nowMs: number): DispatchStatus {
    let running = 0;
    for (const w of this.workers.values()) running += w.assigned.size;
    return {
      pairRole: this.o.role,
      active: this.lease.active(nowMs),
      epoch: this.lease.epoch,
      leaseLeftMs: Math.round(this.lease.leftMs(nowMs)),
      adopting: this.adopting !== null,
      master: {
        state: this.link.state,
        lastHeardMsAgo: this.link.heardMs === null ? null : nowMs - this.link.heardMs,
        endpoint: this.link.endpoint,
        endpoints: [...this.link.cursor.endpoints],
      },
      workers: this.registry.statusRows(nowMs),
      tasksHeld: this.tasks.size,
      tasksQueued: this.queue.size,
      tasksBackoff: this.backoff.size,
      tasksRunning: running,
      unackedResults: this.unacked.size,
      counters: { ...this.counters },
    };
  }
}

