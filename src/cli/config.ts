/**
 * Bounds of the CLI client and of `grid dev`: every timeout, retry count and size limit
 * named with its unit. Each can be overridden by an environment variable (named in the
 * table below), which is how tests shorten the master retry window; values are validated
 * at start with CONFIG_INVALID. The tables are the one place each is written; the tables in
 * docs/operations.md are generated from them (npm run gen:docs).
 */
import { SettingsOf, SettingsTable } from '../common';

/** Every client setting, once (docs/operations.md's table is generated from it). */
export const CLIENT_SETTINGS = new SettingsTable('client', {
  connectTimeoutMs: {
    type: 'int',
    // counted from the process's start (Node start-up and module loading, 0.3-0.7 s on a
    // loaded 2-core VM, come out of it), so a command with no grid ends ~1.5 s after it began
    default: 1_500,
    min: 0,
    max: 600_000,
    unit: 'ms',
    env: 'GRID_CONNECT_TIMEOUT_MS',
    doc: 'a command gives up when no master (or storage node) accepts a TCP connection within this long of its start (the probe gets at least 250 ms), naming each endpoint tried and why (0 = no check: only the retry window applies)',
  },
  masterRetryWindowMs: {
    type: 'int',
    default: 30_000,
    min: 0,
    max: 3_600_000,
    unit: 'ms',
    env: 'GRID_MASTER_RETRY_WINDOW_MS',
    doc: 'how long a request to the masters keeps being re-sent (same request id) while none answers, e.g. while a master restarts or an election runs',
  },
  masterRequestTimeoutMs: { type: 'int', default: 2_000, min: 50, max: 600_000, unit: 'ms', env: 'GRID_MASTER_REQUEST_TIMEOUT_MS', doc: 'time one attempt of a master request waits before it is sent again (to the next master)' },
  masterLeaderWaitMs: {
    type: 'int',
    default: 200,
    min: 0,
    max: 60_000,
    unit: 'ms',
    env: 'GRID_MASTER_LEADER_WAIT_MS',
    doc: 'first pause after NOT_LEADER leader=unknown (an election, or no quorum) or UNAVAILABLE (a master starting) before the next attempt; each further pause of the same request doubles, up to masterLeaderWaitMaxMs, with equal jitter',
  },
  masterLeaderWaitMaxMs: {
    type: 'int',
    default: 2_000,
    min: 0,
    max: 600_000,
    unit: 'ms',
    env: 'GRID_MASTER_LEADER_WAIT_MAX_MS',
    doc: 'largest pause between two attempts of a master request while no master leads (at least masterLeaderWaitMs is used)',
  },
  adminToken: {
    type: 'string',
    default: '',
    allowEmpty: true,
    env: 'GRID_ADMIN_TOKEN',
    doc: "the nodes' adminToken, sent by `grid cluster` as Authorization: Bearer TOKEN ('' = none: nodes on loopback without a token)",
  },
  clusterStatusTimeoutMs: { type: 'int', default: 1_000, min: 50, max: 600_000, unit: 'ms', env: 'GRID_CLUSTER_STATUS_TIMEOUT_MS', doc: "time `grid cluster` waits for one node's admin GET /status before calling it unreachable" },
  storageRequestTimeoutMs: { type: 'int', default: 10_000, min: 50, max: 600_000, unit: 'ms', env: 'GRID_STORAGE_REQUEST_TIMEOUT_MS', doc: 'time one storage request waits before it is retried' },
  storageRetries: { type: 'int', default: 3, min: 0, max: 100, env: 'GRID_STORAGE_RETRIES', doc: 'retries of one storage request after a timeout (same request id)' },
  pollIntervalMs: { type: 'int', default: 500, min: 10, max: 60_000, unit: 'ms', env: 'GRID_POLL_INTERVAL_MS', doc: 'interval of job_status polls while `--wait` watches a job' },
  maxJobsListed: { type: 'int', default: 50, min: 1, max: 1000, env: 'GRID_MAX_JOBS_LISTED', doc: 'most jobs `grid jobs` lists by default (job id prefixes match among these)' },
  maxJobsScanned: { type: 'int', default: 1000, min: 1, max: 100_000, env: 'GRID_MAX_JOBS_SCANNED', doc: 'most recent jobs `grid jobs --state S` looks through for jobs in state S (the master answers at most its maxJobList)' },
  logTailLines: { type: 'int', default: 20, min: 0, max: 10_000, env: 'GRID_LOG_TAIL_LINES', doc: "most lines of a failed task's log tail printed by `submit --wait`" },
  maxFailedTasksShown: { type: 'int', default: 10, min: 0, max: 100_000, env: 'GRID_MAX_FAILED_TASKS_SHOWN', doc: 'most failed tasks whose reason and log tail `submit --wait` prints' },
  taskStatusConcurrency: { type: 'int', default: 16, min: 1, max: 1000, env: 'GRID_TASK_STATUS_CONCURRENCY', doc: 'task_status requests in flight at once (results, logs, failure reports)' },
  notifyCmdTimeoutMs: { type: 'int', default: 60_000, min: 100, max: 3_600_000, unit: 'ms', env: 'GRID_NOTIFY_CMD_TIMEOUT_MS', doc: 'time `submit --wait --notify-cmd CMD` gives CMD before it is killed' },
  transferConcurrency: { type: 'int', default: 4, min: 1, max: 100, env: 'GRID_TRANSFER_CONCURRENCY', doc: 'files uploaded or downloaded at once' },
});

