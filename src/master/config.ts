/**
 * Master configuration: every timing and bound named with its unit, validated at start.
 * Defaults are documented in docs/master.md.
 */
import path from 'node:path';
import { configError, endpointList, endpointSetting, intSetting, mergeConfig, readConfigFile, stringSetting } from '../common';

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
  /**
   * the balancer dispatch lease, ms (default 400): a grant or renewal lasts this long at the
   * leader; the balancer stops leaseSafetyMarginMs earlier, measured from when it asked
   * (docs/balancer.md, "The lease")
   */
  leaseMs: number;
  /** a newly elected leader treats the last holder's lease as running leaseMs + this, ms (default 500) */
  leaseNewLeaderWaitMs: number;
  /** most task_dispatch messages in one feed batch to the balancer (default 256) */
  feedBatchMax: number;
  /** an auxiliary balancer gets a free lease only after asking this long, ms (default 1000): at start-up the primary goes first */
  auxiliaryStartWaitMs: number;
  /** most workers the master tracks from worker_status forwarded by the active balancer (default 10000) */
  maxKnownWorkers: number;
  /** largest job_list answer */
  maxJobList: number;
  /** every master's client endpoint, comma separated, this one included; '' = a group of one */
  peers: string;
  /** one Raft tick, ms */
  raftTickMs: number;
  /** base election timeout in ticks (randomized up to twice that) */
  electionTicks: number;
  /** leader heartbeat interval in ticks */
  heartbeatTicks: number;
  /** a change not committed within this long is refused with UNAVAILABLE (clients retry) */
  proposalTimeoutMs: number;
  /** take a Raft snapshot and compact the log every this many applied entries */
  snapshotEveryEntries: number;
  /** most time a stopping leader waits to hand leadership over */
  transferWaitMs: number;
  /** admin HOST:PORT of other nodes the dashboard shows, comma separated ('' = none) */
  dashboardNodes: string;
  /** a grid dev state file (dev.json) listing nodes for the dashboard, re-read on use ('' = none) */
  dashboardNodesFile: string;
  /** most time the dashboard waits for one node's /status, ms */
  dashboardStatusTimeoutMs: number;
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
  leaseMs: 400,
  leaseNewLeaderWaitMs: 500,
  feedBatchMax: 256,
  auxiliaryStartWaitMs: 1000,
  maxKnownWorkers: 10_000,
  maxJobList: 1000,
  peers: '',
  raftTickMs: 50,
  electionTicks: 10,
  heartbeatTicks: 1,
  proposalTimeoutMs: 5000,
  snapshotEveryEntries: 10_000,
  transferWaitMs: 1000,
  dashboardNodes: '',
  dashboardNodesFile: '',
  dashboardStatusTimeoutMs: 1000,
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
  intSetting(c, 'leaseMs', 50, 600_000);
  intSetting(c, 'leaseNewLeaderWaitMs', 0, 600_000);
  intSetting(c, 'feedBatchMax', 1, 100_000);
  intSetting(c, 'auxiliaryStartWaitMs', 0, 600_000);
  intSetting(c, 'maxKnownWorkers', 1, 1_000_000);
  intSetting(c, 'maxJobList', 1, 100_000);
  if (typeof c.peers !== 'string') throw configError(`setting peers must be a comma list of endpoints, got ${JSON.stringify(c.peers)}`);
  const peers = endpointList(c.peers);
  if (peers.length > 0) {
    peers.forEach((p, i) => endpointSetting({ [`peers[${i}]`]: p }, `peers[${i}]`));
    if (![1, 3, 5].includes(peers.length)) throw configError(`peers lists ${peers.length} masters; a group has 1, 3 or 5`, 'an even count tolerates no more failures than one fewer');
    if (new Set(peers).size !== peers.length) throw configError('peers lists a master twice');
    if (!peers.includes(c.bind as string)) throw configError(`bind ${String(c.bind)} is not one of peers (${peers.join(', ')})`, 'list this master in --peers exactly as its --bind');
    if (/:0$/.test(c.bind as string)) throw configError('a master in a group needs a fixed port: peers must know its endpoint');
  }
  intSetting(c, 'raftTickMs', 1, 10_000);
  intSetting(c, 'electionTicks', 2, 10_000);
  intSetting(c, 'heartbeatTicks', 1, 10_000);
  if ((c.heartbeatTicks as number) >= (c.electionTicks as number)) throw configError('heartbeatTicks must be smaller than electionTicks');
  intSetting(c, 'proposalTimeoutMs', 10, 600_000);
  intSetting(c, 'snapshotEveryEntries', 10, 100_000_000);
  intSetting(c, 'transferWaitMs', 0, 60_000);
  for (const k of ['dashboardNodes', 'dashboardNodesFile']) {
    if (typeof c[k] !== 'string') throw configError(`setting ${k} must be a string, got ${JSON.stringify(c[k])}`);
  }
  for (const a of (c.dashboardNodes as string).split(',').map((x) => x.trim()).filter(Boolean)) {
    if (!/^[^:/\s]+:\d{1,5}$/.test(a)) throw configError(`dashboardNodes lists ${JSON.stringify(a)}, not an admin address HOST:PORT`, 'e.g. "10.0.0.2:7711,10.0.0.3:7720"');
  }
  if (c.dashboardNodesFile) c.dashboardNodesFile = path.resolve(c.dashboardNodesFile as string);
  intSetting(c, 'dashboardStatusTimeoutMs', 10, 60_000);
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
  // the balancer dispatch lease in milliseconds: one balancer dispatches at a time, and a
  // dead one is replaced about this long after its last renewal (docs/balancer.md)
  "leaseMs": 400,
  // a new master leader waits leaseMs + this before giving the lease to another balancer
  "leaseNewLeaderWaitMs": 500,
  // most tasks sent to the balancer in one batch of the credit-based feed
  "feedBatchMax": 256,
  // an auxiliary balancer gets a free lease only after asking this long (the primary goes first)
  "auxiliaryStartWaitMs": 1000,
  // most workers the master keeps track of (worker_status through the active balancer)
  "maxKnownWorkers": 10000,
  // largest answer to 'grid jobs'
  "maxJobList": 1000,
  // replicated masters: every master's endpoint, this one included ("" = a group of one).
  // e.g. "tcp://10.0.0.1:7700,tcp://10.0.0.2:7700,tcp://10.0.0.3:7700"; bind must be one of them
  "peers": "",
  // one Raft tick in milliseconds; election timeout = electionTicks..2*electionTicks ticks
  "raftTickMs": 50,
  "electionTicks": 10,
  // leader heartbeat interval in ticks (smaller than electionTicks)
  "heartbeatTicks": 1,
  // a change not committed by a majority within this many ms is refused (clients retry)
  "proposalTimeoutMs": 5000,
  // snapshot the job state and compact the Raft log every this many applied entries
  "snapshotEveryEntries": 10000,
  // how long a stopping leader waits to hand leadership to a caught-up peer, ms
  "transferWaitMs": 1000,
  // the dashboard (GET /dashboard on the admin port) shows these nodes too: their admin
  // addresses HOST:PORT, comma separated, and/or a grid dev state file (dev.json) to read them from
  "dashboardNodes": "",
  "dashboardNodesFile": "",
  // most time the dashboard waits for one node's GET /status, ms
  "dashboardStatusTimeoutMs": 1000
}
`;
}
