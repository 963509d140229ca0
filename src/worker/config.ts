/**
 * Worker configuration: every timing, limit and size named with its unit, validated at start.
 * The table below is the one place a setting is written; the docs table in docs/worker.md
 * is generated from it (npm run gen:docs).
 */
import os from 'node:os';
import path from 'node:path';
import { SettingsOf, SettingsTable, configError, endpointList, endpointSetting, stringSetting, SECURITY_SPEC, ADMIN_SPEC, checkAdminSettings } from '../common';

/** Every worker setting, once: type, default, range, unit, meaning (docs/worker.md is generated from it). */
export const WORKER_SETTINGS = new SettingsTable(
  'worker',
  {
    dataDir: { type: 'path', default: './.grid/worker', flag: '--data-dir', doc: 'folder for the node id, logs, cached programs, task folders and the default mount' },
    ...SECURITY_SPEC,
    mount: { type: 'path', default: '', allowEmpty: true, flag: '--mount', doc: 'FUSE mount point for task inputs ("" = <dataDir>/mnt)' },
    balancer: {
      type: 'string',
      default: 'tcp://127.0.0.1:7701',
      flag: '--balancer',
      doc: "the balancer's ZeroMQ endpoint, or both endpoints of a balancer pair, comma separated: the worker joins each and follows the one holding the dispatch lease (balancer.md)",
    },
    storage: { type: 'endpoint', default: 'tcp://127.0.0.1:7702', flag: '--storage', doc: "the storage node's ZeroMQ endpoint" },
    adminPort: { type: 'int', default: 7720, min: 0, max: 65535, flag: '--admin-port', doc: 'admin HTTP port on adminHost: GET /healthz, GET /status (0 = pick a free port)' },
    ...ADMIN_SPEC,
    slots: { type: 'int', default: 0, min: 0, max: 1024, flag: '--slots', doc: 'tasks run at once (0 = number of CPUs)' },
    prefetch: { type: 'int', default: 1, min: 0, max: 1024, flag: '--prefetch', doc: 'tasks queued beyond the slots, so a slot never waits for the balancer' },
    staged: { type: 'bool', default: false, flag: '--staged', doc: 'download inputs into each task folder instead of a FUSE mount (no FUSE needed)' },
    sandbox: {
      type: 'bool',
      default: true,
      doc: 'when the worker runs as root, run each task as its own unprivileged uid in its own PID and mount namespaces, with a private /tmp (docs/operations.md, "Containment"); false, or a worker not run as root, runs tasks as the worker user (a warning is logged)',
    },
    taskUidBase: {
      type: 'int',
      default: 64100,
      min: 1000,
      max: 2 ** 31 - 1 - 1_048_576,
      doc: 'sandboxed tasks run as uid (and gid) taskUidBase + i, the lowest i no running task uses (at most slots + prefetch): no account needed; pick a range no account or other service uses',
    },
    heartbeatIntervalMs: { type: 'int', default: 1000, min: 10, max: 60_000, unit: 'ms', doc: 'heartbeat (worker_status) to the balancer' },
    livenessMissed: { type: 'int', default: 3, min: 2, max: 100, doc: 'silent heartbeat intervals before the balancer is considered dead (then reconnect)' },
    resultResendMs: { type: 'int', default: 2000, min: 10, max: 600_000, unit: 'ms', doc: 'first re-send of an unacknowledged task result; each further re-send of it waits twice as long, up to resultResendMaxMs, with equal jitter (half to all of the pause)' },
    resultResendMaxMs: { type: 'int', default: 16_000, min: 10, max: 600_000, unit: 'ms', doc: 'largest pause between two re-sends of one unacknowledged result (at least resultResendMs is used)' },
    maxUnackedResults: { type: 'int', default: 10_000, min: 1, max: 1_000_000, doc: 'most finished results kept while waiting for their acknowledgement' },
    storageRequestTimeoutMs: { type: 'int', default: 10_000, min: 10, max: 600_000, unit: 'ms', doc: 'timeout of one storage request' },
    storageRetries: { type: 'int', default: 3, min: 0, max: 100, doc: 'retries of one storage request after a timeout' },
    defaultTaskTimeoutMs: { type: 'int', default: 3_600_000, min: 1, max: 2 ** 31 - 1, unit: 'ms', doc: 'task timeout when the job gives 0' },
    defaultMemoryLimitMb: { type: 'int', default: 1024, min: 16, max: 1024 * 1024, unit: 'MiB', doc: 'memory limit when the job gives 0' },
    defaultOutputLimitBytes: { type: 'int', default: 1024 * 1024 * 1024, min: 0, max: Number.MAX_SAFE_INTEGER, unit: 'bytes', doc: 'output limit when the job gives 0' },
    maxOutputFiles: { type: 'int', default: 10_000, min: 1, max: 1_000_000, doc: "most output files one task may leave in its working folder (the size walk also stops there)" },
    maxLogBytes: {
      type: 'int',
      default: 16 * 1024 * 1024,
      min: 1024,
      max: 1024 * 1024 * 1024,
      unit: 'bytes',
      doc: "cap of a task's stdout+stderr log: the first half is kept as written, then only the last half",
    },
    // log_tail travels in a 64 KiB text frame
    logTailBytes: { type: 'int', default: 4096, min: 0, max: 60 * 1024, unit: 'bytes', doc: "bytes of the log's end reported with each result (task_result.log_tail)" },
    memoryPollIntervalMs: { type: 'int', default: 100, min: 10, max: 60_000, unit: 'ms', doc: 'how often the RSS of the whole task process tree is summed' },
    outputPollIntervalMs: { type: 'int', default: 250, min: 10, max: 60_000, unit: 'ms', doc: "how often the task working folder's size is summed" },
    fuseChunkBytes: { type: 'int', default: 1024 * 1024, min: 4096, max: 32 * 1024 * 1024, unit: 'bytes', doc: 'FUSE: bytes fetched from storage per read (a multiple of 4096)' },
    chunkCacheBytes: { type: 'int', default: 256 * 1024 * 1024, min: 4096, max: Number.MAX_SAFE_INTEGER, unit: 'bytes', doc: 'FUSE: bound of the chunk cache (at least fuseChunkBytes)' },
    readAheadChunks: { type: 'int', default: 2, min: 0, max: 64, doc: 'FUSE: chunks read ahead after a sequential read' },
    fuseOpTimeoutMs: { type: 'int', default: 60_000, min: 1000, max: 600_000, unit: 'ms', doc: 'most time one FUSE operation may take before the reading program gets EIO' },
    maxCachedPrograms: { type: 'int', default: 100, min: 1, max: 100_000, doc: 'most programs (job.js files) no task holds kept in <dataDir>/programs (a running task\'s program is never evicted)' },
    maxExecutionRecords: { type: 'int', default: 100_000, min: 100, max: 100_000_000, doc: 'most rows kept in the execution journal <dataDir>/executions.db (one per run of a task program); the oldest are pruned beyond it' },
  },
  (c) => {
    checkAdminSettings(c);
    if (c.mount === '') c.mount = path.join(c.dataDir, 'mnt');
    balancerEndpoints(c.balancer);
    if (c.slots === 0) c.slots = Math.max(1, os.availableParallelism?.() ?? os.cpus().length);
    if ((c.fuseChunkBytes & 4095) !== 0) throw configError(`setting fuseChunkBytes must be a multiple of 4096, got ${c.fuseChunkBytes}`);
    if (c.chunkCacheBytes < c.fuseChunkBytes) throw configError(`setting chunkCacheBytes must be an integer from ${c.fuseChunkBytes} to ${Number.MAX_SAFE_INTEGER}, got ${c.chunkCacheBytes}`, 'the cache holds at least one chunk');
  },
);

