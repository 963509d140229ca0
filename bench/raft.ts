/**
 * Replicated masters on real processes (issue "Phase 2"), figures from this run:
 *  - failover: leader SIGKILL to the first submit accepted by the new leader, median of
 *    GRID_BENCH_KILLS (default 10) kills, default settings;
 *  - replicated submit throughput (jobs/s, 32 in flight) and commit latency p50/p99
 *    (sequential submits) for 3 masters beside 1 master.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { GridError, MasterCursor, RemoteError, RpcClient, leaderHint, silentLogger } from '../src/common';
import { newUuid } from '../src/messages';
import { Cluster, submitMsg as submitN } from '../test/helpers/masters';
import { testSecurity } from '../test/helpers/security';

const submitMsg = () => submitN(2);

const KILLS = Number(process.env.GRID_BENCH_KILLS ?? 10);
const SUBMITS = Number(process.env.GRID_BENCH_SUBMITS ?? 400);


const pct = (xs: number[], p: number): number => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))]!;

async function withCluster<T>(n: number, fn: (c: Cluster) => Promise<T>): Promise<T> {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'grid-bench-raft-'));
  const cfg = path.join(root, 'master.json');
  fs.writeFileSync(cfg, '{}');
  const c = new Cluster(root, cfg);
  try {
    await c.init(n);
    await Promise.all(c.masters.map((_, i) => c.start(i)));
    await c.leader(15_000);
    return await fn(c);
  } finally {
    await c.stopAll();
    fs.rmSync(root, { recursive: true, force: true });
  }
}

/** Submit throughput and latency against the leader of a group of n. */
async function submitFigures(n: number): Promise<{ jobsPerSec: number; p50: number; p99: number }> {
  return withCluster(n, async (c) => {
    const leader = c.masters[await c.leader()]!.endpoint;
    const client = new RpcClient({ endpoint: leader, nodeUuid: newUuid(), log: c.log, security: testSecurity() });
    try {
      const lat: number[] = [];
      for (let i = 0; i < SUBMITS / 4; i++) {
        const t0 = performance.now();
        await client.request(submitMsg());
        lat.push(performance.now() - t0);
      }
      const t0 = performance.now();
      let next = 0;
      await Promise.all(
        Array.from({ length: 32 }, async () => {
          while (next++ < SUBMITS) await client.request(submitMsg());
        }),
      );
      return { jobsPerSec: SUBMITS / ((performance.now() - t0) / 1000), p50: pct(lat, 50), p99: pct(lat, 99) };
    } finally {
      client.close();
    }
  });
}

/** Time from SIGKILL of the leader to the first submit the new leader accepts. */
async function failovers(): Promise<number[]> {
  return withCluster(3, async (c) => {
    const times: number[] = [];
    for (let k = 0; k < KILLS; k++) {
      const old = await c.leader(15_000);
      const cursor = new MasterCursor(c.masters.filter((_, i) => i !== old).map((m) => m.endpoint));
      const t0 = performance.now();
      await c.kill(old);
      let ep = cursor.current;
      for (;;) {
        const cl = new RpcClient({ endpoint: ep, nodeUuid: newUuid(), log: c.log, security: testSecurity() });
        try {
          await cl.request(submitMsg(), { timeoutMs: 100 });
          break;
        } catch (e) {
          if (e instanceof RemoteError && e.code === 'NOT_LEADER') ep = cursor.redirect(leaderHint(e.message));
          else if (!(e instanceof GridError)) throw e;
          else ep = cursor.next();
          await new Promise((r) => setTimeout(r, 5));
        } finally {
          cl.close();
        }
        if (performance.now() - t0 > 30_000) throw new Error('no new leader accepted a submit within 30 s');
      }
      times.push(performance.now() - t0);
      await c.start(old); // back to three before the next kill
      await new Promise((r) => setTimeout(r, 300));
    }
    return times;
  });
}

export async function raftBench(): Promise<void> {
  const one = await submitFigures(1);
  const three = await submitFigures(3);
  console.log(`raft: submit throughput (32 in flight): 1 master ${one.jobsPerSec.toFixed(0)} jobs/s, 3 masters ${three.jobsPerSec.toFixed(0)} jobs/s (3/1 = ${(three.jobsPerSec / one.jobsPerSec).toFixed(2)}x)`);
  console.log(`raft: commit latency (sequential submits): 1 master p50 ${one.p50.toFixed(1)} ms p99 ${one.p99.toFixed(1)} ms; 3 masters p50 ${three.p50.toFixed(1)} ms p99 ${three.p99.toFixed(1)} ms`);
  const f = await failovers();
  console.log(`raft: failover (leader SIGKILL to first accepted submit, ${f.length} kills): median ${pct(f, 50).toFixed(0)} ms, max ${Math.max(...f).toFixed(0)} ms (target < 1000 ms)`);
}

