/**
 * Where the client finds the master and storage, and the `grid dev` state file it reads
 * them from. Resolution order (first wins): the flag, the environment variable, the
 * dev.json of a running `grid dev` in the data dir, the default port. The master may be a
 * comma list (a replicated group, docs/architecture.md "Replicated masters"); the client
 * follows the leader among them.
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
  /** role plus index: master (master-0, master-1, ... in a group), balancer, storage, worker-0, ... */
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
  /** the first master (kept for readers that know only one) */
  master: string;
  /** every master of the group, in --peers order (absent in files of older versions) */
  masters?: string[];
  balancer: string;
  /** every balancer's worker endpoint (two with grid dev --balancers 2: primary first) */
  balancers?: string[];
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
  /** every master as given (comma list), for messages */
  master: string;
  /** the same, one endpoint each, in the given order */
  masters: string[];
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

/** Most masters a client accepts in one list (a Raft group has 1, 3 or 5). */
export const MAX_MASTER_ENDPOINTS = 7;

/** A comma list of master endpoints, each checked, no repeats. */
export function checkEndpointList(v: string, from: string): string[] {
  const list = v.split(',').map((x) => x.trim());
  if (list.some((x) => x === '')) throw configError(`${from} has an empty entry in ${JSON.stringify(v)}`, 'give endpoints separated by single commas: tcp://h1:7700,tcp://h2:7703');
  list.forEach((x) => checkEndpoint(x, from));
  if (new Set(list).size !== list.length) throw configError(`${from} lists a master twice: ${JSON.stringify(v)}`);
  if (list.length > MAX_MASTER_ENDPOINTS) throw configError(`${from} lists ${list.length} masters; at most ${MAX_MASTER_ENDPOINTS}`);
  return list;
}

/** The masters recorded in a dev.json (older files have only `master`). */
export function devMasters(s: DevState): string[] {
  return Array.isArray(s.masters) && s.masters.length > 0 ? s.masters : s.master ? [s.master] : [];
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
  const pick = (
    flag: string | undefined,
    flagName: string,
    envName: string,
    parse: (v: string, from: string) => string[],
    fromDevState: (d: DevState) => string[],
    dflt: string,
  ): [string[], string] => {
    if (flag !== undefined) return [parse(flag, flagName), flagName];
    const e = s.env[envName];
    if (e !== undefined && e !== '') return [parse(e, envName), envName];
    const d = fromDev();
    const got = d ? fromDevState(d).filter((x) => typeof x === 'string' && x !== '') : [];
    if (got.length) return [got, devStatePath(dataDir)];
    return [[dflt], 'default'];
  };
  const [masters, masterFrom] = pick(s.master, '--master', 'GRID_MASTER', checkEndpointList, devMasters, DEFAULT_MASTER_ENDPOINT);
  const [storages, storageFrom] = pick(s.storage, '--storage', 'GRID_STORAGE', (v, from) => [checkEndpoint(v, from)], (d) => [d.storage], DEFAULT_STORAGE_ENDPOINT);
  return { master: masters.join(','), masters, storage: storages[0]!, masterFrom, storageFrom };
}
