/**
 * The master node: the I/O shell around JobStore. One ROUTER serves clients (job_*
 * requests) and balancers (hello, heartbeats, task_started, task_result). Results are
 * group-committed: every result that arrives while a transaction is being written goes into
 * the next one, and each is acknowledged only after its transaction committed.
 */
import path from 'node:path';
import { Logger } from 'pino';
import {
  JobState,
  Message,
  MessageInput,
  MessageOf,
  NIL_UUID,
  PROTOCOL_VERSION,
  isUuid,
  newUuid,
} from '../messages';
import { AdminServer, GridError, RpcServer, createLogger, persistentNodeId } from '../common';
import { MasterConfig } from './config';
import { JobStore, ResultCommand, TaskSpec } from './store';

interface BalancerPeer {
  peer: Buffer;
  nodeUuid: string;
  lastSeenMs: number;
  since: number;
}

export class MasterNode {
  readonly nodeId: string;
  readonly log: Logger;
  readonly store: JobStore;
  private readonly server: RpcServer;
  private readonly admin: AdminServer;
  private balancer?: BalancerPeer;
  private heartbeat?: NodeJS.Timeout;
  private pendingResults: { r: ResultCommand; peer: Buffer }[] = [];
  private pendingStarted: MessageOf<'task_started'>[] = [];
  private flushScheduled = false;
  private readonly counters = { submitted: 0, results: 0, resultBatches: 0, dispatched: 0, balancerHellos: 0 };

  constructor(readonly cfg: MasterConfig, log?: Logger) {
    this.nodeId = persistentNodeId(cfg.dataDir, newUuid);
    this.log = log ?? createLogger({ role: 'master', nodeId: this.nodeId, file: path.join(cfg.dataDir, 'logs', `master-${this.nodeId}.log`) });
    this.store = new JobStore(path.join(cfg.dataDir, 'jobs.db'), { maxInputsPerJob: cfg.maxInputsPerJob, maxArgs: cfg.maxArgs });
    this.server = new RpcServer({ bind: cfg.bind, nodeUuid: this.nodeId, log: this.log, handler: (m, peer) => this.handle(m, peer) });
    this.admin = new AdminServer({
      host: '127.0.0.1',
      port: cfg.adminPort,
      health: () => null,
      status: () => this.status(),
    });
  }

  async start(): Promise<{ endpoint: string; adminPort: number }> {
    const endpoint = await this.server.start();
    const adminPort = await this.admin.start();
    this.heartbeat = setInterval(() => this.tick(), this.cfg.heartbeatIntervalMs);
    this.log.info({ endpoint, adminPort, open: this.store.openTasks().length }, 'master serving');
    return { endpoint, adminPort };
  }

  async stop(): Promise<void> {
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.flush();
    this.server.close();
    await this.admin.close();
    this.store.close();
    this.log.info('master stopped');
  }

  status(): unknown {
    const b = this.balancer;
    return {
      role: 'master',
      nodeId: this.nodeId,
      endpoint: this.server.endpoint,
      balancer: b ? { nodeUuid: b.nodeUuid, lastSeenMsAgo: Date.now() - b.lastSeenMs } : null,
      openTasks: this.store.openTasks().length,
      counters: this.counters,
      server: this.server.stats,
    };
  }

  private tick(): void {
    const b = this.balancer;
    if (!b) return;
    if (Date.now() - b.lastSeenMs > this.cfg.heartbeatIntervalMs * this.cfg.livenessMissed) {
      this.log.warn({ balancer: b.nodeUuid }, 'balancer:lost (silent); tasks wait for its next hello');
      this.balancer = undefined;
      return;
    }
    void this.server.sendTo(b.peer, { type: 'generic_message', node_uuid: this.nodeId });
  }

