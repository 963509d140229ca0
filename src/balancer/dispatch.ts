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
import { assert } from '../common/errors';
import { MasterCursor, leaderHint } from '../common/leader';
import { DispatchLimits } from './config';
import { LeaseHolder } from './pair';

export interface DispatchOptions extends DispatchLimits {
  /** this balancer's node id, stamped on every message it sends */
  nodeUuid: string;
  /** what workers must announce in worker_ready */
  protocolVersion: number;
  softwareVersion: string;
  /** the master endpoints, in order (one, or the replicated masters); the first is tried first */
  masters: readonly string[];
  /** as configured: a free lease goes to a live primary first */
  role: 'primary' | 'auxiliary';
}

/** Events: what happened, for logs and tests. Namespaced, one shape per name. */
export type DispatchEvent =
  | { type: 'master:hello'; reason: HelloReason }
  /** the masters granted this balancer a new epoch: it is the active one now */
  | { type: 'lease:activated'; epoch: number; waitingFor: number }
  /** every registered worker reported what it holds (or adoptWaitMs passed): dispatch starts */
  | { type: 'lease:adopted'; epoch: number; adopted: number; timedOut: boolean }
  /** the lease ran out here (no renewal in time): dispatching stops until it is renewed */
  | { type: 'lease:expired'; epoch: number }
  /** the masters refused the lease: another balancer holds it; soft state dropped */
  | { type: 'lease:refused'; epoch: number; reason: string; dropped: number }
  | { type: 'task:adopted'; jobUuid: string; taskIndex: number; attempt: number; workerId: string }
  | { type: 'task:stale'; jobUuid: string; taskIndex: number; epoch: number }
  /** the master link moves: a follower named the leader (or none), or the master fell silent */
  | { type: 'master:redirect'; from: string; to: string; why: RedirectWhy; hint: string | null }
  /** the master answered a hello (first message since the hello) */
  | { type: 'master:heard'; first: boolean }
  | { type: 'master:lost'; silentMs: number }
  | { type: 'master:error'; code: number; message: string }
  | { type: 'master:unexpected'; msgType: string }
  | { type: 'worker:joined'; workerId: string; slots: number; prefetch: number; cached: number; rejoined: boolean }
  | { type: 'worker:refused'; workerId: string; code: number; reason: string }
  | { type: 'worker:lost'; workerId: string; reason: LostReason; tasks: number }
  | { type: 'worker:unknown'; workerId: string; msgType: string }
  | { type: 'worker:unexpected'; workerId: string; msgType: string }
  | { type: 'worker:error'; workerId: string; code: number; message: string }
  | { type: 'task:queued'; jobUuid: string; taskIndex: number; attempt: number }
  | { type: 'task:duplicate'; jobUuid: string; taskIndex: number }
  | { type: 'task:refused'; jobUuid: string; taskIndex: number; reason: string }
  | { type: 'task:dispatched'; jobUuid: string; taskIndex: number; attempt: number; workerId: string; cacheHits: number }
  | { type: 'task:started'; jobUuid: string; taskIndex: number; attempt: number; workerId: string }
  | { type: 'task:retry'; jobUuid: string; taskIndex: number; attempt: number; outcome: number; delayMs: number; failedOn: string }
  /** an attempt passed its deadline without a result: settled lost (then retried or final) */
  | { type: 'task:deadline'; jobUuid: string; taskIndex: number; attempt: number; workerId: string; budgetMs: number; from: 'dispatch' | 'task_started' }
  | { type: 'task:settled'; jobUuid: string; taskIndex: number; attempt: number; outcome: number; workerId: string }
  | { type: 'task:cancelled'; jobUuid: string; dropped: number; running: number }
  | { type: 'result:ignored'; jobUuid: string; taskIndex: number; attempt: number; workerId: string; why: 'duplicate' | 'stale' }
  | { type: 'result:refused'; jobUuid: string; taskIndex: number; attempt: number; reason: string }
  | { type: 'result:acked'; jobUuid: string; taskIndex: number; attempt: number };

