/**
 * Balancer failover on real processes (docs/balancer.md, "Measured"): `grid dev --balancers 2`
 * with 2 workers (2 slots + 1 prefetch each) runs one long job of short tasks; the active
 * balancer is SIGKILLed KILLS times (dev restarts it, so the next kill finds a standby). For
 * each kill it reports the time from the SIGKILL to the first task the other balancer
 * dispatched (its `task:dispatched` log line) and to its `lease:activated`. The job counts
 * its own executions (one marker file per run), so the re-executed tasks are counted too.
 * Default settings (master leaseMs 300, balancer leaseRenewMs 50, leaseSafetyMarginMs 100).
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
import type { DevState } from '../src/cli/endpoints';

const ROOT = path.resolve(__dirname, '../..');
const BIN = path.join(ROOT, 'bin/grid.js');
const KILLS = Number(process.env.GRID_BENCH_FAILOVER_KILLS ?? 10);
const TASKS = Number(process.env.GRID_BENCH_FAILOVER_TASKS ?? 600);
const TASK_MS = 100;
/** Longest wait for one failover before the bench gives up (a bug, not a slow machine). */
const FAILOVER_TIMEOUT_MS = 60_000;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function status(port: number): Promise<{ active?: boolean } | undefined> {
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

/** The first `event` line of a balancer's log at or after `sinceMs` (wall clock, as pino writes it). */
function firstEvent(logFile: string, event: string, sinceMs: number): number | undefined {
  if (!fs.existsSync(logFile)) return undefined;
  for (const line of fs.readFileSync(logFile, 'utf8').split('\n')) {
    if (!line.includes(`"event":"${event}"`)) continue;
    const t = (JSON.parse(line) as { time: number }).time;
    if (t >= sinceMs) return t;
  }
  return undefined;
}

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

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
    const toDispatch: number[] = [];
    const toActive: number[] = [];
    /** where the time goes: lease:activated -> lease:adopted -> first task received -> first dispatch */
    const toAdopted: number[] = [];
    const toFed: number[] = [];
    for (let k = 0; k < KILLS; k++) {
      // wait for: one balancer active, the other one up (standby), the job still running
      let active: DevState['nodes'][number] | undefined;
      let other: DevState['nodes'][number] | undefined;
      const w0 = Date.now();
      for (;;) {
        const st = readState(dataDir);
        const bs = st.nodes.filter((n) => n.role === 'balancer');
        const sts = await Promise.all(bs.map((b) => (b.state === 'running' ? status(b.adminPort) : Promise.resolve(undefined))));
        const ai = sts.findIndex((x) => x?.active === true);
        if (ai >= 0 && sts[1 - ai] !== undefined) {
          active = bs[ai];
          other = bs[1 - ai];
          break;
        }
        if (Date.now() - w0 > FAILOVER_TIMEOUT_MS) throw new Error('no active + standby balancer pair within 60 s');
        await sleep(50);
      }
      await sleep(300); // let the active one dispatch for a moment
      const killedAt = Date.now();
      process.kill(active!.pid, 'SIGKILL');
      const otherLog = path.join(other!.dataDir, 'logs', `balancer-${other!.nodeId}.log`);
      let dispatchedAt: number | undefined;
      const f0 = Date.now();
      while ((dispatchedAt = firstEvent(otherLog, 'task:dispatched', killedAt)) === undefined) {
        if (Date.now() - f0 > FAILOVER_TIMEOUT_MS) throw new Error(`kill ${k + 1}: ${other!.name} dispatched nothing within 60 s`);
        await sleep(20);
      }
      const activatedAt = firstEvent(otherLog, 'lease:activated', killedAt);
      const adoptedAt = firstEvent(otherLog, 'lease:adopted', killedAt);
      const fedAt = Math.min(firstEvent(otherLog, 'task:queued', killedAt) ?? Infinity, firstEvent(otherLog, 'task:adopted', killedAt) ?? Infinity);
      toDispatch.push(dispatchedAt - killedAt);
      if (activatedAt !== undefined) toActive.push(activatedAt - killedAt);
      if (adoptedAt !== undefined) toAdopted.push(adoptedAt - killedAt);
      if (fedAt !== Infinity) toFed.push(fedAt - killedAt);
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
    toDispatch.sort((a, b) => a - b);
    toActive.sort((a, b) => a - b);
    toAdopted.sort((a, b) => a - b);
    toFed.sort((a, b) => a - b);
    console.log(
      `failover: SIGKILL of the active balancer -> first task dispatched by the other, ${toDispatch.length} kills: median ${pct(toDispatch, 50)} ms, max ${toDispatch[toDispatch.length - 1]} ms (target < 500 ms)`,
    );
    console.log(`failover: SIGKILL -> lease:activated on the other: median ${pct(toActive, 50)} ms, max ${toActive[toActive.length - 1]} ms`);
    console.log(`failover: SIGKILL -> lease:adopted: median ${pct(toAdopted, 50)} ms, max ${toAdopted[toAdopted.length - 1]} ms; SIGKILL -> first task received from the master: median ${pct(toFed, 50)} ms, max ${toFed[toFed.length - 1]} ms`);
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