  private handle(m: Message, peer: Buffer): MessageInput | MessageInput[] | void {
    switch (m.type) {
      case 'job_submit_request':
        return this.submit(m);
      case 'job_status_request': {
        const s = this.store.jobStatus(m.job_uuid);
        if (!s) throw notFound(m.job_uuid);
        return {
          type: 'job_status_response',
          node_uuid: this.nodeId,
          request_uuid: m.request_uuid,
          job_uuid: m.job_uuid,
          state: s.state,
          task_count: s.taskCount,
          tasks_pending: s.pending,
          tasks_running: s.running,
          tasks_succeeded: s.succeeded,
          tasks_failed: s.failed,
          created_at_ms: s.createdAtMs,
          finished_at_ms: s.finishedAtMs,
          program_name: s.programName,
          error: s.error.slice(0, 60_000),
        };
      }
      case 'job_list_request':
        return {
          type: 'job_list_response',
          node_uuid: this.nodeId,
          request_uuid: m.request_uuid,
          job_uuids: this.store.listJobs(Math.min(m.limit || this.cfg.maxJobList, this.cfg.maxJobList)),
        };
      case 'task_status_request': {
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
        const r = this.store.cancel(m.job_uuid, Date.now());
        if (!r.found) throw notFound(m.job_uuid);
        if (r.cancelled) {
          this.log.info({ jobId: m.job_uuid }, 'job:cancelled');
          this.toBalancer({ type: 'task_cancel', node_uuid: this.nodeId, job_uuid: m.job_uuid });
        }
        return { type: 'ack_reply', node_uuid: this.nodeId, request_uuid: m.request_uuid };
      }
      case 'balancer_hello':
        return this.hello(m, peer);
      case 'generic_message':
        if (this.balancer && this.balancer.peer.equals(peer)) this.balancer.lastSeenMs = Date.now();
        return;
      case 'task_started':
        this.touch(peer);
        this.pendingStarted.push(m);
        this.scheduleFlush();
        return;
      case 'task_result':
        this.touch(peer);
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

  private submit(m: MessageOf<'job_submit_request'>): MessageInput {
    if (m.program_name === '') throw new GridError('BAD_REQUEST', 'the job has no program name');
    const r = this.store.submit({
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
    });
    if (r.created) {
      this.counters.submitted++;
      this.log.info({ jobId: m.job_uuid, tasks: r.taskCount, program: m.program_name }, 'job:accepted');
      for (let i = 0; i < r.taskCount; i++) this.dispatch(this.store.taskSpec(m.job_uuid, i, 0));
    }
    return { type: 'job_submit_response', node_uuid: this.nodeId, request_uuid: m.request_uuid, job_uuid: m.job_uuid, task_count: r.taskCount, created: r.created ? 1 : 0 };
  }

  private hello(m: MessageOf<'balancer_hello'>, peer: Buffer): MessageInput | void {
    if (m.protocol_version !== PROTOCOL_VERSION) {
      throw new GridError('VERSION_MISMATCH', `balancer speaks protocol ${m.protocol_version}, this master speaks ${PROTOCOL_VERSION}`, 'run the same grid version on every node');
    }
    this.counters.balancerHellos++;
    const now = Date.now();
    this.balancer = { peer, nodeUuid: m.node_uuid, lastSeenMs: now, since: now };
    const open = this.store.openTasks();
    this.log.info({ balancer: m.node_uuid, open: open.length }, 'balancer:hello; sending every open task');
    // Answer at once so the balancer knows it is heard, then hand it the open tasks.
    void this.server.sendTo(peer, { type: 'generic_message', node_uuid: this.nodeId });
    for (const t of open) this.dispatch(this.store.taskSpec(t.jobUuid, t.taskIndex, t.attempts));
  }

  private touch(peer: Buffer): void {
    if (this.balancer && this.balancer.peer.equals(peer)) this.balancer.lastSeenMs = Date.now();
  }

  private dispatch(t: TaskSpec): void {
    this.counters.dispatched++;
    this.toBalancer({
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
      input_file_uuids: t.inputs.map((i) => i.fileUuid),
      input_names: t.inputs.map((i) => i.name),
      args: t.args,
      program_name: t.programName,
    });
  }

  /** Sends to the active balancer; without one, tasks wait in SQLite for its hello. */
  private toBalancer(m: MessageInput): void {
    if (this.balancer) void this.server.sendTo(this.balancer.peer, m);
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => this.flush());
  }

  /** Group commit: every result queued since the last flush in one transaction, then acks. */
  private flush(): void {
    this.flushScheduled = false;
    const started = this.pendingStarted.splice(0);
    if (started.length > 0) {
      this.store.db.transaction(() => {
        for (const s of started) this.store.taskStarted(s.job_uuid, s.task_index, s.attempt, s.worker_uuid);
      })();
    }
    while (this.pendingResults.length > 0) {
      const batch = this.pendingResults.splice(0, this.cfg.maxResultBatch);
      const effects = this.store.recordResults(
        batch.map((b) => b.r),
        Date.now(),
      );
      this.counters.results += batch.length;
      this.counters.resultBatches++;
      for (const { r, peer } of batch) {
        void this.server.sendTo(peer, { type: 'result_ack', node_uuid: this.nodeId, job_uuid: r.jobUuid, task_index: r.taskIndex, attempt: r.attempt });
      }
      for (const e of effects) {
        if (e.kind === 'job:settled') this.log.info({ jobId: e.jobUuid, state: e.state === JobState.succeeded ? 'succeeded' : 'failed' }, 'job:settled');
        if (e.kind === 'job:cancel-tasks') this.toBalancer({ type: 'task_cancel', node_uuid: this.nodeId, job_uuid: e.jobUuid });
      }
    }
  }
}

function notFound(jobUuid: string): GridError {
  if (!isUuid(jobUuid) || jobUuid === NIL_UUID) return new GridError('BAD_REQUEST', `${jobUuid} is not a job id`);
  return new GridError('NOT_FOUND', `no job ${jobUuid}`, "list jobs with 'grid jobs'");
}
