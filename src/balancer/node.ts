/**
 * The balancer node: the I/O shell around the pure Dispatcher. A ROUTER (RpcServer) serves
 * workers, a DEALER (RpcClient, used only for one-way sends) talks to the master, one
 * ticker calls dispatcher.tick(mono()), and every output batch is executed in order.
 * When the dispatcher moves the master link (`masterLink`: NOT_LEADER redirect, silence),
 * the old DEALER is closed and a new one opened; anything the old one still delivers is
 * dropped, so the dispatcher only ever hears its current master.
 */
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { Logger } from 'pino';
import { Message, MessageInput, PROTOCOL_VERSION, isUuid, newUuid } from '../messages';
import { AccessTable, AdminServer, GridError, RpcClient, RpcServer, SOFTWARE_VERSION, Security, createLogger, persistentNodeId } from '../common';
import { BalancerConfig, masterEndpoints } from './config';
import { DispatchEvent, DispatchOutput, DispatchStatus, Dispatcher } from './dispatch';
import { balancerMetrics } from './metrics';

/** Monotonic milliseconds: the lease must not follow wall-clock steps (docs/balancer.md, "Clock assumption"). */
const mono = (): number => Math.floor(performance.now());

/** Log level of each event: what an operator must see at info, problems at warn. */
const EVENT_LEVEL: Record<DispatchEvent['type'], 'debug' | 'info' | 'warn'> = {
  'master:hello': 'info',
  'lease:activated': 'warn',
  'lease:adopted': 'info',
  'lease:expired': 'warn',
  'lease:refused': 'warn',
  'task:adopted': 'info',
  'task:copy-cancelled': 'warn',
  'task:stale': 'debug',
  'master:heard': 'info',
  'master:lost': 'warn',
  'master:redirect': 'warn',
  'master:error': 'warn',
  'master:unexpected': 'warn',
  'worker:joined': 'info',
  'worker:refused': 'warn',
  'worker:lost': 'warn',
  'worker:unknown': 'info',
  'worker:unexpected': 'warn',
  'worker:error': 'warn',
  'task:queued': 'debug',
  'task:duplicate': 'debug',
  'task:refused': 'warn',
  'task:dispatched': 'debug',
  'task:started': 'debug',
  'task:retry': 'info',
  'task:deadline': 'warn',
  'task:settled': 'info',
  'task:cancelled': 'info',
  'result:ignored': 'info',
  'result:refused': 'warn',
  'result:acked': 'debug',
};

export interface BalancerStatus extends DispatchStatus {
  role: 'balancer';
  nodeId: string;
  endpoint: string;
  server: RpcServer['stats'];
}

/** Workers are the only peers of a balancer's ROUTER (docs/operations.md, "Security"). */
export const BALANCER_ACCESS: AccessTable = {
  generic_message: ['workers'],
  worker_ready: ['workers'],
  worker_status: ['workers'],
  task_started: ['workers'],
  task_result: ['workers'],
  worker_disconnect: ['workers'],
  worker_holding: ['workers'],
};

export class BalancerNode {
  readonly nodeId: string;
  readonly log: Logger;
  readonly dispatcher: Dispatcher;
  private readonly server: RpcServer;
  readonly security: Security;
  /** worker id -> the key that registered it: another key may not speak for that worker */
  private readonly workerKeys = new Map<string, string>();
  private readonly admin: AdminServer;
  private masterLink?: RpcClient;
  /** worker node_uuid -> its current ZeroMQ routing id (changes when it reconnects) */
  private readonly peers = new Map<string, Buffer>();
  private ticker?: NodeJS.Timeout;
  private stopped = false;
  /** listeners for events, for tests and the dev supervisor */
  readonly eventListeners: ((e: DispatchEvent) => void)[] = [];

