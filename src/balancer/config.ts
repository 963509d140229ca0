/**
 * Balancer configuration: every timing and bound named with its unit, validated at start
 * with GridError('CONFIG_INVALID'). Defaults are documented in docs/balancer.md.
 */
import path from 'node:path';
import { configError, endpointList, endpointSetting, intSetting, mergeConfig, readConfigFile, stringSetting } from '../common';

/** The settings the pure dispatch state machine needs (no I/O settings). */
export interface DispatchLimits {
  /** heartbeats to workers and to the master, and the unit of liveness, ms (default 1000) */
  heartbeatIntervalMs: number;
  /** silent heartbeat intervals after which a worker or the master is gone (default 3) */
  livenessMissed: number;
  /** first retry delay after a failed attempt, ms; doubled per attempt (default 500) */
  retryBackoffBaseMs: number;
  /** largest retry delay, ms (default 10000) */
  retryBackoffMaxMs: number;
  /** a result the master has not acknowledged is re-sent after this long, ms (default 2000) */
  resultResendMs: number;
  /** most worker results waiting for the master's result_ack; beyond it workers are not acked (default 10000) */
  maxUnackedResults: number;
  /** most tasks the balancer holds (waiting, backing off and running); beyond it task_dispatch is dropped (default 100000) */
  maxQueuedTasks: number;
  /** most registered workers; a worker_ready beyond it is refused UNAVAILABLE (default 1000) */
  maxWorkers: number;
  /** per-worker LRU of file ids it probably caches, used to prefer cache hits (default 10000) */
  maxCachedFilesPerWorker: number;
  /**
   * a dispatched attempt with no result this long after its task's own timeout ran out is
   * settled `lost` and retried, ms (default 30000): covers staging, uploads and a lost result
   */
  taskDeadlineSlackMs: number;
  /**
   * extra time a dispatched attempt may wait in the worker's prefetch queue before its
   * task_started arrives, ms (default 600000); once task_started arrives the deadline counts
   * from it instead
   */
  queuedDeadlineMs: number;
  /** the task timeout assumed for the deadline when task_dispatch.timeout_ms is 0, ms (default 3600000, the worker's default) */
  defaultTaskTimeoutMs: number;
  /**
   * least time between two balancer_hello after a NOT_LEADER redirect, ms (default 200), so
   * masters that keep pointing elsewhere (an election) are not asked in a tight loop
   */
  masterRedirectMinMs: number;
  /**
   * balancer_hello (lease request or renewal, with credit) to the master leader this often,
   * ms (default 100); well below the master's leaseMs - leaseSafetyMarginMs
   */
  leaseRenewMs: number;
  /**
   * stop dispatching this long before the lease the master granted ends, measured from when
   * the request was sent, ms (default 100). Covers clock rate drift between balancer and
   * master up to leaseSafetyMarginMs / leaseMs (docs/balancer.md, "Clock assumption")
   */
  leaseSafetyMarginMs: number;
  /**
   * after becoming active, wait at most this long for every registered worker to report the
   * attempts it holds before dispatching, ms (default 2000); workers answer in one round trip
   */
  adoptWaitMs: number;
  /**
   * a result for an adopted attempt whose task the master has not fed yet is held this long,
   * then acknowledged and dropped (the task is settled or cancelled), ms (default 10000)
   */
  adoptSpecWaitMs: number;
}

export interface BalancerConfig extends DispatchLimits {
  /** folder for the node id and logs */
  dataDir: string;
  /**
   * the master's ROUTER endpoint this balancer connects a DEALER to, or a comma list of the
   * replicated masters' endpoints (the balancer follows NOT_LEADER hints and skips silent ones)
   */
  master: string;
  /** ROUTER endpoint workers connect to; port 0 = ephemeral */
  bind: string;
  /** admin HTTP port on 127.0.0.1; 0 = ephemeral */
  adminPort: number;
  /** how often the shell calls dispatch.tick(), ms (default 20); must be below heartbeatIntervalMs and leaseRenewMs */
  tickMs: number;
  /** 'primary' or 'auxiliary' (docs/balancer.md, "The pair"): a free lease goes to a live primary first */
  role: 'primary' | 'auxiliary';
}

