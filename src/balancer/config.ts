/**
 * Balancer configuration: every timing and bound named with its unit, validated at start
 * with GridError('CONFIG_INVALID'). Defaults are documented in docs/balancer.md.
 */
import path from 'node:path';
import { configError, endpointSetting, intSetting, mergeConfig, readConfigFile, stringSetting } from '../common';

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
}

export interface BalancerConfig extends DispatchLimits {
  /** folder for the node id and logs */
  dataDir: string;
  /** the master's ROUTER endpoint this balancer connects a DEALER to */
  master: string;
  /** ROUTER endpoint workers connect to; port 0 = ephemeral */
  bind: string;
  /** admin HTTP port on 127.0.0.1; 0 = ephemeral */
  adminPort: number;
  /** how often the shell calls dispatch.tick(), ms (default 100); must be below heartbeatIntervalMs */
  tickMs: number;
}

export const BALANCER_DEFAULTS: BalancerConfig = {
  dataDir: './.grid/balancer',
  master: 'tcp://127.0.0.1:7700',
  bind: 'tcp://127.0.0.1:7701',
  adminPort: 7711,
  tickMs: 100,
  heartbeatIntervalMs: 1000,
  livenessMissed: 3,
  retryBackoffBaseMs: 500,
  retryBackoffMaxMs: 10_000,
  resultResendMs: 2000,
  maxUnackedResults: 10_000,
  maxQueuedTasks: 100_000,
  maxWorkers: 1000,
  maxCachedFilesPerWorker: 10_000,
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
  if ((c.retryBackoffMaxMs as number) < (c.retryBackoffBaseMs as number)) {
    throw configError(`setting retryBackoffMaxMs (${c.retryBackoffMaxMs}) must be at least retryBackoffBaseMs (${c.retryBackoffBaseMs})`);
  }
  return c as unknown as DispatchLimits;
}

export function loadBalancerConfig(flags: Partial<Record<keyof BalancerConfig, unknown>>, configFile?: string): BalancerConfig {
  const file = configFile ? readConfigFile(configFile) : {};
  const c = mergeConfig(BALANCER_DEFAULTS, file, flags, configFile ?? 'flags') as unknown as Record<string, unknown>;
  c.dataDir = path.resolve(stringSetting(c, 'dataDir'));
  endpointSetting(c, 'master');
  endpointSetting(c, 'bind');
  intSetting(c, 'adminPort', 0, 65535);
  intSetting(c, 'tickMs', 1, 10_000);
  validateDispatchLimits(c);
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
  // the master's ZeroMQ endpoint
  "master": "tcp://127.0.0.1:7700",
  // ZeroMQ endpoint workers connect to (port 0 = pick a free one)
  "bind": "tcp://127.0.0.1:7701",
  // admin HTTP port: GET /healthz, GET /status (0 = pick a free port)
  "adminPort": 7711,
  // how often the dispatch state machine is ticked, in milliseconds (below heartbeatIntervalMs)
  "tickMs": 100,
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
  "maxCachedFilesPerWorker": 10000
}
`;
}