  constructor(
    readonly cfg: BalancerConfig,
    log?: Logger,
  ) {
    this.nodeId = persistentNodeId(cfg.dataDir, newUuid);
    this.log = (log ?? createLogger({ role: 'balancer', nodeId: this.nodeId, file: path.join(cfg.dataDir, 'logs', `balancer-${this.nodeId}.log`) })).child({ pairRole: cfg.role });
    this.dispatcher = new Dispatcher({
      nodeUuid: this.nodeId,
      protocolVersion: PROTOCOL_VERSION,
      softwareVersion: SOFTWARE_VERSION,
      heartbeatIntervalMs: cfg.heartbeatIntervalMs,
      livenessMissed: cfg.livenessMissed,
      retryBackoffBaseMs: cfg.retryBackoffBaseMs,
      retryBackoffMaxMs: cfg.retryBackoffMaxMs,
      masterHelloRetryBaseMs: cfg.masterHelloRetryBaseMs,
      masterHelloRetryMaxMs: cfg.masterHelloRetryMaxMs,
      random: Math.random,
      resultResendMs: cfg.resultResendMs,
      maxUnackedResults: cfg.maxUnackedResults,
      maxQueuedTasks: cfg.maxQueuedTasks,
      maxWorkers: cfg.maxWorkers,
      maxCachedFilesPerWorker: cfg.maxCachedFilesPerWorker,
      taskDeadlineSlackMs: cfg.taskDeadlineSlackMs,
      queuedDeadlineMs: cfg.queuedDeadlineMs,
      defaultTaskTimeoutMs: cfg.defaultTaskTimeoutMs,
      masterRedirectMinMs: cfg.masterRedirectMinMs,
      leaseRenewMs: cfg.leaseRenewMs,
      leaseSafetyMarginMs: cfg.leaseSafetyMarginMs,
      adoptWaitMs: cfg.adoptWaitMs,
      adoptSpecWaitMs: cfg.adoptSpecWaitMs,
      role: cfg.role,
      masters: masterEndpoints(cfg.master),
    });
    this.security = new Security({ mode: cfg.security, keyDir: cfg.dataDir, trustDir: cfg.trustDir, role: 'balancers', enroll: cfg.enroll, log: this.log });
    this.server = new RpcServer({ bind: cfg.bind, nodeUuid: this.nodeId, log: this.log, security: this.security, access: BALANCER_ACCESS, handler: (m, peer) => this.fromWorker(m, peer) });
    this.admin = new AdminServer({
      host: cfg.adminHost,
      port: cfg.adminPort,
      token: cfg.adminToken,
      health: () =>
        this.dispatcher.masterConnected ? null : `no word from the master at ${this.dispatcher.currentMaster} yet (saying balancer_hello every ${cfg.heartbeatIntervalMs} ms; masters: ${cfg.master})`,
      status: () => this.status(),
      metrics: balancerMetrics(this.nodeId, () => this.status()),
    });
  }