export const BALANCER_DEFAULTS: BalancerConfig = {
  dataDir: './.grid/balancer',
  master: 'tcp://127.0.0.1:7700',
  bind: 'tcp://127.0.0.1:7701',
  adminPort: 7711,
  tickMs: 20,
  role: 'primary',
  heartbeatIntervalMs: 1000,
  livenessMissed: 3,
  retryBackoffBaseMs: 500,
  retryBackoffMaxMs: 10_000,
  resultResendMs: 2000,
  maxUnackedResults: 10_000,
  maxQueuedTasks: 100_000,
  maxWorkers: 1000,
  maxCachedFilesPerWorker: 10_000,
  taskDeadlineSlackMs: 30_000,
  queuedDeadlineMs: 600_000,
  defaultTaskTimeoutMs: 3_600_000,
  masterRedirectMinMs: 200,
  leaseRenewMs: 100,
  leaseSafetyMarginMs: 100,
  adoptWaitMs: 2000,
  adoptSpecWaitMs: 10_000,
};

/** Validates the dispatch settings (also used by tests that build the state machine directly). */
export function validateDispatchLimits(c: Record<string, unknown>): DispatchLimits {
  intSetting(c, 'heartbeatIntervalMs', 10, 60_000);
  intSetting(c, 'livenessMissed', 2, 100);
  intSetting(c, 'retryBackoffBaseMs', 0, 3_600_000);
  intSetting(c, 'retryBackoffMaxMs', 0, 3_600_000);
  intSetting(c, 'resultResendMs', 10, 600_000);
  intSetting(c, 'maxUnackedResults', 1, 10_000_000);
  intSetting(c, 'maxQueuedTasks', 1, 10_000_000);
  intSetting(c, 'maxWorkers', 1, 100_000);
  intSetting(c, 'maxCachedFilesPerWorker', 0, 10_000_000);
  intSetting(c, 'taskDeadlineSlackMs', 0, 86_400_000);
  intSetting(c, 'queuedDeadlineMs', 0, 86_400_000);
  intSetting(c, 'defaultTaskTimeoutMs', 1, 2 ** 31 - 1);
  intSetting(c, 'masterRedirectMinMs', 0, 60_000);
  intSetting(c, 'leaseRenewMs', 5, 60_000);
  intSetting(c, 'leaseSafetyMarginMs', 0, 60_000);
  intSetting(c, 'adoptWaitMs', 0, 600_000);
  intSetting(c, 'adoptSpecWaitMs', 0, 3_600_000);
  if ((c.retryBackoffMaxMs as number) < (c.retryBackoffBaseMs as number)) {
    throw configError(`setting retryBackoffMaxMs (${c.retryBackoffMaxMs}) must be at least retryBackoffBaseMs (${c.retryBackoffBaseMs})`);
  }
  return c as unknown as DispatchLimits;
}

/**
 * The master endpoints named by the `master` setting (one endpoint or a comma list), each
 * checked like any endpoint setting; CONFIG_INVALID when empty, malformed or repeated.
 */
export function masterEndpoints(master: unknown): string[] {
  const raw = stringSetting({ master }, 'master');
  const list = endpointList(raw);
  if (list.length === 0) throw configError(`setting master names no endpoint (got ${JSON.stringify(raw)})`, 'give tcp://HOST:PORT or a comma list tcp://A:7700,tcp://B:7700');
  for (const e of list) endpointSetting({ master: e }, 'master');
  const seen = new Set<string>();
  for (const e of list) {
    if (seen.has(e)) throw configError(`setting master lists ${e} twice`, 'name each master once');
    seen.add(e);
  }
  return list;
}

