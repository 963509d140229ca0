/**
 * Balancer configuration: every timing and bound named with its unit, validated at start
 * with GridError('CONFIG_INVALID'). The tables below are the one place a
 * setting is written; docs/balancer.md's table is generated from them (npm run gen:docs).
 */
import { SettingsOf, SettingsSpec, SettingsTable, configError, endpointList, endpointSetting, stringSetting, SECURITY_SPEC, ADMIN_SPEC, checkAdminSettings } from '../common';

/**
 * The settings the pure dispatch state machine needs (no I/O settings); the balancer table
 * below is these plus the shell's.
 */
const DISPATCH_SPEC = {
  heartbeatIntervalMs: { type: 'int', default: 1000, min: 10, max: 60_000, unit: 'ms', doc: 'heartbeats to workers and the master, and the unit of liveness' },
  livenessMissed: { type: 'int', default: 3, min: 2, max: 100, doc: 'silent heartbeat intervals after which a worker or the master is gone' },
  retryBackoffBaseMs: {
    type: 'int',
    default: 500,
    min: 0,
    max: 3_600_000,
    unit: 'ms',
    doc: 'first retry delay after a failed attempt; doubled per attempt up to retryBackoffMaxMs, with equal jitter: between half and all of min(max, base * 2^attempt) (src/common/backoff.ts)',
  },
  retryBackoffMaxMs: { type: 'int', default: 10_000, min: 0, max: 3_600_000, unit: 'ms', doc: 'largest retry delay (at least retryBackoffBaseMs)' },
  resultResendMs: { type: 'int', default: 2000, min: 10, max: 600_000, unit: 'ms', doc: 'a result the master has not acknowledged is re-sent after this long' },
  maxUnackedResults: { type: 'int', default: 10_000, min: 1, max: 10_000_000, doc: "most worker results waiting for the master's result_ack; beyond it workers are not acked" },
  maxQueuedTasks: { type: 'int', default: 100_000, min: 1, max: 10_000_000, doc: 'most tasks held (waiting, backing off and running); beyond it task_dispatch is dropped' },
  maxWorkers: { type: 'int', default: 1000, min: 1, max: 100_000, doc: 'most registered workers; a worker_ready beyond it is refused UNAVAILABLE' },
  maxCachedFilesPerWorker: { type: 'int', default: 10_000, min: 0, max: 10_000_000, doc: 'per-worker LRU of file ids it probably caches, to prefer cache hits (0 = no cache preference)' },
  taskDeadlineSlackMs: {
    type: 'int',
    default: 30_000,
    min: 0,
    max: 86_400_000,
    unit: 'ms',
    doc: "a dispatched attempt with no result this long after its task's own timeout ran out is settled lost and retried (covers staging, uploads, a lost result)",
  },
  queuedDeadlineMs: {
    type: 'int',
    default: 600_000,
    min: 0,
    max: 86_400_000,
    unit: 'ms',
    doc: "extra time a dispatched attempt may wait in the worker's prefetch queue before its task_started arrives",
  },
  defaultTaskTimeoutMs: { type: 'int', default: 3_600_000, min: 1, max: 2 ** 31 - 1, unit: 'ms', doc: "task timeout assumed for the deadline when task_dispatch.timeout_ms is 0 (match the workers')" },
  leaseRenewMs: { type: 'int', default: 50, min: 5, max: 60_000, unit: 'ms', doc: "balancer_hello (lease request or renewal, with credit) to the master leader this often; well below the master's leaseMs - leaseSafetyMarginMs" },
  leaseSafetyMarginMs: {
    type: 'int',
    default: 50,
    min: 0,
    max: 60_000,
    unit: 'ms',
    doc: 'stop dispatching this long before the granted lease ends, measured from when the request was sent; covers clock rate drift up to leaseSafetyMarginMs / leaseMs (balancer.md, "Clock assumption")',
  },
  adoptWaitMs: { type: 'int', default: 2000, min: 0, max: 600_000, unit: 'ms', doc: 'after becoming active, wait at most this long for every registered worker to report the attempts it holds before dispatching' },
  adoptSpecWaitMs: { type: 'int', default: 10_000, min: 0, max: 3_600_000, unit: 'ms', doc: 'a result for an adopted attempt whose task the master has not fed yet is held this long, then acknowledged and dropped' },
  masterHelloRetryBaseMs: {
    type: 'int',
    default: 250,
    min: 1,
    max: 60_000,
    unit: 'ms',
    doc: 'an unanswered balancer_hello (no master answers yet) is repeated after this, doubled per unanswered hello up to masterHelloRetryMaxMs, with equal jitter',
  },
  masterHelloRetryMaxMs: { type: 'int', default: 1000, min: 1, max: 600_000, unit: 'ms', doc: 'largest delay between two unanswered balancer_hello (at least masterHelloRetryBaseMs)' },
  masterRedirectMinMs: { type: 'int', default: 200, min: 0, max: 60_000, unit: 'ms', doc: 'least time between two balancer_hello after NOT_LEADER redirects (elections)' },
} as const satisfies SettingsSpec;