export type WorkerConfig = SettingsOf<typeof WORKER_SETTINGS.spec>;
export const WORKER_DEFAULTS: WorkerConfig = WORKER_SETTINGS.defaults;

export function loadWorkerConfig(flags: Partial<Record<keyof WorkerConfig, unknown>>, configFile?: string): WorkerConfig {
  return WORKER_SETTINGS.load(flags, configFile);
}

/** Checks and normalizes every setting; throws GridError CONFIG_INVALID naming the bad one. */
export function validateWorkerConfig(c: Record<string, unknown>): WorkerConfig {
  return WORKER_SETTINGS.validate(c);
}

export function sampleConfig(): string {
  return WORKER_SETTINGS.sample();
}

/**
 * The balancer endpoints named by the `balancer` setting: one endpoint, or the pair's two,
 * comma separated; CONFIG_INVALID when empty, malformed or repeated.
 */
export function balancerEndpoints(balancer: unknown): string[] {
  const raw = stringSetting({ balancer }, 'balancer');
  const list = endpointList(raw);
  if (list.length === 0) throw configError(`setting balancer names no endpoint (got ${JSON.stringify(raw)})`, 'give tcp://HOST:PORT, or tcp://A:7701,tcp://B:7701 for a balancer pair');
  for (const e of list) endpointSetting({ balancer: e }, 'balancer');
  if (new Set(list).size !== list.length) throw configError(`setting balancer lists an endpoint twice (${raw})`, 'name each balancer once');
  return list;
}