export function loadBalancerConfig(flags: Partial<Record<keyof BalancerConfig, unknown>>, configFile?: string): BalancerConfig {
  const file = configFile ? readConfigFile(configFile) : {};
  const c = mergeConfig(BALANCER_DEFAULTS, file, flags, configFile ?? 'flags') as unknown as Record<string, unknown>;
  c.dataDir = path.resolve(stringSetting(c, 'dataDir'));
  masterEndpoints(c.master);
  endpointSetting(c, 'bind');
  intSetting(c, 'adminPort', 0, 65535);
  intSetting(c, 'tickMs', 1, 10_000);
  validateDispatchLimits(c);
  if (c.role !== 'primary' && c.role !== 'auxiliary') throw configError(`setting role must be "primary" or "auxiliary" (got ${JSON.stringify(c.role)})`, 'run one balancer with --role primary and one with --role auxiliary');
  if ((c.tickMs as number) > (c.leaseRenewMs as number)) {
    throw configError(`setting tickMs (${c.tickMs}) must not exceed leaseRenewMs (${c.leaseRenewMs})`, 'the ticker sends the lease renewals');
  }
  if ((c.tickMs as number) >= (c.heartbeatIntervalMs as number)) {
    throw configError(`setting tickMs (${c.tickMs}) must be below heartbeatIntervalMs (${c.heartbeatIntervalMs})`, 'the ticker drives heartbeats, so it must run more often than they are due');
  }
  return c as unknown as BalancerConfig;
}

export function sampleConfig(): string {
  return `// grid balancer configuration (JSON; lines starting with // are comments).
// Start with: grid balancer --config balancer.json   (flags override these values)
{
  // folder for the node id and logs
  "dataDir": "./.grid/balancer",
  // the master's ZeroMQ endpoint, or a comma list of the replicated masters' endpoints
  // ("tcp://10.0.0.1:7700,tcp://10.0.0.2:7700,tcp://10.0.0.3:7700"): the balancer follows
  // the leader (NOT_LEADER hints) and moves on to the next one when a master falls silent
  "master": "tcp://127.0.0.1:7700",
  // ZeroMQ endpoint workers connect to (port 0 = pick a free one)
  "bind": "tcp://127.0.0.1:7701",
  // admin HTTP port: GET /healthz, GET /status (0 = pick a free port)
  "adminPort": 7711,
  // "primary" or "auxiliary": run two balancers, one of each; the masters give the dispatch
  // lease to one of them (a live primary first) and to the other when it dies
  "role": "primary",
  // how often the dispatch state machine is ticked, in milliseconds (at most leaseRenewMs)
  "tickMs": 20,
  // heartbeat to workers and the master, in milliseconds
  "heartbeatIntervalMs": 1000,
  // silent heartbeat intervals before a worker (or the master) is considered gone
  "livenessMissed": 3,
  // retry delay after a failed attempt: retryBackoffBaseMs * 2^attempt, capped, in milliseconds
  "retryBackoffBaseMs": 500,
  "retryBackoffMaxMs": 10000,
  // re-send a result to the master after this many milliseconds without result_ack
  "resultResendMs": 2000,
  // most results waiting for the master's acknowledgement (workers re-send beyond it)
  "maxUnackedResults": 10000,
  // most tasks held at once (waiting + running); more are dropped until the next hello
  "maxQueuedTasks": 100000,
  // most workers registered at once
  "maxWorkers": 1000,
  // per worker, how many recently used file ids are remembered for cache-aware dispatch
  "maxCachedFilesPerWorker": 10000,
  // a dispatched attempt without a result by (task timeout + this) after it started is
  // settled lost and retried, in milliseconds (covers staging, uploads, a lost result)
  "taskDeadlineSlackMs": 30000,
  // extra milliseconds a prefetched attempt may wait at the worker before task_started
  "queuedDeadlineMs": 600000,
  // task timeout assumed for deadlines when a task has none (timeout_ms 0), in milliseconds
  "defaultTaskTimeoutMs": 3600000,
  // least milliseconds between two hellos after NOT_LEADER redirects (elections)
  "masterRedirectMinMs": 200,
  // ask the master leader for the dispatch lease (or renew it) this often, in milliseconds
  "leaseRenewMs": 100,
  // stop dispatching this many milliseconds before the granted lease ends (clock drift margin)
  "leaseSafetyMarginMs": 100,
  // after taking over, wait at most this long for workers to report what they run
  "adoptWaitMs": 2000,
  // hold a result of an adopted attempt this long waiting for its task from the master
  "adoptSpecWaitMs": 10000
}
`;
}
