/**
 * Bounds of the CLI client and of `grid dev`: every timeout, retry count and size limit
 * named with its unit. Each can be overridden by an environment variable (named in the
 * table below), which is how tests shorten the master retry window; values are validated
 * at start with CONFIG_INVALID. Documented in docs/operations.md.
 */
import { configError, intSetting } from '../common';

export interface ClientConfig {
  /**
   * How long a request to the master keeps being re-sent (same request_uuid) while nobody
   * answers, e.g. while the master restarts. After it: "no master answers at ...".
   */
  masterRetryWindowMs: number;
  /** Time one attempt of a master request waits before it is sent again (to the next master). */
  masterRequestTimeoutMs: number;
  /**
   * Pause after a master answered NOT_LEADER without knowing the leader (an election, ~1-2 s,
   * or no quorum) before the next master is asked; keeps the client from spinning.
   */
  masterLeaderWaitMs: number;
  /** Time `grid cluster` waits for one node's admin GET /status before calling it unreachable. */
  clusterStatusTimeoutMs: number;
  /** Time one storage request waits before it is retried. */
  storageRequestTimeoutMs: number;
  /** Retries of one storage request after a timeout (same request_uuid). */
  storageRetries: number;
  /** Interval of job_status polls while `--wait` watches a job. */
  pollIntervalMs: number;
  /** Most jobs `grid jobs` / `grid status` without JOB list. */
  maxJobsListed: number;
  /** Most lines of a failed task's log tail printed by `submit --wait`. */
  logTailLines: number;
  /** Most failed tasks whose reason and log tail `submit --wait` prints. */
  maxFailedTasksShown: number;
  /** task_status requests in flight at once (results, logs, failure reports). */
  taskStatusConcurrency: number;
  /** Files uploaded or downloaded at once. */
  transferConcurrency: number;
}

export const CLIENT_DEFAULTS: ClientConfig = {
  masterRetryWindowMs: 30_000,
  masterRequestTimeoutMs: 2_000,
  masterLeaderWaitMs: 200,
  clusterStatusTimeoutMs: 1_000,
  storageRequestTimeoutMs: 10_000,
  storageRetries: 3,
  pollIntervalMs: 500,
  maxJobsListed: 50,
  logTailLines: 20,
  maxFailedTasksShown: 10,
  taskStatusConcurrency: 16,
  transferConcurrency: 4,
};

export interface DevConfig {
  /** Time a child node has to announce GRID_READY before start-up is aborted. */
  readyTimeoutMs: number;
  /** After SIGTERM, time a child has to exit before it gets SIGKILL. */
  stopGraceMs: number;
  /** Delay before a crashed node (a worker, by default) is started again. */
  restartDelayMs: number;
  /** Most restarts of one node; after that it stays dead (and dev says so). */
  maxRestarts: number;
  /** Lines of a child's output shown when it fails to start or dies. */
  logTailLines: number;
  /** Most workers `grid dev --workers` starts. */
  maxWorkers: number;
}

/** Sizes of a master group `grid dev --masters` accepts (Raft needs an odd majority). */
export const DEV_MASTER_COUNTS = [1, 3, 5] as const;

export const DEV_DEFAULTS: DevConfig = {
  readyTimeoutMs: 30_000,
  // nodes give themselves SHUTDOWN_GRACE_MS (5 s) to stop; allow a little more before SIGKILL
  stopGraceMs: 7_000,
  restartDelayMs: 1_000,
  maxRestarts: 5,
  logTailLines: 20,
  maxWorkers: 64,
};

/** Environment variable that overrides each setting. */
export const CLIENT_ENV: Record<keyof ClientConfig, string> = {
  masterRetryWindowMs: 'GRID_MASTER_RETRY_WINDOW_MS',
  masterRequestTimeoutMs: 'GRID_MASTER_REQUEST_TIMEOUT_MS',
  masterLeaderWaitMs: 'GRID_MASTER_LEADER_WAIT_MS',
  clusterStatusTimeoutMs: 'GRID_CLUSTER_STATUS_TIMEOUT_MS',
  storageRequestTimeoutMs: 'GRID_STORAGE_REQUEST_TIMEOUT_MS',
  storageRetries: 'GRID_STORAGE_RETRIES',
  pollIntervalMs: 'GRID_POLL_INTERVAL_MS',
  maxJobsListed: 'GRID_MAX_JOBS_LISTED',
  logTailLines: 'GRID_LOG_TAIL_LINES',
  maxFailedTasksShown: 'GRID_MAX_FAILED_TASKS_SHOWN',
  taskStatusConcurrency: 'GRID_TASK_STATUS_CONCURRENCY',
  transferConcurrency: 'GRID_TRANSFER_CONCURRENCY',
};

