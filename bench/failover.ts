/**
 * Balancer failover on real processes (docs/balancer.md, "Measured"): `grid dev --balancers 2`
 * with 2 workers (2 slots + 1 prefetch each) runs one long job of short tasks; the active
 * balancer is SIGKILLed KILLS times (dev restarts it, so the next kill finds a standby). For
 * each kill it reports when each phase of the failover happened after the SIGKILL, read from
 * the nodes' JSON logs (tailed incrementally, bench/logtail.ts): the dead holder's lease end
 * at the master (the lease:expired line minus its lateMs), the new epoch proposed and granted,
 * the standby activated, the workers following it, adoption, the first task fed, the first
 * result settled and the first task dispatched (the figure the 500 ms target is about).
 * Baseline of the same run: the fencing floor (SIGKILL to the lease end at the master, which
 * no failover can beat), and the ratio of the first dispatch to it. The workers' execution
 * journals count re-executed tasks. Default settings (master leaseMs 300, balancer
 * leaseRenewMs 50, leaseSafetyMarginMs 50).
 * GRID_BENCH_FAILOVER_KILLS (default 10) and GRID_BENCH_FAILOVER_TASKS (default 600) change it;
 * GRID_BENCH_KEEP_DIR=1 keeps the nodes' data and logs.
 */
import { ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { JobState, MessageOf, newUuid } from '../src/messages';
import { RpcClient, clientSecurity, silentLogger } from '../src/common';
import { StorageClient } from '../src/storage';
import { readExecutions } from '../src/worker';
import { MASTER_DEFAULTS } from '../src/master';
import { LogLine, LogTails } from './logtail';
import type { DevState } from '../src/cli/endpoints';

const ROOT = path.resolve(__dirname, '../..');
const BIN = path.join(ROOT, 'bin/grid.js');
const KILLS = Number(process.env.GRID_BENCH_FAILOVER_KILLS ?? 10);
const TASKS = Number(process.env.GRID_BENCH_FAILOVER_TASKS ?? 600);
const TASK_MS = 100;
/** Longest wait for one failover before the bench gives up (a bug, not a slow machine). */
const FAILOVER_TIMEOUT_MS = 60_000;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function status(port: number): Promise<{ active?: boolean; epoch?: number; pairRole?: string } | undefined> {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/status', timeout: 1000 }, (res) => {
      let b = '';
      res.on('data', (c) => (b += c));
      res.on('end', () => {
        try {
          resolve(JSON.parse(b));
        } catch {
          resolve(undefined);
        }
      });
    });
    req.on('error', () => resolve(undefined));
    req.on('timeout', () => req.destroy());
  });
}

function readState(dataDir: string): DevState {
  return JSON.parse(fs.readFileSync(path.join(dataDir, 'dev.json'), 'utf8')) as DevState;
}

function median(xs: number[]): number | undefined {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  return s.length === 0 ? undefined : pct(s, 50);
}

function max(xs: number[]): number | undefined {
  const s = xs.filter((x) => Number.isFinite(x));
  return s.length === 0 ? undefined : Math.max(...s);
}

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

/** The lines the breakdown needs (cheap substring test before parsing: debug logs are busy). */
const WANTED = ['"event":"lease:', '"event":"task:dispatched"', '"event":"task:queued"', '"event":"task:adopted"', '"event":"task:settled"', '"event":"balancer:followed"', '"msg":"balancer serving"'];
const keepLine = (raw: string): boolean => WANTED.some((w) => raw.includes(w));

/**
 * One failover, in ms after the SIGKILL (wall clock, from the nodes' log lines). Each phase is
 * the first time it happened after the kill, in the new holder's epoch.
 */
interface Breakdown {
  /** the dead holder's lease ended at the master (noticed at `noticed`: log time - lateMs): the fencing floor */
  expiry: number;
  /** the master logged lease:expired (a timer at the lease end, or a hello after it) */
  noticed: number;
  /** the leader proposed the new epoch for the standby */
  proposed: number;
  /** the epoch was committed and applied: lease_grant sent */
  granted: number;
  /** the standby got the grant (lease:activated) */
  activated: number;
  /** the last worker followed it (got balancer_state active=1, sent worker_holding) */
  followed: number;
  /** every worker's worker_holding arrived (lease:adopted) */
  adopted: number;
  /** the first task the master fed in the new epoch arrived (task:queued or task:adopted) */
  fed: number;
  /** the first task settled there (a result: a slot is free again) */
  settled: number;
  /** the first task it dispatched: the figure the target is about */
  dispatched: number;
}

