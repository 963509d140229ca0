// The web dashboard (docs/operations.md "Dashboard") in a real headless Chromium
// (Debian's chromium, driven by playwright-core) on a real `grid dev`: a job's life as the
// page shows it (submitted, running on a worker, done with durations and log tails), the
// nodes of the grid, and a follower master serving the page from its replica.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { BrowserContext, Locator, Page, chromium } from 'playwright-core';
import { Grid, makeTmpDir, startGrid, taskVisibleDir, waitFor } from '../helpers/grid';
import { httpGet } from '../common/http-get';

export const CHROMIUM = '/usr/bin/chromium';
/** How long a page may take to show a state the grid is already in (it polls every 250 ms here). */
const SHOWN_WITHIN_MS = 30_000;

/** A job whose tasks wait until the file named by their first argument exists. */
const GATED_JOB = `
const fs = require('node:fs');
const [gate] = JSON.parse(process.env.GRID_ARGS);
const me = process.env.GRID_TASK_INDEX;
console.log('task ' + me + ' waiting for the gate');
const t = setInterval(() => {
  if (!fs.existsSync(gate)) return;
  clearInterval(t);
  fs.writeFileSync('out.txt', 'task ' + me + '\\n');
  console.log('task ' + me + ' done');
}, 50);
`;

async function launch(tmp: string): Promise<BrowserContext> {
  assert.ok(fs.existsSync(CHROMIUM), `${CHROMIUM} is missing: the dashboard test needs Debian's chromium (apt-get install -y chromium); it is never skipped`);
  return chromium.launchPersistentContext(path.join(tmp, 'chromium-profile'), {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    viewport: { width: 1300, height: 1000 },
  });
}

/** Waits until the locator's text matches `re` (the page redraws on every poll). */
async function shows(l: Locator, re: RegExp, what: string): Promise<void> {
  let last = '';
  await waitFor(
    async () => {
      last = ((await l.count()) > 0 ? await l.first().textContent() : '') ?? '';
      return re.test(last);
    },
    `${what} (last seen: ${JSON.stringify(last)})`,
    SHOWN_WITHIN_MS,
    100,
  );
}

function watchErrors(page: Page): string[] {
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(`console error: ${m.text()}`);
  });
  return errors;
}