export const DEV_ENV: Record<keyof DevConfig, string> = {
  readyTimeoutMs: 'GRID_DEV_READY_TIMEOUT_MS',
  stopGraceMs: 'GRID_DEV_STOP_GRACE_MS',
  restartDelayMs: 'GRID_DEV_RESTART_DELAY_MS',
  maxRestarts: 'GRID_DEV_MAX_RESTARTS',
  logTailLines: 'GRID_DEV_LOG_TAIL_LINES',
  maxWorkers: 'GRID_DEV_MAX_WORKERS',
};

function fromEnv<T extends object>(defaults: T, names: Record<keyof T, string>, env: NodeJS.ProcessEnv): Record<string, unknown> {
  const c: Record<string, unknown> = { ...(defaults as Record<string, unknown>) };
  for (const k of Object.keys(names) as (keyof T & string)[]) {
    const v = env[names[k]];
    if (v !== undefined && v !== '') c[k] = v;
  }
  return c;
}

/** Checks one setting, naming the environment variable in the error so it can be fixed. */
function check(c: Record<string, unknown>, key: string, envName: string, min: number, max: number): void {
  try {
    intSetting(c, key, min, max);
  } catch {
    throw configError(`${envName} must be an integer from ${min} to ${max}, got ${JSON.stringify(c[key])}`, `unset ${envName} to use the default`);
  }
}

export function loadClientConfig(env: NodeJS.ProcessEnv = process.env): ClientConfig {
  const c = fromEnv(CLIENT_DEFAULTS, CLIENT_ENV, env);
  const e = CLIENT_ENV;
  check(c, 'masterRetryWindowMs', e.masterRetryWindowMs, 0, 3_600_000);
  check(c, 'masterRequestTimeoutMs', e.masterRequestTimeoutMs, 50, 600_000);
  check(c, 'masterLeaderWaitMs', e.masterLeaderWaitMs, 0, 60_000);
  check(c, 'clusterStatusTimeoutMs', e.clusterStatusTimeoutMs, 50, 600_000);
  check(c, 'storageRequestTimeoutMs', e.storageRequestTimeoutMs, 50, 600_000);
  check(c, 'storageRetries', e.storageRetries, 0, 100);
  check(c, 'pollIntervalMs', e.pollIntervalMs, 10, 60_000);
  check(c, 'maxJobsListed', e.maxJobsListed, 1, 1000);
  check(c, 'logTailLines', e.logTailLines, 0, 10_000);
  check(c, 'maxFailedTasksShown', e.maxFailedTasksShown, 0, 100_000);
  check(c, 'taskStatusConcurrency', e.taskStatusConcurrency, 1, 1000);
  check(c, 'transferConcurrency', e.transferConcurrency, 1, 100);
  return c as unknown as ClientConfig;
}

export function loadDevConfig(env: NodeJS.ProcessEnv = process.env): DevConfig {
  const c = fromEnv(DEV_DEFAULTS, DEV_ENV, env);
  const e = DEV_ENV;
  check(c, 'readyTimeoutMs', e.readyTimeoutMs, 100, 600_000);
  check(c, 'stopGraceMs', e.stopGraceMs, 100, 600_000);
  check(c, 'restartDelayMs', e.restartDelayMs, 0, 600_000);
  check(c, 'maxRestarts', e.maxRestarts, 0, 1000);
  check(c, 'logTailLines', e.logTailLines, 0, 10_000);
  check(c, 'maxWorkers', e.maxWorkers, 1, 1024);
  return c as unknown as DevConfig;
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