export type ClientConfig = SettingsOf<typeof CLIENT_SETTINGS.spec>;
export const CLIENT_DEFAULTS: ClientConfig = CLIENT_SETTINGS.defaults;

/** Every `grid dev` setting, once (docs/operations.md's table is generated from it). */
export const DEV_SETTINGS = new SettingsTable('dev', {
  readyTimeoutMs: { type: 'int', default: 30_000, min: 100, max: 600_000, unit: 'ms', env: 'GRID_DEV_READY_TIMEOUT_MS', doc: 'time a child node has to announce ready before start-up is aborted' },
  // nodes give themselves SHUTDOWN_GRACE_MS (5 s) to stop; allow a little more before SIGKILL
  stopGraceMs: { type: 'int', default: 7_000, min: 100, max: 600_000, unit: 'ms', env: 'GRID_DEV_STOP_GRACE_MS', doc: 'after SIGTERM, time a child has to exit before it gets SIGKILL (nodes give themselves 5 s)' },
  restartDelayMs: { type: 'int', default: 1_000, min: 0, max: 600_000, unit: 'ms', env: 'GRID_DEV_RESTART_DELAY_MS', doc: 'delay before a crashed node (a worker, by default) is started again' },
  maxRestarts: { type: 'int', default: 5, min: 0, max: 1000, env: 'GRID_DEV_MAX_RESTARTS', doc: 'most restarts of one node; after that it stays dead (and dev says so)' },
  logTailLines: { type: 'int', default: 20, min: 0, max: 10_000, env: 'GRID_DEV_LOG_TAIL_LINES', doc: "lines of a child's output shown when it fails to start or dies" },
  maxWorkers: { type: 'int', default: 64, min: 1, max: 1024, env: 'GRID_DEV_MAX_WORKERS', doc: 'most workers `grid dev --workers` starts' },
});

export type DevConfig = SettingsOf<typeof DEV_SETTINGS.spec>;
export const DEV_DEFAULTS: DevConfig = DEV_SETTINGS.defaults;

/** Sizes of a master group `grid dev --masters` accepts (Raft needs an odd majority). */
export const DEV_MASTER_COUNTS = [1, 3, 5] as const;

function envNames<T extends Record<string, { env?: string }>>(spec: T): Record<keyof T, string> {
  const out = {} as Record<keyof T, string>;
  for (const k of Object.keys(spec) as (keyof T)[]) out[k] = spec[k]!.env ?? '';
  return out;
}

/** Environment variable that overrides each setting. */
export const CLIENT_ENV = envNames(CLIENT_SETTINGS.spec);
export const DEV_ENV = envNames(DEV_SETTINGS.spec);

export function loadClientConfig(env: NodeJS.ProcessEnv = process.env): ClientConfig {
  return CLIENT_SETTINGS.loadEnv(env);
}

export function loadDevConfig(env: NodeJS.ProcessEnv = process.env): DevConfig {
  return DEV_SETTINGS.loadEnv(env);
}

/** Defaults of the job settings `grid submit` sends (each overridable by a flag). */
export const JOB_DEFAULTS = {
  /** inputs per task (--chunk-size) */
  chunkSize: 1,
  /** retries of a failed task on another worker (--retries) */
  maxRetries: 2,
  /** a task running longer is killed and fails with outcome timeout (--task-timeout), s */
  taskTimeoutS: 600,
  /** memory a task's process may use (--memory-limit), MiB */
  memoryLimitMb: 1024,
  /** total size of a task's output files (--output-limit), MiB */
  outputLimitMb: 1024,
} as const;

/** Upper bounds the client checks before it bothers the master. */
export const JOB_BOUNDS = {
  maxChunkSize: 1_000_000,
  maxRetries: 100,
  /** task_timeout_ms is a u32 */
  maxTaskTimeoutS: Math.floor(0xffffffff / 1000),
  maxMemoryLimitMb: 1_048_576,
  maxOutputLimitMb: 1_048_576,
} as const;