export type HelloReason = 'start' | 'unanswered' | 'silent' | 'room' | 'redirect' | 'renew';
/**
 * Why the master link moved: `not-leader` (an error_reply NOT_LEADER), `silent` (a connected
 * master said nothing for the liveness time), `unanswered` (hellos unanswered that long).
 */
export type RedirectWhy = 'not-leader' | 'silent' | 'unanswered';

/** Why a worker was declared lost. */
export type LostReason = 'silent' | 'disconnect' | 'rejoined' | 'reconnected';
const LOST_WHY: Record<LostReason, (livenessMs: number) => string> = {
  silent: (ms) => `silent for more than ${ms} ms`,
  disconnect: () => 'it sent worker_disconnect',
  rejoined: () => 'it restarted (sent worker_ready again)',
  reconnected: () => 'it reconnected, so messages to it may have been lost',
};

export type DispatchOutput =
  | { kind: 'toWorker'; workerId: string; msg: MessageInput }
  | { kind: 'toMaster'; msg: MessageInput }
  /** close the master connection and open one to `endpoint`; later toMaster outputs go there */
  | { kind: 'masterLink'; endpoint: string }
  | { kind: 'event'; event: DispatchEvent };

type TaskSpec = MessageOf<'task_dispatch'>;

interface HeldTask {
  readonly key: string;
  readonly spec: TaskSpec;
  attempt: number;
  state: 'queued' | 'backoff' | 'running';
  /** backoff: not dispatched before this time */
  notBeforeMs: number;
  workerId?: string;
  dispatchedAtMs: number;
  started: boolean;
  /** running: past this time without a result, the attempt is settled lost */
  deadlineMs: number;
  /** workers an earlier attempt failed or was lost on, so a retry prefers another one */
  failedOn: string[];
}

interface WorkerRec {
  readonly id: string;
  /** the connection it registered on (undefined: the shell does not track connections) */
  readonly connectionId: string | undefined;
  slots: number;
  prefetch: number;
  /** task keys sent to this worker and not finished */
  readonly assigned: Set<string>;
  /** LRU of file ids (oldest first) the worker probably has cached */
  readonly cache: Map<string, true>;
  lastSeenMs: number;
  readonly joinedMs: number;
  state: number;
  jobUuid: string;
  dispatched: number;
  results: number;
  /** adopted attempts whose task the master has not fed yet (they take capacity) */
  readonly adoptedKeys: Set<string>;
}

/** An attempt a worker reported holding after a failover, waiting for its task from the master. */
interface AdoptedRec {
  workerId: string;
  attempt: number;
  state: number;
  sinceMs: number;
}

interface Unacked {
  readonly msg: MessageInput<'task_result'>;
  /** the worker that reported it: acknowledged only once the master acknowledged (end to end) */
  readonly workerId: string | undefined;
  readonly taskKey: string;
  readonly final: boolean;
  /** made up here for a lost worker's attempt, not reported by a worker */
  readonly lost: boolean;
  lastSentMs: number;
}

export interface DispatchCounters {
  tasksReceived: number;
  tasksDuplicate: number;
  tasksRefused: number;
  dispatched: number;
  retries: number;
  settledOk: number;
  settledFailed: number;
  workersJoined: number;
  workersLost: number;
  workersRefused: number;
  resultsForwarded: number;
  resultsResent: number;
  resultsIgnored: number;
  resultsRefused: number;
  jobsCancelled: number;
  masterHellos: number;
  masterRedirects: number;
  deadlinesMissed: number;
  leaseActivations: number;
  leaseRefusals: number;
  tasksAdopted: number;
  staleTasks: number;
}