  /** Binds the worker endpoint and the admin port, connects to the master, starts ticking. */
  async start(): Promise<{ endpoint: string; adminPort: number }> {
    const endpoint = await this.server.start();
    const adminPort = await this.admin.start();
    this.openMasterLink(this.dispatcher.currentMaster);
    this.execute(this.dispatcher.start(mono()));
    this.ticker = setInterval(() => this.execute(this.dispatcher.tick(mono())), this.cfg.tickMs);
    this.log.info({ endpoint, adminPort, master: this.cfg.master }, 'balancer serving');
    return { endpoint, adminPort };
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.ticker) clearInterval(this.ticker);
    this.masterLink?.close();
    this.server.close();
    await this.admin.close();
    this.log.info('balancer stopped');
  }

  get endpoint(): string {
    return this.server.endpoint;
  }

  status(): BalancerStatus {
    const s = this.dispatcher.status(mono());
    return { role: 'balancer', nodeId: this.nodeId, endpoint: this.server.endpoint, ...s, server: this.server.stats };
  }

  /** A new DEALER to `endpoint` replaces the old one (closed: its queued sends are dropped). */
  private openMasterLink(endpoint: string): void {
    this.masterLink?.close();
    const link: RpcClient = new RpcClient({
      endpoint,
      nodeUuid: this.nodeId,
      log: this.log,
      security: this.security,
      // only the current link speaks for the master; a late message on an old one is dropped
      onUnsolicited: (m) => {
        if (link === this.masterLink) this.fromMaster(m);
      },
    });
    this.masterLink = link;
  }

  private fromMaster(m: Message): void {
    if (this.stopped) return;
    this.execute(this.dispatcher.onMaster(m, mono()));
  }

  /**
   * A worker id belongs to the key that first registered it (worker_ready): a message naming
   * that worker from another key (a forged worker_status that would evict it, a forged
   * result) is refused NOT_AUTHORIZED and never reaches the dispatcher. A reconnect with the
   * same key is the worker itself. Bounded: a worker the dispatcher forgot is unbound.
   */
  private checkWorkerKey(m: Message, peer: Buffer): void {
    if (!this.security.on) return;
    const key = this.server.peerKey(peer);
    if (!key) throw new GridError('NOT_AUTHORIZED', 'not authorized: the sender did not prove its key');
    const bound = this.workerKeys.get(m.node_uuid);
    if (bound === undefined) {
      if (m.type !== 'worker_ready') return; // the dispatcher answers "unknown worker"
      if (this.workerKeys.size >= this.cfg.maxWorkers * 2) this.pruneWorkerKeys();
      this.workerKeys.set(m.node_uuid, key);
      return;
    }
    if (bound !== key) {
      this.log.warn({ event: 'auth:refused', workerId: m.node_uuid, type: m.type, key: this.security.nameOf(key), owner: this.security.nameOf(bound) }, 'message for a worker from another key refused');
      throw new GridError('NOT_AUTHORIZED', `not authorized: worker ${m.node_uuid} was registered by another key; ${m.type} from key ${this.security.nameOf(key)} refused`);
    }
  }

  /** Drops the bindings of workers the dispatcher no longer knows. */
  private pruneWorkerKeys(): void {
    const known = new Set(this.dispatcher.workerIds());
    for (const id of this.workerKeys.keys()) if (!known.has(id)) this.workerKeys.delete(id);
  }

  /** Every worker message goes through the dispatcher; replies are in its output batch. */
  private fromWorker(m: Message, peer: Buffer): void {
    if (this.stopped) return;
    if (!isUuid(m.node_uuid)) throw new GridError('BAD_REQUEST', `node_uuid ${m.node_uuid} is not a UUID`, 'a worker names itself by a UUID in every message');
    this.checkWorkerKey(m, peer);
    // The worker's routing id changes when its DEALER reconnects; the newest one wins.
    this.peers.set(m.node_uuid, peer);
    this.execute(this.dispatcher.onWorker(m.node_uuid, m, mono(), peer.toString('hex')));
    this.forgetPeerIfGone(m.node_uuid);
  }

  /** Keeps the routing table bounded by the registered workers (after the batch was sent). */
  private forgetPeerIfGone(workerId: string): void {
    if (this.dispatcher.workerLoad(workerId) === undefined) this.peers.delete(workerId);
  }

  /** Runs one output batch in order (per-peer order is kept by the sockets' send queues). */
  private execute(batch: DispatchOutput[]): void {
    const gone: string[] = [];
    for (const o of batch) {
      switch (o.kind) {
        case 'toWorker': {
          const peer = this.peers.get(o.workerId);
          if (peer) void this.server.sendTo(peer, o.msg);
          break;
        }
        case 'toMaster':
          this.sendMaster(o.msg);
          break;
        case 'masterLink':
          if (!this.stopped) this.openMasterLink(o.endpoint);
          break;
        case 'event':
          if (o.event.type === 'worker:lost') gone.push(o.event.workerId);
          this.onEvent(o.event);
          break;
      }
    }
    for (const id of gone) this.forgetPeerIfGone(id);
  }

  private sendMaster(msg: MessageInput): void {
    const failed = (e: Error) => {
      // A full send queue or a closed socket: the dispatcher re-sends what matters (hello,
      // unacked results), so this is logged, not fatal.
      if (!this.stopped) this.log.warn({ err: e.message, type: (msg as { type: string }).type }, 'send to master failed');
    };
    try {
      this.masterLink?.send(msg).catch(failed);
    } catch (e) {
      failed(e as Error); // encode() throws synchronously on a bad field
    }
  }

  private onEvent(e: DispatchEvent): void {
    const { type, ...fields } = e;
    // one vocabulary across roles (docs/operations.md "Logs"): jobId, not the event's jobUuid
    const renamed: Record<string, unknown> = { ...fields };
    if ('jobUuid' in renamed) {
      renamed.jobId = renamed.jobUuid;
      delete renamed.jobUuid;
    }
    // an unanswered hello repeats every interval while the master is down: keep it out of info
    const level = e.type === 'master:hello' && (e.reason === 'unanswered' || e.reason === 'renew') ? 'debug' : EVENT_LEVEL[type];
    this.log[level]({ event: type, ...renamed }, type);
    for (const l of this.eventListeners) l(e);
  }
}