function checkBackoff(c: { retryBackoffBaseMs: number; retryBackoffMaxMs: number; masterHelloRetryBaseMs: number; masterHelloRetryMaxMs: number }): void {
  if (c.retryBackoffMaxMs < c.retryBackoffBaseMs) {
    throw configError(`setting retryBackoffMaxMs (${c.retryBackoffMaxMs}) must be at least retryBackoffBaseMs (${c.retryBackoffBaseMs})`);
  }
  if (c.masterHelloRetryMaxMs < c.masterHelloRetryBaseMs) {
    throw configError(`setting masterHelloRetryMaxMs (${c.masterHelloRetryMaxMs}) must be at least masterHelloRetryBaseMs (${c.masterHelloRetryBaseMs})`);
  }
}

const DISPATCH_SETTINGS = new SettingsTable('dispatch', DISPATCH_SPEC, checkBackoff);

export type DispatchLimits = SettingsOf<typeof DISPATCH_SPEC>;

/**
 * Validates the dispatch settings of `c` (other keys are left alone); used by tests that
 * build the state machine directly.
 */
export function validateDispatchLimits(c: Record<string, unknown>): DispatchLimits {
  const picked: Record<string, unknown> = {};
  for (const k of DISPATCH_SETTINGS.keys) if (k in c) picked[k] = c[k];
  const v = DISPATCH_SETTINGS.validate(picked);
  Object.assign(c, v);
  return c as unknown as DispatchLimits;
}

/** Every balancer setting, once: type, default, range, unit, meaning (docs/balancer.md is generated from it). */
export const BALANCER_SETTINGS = new SettingsTable(
  'balancer',
  {
    dataDir: { type: 'path', default: './.grid/balancer', flag: '--data-dir', doc: 'folder for the node id and logs' },
    ...SECURITY_SPEC,
    master: {
      type: 'string',
      default: 'tcp://127.0.0.1:7700',
      flag: '--master',
      doc: "the master's ZeroMQ endpoint, or a comma list of the replicated masters' endpoints: the balancer follows the leader (NOT_LEADER hints) and moves on when a master falls silent",
    },
    bind: { type: 'endpoint', default: 'tcp://127.0.0.1:7701', flag: '--bind', doc: 'ZeroMQ endpoint workers connect to (port 0 = pick a free one)' },
    adminPort: { type: 'int', default: 7711, min: 0, max: 65535, flag: '--admin-port', doc: 'admin HTTP port on adminHost: GET /healthz, GET /status (0 = pick a free port)' },
    ...ADMIN_SPEC,
    tickMs: { type: 'int', default: 20, min: 1, max: 10_000, unit: 'ms', doc: 'how often the dispatch state machine is ticked (at most leaseRenewMs, below heartbeatIntervalMs)' },
    role: { type: 'string', default: 'primary', flag: '--role', doc: 'primary or auxiliary (balancer.md, "The pair"): a free lease goes to a live primary first' },
    ...DISPATCH_SPEC,
  },
  (c) => {
    checkAdminSettings(c);
    masterEndpoints(c.master);
    checkBackoff(c);
    if (c.role !== 'primary' && c.role !== 'auxiliary') throw configError(`setting role must be "primary" or "auxiliary" (got ${JSON.stringify(c.role)})`, 'run one balancer with --role primary and one with --role auxiliary');
    if (c.tickMs >= c.heartbeatIntervalMs) {
      throw configError(`setting tickMs (${c.tickMs}) must be below heartbeatIntervalMs (${c.heartbeatIntervalMs})`, 'the ticker drives heartbeats, so it must run more often than they are due');
    }
    if (c.tickMs > c.leaseRenewMs) throw configError(`setting tickMs (${c.tickMs}) must not exceed leaseRenewMs (${c.leaseRenewMs})`, 'the ticker sends the lease renewals');
  },
);

export type BalancerConfig = Omit<SettingsOf<typeof BALANCER_SETTINGS.spec>, 'role'> & { role: 'primary' | 'auxiliary' };
export const BALANCER_DEFAULTS: BalancerConfig = BALANCER_SETTINGS.defaults as BalancerConfig;

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
  return BALANCER_SETTINGS.load(flags, configFile) as BalancerConfig; // role checked in the table's check
}

export function sampleConfig(): string {
  return BALANCER_SETTINGS.sample();
}
