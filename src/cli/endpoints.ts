/**
 * Where the client finds the master and storage, and the `grid dev` state file it reads
 * them from. Resolution order (first wins): the flag, the environment variable, the
 * dev.json of a running `grid dev` in the data dir, the default port.
 */
import fs from 'node:fs';
import path from 'node:path';
import { configError } from '../common';

/** The data dir `grid dev` and the client use when none is given. */
export const DEFAULT_DATA_DIR = './.grid';
export const DEFAULT_MASTER_ENDPOINT = 'tcp://127.0.0.1:7700';
export const DEFAULT_STORAGE_ENDPOINT = 'tcp://127.0.0.1:7702';
/** Name of the state file `grid dev` writes into its data dir while it runs. */
export const DEV_STATE_FILE = 'dev.json';

/** One supervised node as recorded in dev.json. */
export interface DevNodeState {
  /** role plus index: master, balancer, storage, worker-0, ... */
  name: string;
  role: string;
  pid: number;
  nodeId: string;
  endpoints: Record<string, string>;
  adminPort: number;
  /** the node's own data dir (its JSON log is in <dataDir>/logs/) */
  dataDir: string;
  /** the node's stdout and stderr, captured by dev */
  outputFile: string;
  state: 'running' | 'restarting' | 'dead';
  restarts: number;
}

/** The content of <data-dir>/dev.json. */
export interface DevState {
  /** pid of the `grid dev` process */
  pid: number;
  dataDir: string;
  logDir: string;
  startedAtMs: number;
  master: string;
  balancer: string;
  storage: string;
  nodes: DevNodeState[];
}

export function devStatePath(dataDir: string): string {
  return path.join(dataDir, DEV_STATE_FILE);
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * The dev.json of a `grid dev` that is still running, or undefined. A file left behind by
 * a dev that died (its pid is gone) is ignored rather than trusted.
 */
export function readDevState(dataDir: string, alive: (pid: number) => boolean = pidAlive): DevState | undefined {
  let text: string;
  try {
    text = fs.readFileSync(devStatePath(dataDir), 'utf8');
  } catch {
    return undefined;
  }
  let s: DevState;
  try {
    s = JSON.parse(text) as DevState;
  } catch {
    return undefined;
  }
  if (typeof s !== 'object' || s === null || typeof s.pid !== 'number' || !alive(s.pid)) return undefined;
  return s;
}

export interface EndpointSources {
  master?: string;
  storage?: string;
  dataDir?: string;
  env: NodeJS.ProcessEnv;
  /** injected for tests; defaults to readDevState */
  devState?: (dataDir: string) => DevState | undefined;
}

export interface ResolvedEndpoints {
  master: string;
  storage: string;
  /** where each came from, for error messages: flag, env, dev.json or default */
  masterFrom: string;
  storageFrom: string;
}

const ENDPOINT_RE = /^tcp:\/\/[^:/\s]+:\d{1,5}$/;

function checkEndpoint(v: string, from: string): string {
  if (!ENDPOINT_RE.test(v)) throw configError(`${from} must be an endpoint like tcp://127.0.0.1:7700, got ${JSON.stringify(v)}`);
  return v;
}

export function resolveEndpoints(s: EndpointSources): ResolvedEndpoints {
  const dataDir = s.dataDir ?? s.env.GRID_DATA_DIR ?? DEFAULT_DATA_DIR;
  let dev: DevState | undefined;
  let devLoaded = false;
  const fromDev = (): DevState | undefined => {
    if (!devLoaded) {
      dev = (s.devState ?? readDevState)(dataDir);
      devLoaded = true;
    }
    return dev;
  };
  const pick = (flag: string | undefined, flagName: string, envName: string, devKey: 'master' | 'storage', dflt: string): [string, string] => {
    if (flag !== undefined) return [checkEndpoint(flag, flagName), flagName];
    const e = s.env[envName];
    if (e !== undefined && e !== '') return [checkEndpoint(e, envName), envName];
    const d = fromDev()?.[devKey];
    if (d) return [d, devStatePath(dataDir)];
    return [dflt, 'default'];
  };
  const [master, masterFrom] = pick(s.master, '--master', 'GRID_MASTER', 'master', DEFAULT_MASTER_ENDPOINT);
  const [storage, storageFrom] = pick(s.storage, '--storage', 'GRID_STORAGE', 'storage', DEFAULT_STORAGE_ENDPOINT);
  return { master, storage, masterFrom, storageFrom };
}
