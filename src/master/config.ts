/**
 * Master configuration: every timing and bound named with its unit, validated at start.
 * The table below is the one place a setting is written; the docs table in docs/master.md
 * is generated from it (npm run gen:docs).
 */
import { SettingsOf, SettingsTable, configError, endpointList, endpointSetting, SECURITY_SPEC, ADMIN_SPEC, checkAdminSettings } from '../common';

/** Every master setting, once: type, default, range, unit, meaning (docs/master.md is generated from it). */
export const MASTER_SETTINGS = new SettingsTable(
  'master',
  {
    dataDir: { type: 'path', default: './.grid/master', flag: '--data-dir', doc: 'folder for the SQLite database (jobs.db), the node id and logs' },
    ...SECURITY_SPEC,
    bind: { type: 'endpoint', default: 'tcp://127.0.0.1:7700', flag: '--bind', doc: 'ZeroMQ endpoint clients and balancers connect to (port 0 = pick a free port)' },
    adminPort: { type: 'int', default: 7710, min: 0, max: 65535, flag: '--admin-port', doc: 'admin HTTP port on adminHost: GET /healthz, GET /status, GET /metrics, GET /dashboard (0 = pick a free port)' },
    ...ADMIN_SPEC,
    heartbeatIntervalMs: { type: 'int', default: 1000, min: 10, max: 60_000, unit: 'ms', doc: 'heartbeat to the balancers' },
    livenessMissed: { type: 'int', default: 3, min: 2, max: 100, doc: 'silent heartbeat intervals before a balancer (or a worker it reported) is forgotten' },
    maxInputsPerJob: { type: 'int', default: 100_000, min: 1, max: 10_000_000, doc: 'most inputs one job may have; larger jobs are refused with TOO_LARGE' },
    maxArgs: { type: 'int', default: 1000, min: 0, max: 100_000, doc: 'most arguments one job may have' },
    maxResultBatch: { type: 'int', default: 1000, min: 1, max: 100_000, doc: 'most task results written in one SQLite transaction (group commit)' },
    leaseMs: {
      type: 'int',
      default: 300,
      min: 50,
      max: 600_000,
      unit: 'ms',
      doc: 'the balancer dispatch lease: a grant or renewal lasts this long at the leader; the balancer stops leaseSafetyMarginMs earlier, measured from when it asked (balancer.md, "The lease")',
    },
    leaseNewLeaderWaitMs: { type: 'int', default: 500, min: 0, max: 600_000, unit: 'ms', doc: "a newly elected leader treats the last holder's lease as running leaseMs + this" },
    feedBatchMax: {
      type: 'int',
      default: 64,
      min: 1,
      max: 100_000,
      doc: 'most task_dispatch messages the leader sends the lease holder per hello (one batch; the next one goes with its next hello, every leaseRenewMs)',
    },
    auxiliaryStartWaitMs: { type: 'int', default: 1000, min: 0, max: 600_000, unit: 'ms', doc: 'while no primary balancer has asked, an auxiliary gets a free lease only after asking this long (at start-up the primary goes first)' },
    maxKnownWorkers: { type: 'int', default: 10_000, min: 1, max: 1_000_000, doc: 'most workers the master tracks from worker_status forwarded by the active balancer' },
    maxJobList: { type: 'int', default: 1000, min: 1, max: 100_000, doc: "largest answer to 'grid jobs'" },
    peers: {
      type: 'string',
      default: '',
      allowEmpty: true,
      flag: '--peers',
      doc: 'replicated masters: every master\'s endpoint, comma separated, this one included, bind among them ("" = a group of one; see raft.md)',
    },
    raftTickMs: { type: 'int', default: 50, min: 1, max: 10_000, unit: 'ms', doc: 'one Raft tick' },
    electionTicks: { type: 'int', default: 10, min: 2, max: 10_000, doc: 'base election timeout in ticks (randomized up to twice that)' },
    heartbeatTicks: { type: 'int', default: 1, min: 1, max: 10_000, doc: 'leader heartbeat interval in ticks (smaller than electionTicks)' },
    proposalTimeoutMs: { type: 'int', default: 5000, min: 10, max: 600_000, unit: 'ms', doc: 'a change not committed by a majority within this long is refused with UNAVAILABLE (clients retry)' },
    snapshotEveryEntries: { type: 'int', default: 10_000, min: 10, max: 100_000_000, doc: 'snapshot the job state and compact the Raft log every this many applied entries' },
    transferWaitMs: { type: 'int', default: 1000, min: 0, max: 60_000, unit: 'ms', doc: 'most time a stopping leader waits to hand leadership to a caught-up peer' },
    dashboardNodes: { type: 'string', default: '', allowEmpty: true, doc: 'admin addresses HOST:PORT of other nodes the dashboard shows, comma separated (operations.md, Dashboard)' },
    dashboardNodesFile: { type: 'path', default: '', allowEmpty: true, doc: 'a grid dev state file (dev.json) the dashboard reads the nodes from, re-read on use (grid dev passes its own)' },
    dashboardStatusTimeoutMs: { type: 'int', default: 1000, min: 10, max: 60_000, unit: 'ms', doc: "most time the dashboard waits for one node's GET /status" },
    notifyTimeoutMs: { type: 'int', default: 5000, min: 100, max: 600_000, unit: 'ms', doc: 'time one --notify POST may take before it counts as failed' },
    notifyMaxAttempts: { type: 'int', default: 8, min: 1, max: 1000, doc: 'POSTs of one --notify before it is given up (logged as notify:gave-up)' },
    notifyBackoffBaseMs: { type: 'int', default: 1000, min: 0, max: 3_600_000, unit: 'ms', doc: 'delay after the first failed --notify POST, doubled per attempt' },
    notifyBackoffMaxMs: { type: 'int', default: 60_000, min: 0, max: 3_600_000, unit: 'ms', doc: 'largest delay between two --notify POSTs' },
    notifyConcurrency: { type: 'int', default: 8, min: 1, max: 1000, doc: 'most --notify POSTs in flight at once (the leader checks for owed ones every heartbeatIntervalMs)' },
  },
  (c) => {
    checkAdminSettings(c);
    const peers = endpointList(c.peers);
    if (peers.length > 0) {
      peers.forEach((p, i) => endpointSetting({ [`peers[${i}]`]: p }, `peers[${i}]`));
      if (![1, 3, 5].includes(peers.length)) throw configError(`peers lists ${peers.length} masters; a group has 1, 3 or 5`, 'an even count tolerates no more failures than one fewer');
      if (new Set(peers).size !== peers.length) throw configError('peers lists a master twice');
      if (!peers.includes(c.bind)) throw configError(`bind ${c.bind} is not one of peers (${peers.join(', ')})`, 'list this master in --peers exactly as its --bind');
      if (/:0$/.test(c.bind)) throw configError('a master in a group needs a fixed port: peers must know its endpoint');
    }
    if (c.heartbeatTicks >= c.electionTicks) throw configError('heartbeatTicks must be smaller than electionTicks');
    for (const a of c.dashboardNodes.split(',').map((x) => x.trim()).filter(Boolean)) {
      if (!/^[^:/\s]+:\d{1,5}$/.test(a)) throw configError(`dashboardNodes lists ${JSON.stringify(a)}, not an admin address HOST:PORT`, 'e.g. "10.0.0.2:7711,10.0.0.3:7720"');
    }
  },
);

export type MasterConfig = SettingsOf<typeof MASTER_SETTINGS.spec>;
export const MASTER_DEFAULTS: MasterConfig = MASTER_SETTINGS.defaults;

export function loadMasterConfig(flags: Partial<Record<keyof MasterConfig, unknown>>, configFile?: string): MasterConfig {
  return MASTER_SETTINGS.load(flags, configFile);
}

export function sampleConfig(): string {
  return MASTER_SETTINGS.sample();
}
