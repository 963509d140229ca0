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

const TASKS = 500;

function outputsPerTask(dataDir: string, jobId: string): number[] {
  const db = new Database(path.join(dataDir, 'jobs.db'), { readonly: true, fileMustExist: true });
  try {
    return (db.prepare('SELECT COUNT(*) AS n FROM outputs WHERE job_uuid = ? GROUP BY task_index ORDER BY task_index').all(jobId) as { n: number }[]).map((r) => r.n);
  } finally {
    db.close();
  }
}

describe('e2e: leader SIGKILL during a 500-task job (grid dev --masters 3)', function () {
  this.timeout(300_000);
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

    // kill the leader once the job is well under way
    const leader = await grid.waitForLeader();
    await waitFor(
      () => {
        try {
          const dir = leader.dataDir;
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
    process.kill(leader.pid, 'SIGKILL');
    const next = await grid.waitForLeader(15_000);
    assert.notEqual(next.name, leader.name, 'a different master leads');

    const code = await done;
    assert.equal(code, 0, out);
    const s = JSON.parse(out.trim().split('\n').pop()!) as { jobId: string; state: string; tasksSucceeded: number };
    assert.equal(s.state, 'succeeded');
    assert.equal(s.tasksSucceeded, TASKS);
    // every surviving master applied the same results, each task once
    await waitFor(() => grid.masterNodes().filter((n) => n.name !== leader.name).every((n) => outputsPerTask(n.dataDir, s.jobId).length === TASKS), 'followers applied everything', 15_000);
    for (const n of grid.masterNodes().filter((x) => x.name !== leader.name)) {
      const per = outputsPerTask(n.dataDir, s.jobId);
      assert.equal(per.length, TASKS, `${n.name} has every task`);
      assert.ok(per.every((x) => x === 1), `${n.name} recorded each task once`);
    }
  });
});
