/**
 * Worker configuration: every timing, limit and size named with its unit, validated at start.
 * Defaults are documented in docs/worker.md.
 */
import os from 'node:os';
import path from 'node:path';
import { configError, endpointList, endpointSetting, intSetting, mergeConfig, readConfigFile, stringSetting } from '../common';

export interface WorkerConfig {
  /** folder for the node id, logs, program cache, task folders and the default mount */
  dataDir: string;
  /** FUSE mount point; '' = <dataDir>/mnt */
  mount: string;
  /**
   * balancer ROUTER endpoint, or a comma list of the balancer pair's endpoints: the worker
   * joins each and follows the one that holds the dispatch lease (docs/balancer.md)
   */
  balancer: string;
  /** storage ROUTER endpoint */
  storage: string;
  /** admin HTTP port on 127.0.0.1; 0 = ephemeral */
  adminPort: number;
  /** tasks run at once; 0 = number of CPUs */
  slots: number;
  /** tasks queued beyond the slots */
  prefetch: number;
  /** download inputs into the task folder instead of reading them through FUSE (explicit opt-in) */
  staged: boolean;
  /** worker_status heartbeat period, ms */
  heartbeatIntervalMs: number;
  /** silent heartbeat intervals after which the balancer is considered dead */
  livenessMissed: number;
  /** period at which unacknowledged task_results are sent again, ms */
  resultResendMs: number;
  /** most finished results kept while waiting for result_ack */
  maxUnackedResults: number;
  /** timeout of one storage request, ms */
  storageRequestTimeoutMs: number;
  /** retries of one storage request after a timeout */
  storageRetries: number;
  /** task timeout when the task says 0, ms */
  defaultTaskTimeoutMs: number;
  /** memory limit when the task says 0, MiB */
  defaultMemoryLimitMb: number;
  /** output limit when the task says 0, bytes */
  defaultOutputLimitBytes: number;
  /** most output files one task may leave */
  maxOutputFiles: number;
  /** cap of a task's stdout+stderr log file; beyond it the head and a tail are kept, bytes */
  maxLogBytes: number;
  /** bytes of the log's end sent in task_result.log_tail */
  logTailBytes: number;
  /** period of the RSS check of a task's process tree, ms */
  memoryPollIntervalMs: number;
  /** period of the output folder size check, ms */
  outputPollIntervalMs: number;
  /** FUSE read unit fetched from storage (aligned), bytes */
  fuseChunkBytes: number;
  /** bound of the FUSE chunk cache, bytes */
  chunkCacheBytes: number;
  /** chunks read ahead after a sequential read */
  readAheadChunks: number;
  /** most time one FUSE operation may take before the kernel gets EIO, ms */
  fuseOpTimeoutMs: number;
  /** most programs kept in <dataDir>/programs */
  maxCachedPrograms: number;
}

export const WORKER_DEFAULTS: WorkerConfig = {
  dataDir: './.grid/worker',
  mount: '',
  balancer: 'tcp://127.0.0.1:7701',
  storage: 'tcp://127.0.0.1:7702',
  adminPort: 7720,
  slots: 0,
  prefetch: 1,
  staged: false,
  heartbeatIntervalMs: 1000,
  livenessMissed: 3,
  resultResendMs: 2000,
  maxUnackedResults: 10_000,
  storageRequestTimeoutMs: 10_000,
  storageRetries: 3,
  defaultTaskTimeoutMs: 3_600_000,
  defaultMemoryLimitMb: 1024,
  defaultOutputLimitBytes: 1024 * 1024 * 1024,
  maxOutputFiles: 10_000,
  maxLogBytes: 16 * 1024 * 1024,
  logTailBytes: 4096,
  memoryPollIntervalMs: 100,
  outputPollIntervalMs: 250,
  fuseChunkBytes: 1024 * 1024,
  chunkCacheBytes: 256 * 1024 * 1024,
  readAheadChunks: 2,
  fuseOpTimeoutMs: 60_000,
  maxCachedPrograms: 100,
};

/** The balancer endpoints named by the `balancer` setting (one, or a comma list of the pair). */
export function balancerEndpoints(balancer: unknown): string[] {
  const raw = stringSetting({ balancer }, 'balancer');
  const list = endpointList(raw);
  if (list.length === 0) throw configError(`setting balancer names no endpoint (got ${JSON.stringify(raw)})`, 'give tcp://HOST:PORT, or tcp://A:7701,tcp://B:7701 for a balancer pair');
  for (const e of list) endpointSetting({ balancer: e }, 'balancer');
  if (new Set(list).size !== list.length) throw configError(`setting balancer lists an endpoint twice (${raw})`, 'name each balancer once');
  return list;
}

export function loadWorkerConfig(flags: Partial<Record<keyof WorkerConfig, unknown>>, configFile?: string): WorkerConfig {
  const file = configFile ? readConfigFile(configFile) : {};
  const c = mergeConfig(WORKER_DEFAULTS, file, flags, configFile ?? 'flags') as unknown as Record<string, unknown>;
  return validateWorkerConfig(c);
}