export interface DispatchStatus {
  /** as configured (the admin /status `role` field names the node kind, 'balancer') */
  pairRole: 'primary' | 'auxiliary';
  /** holds the lease now (dispatches) */
  active: boolean;
  /** the epoch held or last held, 0 = never */
  epoch: number;
  leaseLeftMs: number;
  adopting: boolean;
  master: { state: MasterState; lastHeardMsAgo: number | null; endpoint: string; endpoints: string[] };
  workers: {
    workerId: string;
    slots: number;
    prefetch: number;
    load: number;
    state: string;
    lastSeenMsAgo: number;
    joinedMsAgo: number;
    dispatched: number;
    results: number;
    cachedFiles: number;
  }[];
  tasksHeld: number;
  tasksQueued: number;
  tasksBackoff: number;
  tasksRunning: number;
  unackedResults: number;
  counters: DispatchCounters;
}

export type MasterState = 'hello-pending' | 'connected';

const taskKey = (jobUuid: string, taskIndex: number): string => `${jobUuid}/${taskIndex}`;
const resultKey = (jobUuid: string, taskIndex: number, attempt: number): string => `${jobUuid}/${taskIndex}/${attempt}`;
const U32_MAX = 0xffffffff;
const STATE_NAMES = Object.fromEntries(Object.entries(WorkerState).map(([k, v]) => [v, k])) as Record<number, string>;