const PHASES: { key: keyof Breakdown; label: string }[] = [
  { key: 'expiry', label: 'lease end at master' },
  { key: 'noticed', label: 'expiry noticed' },
  { key: 'proposed', label: 'epoch proposed' },
  { key: 'granted', label: 'granted (committed)' },
  { key: 'activated', label: 'standby activated' },
  { key: 'followed', label: 'workers followed' },
  { key: 'adopted', label: 'adopted' },
  { key: 'fed', label: 'first task fed' },
  { key: 'settled', label: 'first result settled' },
  { key: 'dispatched', label: 'first dispatch' },
];

/** Reads one failover out of the log lines logged after the kill. */
function breakdown(lines: LogLine[], killedAt: number, oldEpoch: number, master: string, other: string, workers: Set<string>): Breakdown {
  const first = (p: (l: LogLine) => boolean): number => {
    const l = lines.find((x) => x.time >= killedAt && p(x));
    return l ? l.time - killedAt : NaN;
  };
  const expired = lines.find((x) => x.time >= killedAt && x.source === master && x.event === 'lease:expired' && x.epoch === oldEpoch);
  const noticed = expired ? expired.time - killedAt : NaN;
  const expiry = expired ? noticed - Number(expired.lateMs ?? 0) : NaN;
  const granted = lines.find((x) => x.time >= killedAt && x.source === master && x.event === 'lease:granted' && Number(x.epoch) > oldEpoch);
  const epoch = granted ? Number(granted.epoch) : NaN;
  const followedAll = [...workers].map((w) => first((x) => x.source === w && x.event === 'balancer:followed' && x.epoch === epoch));
  const activated = first((x) => x.source === other && x.event === 'lease:activated' && x.epoch === epoch);
  const after = (p: (l: LogLine) => boolean) => first((x) => x.source === other && x.time - killedAt >= activated && p(x));
  return {
    expiry,
    noticed,
    proposed: first((x) => x.source === master && x.event === 'lease:proposed' && x.epoch === epoch),
    granted: granted ? granted.time - killedAt : NaN,
    activated,
    followed: followedAll.some((x) => Number.isNaN(x)) ? NaN : Math.max(...followedAll),
    adopted: first((x) => x.source === other && x.event === 'lease:adopted' && x.epoch === epoch),
    fed: after((x) => x.event === 'task:queued' || x.event === 'task:adopted'),
    settled: after((x) => x.event === 'task:settled'),
    dispatched: first((x) => x.source === other && x.event === 'task:dispatched'),
  };
}

const fmt = (x: number | undefined): string => (x === undefined || Number.isNaN(x) ? '-' : String(Math.round(x)));

