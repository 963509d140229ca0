/**
 * The master node: the I/O shell around JobStore, its Raft replica and the Feed (the pure
 * lease arbiter and credit feed, src/master/feed.ts). One ROUTER serves clients (job_*
 * requests), balancers (hello = lease request + credit, heartbeats, task_started,
 * task_result) and the other masters (raft_*). Every change is proposed to Raft and applied
 * on every master when committed; only the leader answers, after a ReadIndex barrier for
 * reads. Tasks are sent to the lease holder by the feed, outside Raft apply: apply only
 * tells the feed what changed, and the effects run on the next turn of the event loop.
 * Results are batched: every result that arrives while a proposal is in flight goes into the
 * next one, and each is acknowledged only after its batch was committed and applied.
 */
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { Logger } from 'pino';
import {
  WorkerState,
  BalancerRole,
  CancelScope,
  ERROR_CODES,
  JobState,
  Message,
  MessageInput,
  MessageOf,
  NIL_UUID,
  PROTOCOL_VERSION,
  isUuid,
  newUuid,
} from '../messages';
import { AccessTable, AdminServer, GridError, RpcServer, Security, createLogger, endpointList, persistentNodeId } from '../common';
import { ApplyResult, Command, StartedNote, applyCommand } from './commands';
import { MasterConfig } from './config';
import { BalancerRoleName, Feed, FeedEffect } from './feed';
import { fromWire, isRaftWireMessage } from './raft';
import { Replica } from './replica';
import { NotifyPlanner, checkNotifyUrl } from './notify';
import { JobStore, ResultCommand, TaskSpec } from './store';
import { MasterMetrics, RaftView } from './metrics';
import { ClusterView } from './cluster-view';
import { Dashboard } from './dashboard';
import { OUTCOME_NAMES, tasksByState } from './views';
import { SOFTWARE_VERSION } from '../common/version';

interface BalancerPeer {
  peer: Buffer;
  /** the verified key of its first hello (undefined with security off) */
  key?: string;
  nodeUuid: string;
  role: BalancerRoleName;
  /** the epoch it said it holds in its last hello */
  epoch: number;
  lastSeenMs: number;
  since: number;
}

/** Monotonic milliseconds: lease timing must not follow wall-clock steps. */
const mono = (): number => Math.floor(performance.now());

const CLIENTS = ['clients', 'admins'] as const;
const RAFT = ['masters'] as const;
/**
 * Who may send what to a master (docs/operations.md, "Security"): clients submit and ask,
 * balancers take the lease and report, masters speak Raft. Everyone may ping.
 */
export const MASTER_ACCESS: AccessTable = {
  generic_message: ['clients', 'admins', 'balancers', 'masters', 'workers', 'storage'],
  job_submit_request: CLIENTS,
  job_status_request: CLIENTS,
  job_status2_request: CLIENTS,
  job_list_request: CLIENTS,
  job_list2_request: CLIENTS,
  task_status_request: CLIENTS,
  job_cancel_request: CLIENTS,
  job_notify_request: CLIENTS,
  balancer_hello: ['balancers'],
  worker_status: ['balancers'],
  task_started: ['balancers'],
  task_result: ['balancers'],
  raft_vote_request: RAFT,
  raft_vote_response: RAFT,
  raft_append: RAFT,
  raft_append_response: RAFT,
  raft_snapshot: RAFT,
  raft_heartbeat: RAFT,
  raft_heartbeat_response: RAFT,
  raft_timeout_now: RAFT,
};

export class MasterNode {
  readonly nodeId: string;
  readonly log: Logger;
  readonly store: JobStore;
  private readonly server: RpcServer;
  readonly security: Security;
  private readonly admin: AdminServer;
  readonly metrics: MasterMetrics;
  /** balancers that said hello to this master, by node id; forgotten after liveness of silence */
  private readonly balancers = new Map<string, BalancerPeer>();
  readonly feed: Feed;
  private feedEffects: FeedEffect[] = [];
  /** workers as the active balancer reports them (worker_status), forgotten after liveness of silence */
  private readonly workers = new Map<string, { state: number; jobUuid: string; lastSeenMs: number }>();
  private feedScheduled = false;
  private heartbeat?: NodeJS.Timeout;
  /** the feed's wake-up (a lease may expire with a standby waiting): one timer, the earliest */
  private feedWake?: { timer: NodeJS.Timeout; atMs: number };
  private stopped = false;
  /** feed batches to send, one per turn of the event loop (scheduleSendBatch) */
  private readonly sendBacklog: Extract<FeedEffect, { kind: 'send' }>[] = [];
  private sendScheduled = false;
  private replica?: Replica;
  private pendingResults: { r: ResultCommand; peer: Buffer }[] = [];
  private pendingStarted: StartedNote[] = [];
  private flushScheduled = false;
  private flushing = false;
  private readonly counters = { submitted: 0, results: 0, resultBatches: 0, dispatched: 0, balancerHellos: 0, staleEpochRefused: 0, leaseRefused: 0, balancersForgotten: 0, notifyDelivered: 0, notifyFailedAttempts: 0, notifyGaveUp: 0 };
  private readonly notifier: NotifyPlanner;
  private notifyInFlight = 0;

