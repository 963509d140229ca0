// The leader of three masters SIGKILLed in the middle of a 500-task job on a real
// `grid dev --masters 3` (docs/raft.md, "The master's shell"; Raft paper §5.2, §5.4): a new
// leader takes over, the balancer follows it, the client's --wait follows it, the job
// completes, and every task's result is recorded exactly once on every surviving master.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { GRID_BIN, Grid, makeTmpDir, startGrid, waitFor } from '../helpers/grid';
import { assertExactlyOnce, localOutputs } from '../helpers/exactly-once';

const TASKS = 500;

describe('e2e: leader SIGKILL during a 500-task job (grid dev --masters 3)', function () {
  this.timeout(420_000);
  let g: Grid | undefined;
  let work: string;
  before(async () => {
    work = makeTmpDir('grid-e2e-raft-');
    g = await startGrid({ masters: 3, workers: 4, slots: 2 });
  });
  after(async () => {
    await g?.stop();
    fs.rmSync(work, { recursive: true, force: true });
  });

  it('completes the job under a new leader, each task recorded once', async () => {
    const grid = g!;
    const inputs = Array.from({ length: TASKS }, (_, i) => {
      const f = path.join(work, `in${i}.txt`);
      fs.writeFileSync(f, `${i}\n`);
      return f;
    });
    const job = path.join(work, 'job.js');
    fs.writeFileSync(job, "require('fs').writeFileSync('out.txt', require('fs').readFileSync(process.argv[2]));\n");
    const proc = spawn(process.execPath, [GRID_BIN, 'submit', job, '--inputs', ...inputs, '--wait', '--json'], {
      env: { ...process.env, GRID_MASTER: grid.masters.join(','), GRID_STORAGE: grid.storage },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    proc.stdout!.on('data', (b: Buffer) => (out += b.toString()));
    proc.stderr!.on('data', (b: Buffer) => (out += b.toString()));
    const done = new Promise<number | null>((r) => proc.once('exit', (c) => r(c)));
    // the expected outputs, computed locally while the grid runs the job
    const t0 = Date.now();
    const expectedP = localOutputs(job, inputs);
    void expectedP.then(() => process.env.GRID_TEST_TIMING && console.log(`local runs ${Date.now() - t0} ms`)).catch(() => undefined);

    // kill the leader once the job is well under way (progress read on any master)
    const watched = (await grid.waitForLeader()).dataDir;
    await waitFor(
      () => {
        try {
          const dir = watched;
          const db = new Database(path.join(dir, 'jobs.db'), { readonly: true, fileMustExist: true });
          try {
            const n = (db.prepare("SELECT COUNT(*) AS n FROM tasks WHERE state >= 2").get() as { n: number }).n;
            return n >= 50;
          } finally {
            db.close();
          }
        } catch {
          return false;
        }
      },
      '50 tasks settled',
      120_000,
      100,
    );
    // the leader read again just before the kill (leadership may have moved meanwhile)
    const leader = await grid.waitForLeader();
    process.kill(leader.pid, 'SIGKILL');
    const next = await grid.waitForLeader(15_000);
    assert.notEqual(next.name, leader.name, 'a different master leads');

    const tKill = Date.now();
    const code = await done;
    if (process.env.GRID_TEST_TIMING) console.log(`job done ${Date.now() - tKill} ms after the kill`);
    assert.equal(code, 0, out);
    const s = JSON.parse(out.trim().split('\n').pop()!) as { jobId: string; state: string; tasksSucceeded: number };
    assert.equal(s.state, 'succeeded');
    assert.equal(s.tasksSucceeded, TASKS);
    // every task ran to success once (workers' journals), was accepted once on every
    // surviving master (the killed leader's stale jobs.db may lag, but never counts 2), and
    // its output is the input, byte for byte
    await assertExactlyOnce(grid, s.jobId, await expectedP, { staleMasters: [leader.name] });
  });
});
