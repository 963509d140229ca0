// Faults on a real `grid dev` (DESIGN.md "Faults the grid must survive"; docs/operations.md
// "When a node dies"): a worker SIGKILLed mid-task is reported and restarted by dev, its
// task is re-run and the job completes; a SIGKILLed dev takes its nodes down with it.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { EXAMPLES, Grid, adminStatus, pidAlive, startGrid, taskVisibleDir, waitFor } from '../helpers/grid';
import { assertExactlyOnce, localOutputs } from '../helpers/exactly-once';

const DATA = path.join(EXAMPLES, 'wordcount', 'data');

interface TaskJson {
  taskIndex: number;
  state: string;
  attempts: number;
  worker: string | null;
}

describe('e2e: grid dev supervision faults', function () {
  this.timeout(120_000);
  let g: Grid | undefined;
  /** gate files, where sandboxed tasks can see them */
  let gates: string;
  before(() => (gates = taskVisibleDir()));
  after(() => fs.rmSync(gates, { recursive: true, force: true }));
  afterEach(async () => {
    await g?.stop();
    g = undefined;
  });

  it('a worker killed mid-task: dev restarts it, the task runs again, the job completes', async () => {
    g = await startGrid({ workers: 2, slots: 1, prefetch: 0, env: { GRID_DEV_RESTART_DELAY_MS: '200' } });
    const job = path.join(g.tmp, 'gated.js');
    const gate = path.join(gates, 'gate');
    // runs until the test opens the gate (then writes one output per task): caught running on any machine
    fs.writeFileSync(job, `const fs = require('fs'); (function w() { if (fs.existsSync(JSON.parse(process.env.GRID_ARGS)[0])) fs.writeFileSync('done.txt', process.env.GRID_TASK_INDEX); else setTimeout(w, 20); })();\n`);
    const inputs = fs.readdirSync(DATA).map((f) => path.join(DATA, f)).slice(0, 2);
    const sub = await g.run(['submit', job, '--inputs', ...inputs, '--retries', '3', '--args', gate]);
    assert.equal(sub.code, 0, sub.stderr);
    const id = sub.stdout.trim();

    // the worker running a task, from the workers' own admin /status (no CLI per poll)
    let node: ReturnType<Grid['node']> | undefined;
    let victim: { taskIndex: number } | undefined;
    await waitFor(
      async () => {
        for (const n of g!.refreshState().nodes.filter((x) => x.role === 'worker')) {
          const st = (await adminStatus(n.adminPort)) as { running?: { jobUuid: string; taskIndex: number; state: string; pid: number }[] } | undefined;
          const t = st?.running?.find((x) => x.jobUuid === id && x.state === 'running' && x.pid > 0);
          if (t) [node, victim] = [n, t];
        }
        return !!node;
      },
      'a task to run',
      60_000,
    );
    process.kill(node!.pid, 'SIGKILL');

    await waitFor(() => g!.node(node!.name).pid !== node!.pid && g!.node(node!.name).state === 'running', `${node!.name} restarted by dev`, 30_000);
    assert.match(g.devOutput(), new RegExp(`${node!.name} \\(pid ${node!.pid}\\) killed by SIGKILL.*restarting it`));
    fs.writeFileSync(gate, '');

    await waitFor(async () => JSON.parse((await g!.run(['status', id, '--json'])).stdout).state !== 'running', 'the job to end', 60_000, 300);
    const s = JSON.parse((await g.run(['status', id, '--json', '--tasks'])).stdout) as { state: string; tasks: TaskJson[] };
    assert.equal(s.state, 'succeeded', JSON.stringify(s));
    const again = s.tasks.find((t) => t.taskIndex === victim!.taskIndex)!;
    assert.ok(again.attempts >= 2, `the killed task ran again (attempts ${again.attempts})`);
    await assertExactlyOnce(g, id, await localOutputs(job, inputs, { args: [gate] }), { killedWorkers: [node!.name] });
  });

  it('a SIGKILLed dev takes its nodes down (they see the IPC channel close)', async () => {
    g = await startGrid({ workers: 1 });
    const nodes = g.refreshState().nodes;
    g.dev.kill('SIGKILL');
    await waitFor(() => nodes.every((n) => !pidAlive(n.pid)), 'every node to stop', 20_000);
  });
});