/** Checks and normalizes every setting; throws GridError CONFIG_INVALID naming the bad one. */
export function validateWorkerConfig(c: Record<string, unknown>): WorkerConfig {
  c.dataDir = path.resolve(stringSetting(c, 'dataDir'));
  if (typeof c.mount !== 'string') throw configError(`setting mount must be a path string, got ${JSON.stringify(c.mount)}`);
  c.mount = c.mount === '' ? path.join(c.dataDir as string, 'mnt') : path.resolve(c.mount);
  balancerEndpoints(c.balancer);
  endpointSetting(c, 'storage');
  if (c.staged === 'true' || c.staged === 'false') c.staged = c.staged === 'true';
  if (typeof c.staged !== 'boolean') throw configError(`setting staged must be true or false, got ${JSON.stringify(c.staged)}`);
  intSetting(c, 'adminPort', 0, 65535);
  intSetting(c, 'slots', 0, 1024);
  if (c.slots === 0) c.slots = Math.max(1, os.availableParallelism?.() ?? os.cpus().length);
  intSetting(c, 'prefetch', 0, 1024);
  intSetting(c, 'heartbeatIntervalMs', 10, 60_000);
  intSetting(c, 'livenessMissed', 2, 100);
  intSetting(c, 'resultResendMs', 10, 600_000);
  intSetting(c, 'maxUnackedResults', 1, 1_000_000);
  intSetting(c, 'storageRequestTimeoutMs', 10, 600_000);
  intSetting(c, 'storageRetries', 0, 100);
  intSetting(c, 'defaultTaskTimeoutMs', 1, 2 ** 31 - 1);
  intSetting(c, 'defaultMemoryLimitMb', 16, 1024 * 1024);
  intSetting(c, 'defaultOutputLimitBytes', 0, Number.MAX_SAFE_INTEGER);
  intSetting(c, 'maxOutputFiles', 1, 1_000_000);
  intSetting(c, 'maxLogBytes', 1024, 1024 * 1024 * 1024);
  intSetting(c, 'logTailBytes', 0, 60 * 1024); // log_tail travels in a 64 KiB text frame
  intSetting(c, 'memoryPollIntervalMs', 10, 60_000);
  intSetting(c, 'outputPollIntervalMs', 10, 60_000);
  intSetting(c, 'fuseChunkBytes', 4096, 32 * 1024 * 1024);
  if (((c.fuseChunkBytes as number) & 4095) !== 0) throw configError(`setting fuseChunkBytes must be a multiple of 4096, got ${c.fuseChunkBytes}`);
  intSetting(c, 'chunkCacheBytes', c.fuseChunkBytes as number, Number.MAX_SAFE_INTEGER);
  intSetting(c, 'readAheadChunks', 0, 64);
  intSetting(c, 'fuseOpTimeoutMs', 1000, 600_000);
  intSetting(c, 'maxCachedPrograms', 1, 100_000);
  return c as unknown as WorkerConfig;
}

export function sampleConfig(): string {
  return `// grid worker configuration (JSON; lines starting with // are comments).
// Start with: grid worker --config worker.json   (flags override these values)
{
  // folder for the node id, logs, cached programs, task folders and the default mount
  "dataDir": "./.grid/worker",
  // FUSE mount point for task inputs; "" = <dataDir>/mnt
  "mount": "",
  // the balancer's ZeroMQ endpoint, or both endpoints of a balancer pair, comma separated
  // (the worker joins both and follows the one holding the dispatch lease)
  "balancer": "tcp://127.0.0.1:7701",
  // the storage node's ZeroMQ endpoint
  "storage": "tcp://127.0.0.1:7702",
  // admin HTTP port: GET /healthz, GET /status (0 = pick a free port)
  "adminPort": 7720,
  // tasks run at once (0 = number of CPUs)
  "slots": 0,
  // tasks queued beyond the slots, so a slot never waits for the balancer
  "prefetch": 1,
  // true: download inputs into each task folder instead of a FUSE mount (no FUSE needed)
  "staged": false,
  // heartbeat to the balancer, in milliseconds
  "heartbeatIntervalMs": 1000,
  // silent heartbeat intervals before the balancer is considered dead (then reconnect)
  "livenessMissed": 3,
  // unacknowledged task results are sent again this often, in milliseconds
  "resultResendMs": 2000,
  // most finished results kept while waiting for their acknowledgement
  "maxUnackedResults": 10000,
  // timeout of one storage request (milliseconds) and retries after a timeout
  "storageRequestTimeoutMs": 10000,
  "storageRetries": 3,
  // limits used when a job leaves them at 0
  "defaultTaskTimeoutMs": 3600000,
  "defaultMemoryLimitMb": 1024,
  "defaultOutputLimitBytes": 1073741824,
  // most output files one task may leave in its working folder
  "maxOutputFiles": 10000,
  // cap of a task's stdout+stderr log; beyond it the start and the end are kept (bytes)
  "maxLogBytes": 16777216,
  // bytes of the log's end reported with each result
  "logTailBytes": 4096,
  // how often the memory (RSS of the whole process tree) and output size are checked (ms)
  "memoryPollIntervalMs": 100,
  "outputPollIntervalMs": 250,
  // FUSE: bytes fetched from storage per read, cache bound, sequential read-ahead in chunks
  "fuseChunkBytes": 1048576,
  "chunkCacheBytes": 268435456,
  "readAheadChunks": 2,
  // most time one FUSE operation may take before the reading program gets EIO (ms)
  "fuseOpTimeoutMs": 60000,
  // most programs (job.js files) kept in <dataDir>/programs
  "maxCachedPrograms": 100
}
`;
}
