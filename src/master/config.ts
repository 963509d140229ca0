/**
 * Master configuration: every timing and bound named with its unit, validated at start.
 * Defaults are documented in docs/master.md.
 */
import path from 'node:path';
import { endpointSetting, intSetting, mergeConfig, readConfigFile, stringSetting } from '../common';

export interface MasterConfig {
  /** folder for the SQLite database, node id and logs */
  dataDir: string;
  /** ROUTER endpoint for clients and balancers; port 0 = ephemeral */
  bind: string;
  /** admin HTTP port on 127.0.0.1; 0 = ephemeral */
  adminPort: number;
  /** heartbeat to and from the balancer, ms */
  heartbeatIntervalMs: number;
  /** silent heartbeat intervals after which the balancer is considered gone */
  livenessMissed: number;
  /** most inputs one job may have */
  maxInputsPerJob: number;
  /** most arguments one job may have */
  maxArgs: number;
  /** most results recorded in one SQLite transaction (group commit) */
  maxResultBatch: number;
  /** largest job_list answer */
  maxJobList: number;
}

export const MASTER_DEFAULTS: MasterConfig = {
  dataDir: './.grid/master',
  bind: 'tcp://127.0.0.1:7700',
  adminPort: 7710,
  heartbeatIntervalMs: 1000,
  livenessMissed: 3,
  maxInputsPerJob: 100_000,
  maxArgs: 1000,
  maxResultBatch: 1000,
  maxJobList: 1000,
};

export function loadMasterConfig(flags: Partial<Record<keyof MasterConfig, unknown>>, configFile?: string): MasterConfig {
  const file = configFile ? readConfigFile(configFile) : {};
  const c = mergeConfig(MASTER_DEFAULTS, file, flags, configFile ?? 'flags') as unknown as Record<string, unknown>;
  c.dataDir = path.resolve(stringSetting(c, 'dataDir'));
  endpointSetting(c, 'bind');
  intSetting(c, 'adminPort', 0, 65535);
  intSetting(c, 'heartbeatIntervalMs', 10, 60_000);
  intSetting(c, 'livenessMissed', 2, 100);
  intSetting(c, 'maxInputsPerJob', 1, 10_000_000);
  intSetting(c, 'maxArgs', 0, 100_000);
  intSetting(c, 'maxResultBatch', 1, 100_000);
  intSetting(c, 'maxJobList', 1, 100_000);
  return c as unknown as MasterConfig;
}

export function sampleConfig(): string {
  return `// grid master configuration (JSON; lines starting with // are comments).
// Start with: grid master --config master.json   (flags override these values)
{
  // folder for the SQLite database (jobs.db), the node id and logs
  "dataDir": "./.grid/master",
  // ZeroMQ endpoint clients and balancers connect to
  "bind": "tcp://127.0.0.1:7700",
  // admin HTTP port: GET /healthz, GET /status (0 = pick a free port)
  "adminPort": 7710,
  // heartbeat to and from the balancer, in milliseconds
  "heartbeatIntervalMs": 1000,
  // silent heartbeat intervals before the balancer is considered gone
  "livenessMissed": 3,
  // most inputs one job may have
  "maxInputsPerJob": 100000,
  // most arguments one job may have
  "maxArgs": 1000,
  // most task results written in one SQLite transaction (group commit)
  "maxResultBatch": 1000,
  // largest answer to 'grid jobs'
  "maxJobList": 1000
}
`;
}
