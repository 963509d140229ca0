/**
 * The cost of CURVE (docs/operations.md, "Security"): the same `grid dev` measured with
 * security on (the default) and off, in the same run. Two figures each: codec-level round
 * trips (job_list_request to the master and its answer, one at a time: encryption plus the
 * sender check on every message) and task throughput (SECURITY_BENCH_TASKS trivial tasks
 * on 4 workers). Target (issue 9): under 10% task-throughput cost.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { JobState, newUuid } from '../src/messages';
import { RpcClient, clientSecurity, silentLogger } from '../src/common';
import { StorageClient } from '../src/storage';
import { startDev, stopDev, submit, waitJob } from './grid';

const TASKS = Number(process.env.GRID_BENCH_SECURITY_TASKS ?? 300);
const ROUND_TRIPS = Number(process.env.GRID_BENCH_SECURITY_ROUND_TRIPS ?? 2000);

interface Figures {
  roundTripsPerSec: number;
  tasksPerSec: number;
}

async function measure(mode: 'curve' | 'off'): Promise<Figures> {
  const before = process.env.GRID_SECURITY;
  process.env.GRID_SECURITY = mode; // dev and its nodes inherit it; the client reads it
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `grid-bench-sec-${mode}-`));
  const log = silentLogger();
  const dev = await startDev(dir);
  const security = clientSecurity(path.join(dir, 'grid'), log);
  const master = new RpcClient({ endpoint: dev.master, nodeUuid: newUuid(), log, security });
  const storage = new StorageClient({ endpoint: dev.storage, nodeUuid: newUuid(), log, security });
  try {
    for (let i = 0; i < 50; i++) await master.request({ type: 'job_list_request', node_uuid: newUuid(), request_uuid: newUuid(), limit: 1 }); // warm up
    const r0 = performance.now();
    for (let i = 0; i < ROUND_TRIPS; i++) await master.request({ type: 'job_list_request', node_uuid: newUuid(), request_uuid: newUuid(), limit: 1 });
    const roundTripsPerSec = ROUND_TRIPS / ((performance.now() - r0) / 1000);
    const prog = await storage.putBuffer(Buffer.from("require('fs').writeFileSync('out.txt', 'ok');\n"));
    const input = await storage.putBuffer(Buffer.from('x\n'));
    const t0 = performance.now();
    const job = await submit(master, prog.fileUuid, Array(TASKS).fill(input.fileUuid), Array.from({ length: TASKS }, (_, i) => `in${i}.txt`));
    const done = await waitJob(master, job, 20);
    if (done.state !== JobState.succeeded) throw new Error(`security bench job ended ${done.state}: ${done.error}`);
    const tasksPerSec = TASKS / ((performance.now() - t0) / 1000);
    return { roundTripsPerSec, tasksPerSec };
  } finally {
    master.close();
    storage.close();
    await stopDev(dev);
    fs.rmSync(dir, { recursive: true, force: true });
    if (before === undefined) delete process.env.GRID_SECURITY;
    else process.env.GRID_SECURITY = before;
  }
}

export async function securityBench(): Promise<void> {
  const off = await measure('off');
  const on = await measure('curve');
  const cost = (a: number, b: number) => `${(((b - a) / b) * 100).toFixed(1)}%`;
  console.log(`security: round trips (job_list to the master, one at a time): CURVE on ${on.roundTripsPerSec.toFixed(0)}/s, off ${off.roundTripsPerSec.toFixed(0)}/s (cost ${cost(on.roundTripsPerSec, off.roundTripsPerSec)})`);
  console.log(`security: ${TASKS} trivial tasks on 4 workers: CURVE on ${on.tasksPerSec.toFixed(1)} tasks/s, off ${off.tasksPerSec.toFixed(1)} tasks/s (cost ${cost(on.tasksPerSec, off.tasksPerSec)}; target under 10%)`);
}

if (require.main === module) {
  securityBench().catch((e) => {
    console.error(`security bench failed: ${(e as Error).message}`);
    process.exit(1);
  });
}