  constructor(readonly cfg: MasterConfig, log?: Logger) {
    this.nodeId = persistentNodeId(cfg.dataDir, newUuid);
    this.log = log ?? createLogger({ role: 'master', nodeId: this.nodeId, file: path.join(cfg.dataDir, 'logs', `master-${this.nodeId}.log`) });
    this.store = new JobStore(path.join(cfg.dataDir, 'jobs.db'), { maxInputsPerJob: cfg.maxInputsPerJob, maxArgs: cfg.maxArgs });
    this.feed = new Feed({ leaseMs: cfg.leaseMs, newLeaderWaitMs: cfg.leaseNewLeaderWaitMs, feedBatchMax: cfg.feedBatchMax, auxiliaryStartWaitMs: cfg.auxiliaryStartWaitMs });
    const l = this.store.lease();
    this.feed.restore(l.epoch, l.holder, l.role);
    this.notifier = new NotifyPlanner(cfg, Math.random);
    this.security = new Security({ mode: cfg.security, keyDir: cfg.dataDir, trustDir: cfg.trustDir, role: 'masters', enroll: cfg.enroll, log: this.log });
    this.server = new RpcServer({ bind: cfg.bind, nodeUuid: this.nodeId, log: this.log, security: this.security, access: MASTER_ACCESS, handler: (m, peer) => this.handle(m, peer) });
    this.metrics = new MasterMetrics(this.nodeId, {
      db: () => this.store.db,
      raft: () => (this.replica ? (this.replica.status() as unknown as RaftView) : null),
      raftCounters: () => this.replica?.counters ?? {},
      balancerConnected: () => (this.feed.status(mono()).leaseLeftMs ?? 0) > 0,
      queues: () => ({ results: this.pendingResults.length, started: this.pendingStarted.length }),
      counters: () => this.counters,
      accepted: () => this.store.accepted,
      server: () => this.server.stats,
    });
    const dashboard = new Dashboard(
      {
        nodeId: this.nodeId,
        endpoint: () => this.server.endpoint,
        db: () => this.store.db,
        raft: () => this.replica?.status() ?? null,
        status: () => this.status() as Record<string, unknown>,
        startedAtMs: (j, i) => this.metrics.startedAtMs(j, i),
      },
      new ClusterView({ nodes: cfg.dashboardNodes, nodesFile: cfg.dashboardNodesFile, timeoutMs: cfg.dashboardStatusTimeoutMs, token: cfg.adminToken }),
    );
    this.admin = new AdminServer({
      host: cfg.adminHost,
      port: cfg.adminPort,
      token: cfg.adminToken,
      health: () => null,
      status: () => this.status(),
      metrics: this.metrics.node,
      routes: [dashboard.route],
      routePaths: ['/dashboard'],
    });
  }

