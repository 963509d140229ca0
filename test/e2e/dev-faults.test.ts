// Faults on a real `grid dev` (DESIGN.md "Faults the grid must survive"; docs/operations.md
// "When a node dies"): a worker SIGKILLed mid-task is reported and restarted by dev, its
// task is re-run and the job completes; a SIGKILLed dev takes its nodes down with it.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { EXAMPLES, Grid, pidAlive, startGrid, waitFor } from '../helpers/grid';

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
  afterEach(async () => {
    await g?.stop();
    g = undefined;
  });

  it('a worker killed mid-task: dev restarts it, the task runs again, the job completes', async () => {
    g = await startGrid({ workers: 2, slots: 1, prefetch: 0, env: { GRID_DEV_RESTART_DELAY_MS: '200' } });
    const job = path.join(g.tmp, 'slow.js');
    // long enough to be caught running; writes one output per task
    fs.writeFileSync(job, "setTimeout(() => require('fs').writeFileSync('done.txt', process.env.GRID_TASK_INDEX), 3000);\n");
    const inputs = fs.readdirSync(DATA).map((f) => path.join(DATA, f)).slice(0, 2);
    const sub = await g.run(['submit', job, '--inputs', ...inputs, '--retries', '3']);
    assert.equal(sub.code, 0, sub.stderr);
    const id = sub.stdout.trim();

    let victim: TaskJson | undefined;
    await waitFor(async () => {
      const s = JSON.parse((await g!.run(['status', id, '--json', '--tasks'])).stdout) as { tasks: TaskJson[] };
      victim = s.tasks.find((t) => t.state === 'running' && t.worker);
      return !!victim;
    }, 'a task to run', 30_000, 200);
    const node = g.refreshState().nodes.find((n) => n.nodeId === victim!.worker);
    assert.ok(node, `the running task's worker ${victim!.worker} is one of dev's nodes`);
    process.kill(node.pid, 'SIGKILL');

    await waitFor(() => g!.node(node.name).pid !== node.pid && g!.node(node.name).state === 'running', `${node.name} restarted by dev`, 30_000);
    assert.match(g.devOutput(), new RegExp(`${node.name} \\(pid ${node.pid}\\) killed by SIGKILL.*restarting it`));

    await waitFor(async () => JSON.parse((await g!.run(['status', id, '--json'])).stdout).state !== 'running', 'the job to end', 60_000, 300);
    const s = JSON.parse((await g.run(['status', id, '--json', '--tasks'])).stdout) as { state: string; tasks: TaskJson[] };
    assert.equal(s.state, 'succeeded', JSON.stringify(s));
    const again = s.tasks.find((t) => t.taskIndex === victim!.taskIndex)!;
    assert.ok(again.attempts >= 2, `the killed task ran again (attempts ${again.attempts})`);
    const out = path.join(g.tmp, 'out');
    assert.equal((await g.run(['results', id, '--out', out])).code, 0);
    for (const t of s.tasks) assert.equal(fs.readFileSync(path.join(out, String(t.taskIndex), 'done.txt'), 'utf8'), String(t.taskIndex));
  });

  it('a SIGKILLed dev takes its nodes down (they see the IPC channel close)', async () => {
    g = await startGrid({ workers: 1 });
    const nodes = g.refreshState().nodes;
    g.dev.kill('SIGKILL');
    await waitFor(() => nodes.every((n) => !pidAlive(n.pid)), 'every node to stop', 20_000);
  });
});