export async function failoverBench(): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'grid-bench-failover-'));
  const dataDir = path.join(dir, 'grid');
  const log = silentLogger();
  let dev: ChildProcess | undefined;
  let master: RpcClient | undefined;
  let storage: StorageClient | undefined;
  try {
    dev = spawn(process.execPath, [BIN, 'dev', '--balancers', '2', '--workers', '2', '--slots', '2', '--prefetch', '1', '--restart', 'worker,balancer', '--port-base', '0', '--data-dir', dataDir], {
      stdio: ['ignore', 'ignore', 'inherit'],
      // debug: the balancers log every task:dispatched (what this bench times)
      env: { ...process.env, GRID_LOG_LEVEL: 'debug', GRID_DEV_RESTART_DELAY_MS: '500', GRID_DEV_MAX_RESTARTS: String(KILLS + 5) },
    });
    const t0 = Date.now();
    while (!fs.existsSync(path.join(dataDir, 'dev.json'))) {
      if (dev.exitCode !== null) throw new Error(`grid dev exited with ${dev.exitCode}`);
      if (Date.now() - t0 > 60_000) throw new Error('grid dev did not become ready in 60 s');
      await sleep(100);
    }
    const s = readState(dataDir);
    const security = clientSecurity(dataDir, log);
    master = new RpcClient({ endpoint: s.master, nodeUuid: newUuid(), log, security });
    storage = new StorageClient({ endpoint: s.storage, nodeUuid: newUuid(), log, security });
    const prog = await storage.putBuffer(
      Buffer.from(`const fs = require('fs');
setTimeout(() => fs.writeFileSync('out.txt', 'ok'), ${TASK_MS});
`),
    );
    const input = await storage.putBuffer(Buffer.from('x\n'));
    const job = newUuid();
    await master.request({
      type: 'job_submit_request', node_uuid: newUuid(), request_uuid: newUuid(), job_uuid: job, program_file_uuid: prog.fileUuid,
      chunk_size: 1, max_retries: 3, task_timeout_ms: 600_000, memory_limit_mb: 512, output_limit_bytes: 1 << 20,
      input_file_uuids: Array(TASKS).fill(input.fileUuid), input_names: Array.from({ length: TASKS }, (_, i) => `in${i}.txt`), args: [], program_name: 'job.js',
    });
    // every node's JSON log, read incrementally (only what was appended since the last poll)
    const logOf = (n: DevState['nodes'][number]) => path.join(n.dataDir, 'logs', `${n.role}-${n.nodeId}.log`);
    const tails = new LogTails(keepLine);
    const nodes = readState(dataDir).nodes;
    const masterNode = nodes.find((n) => n.role === 'master')!;
    const workerNames = new Set(nodes.filter((n) => n.role === 'worker').map((n) => n.name));
    for (const n of nodes) if (n.role === 'master' || n.role === 'balancer' || n.role === 'worker') tails.add(logOf(n), n.name);
    /** when each balancer last started (its "balancer serving" line), to tell a fresh standby */
    const servingAt = new Map<string, number>();
    let lines: LogLine[] = [];
    const poll = () => {
      for (const l of tails.poll()) {
        if (l.msg === 'balancer serving') servingAt.set(l.source, l.time);
        else lines.push(l);
      }
    };
    const kills: { b: Breakdown; standby: string; standbyUpMs: number | undefined }[] = [];
    for (let k = 0; k < KILLS; k++) {
      // wait for: one balancer active, the other one up (standby), the job still running
      let active: DevState['nodes'][number] | undefined;
      let other: DevState['nodes'][number] | undefined;
      let oldEpoch = 0;
      let otherRole = '';
      const w0 = Date.now();
      for (;;) {
        const st = readState(dataDir);
        const bs = st.nodes.filter((n) => n.role === 'balancer');
        const sts = await Promise.all(bs.map((b) => (b.state === 'running' ? status(b.adminPort) : Promise.resolve(undefined))));
        const ai = sts.findIndex((x) => x?.active === true);
        if (ai >= 0 && sts[1 - ai] !== undefined) {
          active = bs[ai];
          other = bs[1 - ai];
          oldEpoch = sts[ai]!.epoch ?? 0;
          otherRole = sts[1 - ai]!.pairRole ?? '?';
          break;
        }
        if (Date.now() - w0 > FAILOVER_TIMEOUT_MS) throw new Error('no active + standby balancer pair within 60 s');
        await sleep(50);
      }
      await sleep(300); // let the active one dispatch for a moment
      poll();
      lines = []; // only what is logged after the kill counts
      const killedAt = Date.now();
      process.kill(active!.pid, 'SIGKILL');
      const f0 = Date.now();
      for (;;) {
        await sleep(20);
        poll();
        if (lines.some((l) => l.source === other!.name && l.event === 'task:dispatched' && l.time >= killedAt)) break;
        if (Date.now() - f0 > FAILOVER_TIMEOUT_MS) throw new Error(`kill ${k + 1}: ${other!.name} dispatched nothing within 60 s`);
      }
      poll();
      const b = breakdown(lines, killedAt, oldEpoch, masterNode.name, other!.name, workerNames);
      const up = servingAt.get(other!.name);
      kills.push({ b, standby: `${other!.name} (${otherRole})`, standbyUpMs: up === undefined ? undefined : killedAt - up });
    }
    let st: MessageOf<'job_status_response'>;
    for (;;) {
      st = (await master.request({ type: 'job_status_request', node_uuid: newUuid(), request_uuid: newUuid(), job_uuid: job })) as MessageOf<'job_status_response'>;
      if (st.state !== JobState.running) break;
      await sleep(200);
    }
    // runs counted from the workers' own execution journals (a sandboxed task cannot write
    // outside its folder, so no marker files): a task started twice counts once more
    const runs = new Map<number, number>();
    for (const n of readState(dataDir).nodes.filter((x) => x.role === 'worker')) for (const r of readExecutions(n.dataDir, job)) runs.set(r.taskIndex, (runs.get(r.taskIndex) ?? 0) + 1);
    const reexecuted = [...runs.values()].reduce((n, c) => n + (c - 1), 0);
    // per kill: each phase in ms after the SIGKILL
    const head = ['kill', 'standby', 'up ms', ...PHASES.map((p) => p.key)];
    const rows = kills.map((r, i) => [String(i + 1), r.standby, r.standbyUpMs === undefined ? 'long' : String(r.standbyUpMs), ...PHASES.map((p) => fmt(r.b[p.key]))]);
    const col = (j: number) => (p: string) => p.padStart(Math.max(head[j]!.length, ...rows.map((r) => r[j]!.length)));
    console.log('failover: per kill, ms after the SIGKILL when each phase happened (phases in docs/balancer.md, "Failover timing"):');
    for (const r of [head, ...rows]) console.log('  ' + r.map((x, j) => col(j)(x)).join('  '));
    // per phase: median and max of the time since the previous phase (where the time goes)
    console.log('failover: per phase, time since the previous one: median / max ms (phases can overlap: negative = before the previous one)');
    for (let i = 0; i < PHASES.length; i++) {
      const p = PHASES[i]!;
      const d = kills.map((r) => r.b[p.key] - (i === 0 ? 0 : r.b[PHASES[i - 1]!.key]));
      console.log(`  ${(i === 0 ? 'kill' : PHASES[i - 1]!.key).padStart(10)} -> ${p.key.padEnd(10)} ${fmt(median(d)).padStart(5)} / ${fmt(max(d)).padStart(5)}   (${p.label})`);
    }
    const total = kills.map((r) => r.b.dispatched);
    const floor = kills.map((r) => r.b.expiry);
    const ratios = kills.map((r) => r.b.dispatched / r.b.expiry);
    console.log(
      `failover: SIGKILL of the active balancer -> first task dispatched by the other, ${kills.length} kills: median ${fmt(median(total))} ms, max ${fmt(max(total))} ms (target < 500 ms)`,
    );
    // Baseline of this run: the fencing floor, the time until the dead holder's lease ended at
    // the master (leaseMs after its last renewal there): no failover can dispatch before it.
    console.log(
      `failover: baseline (same run): SIGKILL -> the dead holder's lease ends at the master (fencing floor, leaseMs ${MASTER_DEFAULTS.leaseMs}): median ${fmt(median(floor))} ms, max ${fmt(max(floor))} ms; ` +
        `first dispatch / floor: median ${median(ratios)?.toFixed(2) ?? '-'}x, max ${max(ratios)?.toFixed(2) ?? '-'}x; beyond the floor: median ${fmt(median(kills.map((r) => r.b.dispatched - r.b.expiry)))} ms`,
    );
    console.log(`failover: load average while measuring: ${os.loadavg().map((l) => l.toFixed(2)).join(' ')} (${os.cpus().length} cores)`);
    console.log(`failover: job ${st.state === JobState.succeeded ? 'succeeded' : `ended in state ${st.state}`} (${TASKS} tasks of ${TASK_MS} ms); tasks executed more than once: ${reexecuted} (target 0)`);
  } finally {
    master?.close();
    storage?.close();
    if (dev && dev.exitCode === null && dev.signalCode === null) {
      dev.kill('SIGTERM');
      await new Promise((r) => dev!.once('exit', r));
    }
    // GRID_BENCH_KEEP_DIR=1 keeps the nodes' logs for a look at a failure
    if (process.env.GRID_BENCH_KEEP_DIR) console.error(`failover bench: logs kept in ${dir}`);
    else fs.rmSync(dir, { recursive: true, force: true });
  }
}

if (require.main === module) {
  failoverBench().catch((e) => {
    console.error(`failover bench failed: ${(e as Error).message}`);
    process.exit(1);
  });
}
