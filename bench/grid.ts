/**
 * Whole-grid benchmarks on real processes (`grid dev` with 4 workers), printed as figures
 * measured in this run:
 *  - throughput: tasks/s for 500 trivial tasks on 4 workers;
 *  - latency: p50/p99 from submit to settled for one-task jobs on an idle grid;
 *  - FUSE: sequential read MB/s of a 200 MiB input through the worker's mount, beside the
 *    same bytes read straight from the storage node over ZeroMQ and beside `cat` of a local copy.
 * Sizes can be lowered for a quick look: GRID_BENCH_TASKS, GRID_BENCH_FUSE_MIB.
 */
import { ChildProcess, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { JobState, MessageOf, newUuid } from '../src/messages';
import { RpcClient, clientSecurity, silentLogger } from '../src/common';
import { StorageClient } from '../src/storage';

const ROOT = path.resolve(__dirname, '../..');
const BIN = path.join(ROOT, 'bin/grid.js');
const TASKS = Number(process.env.GRID_BENCH_TASKS ?? 500);
const LATENCY_JOBS = Number(process.env.GRID_BENCH_LATENCY_JOBS ?? 30);
const FUSE_MIB = Number(process.env.GRID_BENCH_FUSE_MIB ?? 200);
const WORKERS = 4;

export interface Dev {
  proc: ChildProcess;
  master: string;
  storage: string;
  dir: string;
}

export async function startDev(dir: string): Promise<Dev> {
  const dataDir = path.join(dir, 'grid');
  const proc = spawn(process.execPath, [BIN, 'dev', '--workers', String(WORKERS), '--port-base', '0', '--data-dir', dataDir], {
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const state = path.join(dataDir, 'dev.json');
  const t0 = Date.now();
  while (!fs.existsSync(state)) {
    if (proc.exitCode !== null) throw new Error(`grid dev exited with ${proc.exitCode}`);
    if (Date.now() - t0 > 60_000) throw new Error('grid dev did not become ready in 60 s');
    await sleep(100);
  }
  const s = JSON.parse(fs.readFileSync(state, 'utf8')) as { master: string; storage: string };
  return { proc, master: s.master, storage: s.storage, dir };
}

export async function stopDev(d: Dev): Promise<void> {
  if (d.proc.exitCode === null && d.proc.signalCode === null) {
    d.proc.kill('SIGTERM');
    await new Promise((r) => d.proc.once('exit', r));
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

export async function submit(master: RpcClient, program: string, inputs: string[], names: string[]): Promise<string> {
  const job = newUuid();
  await master.request({
    type: 'job_submit_request',
    node_uuid: newUuid(),
    request_uuid: newUuid(),
    job_uuid: job,
    program_file_uuid: program,
    chunk_size: 1,
    max_retries: 0,
    task_timeout_ms: 600_000,
    memory_limit_mb: 512,
    output_limit_bytes: 1 << 30,
    input_file_uuids: inputs,
    input_names: names,
    args: [],
    program_name: 'job.js',
  });
  return job;
}

export async function waitJob(master: RpcClient, job: string, pollMs: number): Promise<MessageOf<'job_status_response'>> {
  for (;;) {
    const s = (await master.request({ type: 'job_status_request', node_uuid: newUuid(), request_uuid: newUuid(), job_uuid: job })) as MessageOf<'job_status_response'>;
    if (s.state !== JobState.running) return s;
    await sleep(pollMs);
  }
}

export async function gridBench(): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'grid-bench-'));
  const log = silentLogger();
  let dev: Dev | undefined;
  let master: RpcClient | undefined;
  let storage: StorageClient | undefined;
  try {
    dev = await startDev(dir);
    const security = clientSecurity(path.join(dir, 'grid'), log);
    master = new RpcClient({ endpoint: dev.master, nodeUuid: newUuid(), log, security });
    storage = new StorageClient({ endpoint: dev.storage, nodeUuid: newUuid(), log, security });
    const trivial = await storage.putBuffer(Buffer.from("require('fs').writeFileSync('out.txt', 'ok');\n"));
    const input = await storage.putBuffer(Buffer.from('x\n'));

    // -- throughput -------------------------------------------------------------------------
    const t0 = performance.now();
    const job = await submit(master, trivial.fileUuid, Array(TASKS).fill(input.fileUuid), Array.from({ length: TASKS }, (_, i) => `in${i}.txt`));
    const done = await waitJob(master, job, 20);
    const secs = (performance.now() - t0) / 1000;
    if (done.state !== JobState.succeeded) throw new Error(`throughput job ended ${done.state}: ${done.error}`);
    console.log(`grid: ${TASKS} trivial tasks on ${WORKERS} workers: ${(TASKS / secs).toFixed(1)} tasks/s (${secs.toFixed(2)} s)`);

    // -- latency on an idle grid --------------------------------------------------------------
    const lat: number[] = [];
    for (let i = 0; i < LATENCY_JOBS; i++) {
      const s0 = performance.now();
      const j = await submit(master, trivial.fileUuid, [input.fileUuid], ['in.txt']);
      await waitJob(master, j, 2);
      lat.push(performance.now() - s0);
    }
    lat.sort((a, b) => a - b);
    console.log(`grid: one-task job latency (submit to settled, ${LATENCY_JOBS} jobs): p50 ${pct(lat, 50).toFixed(1)} ms, p99 ${pct(lat, 99).toFixed(1)} ms`);

    // -- FUSE sequential read -----------------------------------------------------------------
    const big = path.join(dir, 'big.bin');
    const fd = fs.openSync(big, 'w');
    for (let i = 0; i < FUSE_MIB; i++) fs.writeSync(fd, randomBytes(1 << 20));
    fs.closeSync(fd);
    const up = await storage.putFile(big);
    const reader = await storage.putBuffer(
      Buffer.from(`const fs = require('fs');
const t0 = process.hrtime.bigint(); let n = 0; const fd = fs.openSync(process.argv[2], 'r'); const b = Buffer.alloc(1 << 20);
for (;;) { const k = fs.readSync(fd, b, 0, b.length, null); if (k === 0) break; n += k; }
const s = Number(process.hrtime.bigint() - t0) / 1e9;
fs.writeFileSync('rate.json', JSON.stringify({ bytes: n, seconds: s }));
`),
    );
    const fj = await submit(master, reader.fileUuid, [up.fileUuid], ['big.bin']);
    const fst = await waitJob(master, fj, 50);
    if (fst.state !== JobState.succeeded) throw new Error(`FUSE read job ended ${fst.state}: ${fst.error}`);
    const ts = (await master.request({ type: 'task_status_request', node_uuid: newUuid(), request_uuid: newUuid(), job_uuid: fj, task_index: 0 })) as MessageOf<'task_status_response'>;
    const rate = JSON.parse((await storage.readWhole(ts.output_file_uuids[0]!)).toString()) as { bytes: number; seconds: number };
    if (rate.bytes !== FUSE_MIB << 20) throw new Error(`FUSE read ${rate.bytes} bytes, expected ${FUSE_MIB << 20}`);
    const fuseMBs = rate.bytes / 1e6 / rate.seconds;

    const z0 = performance.now();
    let zn = 0;
    for (let off = 0; off < up.length; off += 1 << 20) zn += (await storage.read(up.fileUuid, off, 1 << 20)).length;
    const zeroMBs = zn / 1e6 / ((performance.now() - z0) / 1000);

    spawnSync('cat', [big], { stdio: ['ignore', 'ignore', 'ignore'] }); // warm the page cache like the others
    const c0 = performance.now();
    spawnSync('cat', [big], { stdio: ['ignore', 'ignore', 'ignore'] });
    const catMBs = (FUSE_MIB << 20) / 1e6 / ((performance.now() - c0) / 1000);
    console.log(
      `grid: sequential read of ${FUSE_MIB} MiB: FUSE ${fuseMBs.toFixed(0)} MB/s, ZeroMQ direct ${zeroMBs.toFixed(0)} MB/s, cat local ${catMBs.toFixed(0)} MB/s` +
        ` (FUSE/direct ${(fuseMBs / zeroMBs).toFixed(2)}x, FUSE/cat ${(fuseMBs / catMBs).toFixed(3)}x)`,
    );
  } finally {
    master?.close();
    storage?.close();
    if (dev) await stopDev(dev);
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

if (require.main === module) {
  gridBench().catch((e) => {
    console.error(`grid bench failed: ${(e as Error).message}`);
    process.exit(1);
  });
}