describe('e2e: dashboard in headless Chromium', function () {
  this.timeout(240_000);
  let g: Grid | undefined;
  let ctx: BrowserContext | undefined;
  let tmp: string;
  /** the gate file, where sandboxed tasks can see it */
  let gates: string;
  before(() => {
    tmp = makeTmpDir('grid-dashboard-');
    gates = taskVisibleDir();
  });
  afterEach(async () => {
    await ctx?.close();
    ctx = undefined;
    await g?.stop();
    g = undefined;
  });
  after(() => {
    fs.rmSync(tmp, { recursive: true, force: true });
    fs.rmSync(gates, { recursive: true, force: true });
  });

  it("follows a job's life: submitted, running on a worker, done with durations and log tails", async () => {
    g = await startGrid({ workers: 1, slots: 1 });
    const master = g.node('master');
    const url = `http://127.0.0.1:${master.adminPort}/dashboard`;
    assert.match(g.devOutput(), new RegExp(`^  dashboard ${url.replace(/[.]/g, '\\.')} `, 'm'), "grid dev's banner prints the dashboard link");

    ctx = await launch(tmp);
    const page = await ctx.newPage();
    const errors = watchErrors(page);
    await page.goto(`${url}?refresh=250`);
    await shows(page.locator('#served-by'), /leader · term \d+/, 'the master that serves the page, leading');
    await shows(page.locator('#jobs-empty:not([hidden])'), /No jobs yet/, 'an empty job list says how to submit');
    // every node of the grid, from their admin /status
    await shows(page.locator('#masters tbody tr td.raft'), /leader/, 'the master, leading');
    await shows(page.locator('#balancers tbody tr'), /balancer.*connected/, 'the balancer, connected to the master');
    await shows(page.locator('#storage tbody tr'), /^storage/, 'the storage node');
    await shows(page.locator('#workers tbody tr'), /^worker-0.*idle/, 'the worker, idle');

    const job = path.join(tmp, 'gated.js');
    fs.writeFileSync(job, GATED_JOB);
    const inputs = [0, 1, 2].map((i) => {
      const f = path.join(tmp, `in${i}.txt`);
      fs.writeFileSync(f, `input ${i}\n`);
      return f;
    });
    const gate = path.join(gates, 'gate');
    const sub = await g.run(['submit', job, '--inputs', ...inputs, '--args', gate]);
    assert.equal(sub.code, 0, sub.stderr);
    const jobId = sub.stdout.trim().split('\n')[0]!.trim();
    assert.match(jobId, /^[0-9a-f-]{36}$/);

    // submitted: the job is listed, running, nothing done yet
    const row = page.locator(`#jobs tbody tr[data-job-id="${jobId}"]`);
    await shows(row.locator('td.state'), /^running$/, 'the new job, running');
    await shows(row.locator('td.progress'), /^0\/3 done/, 'no task done yet');
    await shows(row.locator('td.age'), /^\d+ s$/, 'its age');
    await row.click();
    await shows(page.locator('#job-title'), new RegExp(jobId), "the job's own view");
    await waitFor(async () => (await page.locator('#tasks tbody tr').count()) === 3, "the job's three tasks", SHOWN_WITHIN_MS);

    // running: one slot, so task 0 runs on worker-0 and the others wait
    const task = (i: number): Locator => page.locator(`#tasks tbody tr[data-task-index="${i}"]`);
    await shows(task(0).locator('td.state'), /^running$/, 'task 0 running');
    await shows(task(0).locator('td.worker'), /^worker-0$/, 'task 0 on worker-0');
    await shows(task(0).locator('td.duration'), /so far$/, 'how long task 0 has run');
    await shows(task(0).locator('td.attempts'), /^1$/, 'task 0 in its first attempt');
    assert.equal(await task(2).locator('td.state').textContent(), 'pending');
    await shows(page.locator('#workers tbody tr td.mono'), new RegExp(`${jobId.slice(0, 8)}#0`), "worker-0's running task");
    await shows(page.locator('#summary [data-tasks="running"]'), /running\s*1$/, 'one task running in the summary');

    // done: open the gate; every task succeeds
    fs.writeFileSync(gate, '');
    await shows(row.locator('td.state'), /^succeeded$/, 'the job, succeeded');
    await shows(row.locator('td.progress'), /^3\/3 done/, 'every task done');
    await shows(row.locator('td.took'), /\d/, 'how long the job took');
    for (const i of [0, 1, 2]) {
      await shows(task(i).locator('td.state'), /^succeeded$/, `task ${i} succeeded`);
      assert.equal(await task(i).locator('td.attempts').textContent(), '1');
      assert.equal(await task(i).locator('td.worker').textContent(), 'worker-0');
      assert.match((await task(i).locator('td.duration').textContent()) ?? '', /^(\d+ ms|\d+ s|\d+ min \d+ s)$/, `task ${i} has a duration`);
      await shows(task(i).locator('td.log pre'), new RegExp(`task ${i} waiting for the gate\\s+task ${i} done`), `task ${i}'s log tail`);
    }
    await shows(page.locator('#job-info'), /succeeded.*3\/3 tasks succeeded.*took/, "the job's summary line");
    await shows(page.locator('#summary [data-jobs="succeeded"]'), /succeeded\s*1$/, 'one job succeeded in the summary');
    await shows(page.locator('#workers tbody tr'), /^worker-0.*idle.*3 \/ 0/, 'worker-0 idle again, 3 tasks ok');
    if (process.env.GRID_DASHBOARD_SCREENSHOT) await page.screenshot({ path: process.env.GRID_DASHBOARD_SCREENSHOT, fullPage: true });
    assert.deepEqual(errors, [], 'the page ran without errors');
  });

  it('a follower master serves the page from its replica and names the leader', async () => {
    g = await startGrid({ workers: 1, masters: 3 });
    const leader = await g.waitForLeader();
    const follower = g.masterNodes().find((n) => n.name !== leader.name)!;
    const r = await g.run(['submit', path.join(__dirname, '..', '..', '..', 'examples', 'wordcount', 'job.js'), '--inputs', path.join(__dirname, '..', '..', '..', 'examples', 'wordcount', 'data', 'alice.txt'), '--wait']);
    assert.equal(r.code, 0, r.stderr);
    const jobId = r.stdout.trim().split('\n')[0]!.trim();

    ctx = await launch(tmp);
    const page = await ctx.newPage();
    const errors = watchErrors(page);
    await page.goto(`http://127.0.0.1:${follower.adminPort}/dashboard?refresh=250#job=${jobId}`);
    await shows(page.locator('#served-by'), new RegExp(`follower \\(replicated state up to index \\d+; leader: ${leader.endpoints.clients ?? ''}`), 'a follower, naming the leader');
    await shows(page.locator(`#jobs tbody tr[data-job-id="${jobId}"] td.state`), /^succeeded$/, 'the job, from the replica');
    await shows(page.locator('#tasks tbody tr[data-task-index="0"] td.state'), /^succeeded$/, 'its task, from the replica');
    await waitFor(async () => (await page.locator('#masters tbody tr').count()) === 3, 'all three masters', SHOWN_WITHIN_MS);
    await shows(page.locator(`#masters tbody tr[data-endpoint="${leader.endpoints.clients}"] td.raft`), /^leader$/, 'the leader marked');
    assert.deepEqual(errors, []);

    // the JSON the page reads, asked directly: a bad job id is a 400 that says why
    const bad = await httpGet(follower.adminPort, '/dashboard/api/jobs/not-a-job');
    assert.equal(bad.status, 400);
    assert.match(bad.body, /not a job id/);
    const badState = await httpGet(follower.adminPort, '/dashboard/api/overview?state=bogus');
    assert.equal(badState.status, 400);
    assert.match(badState.body, /not a job state; use one of running, succeeded, failed, cancelled/);
  });
});