  async start(): Promise<{ endpoint: string; adminPort: number }> {
    const endpoint = await this.server.start();
    const peers = this.cfg.peers ? endpointList(this.cfg.peers) : [endpoint];
    this.replica = new Replica({
      self: this.cfg.peers ? this.cfg.bind : endpoint,
      peers,
      raftDbPath: path.join(this.cfg.dataDir, 'raft.db'),
      log: this.log,
      security: this.security,
      tickMs: this.cfg.raftTickMs,
      electionTicks: this.cfg.electionTicks,
      heartbeatTicks: this.cfg.heartbeatTicks,
      proposalTimeoutMs: this.cfg.proposalTimeoutMs,
      snapshotEveryEntries: this.cfg.snapshotEveryEntries,
      transferWaitMs: this.cfg.transferWaitMs,
      appliedIndex: this.store.appliedIndex(),
      apply: (index, data) => this.apply(index, data),
      applyNoop: (index) => this.store.setApplied(index),
      restore: (snap) => {
        this.store.restore(snap.data);
        const l = this.store.lease();
        this.feed.restore(l.epoch, l.holder, l.role);
      },
      capture: () => this.store.capture(),
      onLeadership: (leader) => this.onLeadership(leader),
    });
    this.replica.start();
    const adminPort = await this.admin.start();
    this.heartbeat = setInterval(() => this.tick(), this.cfg.heartbeatIntervalMs);
    this.log.info({ endpoint, adminPort, open: this.store.openTasks().length }, 'master serving');
    return { endpoint, adminPort };
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.heartbeat) clearInterval(this.heartbeat);
    if (this.feedWake) clearTimeout(this.feedWake.timer);
    this.feedWake = undefined;
    await this.replica?.stop();
    this.server.close();
    await this.admin.close();
    this.store.close();
    this.log.info('master stopped');
  }

  status(): unknown {
    const now = mono();
    const lease = this.feed.status(now);
    return {
      role: 'master',
      nodeId: this.nodeId,
      endpoint: this.server.endpoint,
      lease,
      balancers: [...this.balancers.values()].map((b) => ({
        nodeUuid: b.nodeUuid,
        role: b.role,
        epoch: b.epoch,
        active: lease.holder === b.nodeUuid && b.epoch === lease.epoch && (lease.leaseLeftMs ?? 0) > 0,
        lastSeenMsAgo: Math.round(now - b.lastSeenMs),
      })),
      workers: [...this.workers].map(([workerUuid, w]) => ({
        workerUuid,
        state: (Object.entries(WorkerState).find(([, v]) => v === w.state)?.[0] ?? String(w.state)),
        jobUuid: w.jobUuid,
        lastSeenMsAgo: Math.round(now - w.lastSeenMs),
      })),
      // pending + running: only running jobs have such tasks (a settled job's are settled or
      // cancelled); read from the count tables, not by listing them (views.ts)
      openTasks: this.openTaskCount(),
      raft: this.replica?.status() ?? null,
      counters: this.counters,
      // results that settled a task, applied here since start; duplicates must stay 0
      accepted: this.store.accepted,
      server: this.server.stats,
    };
  }

  private openTaskCount(): number {
    if (!this.store.db.open) return 0;
    const c = tasksByState(this.store.db);
    return (c.pending ?? 0) + (c.running ?? 0);
  }

  private tick(): void {
    this.sendNotifications();
    const now = mono();
    for (const [id, w] of [...this.workers]) if (now - w.lastSeenMs > this.cfg.heartbeatIntervalMs * this.cfg.livenessMissed) this.workers.delete(id);
    for (const b of [...this.balancers.values()]) {
      if (now - b.lastSeenMs > this.cfg.heartbeatIntervalMs * this.cfg.livenessMissed) {
        this.log.warn({ balancerId: b.nodeUuid, pairRole: b.role }, 'balancer:lost (silent); forgotten until its next hello');
        this.balancers.delete(b.nodeUuid);
        this.counters.balancersForgotten++;
        continue;
      }
      void this.server.sendTo(b.peer, { type: 'generic_message', node_uuid: this.nodeId });
    }
    if (this.feed.isLeader) this.runFeed(this.feed.tick(now));
  }

  private async handle(m: Message, peer: Buffer): Promise<MessageInput | MessageInput[] | void> {
    const replica = this.replica;
    if (!replica) throw new GridError('UNAVAILABLE', 'this master is starting', 'retry in a moment');
    if (isRaftWireMessage(m)) {
      replica.step(fromWire(m));
      return;
    }
    if (m.type === 'generic_message') {
      this.touch(m.node_uuid, peer);
      return;
    }
    replica.requireLeader();
    switch (m.type) {
      case 'job_submit_request':
        return this.submit(m, replica, peer);
      case 'job_status_request':
      case 'job_status2_request': {
        await replica.readBarrier();
        this.requireOwner(m.job_uuid, peer);
        const s = this.store.jobStatus(m.job_uuid);
        if (!s) throw notFound(m.job_uuid);
        const common = {
          node_uuid: this.nodeId,
          request_uuid: m.request_uuid,
          job_uuid: m.job_uuid,
          state: s.state,
          task_count: s.taskCount,
          tasks_pending: s.pending,
          tasks_running: s.running,
          tasks_succeeded: s.succeeded,
          created_at_ms: s.createdAtMs,
          finished_at_ms: s.finishedAtMs,
          program_name: s.programName,
          error: s.error.slice(0, 60_000),
        };
        // the first message counts cancelled tasks as failed (its layout has no field for them)
        if (m.type === 'job_status_request') return { type: 'job_status_response', ...common, tasks_failed: s.failed };
        return { type: 'job_status2_response', ...common, tasks_failed: s.failed - s.cancelled, tasks_cancelled: s.cancelled };
      }
      case 'job_list_request':
      case 'job_list2_request': {
        await replica.readBarrier();
        const caller = this.caller(peer);
        const jobs = this.store.listJobsWithOwners(Math.min(m.limit || this.cfg.maxJobList, this.cfg.maxJobList), caller.admin ? undefined : caller.key);
        const common = { node_uuid: this.nodeId, request_uuid: m.request_uuid, job_uuids: jobs.map((j) => j.jobUuid) };
        // the first message has no field for the owners (docs/protocol.md, "Versioning")
        if (m.type === 'job_list_request') return { type: 'job_list_response', ...common };
        return { type: 'job_list2_response', ...common, owner_keys: jobs.map((j) => j.owner) };
      }
      case 'task_status_request': {
        await replica.readBarrier();
        this.requireOwner(m.job_uuid, peer);
        const t = this.store.taskStatus(m.job_uuid, m.task_index);
        if (!t) {
          if (!this.store.jobStatus(m.job_uuid)) throw notFound(m.job_uuid);
          throw new GridError('NOT_FOUND', `job ${m.job_uuid} has no task ${m.task_index}`);
        }
        return {
          type: 'task_status_response',
          node_uuid: this.nodeId,
          request_uuid: m.request_uuid,
          job_uuid: m.job_uuid,
          worker_uuid: t.workerUuid,
          log_file_uuid: t.logFileUuid,
          task_index: t.taskIndex,
          attempts: t.attempts,
          exit_code: t.exitCode,
          duration_ms: t.durationMs,
          state: t.state,
          outcome: t.outcome,
          output_file_uuids: t.outputs.map((o) => o.fileUuid),
          output_names: t.outputs.map((o) => o.name),
          input_names: t.inputNames,
          error: t.error.slice(0, 60_000),
          log_tail: t.logTail.slice(0, 60_000),
        };
      }
      case 'job_cancel_request': {
        await replica.readBarrier();
        this.requireOwner(m.job_uuid, peer);
        const r = (await replica.propose({ k: 'cancel', jobUuid: m.job_uuid, nowMs: Date.now() } satisfies Command)) as ApplyResult;
        if (r.k === 'cancel' && !r.found) throw notFound(m.job_uuid);
        return { type: 'ack_reply', node_uuid: this.nodeId, request_uuid: m.request_uuid };
      }
      case 'job_notify_request': {
        await replica.readBarrier();
        this.requireOwner(m.job_uuid, peer);
        const bad = checkNotifyUrl(m.url);
        if (bad) throw new GridError('BAD_REQUEST', `--notify ${bad}`, 'give an http:// or https:// URL that takes a POST');
        const r = (await replica.propose({ k: 'notify', jobUuid: m.job_uuid, url: m.url } satisfies Command)) as ApplyResult;
        if (r.k === 'refused') throw new GridError(r.code, r.message, r.hint);
        return { type: 'ack_reply', node_uuid: this.nodeId, request_uuid: m.request_uuid };
      }
      case 'balancer_hello':
        return this.hello(m, peer);
      case 'worker_status':
        this.workerStatus(m, peer);
        return;
      case 'task_started':
        this.checkBalancerKey(m.node_uuid, peer, m.type);
        this.touch(m.node_uuid, peer);
        this.requireEpoch(m.node_uuid, m.epoch, m.type);
        this.metrics.started(m.job_uuid, m.task_index, m.attempt, Date.now());
        this.pendingStarted.push({ jobUuid: m.job_uuid, taskIndex: m.task_index, attempt: m.attempt, workerUuid: m.worker_uuid });
        this.scheduleFlush();
        return;
      case 'task_result':
        this.checkBalancerKey(m.node_uuid, peer, m.type);
        this.touch(m.node_uuid, peer);
        this.requireEpoch(m.node_uuid, m.epoch, m.type);
        this.pendingResults.push({
          peer,
          r: {
            jobUuid: m.job_uuid,
            taskIndex: m.task_index,
            attempt: m.attempt,
            workerUuid: m.worker_uuid,
            outcome: m.outcome,
            final: m.final === 1,
            exitCode: m.exit_code,
            durationMs: m.duration_ms,
            logFileUuid: m.log_file_uuid,
            outputs: m.output_file_uuids.map((u, i) => ({ fileUuid: u, name: m.output_names[i]! })),
            error: m.error,
            logTail: m.log_tail,
          },
        });
        this.scheduleFlush();
        return;
      default:
        throw new GridError('UNEXPECTED', `the master does not take ${m.type} messages`, 'send it to the node that serves it');
    }
  }

  /**
   * Who asks (docs/operations.md, "Jobs have owners"): the client's verified key, and whether
   * it is an admin. With security off there are no keys and everyone sees everything.
   */
  private caller(peer: Buffer): { key: string; admin: boolean } {
    if (!this.security.on) return { key: '', admin: true };
    const key = this.server.peerKey(peer) ?? '';
    return { key, admin: key !== '' && this.security.rolesOfKey(key).has('admins') };
  }

  /**
   * A job is seen, read and cancelled only by the key that submitted it, and by admins:
   * to anyone else it does not exist (NOT_FOUND, so job ids are not revealed either).
   */
  private requireOwner(jobUuid: string, peer: Buffer): void {
    const owner = this.store.jobOwner(jobUuid);
    if (owner === undefined || owner === '') return; // unknown (NOT_FOUND follows) or from before owners
    const who = this.caller(peer);
    if (who.admin || who.key === owner) return;
    this.log.warn({ event: 'auth:refused', jobId: jobUuid, key: who.key ? this.security.nameOf(who.key) : null }, "another client's job refused");
    throw notFound(jobUuid);
  }

  private async submit(m: MessageOf<'job_submit_request'>, replica: Replica, peer: Buffer): Promise<MessageInput> {
    if (m.program_name === '') throw new GridError('BAD_REQUEST', 'the job has no program name');
    const c = {
      jobUuid: m.job_uuid,
      programFileUuid: m.program_file_uuid,
      programName: m.program_name,
      inputs: m.input_file_uuids.map((u, i) => ({ fileUuid: u, name: m.input_names[i]! })),
      chunkSize: m.chunk_size,
      maxRetries: m.max_retries,
      taskTimeoutMs: m.task_timeout_ms,
      memoryLimitMb: m.memory_limit_mb,
      outputLimitBytes: m.output_limit_bytes,
      args: m.args,
      nowMs: Date.now(),
      owner: this.caller(peer).key,
    };
    // Refuse a bad job before it enters the log; a job that exists is answered from the state.
    this.store.validateSubmit(c);
    const r = (await replica.propose({ k: 'submit', c } satisfies Command)) as ApplyResult;
    if (r.k === 'refused') throw new GridError(r.code, r.message, r.hint);
    if (r.k !== 'submit') throw new Error(`submit applied as ${r.k}`);
    return { type: 'job_submit_response', node_uuid: this.nodeId, request_uuid: m.request_uuid, job_uuid: m.job_uuid, task_count: r.taskCount, created: r.created ? 1 : 0 };
  }

  /** Applies a committed command on this master; the leader then acts on its effects. */
  private apply(index: number, data: Buffer): ApplyResult {
    const r = applyCommand(this.store, index, data);
    const cmd = JSON.parse(data.toString()) as Command;
    if (!this.replica?.isLeader) {
      if (cmd.k === 'lease') this.feed.restore(this.store.lease().epoch, this.store.lease().holder, this.store.lease().role);
      return r;
    }
    if (cmd.k === 'lease' && r.k === 'lease') {
      // Only the feed's state changes here; grants and tasks go out after apply returns.
      this.queueFeed(this.feed.leaseApplied(cmd.epoch, cmd.holder, cmd.role, mono(), this.store.openTaskKeys()));
      return r;
    }
    if (cmd.k === 'submit' && r.k === 'submit' && r.created) {
      this.counters.submitted++;
      this.log.info({ jobId: cmd.c.jobUuid, tasks: r.taskCount, program: cmd.c.programName }, 'job:accepted');
      const keys: string[] = [];
      for (let i = 0; i < r.taskCount; i++) keys.push(`${cmd.c.jobUuid}/${i}`);
      this.queueFeed(this.feed.added(keys));
    }
    if (cmd.k === 'cancel' && r.k === 'cancel' && r.cancelled) {
      this.log.info({ jobId: cmd.jobUuid }, 'job:cancelled');
      this.feed.settledJob(cmd.jobUuid);
      this.toBalancer({ type: 'task_cancel', node_uuid: this.nodeId, job_uuid: cmd.jobUuid, task_index: 0, attempt: 0, scope: CancelScope.job });
    }
    if (r.k === 'results' && cmd.k === 'results') {
      for (const x of cmd.results) this.metrics.resulted(x.jobUuid, x.taskIndex, x.attempt, OUTCOME_NAMES[x.outcome] ?? String(x.outcome), Date.now());
      this.feed.settled(cmd.results.filter((x) => x.final).map((x) => `${x.jobUuid}/${x.taskIndex}`));
      for (const e of r.effects) {
        if (e.kind === 'result:duplicate') this.log.error({ jobId: e.jobUuid, taskIndex: e.taskIndex, event: 'result:duplicate', times: e.times }, 'a task was settled by a second result: exactly-once is broken');
        if (e.kind === 'job:settled') this.log.info({ jobId: e.jobUuid, state: e.state === JobState.succeeded ? 'succeeded' : 'failed' }, 'job:settled');
        if (e.kind === 'job:cancel-tasks') {
          this.feed.settledJob(e.jobUuid);
          this.toBalancer({ type: 'task_cancel', node_uuid: this.nodeId, job_uuid: e.jobUuid, task_index: 0, attempt: 0, scope: CancelScope.job });
        }
      }
    }
    return r;
  }

  private onLeadership(leader: boolean): void {
    if (leader) {
      const l = this.store.lease();
      this.feed.restore(l.epoch, l.holder, l.role);
      this.queueFeed(this.feed.becameLeader(mono(), this.store.openTaskKeys()));
    } else {
      // A former leader stops feeding; balancers follow NOT_LEADER to the new one.
      this.feed.lostLeadership();
      this.feedEffects = [];
      this.sendBacklog.length = 0;
      this.metrics.forget();
    }
    // a new leader sends every owed notification again, from attempt 1 (src/master/notify.ts)
    this.notifier.reset();
  }

  /**
   * The leader POSTs the final status of finished jobs that have a --notify URL and have
   * not been notified (nor given up) yet; at most notifyConcurrency at once.
   */
  private sendNotifications(): void {
    if (!this.replica?.isLeader) return;
    const room = this.cfg.notifyConcurrency - this.notifyInFlight;
    if (room <= 0) return;
    const owed = this.store.dueNotifications(this.cfg.notifyConcurrency * 4);
    const urls = new Map(owed.map((n) => [n.jobUuid, n.url]));
    for (const jobUuid of this.notifier.due([...urls.keys()], Date.now()).slice(0, room)) void this.notify(jobUuid, urls.get(jobUuid)!);
  }

  private async notify(jobUuid: string, url: string): Promise<void> {
    this.notifyInFlight++;
    const attempt = this.notifier.attempt(jobUuid);
    let error = '';
    try {
      const s = this.store.jobStatus(jobUuid);
      if (!s) return;
      const body = {
        jobId: jobUuid,
        state: jobStateText(s.state),
        program: s.programName,
        taskCount: s.taskCount,
        tasksSucceeded: s.succeeded,
        tasksFailed: s.failed - s.cancelled,
        tasksCancelled: s.cancelled,
        createdAtMs: s.createdAtMs,
        finishedAtMs: s.finishedAtMs,
        error: s.error || null,
        attempt,
        sentBy: this.nodeId,
      };
      try {
        const res = await fetch(url, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'user-agent': `grid/${SOFTWARE_VERSION}` },
          body: JSON.stringify(body),
          signal: AbortSignal.timeout(this.cfg.notifyTimeoutMs),
        });
        await res.body?.cancel().catch(() => undefined);
        if (!res.ok) error = `HTTP ${res.status} ${res.statusText}`;
      } catch (e) {
        const err = e as Error & { cause?: { code?: string; message?: string } };
        error = err.name === 'TimeoutError' ? `no answer within ${this.cfg.notifyTimeoutMs} ms` : (err.cause?.code ?? err.cause?.message ?? err.message);
      }
      if (!error) {
        this.counters.notifyDelivered++;
        this.notifier.done(jobUuid);
        this.log.info({ jobId: jobUuid, url, attempt }, 'notify:delivered');
        await this.replica?.propose({ k: 'notified', jobUuid, delivered: true, attempts: attempt, error: '', nowMs: Date.now() } satisfies Command);
        return;
      }
      this.counters.notifyFailedAttempts++;
      const d = this.notifier.failed(jobUuid, Date.now());
      if (d.action === 'give-up') {
        this.counters.notifyGaveUp++;
        this.log.warn({ jobId: jobUuid, url, attempts: d.attempts, err: error }, 'notify:gave-up');
        await this.replica?.propose({ k: 'notified', jobUuid, delivered: false, attempts: d.attempts, error, nowMs: Date.now() } satisfies Command);
      } else {
        this.log.info({ jobId: jobUuid, url, attempt, err: error, retryInMs: d.atMs - Date.now() }, 'notify:failed; will retry');
      }
    } catch (e) {
      // lost leadership while recording: the next leader sends it again (at least once)
      this.log.warn({ jobId: jobUuid, err: (e as Error).message }, 'notify: outcome not recorded');
      this.notifier.done(jobUuid);
    } finally {
      this.notifyInFlight--;
    }
  }

  /**
   * balancer_hello: a lease request (or renewal) with the balancer's credit. Answered by
   * lease_grant, error_reply LEASE_HELD, or (a new epoch) nothing until Raft committed it.
   */
  private hello(m: MessageOf<'balancer_hello'>, peer: Buffer): void {
    if (m.protocol_version !== PROTOCOL_VERSION) {
      throw new GridError('VERSION_MISMATCH', `balancer speaks protocol ${m.protocol_version}, this master speaks ${PROTOCOL_VERSION}`, 'run the same grid version on every node');
    }
    if (!isUuid(m.node_uuid) || m.node_uuid === NIL_UUID) throw new GridError('BAD_REQUEST', `balancer node_uuid ${m.node_uuid} is not a node id`);
    this.counters.balancerHellos++;
    const now = mono();
    const role: BalancerRoleName = m.role === BalancerRole.auxiliary ? 'auxiliary' : 'primary';
    const known = this.balancers.get(m.node_uuid);
    this.checkBalancerKey(m.node_uuid, peer, m.type, known);
    if (!known) this.log.info({ balancerId: m.node_uuid, pairRole: role, epoch: m.epoch }, 'balancer:hello');
    this.balancers.set(m.node_uuid, { peer, key: known?.key ?? this.server.peerKey(peer), nodeUuid: m.node_uuid, role, epoch: m.epoch, lastSeenMs: now, since: known?.since ?? now });
    this.runFeed(
      this.feed.request({ nodeUuid: m.node_uuid, role, epoch: m.epoch, requestSeq: m.request_seq, fed: m.fed, creditLimit: m.credit_limit }, now),
    );
  }

  /**
   * worker_status forwarded by the active balancer (node_uuid = the worker): the masters know
   * their workers (`grid cluster`). Taken only from the lease holder's connection.
   */
  private workerStatus(m: MessageOf<'worker_status'>, peer: Buffer): void {
    const holder = this.feed.status(mono()).holder;
    const b = holder ? this.balancers.get(holder) : undefined;
    if (!b || !b.peer.equals(peer)) return;
    if (!this.workers.has(m.node_uuid) && this.workers.size >= this.cfg.maxKnownWorkers) return;
    this.workers.set(m.node_uuid, { state: m.state, jobUuid: m.job_uuid, lastSeenMs: mono() });
  }

  /** Results and task_started count only from the current lease holder, with its epoch. */
  private requireEpoch(nodeUuid: string, epoch: number, type: string): void {
    if (this.feed.isCurrent(nodeUuid, epoch)) return;
    this.counters.staleEpochRefused++;
    const s = this.feed.status(mono());
    throw new GridError(
      'STALE_EPOCH',
      `${type} from balancer ${nodeUuid} with epoch ${epoch} refused: the dispatch lease is epoch ${s.epoch} held by ${s.holder ?? 'nobody'}`,
      'this balancer lost the lease; the workers report to the active one',
    );
  }

  /**
   * A balancer id belongs to the key of its first hello; results and starts must come from
   * that key (docs/operations.md, "Security"): with requireEpoch, only the balancer holding
   * the current lease is heard. NOT_AUTHORIZED otherwise, logged.
   */
  private checkBalancerKey(nodeUuid: string, peer: Buffer, type: string, known = this.balancers.get(nodeUuid)): void {
    if (!this.security.on) return;
    const key = this.server.peerKey(peer);
    if (known === undefined && type === 'balancer_hello') return;
    if (key !== undefined && known?.key === key) return;
    this.log.warn({ event: 'auth:refused', balancerId: nodeUuid, type, key: key ? this.security.nameOf(key) : null }, 'balancer message from another key refused');
    throw new GridError(
      'NOT_AUTHORIZED',
      known ? `not authorized: balancer ${nodeUuid} said hello with another key; ${type} refused` : `not authorized: ${type} from balancer ${nodeUuid}, which has not said balancer_hello to this master`,
      'a balancer says balancer_hello first, always with its own key',
    );
  }

  private touch(nodeUuid: string, peer: Buffer): void {
    const b = this.balancers.get(nodeUuid);
    if (b && b.peer.equals(peer)) b.lastSeenMs = mono();
  }

  /** Feed effects found during Raft apply run after apply returned (never inside it). */
  private queueFeed(effects: FeedEffect[]): void {
    if (effects.length === 0) return;
    this.feedEffects.push(...effects);
    if (this.feedScheduled) return;
    this.feedScheduled = true;
    setImmediate(() => {
      this.feedScheduled = false;
      const batch = this.feedEffects.splice(0);
      this.runFeed(batch);
    });
  }

  /** Carries out the feed's effects in order. */
  private runFeed(effects: FeedEffect[]): void {
    for (const e of effects) {
      switch (e.kind) {
        case 'propose':
          this.replica!.propose({ k: 'lease', epoch: e.epoch, holder: e.holder, role: e.role } satisfies Command).catch((err: Error) => {
            this.log.warn({ err: err.message, epoch: e.epoch }, 'lease epoch not committed; the balancer asks again');
            this.feed.proposalFailed();
          });
          break;
        case 'grant': {
          const b = this.balancers.get(e.to);
          if (b) void this.server.sendTo(b.peer, { type: 'lease_grant', node_uuid: this.nodeId, epoch: e.epoch, request_seq: e.requestSeq, lease_ms: e.leaseMs });
          break;
        }
        case 'refuse': {
          this.counters.leaseRefused++;
          const b = this.balancers.get(e.to);
          if (b) void this.server.sendTo(b.peer, { type: 'error_reply', node_uuid: this.nodeId, request_uuid: NIL_UUID, error_code: ERROR_CODES.LEASE_HELD, message: `dispatch lease refused: ${e.reason}; this balancer takes no task and stays on standby` });
          break;
        }
        case 'send':
          // One batch per turn of the event loop, after what this call sends (a grant goes
          // out first, not behind hundreds of task reads), with hellos handled in between.
          this.sendBacklog.push(e);
          this.scheduleSendBatch();
          break;
        case 'wakeAt':
          this.scheduleFeedWake(e.atMs);
          break;
        case 'event': {
          // `role` is every log line's node role (docs/operations.md, log fields): a balancer's pair role is `pairRole`
          const { type, role: pairRole, ...fields } = e.event as { type: string; role?: string } & Record<string, unknown>;
          this.log.info({ event: type, ...fields, ...(pairRole === undefined ? {} : { pairRole }) }, type);
          break;
        }
      }
    }
  }

  private scheduleSendBatch(): void {
    if (this.sendScheduled || this.sendBacklog.length === 0) return;
    this.sendScheduled = true;
    setImmediate(() => {
      this.sendScheduled = false;
      const e = this.sendBacklog.shift();
      if (!e || this.stopped) return;
      for (const k of e.keys) {
        const slash = k.lastIndexOf('/');
        const jobUuid = k.slice(0, slash);
        const taskIndex = Number(k.slice(slash + 1));
        const t = this.store.taskStatus(jobUuid, taskIndex);
        if (!t) continue;
        this.dispatch(this.store.taskSpec(jobUuid, taskIndex, t.attempts), e.to, e.epoch);
      }
      this.scheduleSendBatch();
    });
  }

  /**
   * Calls feed.wake at `atMs` (monotonic): the lease can expire then, and a standby that is
   * waiting takes over at once instead of on its next hello. One timer, the earliest wins.
   */
  private scheduleFeedWake(atMs: number): void {
    if (this.stopped) return;
    if (this.feedWake && this.feedWake.atMs <= atMs) return;
    if (this.feedWake) clearTimeout(this.feedWake.timer);
    const timer = setTimeout(() => {
      this.feedWake = undefined;
      if (this.feed.isLeader) this.runFeed(this.feed.wake(mono()));
    }, Math.max(0, Math.ceil(atMs - mono())));
    this.feedWake = { timer, atMs };
  }

  private dispatch(t: TaskSpec, to: string, epoch: number): void {
    const b = this.balancers.get(to);
    if (!b) return; // the holder is gone; a new epoch re-feeds every open task
    this.counters.dispatched++;
    this.metrics.dispatched(t.jobUuid, t.taskIndex, t.attempt, Date.now());
    void this.server.sendTo(b.peer, {
      type: 'task_dispatch',
      node_uuid: this.nodeId,
      job_uuid: t.jobUuid,
      program_file_uuid: t.programFileUuid,
      task_index: t.taskIndex,
      task_count: t.taskCount,
      attempt: t.attempt,
      max_retries: t.maxRetries,
      timeout_ms: t.timeoutMs,
      memory_limit_mb: t.memoryLimitMb,
      output_limit_bytes: t.outputLimitBytes,
      epoch,
      input_file_uuids: t.inputs.map((i) => i.fileUuid),
      input_names: t.inputs.map((i) => i.name),
      args: t.args,
      program_name: t.programName,
    });
  }

  /** Sends to the lease holder; without one, the next holder is fed from SQLite anyway. */
  private toBalancer(m: MessageInput): void {
    const holder = this.feed.status(mono()).holder;
    const b = holder ? this.balancers.get(holder) : undefined;
    if (b) void this.server.sendTo(b.peer, m);
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => void this.flush());
  }

  /**
   * Batching: everything queued since the last flush goes into one proposal (one Raft entry,
   * one fsync); results are acknowledged after it was applied. One batch in flight at a time,
   * so a busy grid gets larger batches rather than more fsyncs.
   */
  private async flush(): Promise<void> {
    this.flushScheduled = false;
    if (this.flushing || !this.replica) return;
    this.flushing = true;
    try {
      const started = this.pendingStarted.splice(0);
      const batch = this.pendingResults.splice(0, this.cfg.maxResultBatch);
      const jobs: Promise<unknown>[] = [];
      if (started.length > 0) jobs.push(this.replica.propose({ k: 'started', list: started } satisfies Command));
      if (batch.length > 0) jobs.push(this.replica.propose({ k: 'results', results: batch.map((b) => b.r), nowMs: Date.now() } satisfies Command));
      const settled = await Promise.allSettled(jobs);
      const resultsOk = batch.length === 0 || settled[settled.length - 1]!.status === 'fulfilled';
      if (batch.length > 0 && resultsOk) {
        this.counters.results += batch.length;
        this.counters.resultBatches++;
        for (const { r, peer } of batch) {
          void this.server.sendTo(peer, { type: 'result_ack', node_uuid: this.nodeId, job_uuid: r.jobUuid, task_index: r.taskIndex, attempt: r.attempt });
        }
      }
      for (const s of settled) if (s.status === 'rejected') this.log.warn({ err: (s.reason as Error).message }, 'batch not committed; the balancer re-sends');
    } finally {
      this.flushing = false;
      if (this.pendingResults.length > 0 || this.pendingStarted.length > 0) this.scheduleFlush();
    }
  }
}

function notFound(jobUuid: string): GridError {
  if (!isUuid(jobUuid) || jobUuid === NIL_UUID) return new GridError('BAD_REQUEST', `${jobUuid} is not a job id`);
  return new GridError('NOT_FOUND', `no job ${jobUuid}`, "list jobs with 'grid jobs'");
}

function jobStateText(state: number): string {
  return Object.keys(JobState).find((k) => JobState[k as keyof typeof JobState] === state) ?? `unknown(${state})`;
}