export class Dispatcher {
  private readonly tasks = new Map<string, HeldTask>();
  /** tasks ready to dispatch, in arrival order (Map keeps insertion order) */
  private readonly queue = new Map<string, HeldTask>();
  /** tasks waiting out a retry backoff */
  private readonly backoff = new Map<string, HeldTask>();
  private readonly byJob = new Map<string, Set<string>>();
  /** workers in join order (ties in dispatch go to the earlier one) */
  private readonly workers = new Map<string, WorkerRec>();
  /** results for the master, ordered by lastSentMs (re-inserted on every send) */
  private readonly unacked = new Map<string, Unacked>();
  /** tasks settled here whose final result the master has not acknowledged yet */
  private readonly settledUnacked = new Set<string>();
  private masterState: MasterState = 'hello-pending';
  private masterHeardMs: number | null = null;
  private readonly cursor: MasterCursor;
  /** the master the link points at (a NOT_LEADER hint may name one outside the list) */
  private masterEndpoint: string;
  /** since when the link waits for an answer from this master (hello-pending) */
  private masterWaitSinceMs = 0;
  private helloSentMs = -Infinity;
  /** hello-pending: the next hello goes out at this time */
  private nextHelloAtMs = Infinity;
  /** when the last hello after a redirect went out (they are masterRedirectMinMs apart) */
  private redirectHelloMs = -Infinity;
  /** a redirect's hello waits for masterRedirectMinMs to pass */
  private redirectHelloDue = false;
  /** lower bound of every running attempt's deadline, so tick scans only when one may be due */
  private nextDeadlineMs = Infinity;
  private masterBeatSentMs = -Infinity;
  private workerBeatSentMs = -Infinity;
  /** task_dispatch was dropped at the bound: ask the master again once there is room */
  private droppedSinceHello = false;
  private started = false;
  /** this balancer's view of the dispatch lease (pure, src/balancer/pair.ts) */
  readonly lease: LeaseHolder;
  /** task_dispatch received from the master in the current epoch (the credit's base) */
  private fed = 0;
  /** since becoming active: workers that have not yet reported what they hold */
  private adopting: { untilMs: number; waiting: Set<string>; adopted: number } | null = null;
  private readonly adopted = new Map<string, AdoptedRec>();
  /** results of adopted attempts whose task has not been fed yet (not acknowledged) */
  private readonly parked = new Map<string, { workerId: string; msg: MessageOf<'task_result'>; sinceMs: number }>();
  private wasActive = false;
  private leaseRenewSentMs = -Infinity;
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
  };

  constructor(readonly o: DispatchOptions) {
    this.cursor = new MasterCursor([...o.masters]);
    this.masterEndpoint = this.cursor.current;
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
    this.masterWaitSinceMs = nowMs;
    this.hello(out, nowMs, 'start');
    return out;
  }

  /** Any message that arrived on the master connection. */
  onMaster(m: Message, nowMs: number): DispatchOutput[] {
    const out: DispatchOutput[] = [];
    if (m.type === 'error_reply' && m.error_code === ERROR_CODES.NOT_LEADER) {
      // A follower (docs/architecture.md, "Replicated masters"): it is not our master and
      // proves nothing about the leader, so it does not count as an answer. Go where it says.
      this.redirect(out, nowMs, 'not-leader', leaderHint(m.message));
      this.dispatchPass(out, nowMs);
      return out;
    }
    // Any message from the master proves it is there and has our hello (docs/architecture.md,
    // "Master -> balancer"): it only talks to a balancer that said hello.
    const answered = this.masterState !== 'connected';
    this.masterHeardMs = nowMs;
    if (answered) {
      this.masterState = 'connected';
      // The master answers a hello before re-sending every open task (one socket, FIFO), so
      // tasks dropped at the bound before this point will come again: forget the drops.
      this.droppedSinceHello = false;
      this.emit(out, { type: 'master:heard', first: answered });
    }
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
        this.onCancel(out, m.job_uuid);
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
    this.wasActive = true;
    this.counters.leaseActivations++;
    const waiting = new Set(this.workers.keys());
    this.adopting = waiting.size > 0 ? { untilMs: nowMs + this.o.adoptWaitMs, waiting, adopted: 0 } : null;
    this.emit(out, { type: 'lease:activated', epoch: m.epoch, waitingFor: waiting.size });
    // Tell every worker at once (they answer with worker_holding), and ask for tasks now.
    this.stateToWorkers(out, nowMs);
    if (!this.adopting) this.emit(out, { type: 'lease:adopted', epoch: m.epoch, adopted: 0, timedOut: false });
    this.renew(out, nowMs); // asks for tasks at once (credit for the new epoch)
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
    this.tasks.clear();
    this.queue.clear();
    this.backoff.clear();
    this.byJob.clear();
    this.unacked.clear();
    this.settledUnacked.clear();
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
    if (m.epoch !== this.lease.epoch || !this.lease.active(nowMs)) return;
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
        if (t.state !== 'running') this.adoptInto(out, t, w, attempt, state, nowMs);
        continue; // running elsewhere already: the later result is a duplicate, recorded once
      }
      if (w.assigned.size + w.adoptedKeys.size >= w.slots + w.prefetch + this.o.maxUnackedResults) continue;
      this.adopted.set(key, { workerId: w.id, attempt, state, sinceMs: nowMs });
      w.adoptedKeys.add(key);
      if (this.adopting) this.adopting.adopted++;
    }
    if (this.adopting) {
      this.adopting.waiting.delete(w.id);
      if (this.adopting.waiting.size === 0) this.finishAdoption(out, false);
    }
  }

  private finishAdoption(out: DispatchOutput[], timedOut: boolean): void {
    const a = this.adopting!;
    this.adopting = null;
    this.emit(out, { type: 'lease:adopted', epoch: this.lease.epoch, adopted: a.adopted, timedOut });
  }

  /** A held task becomes running on the worker that reported it (no new dispatch). */
  private adoptInto(out: DispatchOutput[], t: HeldTask, w: WorkerRec, attempt: number, state: number, nowMs: number): void {
    this.queue.delete(t.key);
    this.backoff.delete(t.key);
    t.state = 'running';
    t.workerId = w.id;
    t.attempt = attempt;
    t.dispatchedAtMs = nowMs;
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
    this.tickMaster(out, nowMs);
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
    for (const t of [...this.backoff.values()]) {
      if (t.notBeforeMs <= nowMs) {
        this.backoff.delete(t.key);
        t.state = 'queued';
        this.queue.set(t.key, t);
      }
    }
    if (this.masterState === 'connected') {
      // unacked is ordered by lastSentMs, so stop at the first one not yet due
      for (const [k, u] of [...this.unacked]) {
        if (nowMs - u.lastSentMs < this.o.resultResendMs) break;
        this.unacked.delete(k);
        u.lastSentMs = nowMs;
        this.unacked.set(k, u);
        this.counters.resultsResent++;
        out.push({ kind: 'toMaster', msg: u.msg });
      }
    }
    this.dispatchPass(out, nowMs);
    return out;
  }

  // ---- master side -------------------------------------------------------------------------

  /**
   * Every hello waits for an answer: the state is hello-pending until any master message
   * arrives, and hello repeats every interval meanwhile (the master answers a hello at once).
   */
  private hello(out: DispatchOutput[], nowMs: number, reason: HelloReason): void {
    if (this.masterState === 'connected') this.masterWaitSinceMs = nowMs;
    if (reason === 'redirect') this.redirectHelloMs = nowMs;
    this.redirectHelloDue = false;
    this.helloSentMs = nowMs;
    this.nextHelloAtMs = nowMs + this.o.heartbeatIntervalMs;
    this.masterState = 'hello-pending';
    this.counters.masterHellos++;
    this.leaseRenewSentMs = nowMs;
    this.emit(out, { type: 'master:hello', reason });
    out.push({ kind: 'toMaster', msg: this.helloMsg(nowMs) });
  }

  /**
   * Moves the master link: to the leader a follower named (or the next master when it named
   * none), or to the next master after silence. A new endpoint gets a `masterLink` output and
   * a hello at once, except that hellos after redirects are at least masterRedirectMinMs
   * apart (during an election every master says "not me", and two masters with stale views
   * may name each other: neither must become a tight loop). Unacknowledged results are made
   * due, so they reach the new master as soon as it answers.
   */
  private redirect(out: DispatchOutput[], nowMs: number, why: RedirectWhy, hint: string | undefined): void {
    const from = this.masterEndpoint;
    const to = why === 'not-leader' ? this.cursor.redirect(hint) : this.cursor.next();
    this.masterEndpoint = to;
    this.counters.masterRedirects++;
    this.emit(out, { type: 'master:redirect', from, to, why, hint: hint ?? null });
    if (to !== from) {
      out.push({ kind: 'masterLink', endpoint: to });
      // Results sent to the old master may never have arrived: all are due now (they keep
      // their order; the re-send in tick runs once the new master has answered).
      for (const u of this.unacked.values()) u.lastSentMs = -Infinity;
    }
    this.masterState = 'hello-pending';
    this.masterWaitSinceMs = nowMs;
    const dueMs = this.redirectHelloMs + this.o.masterRedirectMinMs;
    if (nowMs >= dueMs) this.hello(out, nowMs, 'redirect');
    else {
      this.redirectHelloDue = true;
      this.nextHelloAtMs = dueMs;
    }
  }

  private tickMaster(out: DispatchOutput[], nowMs: number): void {
    if (!this.started) return;
    const several = this.cursor.endpoints.length > 1;
    if (this.masterState === 'hello-pending') {
      // A master that leaves hellos unanswered for the liveness time is skipped (dead, or
      // cut off); with one master there is nowhere else to go, so keep asking it.
      if (several && nowMs - this.masterWaitSinceMs > this.livenessMs) {
        this.redirect(out, nowMs, 'unanswered', undefined);
        return;
      }
      // Until any master message answers, say hello every interval.
      if (nowMs >= this.nextHelloAtMs) this.hello(out, nowMs, this.redirectHelloDue ? 'redirect' : 'unanswered');
      return;
    }
    const silentMs = nowMs - (this.masterHeardMs ?? nowMs);
    if (silentMs > this.livenessMs) {
      this.masterState = 'hello-pending';
      this.emit(out, { type: 'master:lost', silentMs });
      // A dead leader is skipped: the next master either leads or names the leader.
      if (several) this.redirect(out, nowMs, 'silent', undefined);
      else {
        this.masterWaitSinceMs = nowMs;
        this.hello(out, nowMs, 'silent');
      }
      return;
    }
    if (nowMs - this.leaseRenewSentMs >= this.o.leaseRenewMs) {
      // The hello is the lease request or renewal, the credit and the heartbeat in one.
      this.renew(out, nowMs);
    }
  }

  /** balancer_hello without leaving the connected state (a renewal: answers keep coming). */
  private renew(out: DispatchOutput[], nowMs: number): void {
    this.leaseRenewSentMs = nowMs;
    this.masterBeatSentMs = nowMs;
    out.push({ kind: 'toMaster', msg: this.helloMsg(nowMs) });
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

  private heldCount(): number {
    return this.tasks.size;
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
      this.droppedSinceHello = true;
      this.emit(out, {
        type: 'task:refused',
        jobUuid: m.job_uuid,
        taskIndex: m.task_index,
        reason: `the balancer holds maxQueuedTasks = ${this.o.maxQueuedTasks} tasks; dropped, the master re-sends it after the next hello`,
      });
      return;
    }
    const t: HeldTask = { key, spec: m, attempt: m.attempt, state: 'queued', notBeforeMs: 0, dispatchedAtMs: 0, started: false, deadlineMs: Infinity, failedOn: [] };
    this.tasks.set(key, t);
    this.queue.set(key, t);
    let s = this.byJob.get(m.job_uuid);
    if (!s) this.byJob.set(m.job_uuid, (s = new Set()));
    s.add(key);
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
    const k = resultKey(m.job_uuid, m.task_index, m.attempt);
    const u = this.unacked.get(k);
    if (!u) return;
    this.unacked.delete(k);
    if (u.final) this.settledUnacked.delete(u.taskKey);
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
    for (const wid of running) this.toWorker(out, wid, { type: 'task_cancel', node_uuid: this.o.nodeUuid, job_uuid: jobUuid });
    this.emit(out, { type: 'task:cancelled', jobUuid, dropped, running: runningTasks });
  }

  private toMasterResult(out: DispatchOutput[], msg: MessageInput<'task_result'>, taskKeyStr: string, nowMs: number, lost: boolean, workerId?: string): void {
    const k = resultKey(msg.job_uuid, msg.task_index, msg.attempt);
    const final = msg.final === 1;
    this.unacked.delete(k);
    this.unacked.set(k, { msg, workerId, taskKey: taskKeyStr, final, lost, lastSentMs: nowMs });
    if (final) this.settledUnacked.add(taskKeyStr);
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
      cache: new Map(),
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
    for (let i = Math.max(0, cached.length - this.o.maxCachedFilesPerWorker); i < cached.length; i++) this.touchCache(w, cached[i]!);
    this.workers.set(workerId, w);
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
    if (this.adopting?.waiting.delete(w.id) && this.adopting.waiting.size === 0) this.finishAdoption(out, false);
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
    const delayMs = withBackoff ? Math.min(this.o.retryBackoffMaxMs, this.o.retryBackoffBaseMs * 2 ** failed) : 0;
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
    this.tasks.delete(t.key);
    this.queue.delete(t.key);
    this.backoff.delete(t.key);
    const s = this.byJob.get(t.spec.job_uuid);
    s?.delete(t.key);
    if (s && s.size === 0) this.byJob.delete(t.spec.job_uuid);
  }

  // ---- dispatch ----------------------------------------------------------------------------

  /**
   * Hands queued tasks, oldest first, to workers with free capacity (slots + prefetch).
   * Each step either dispatches one task or stops because no worker has room, so the pass
   * costs O(dispatched x workers).
   */
  private dispatchPass(out: DispatchOutput[], nowMs: number): void {
    if (this.queue.size === 0 || !this.canDispatch(nowMs)) return; // fencing: no lease, no dispatch
    for (const t of this.queue.values()) {
      const w = this.pickWorker(t);
      if (!w) return;
      this.queue.delete(t.key);
      t.state = 'running';
      t.workerId = w.id;
      t.dispatchedAtMs = nowMs;
      t.started = false;
      this.setDeadline(t, nowMs);
      w.assigned.add(t.key);
      w.dispatched++;
      assert(w.assigned.size <= w.slots + w.prefetch, `worker ${w.id} within capacity`);
      let hits = 0;
      for (const f of t.spec.input_file_uuids) {
        if (w.cache.has(f)) hits++;
        this.touchCache(w, f);
      }
      this.counters.dispatched++;
      this.emit(out, { type: 'task:dispatched', jobUuid: t.spec.job_uuid, taskIndex: t.spec.task_index, attempt: t.attempt, workerId: w.id, cacheHits: hits });
      this.toWorker(out, w.id, { ...t.spec, node_uuid: this.o.nodeUuid, attempt: t.attempt, epoch: this.lease.epoch });
    }
  }

  /**
   * The best worker with room for `t`: one that has not failed it, then most cached inputs,
   * then least load, then earliest joined. undefined when no worker has room.
   */
  private pickWorker(t: HeldTask): WorkerRec | undefined {
    let best: WorkerRec | undefined;
    let bestFresh = false;
    let bestHits = -1;
    for (const w of this.workers.values()) {
      if (w.assigned.size + w.adoptedKeys.size >= w.slots + w.prefetch) continue;
      const fresh = !t.failedOn.includes(w.id);
      let hits = 0;
      if (w.cache.size > 0) for (const f of t.spec.input_file_uuids) if (w.cache.has(f)) hits++;
      const better =
        !best ||
        (fresh && !bestFresh) ||
        (fresh === bestFresh && (hits > bestHits || (hits === bestHits && w.assigned.size < best.assigned.size)));
      if (better) {
        best = w;
        bestFresh = fresh;
        bestHits = hits;
      }
    }
    return best;
  }

  private touchCache(w: WorkerRec, fileUuid: string): void {
    if (this.o.maxCachedFilesPerWorker === 0) return;
    w.cache.delete(fileUuid);
    w.cache.set(fileUuid, true);
    if (w.cache.size > this.o.maxCachedFilesPerWorker) w.cache.delete(w.cache.keys().next().value!);
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
    return this.masterState === 'connected';
  }

  /** The master endpoint the link points at (the shell connects there at start). */
  get currentMaster(): string {
    return this.masterEndpoint;
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
        state: this.masterState,
        lastHeardMsAgo: this.masterHeardMs === null ? null : nowMs - this.masterHeardMs,
        endpoint: this.masterEndpoint,
        endpoints: [...this.cursor.endpoints],
      },
      workers: [...this.workers.values()].map((w) => ({
        workerId: w.id,
        slots: w.slots,
        prefetch: w.prefetch,
        load: w.assigned.size,
        state: STATE_NAMES[w.state] ?? String(w.state),
        lastSeenMsAgo: nowMs - w.lastSeenMs,
        joinedMsAgo: nowMs - w.joinedMs,
        dispatched: w.dispatched,
        results: w.results,
        cachedFiles: w.cache.size,
      })),
      tasksHeld: this.tasks.size,
      tasksQueued: this.queue.size,
      tasksBackoff: this.backoff.size,
      tasksRunning: running,
      unackedResults: this.unacked.size,
      counters: { ...this.counters },
    };
  }
}

function errorReply(nodeUuid: string, code: number, message: string): MessageInput<'error_reply'> {
  return { type: 'error_reply', node_uuid: nodeUuid, request_uuid: NIL_UUID, error_code: code, message: message.slice(0, 4000) };
}
