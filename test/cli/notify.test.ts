/**
 * Notifications (issue 11): `grid submit --notify URL` (the master leader POSTs the final
 * status, retried with backoff; src/master/notify.ts) and `--notify-cmd CMD` on the client
 * side of `--wait`. Checked against a local HTTP server on a real grid dev.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { NotifyPlanner, checkNotifyUrl } from '../../src/master/notify';
import { EXAMPLES, Grid, adminStatus, makeTmpDir, runGrid, startGrid, waitFor } from '../helpers/grid';
import { oneLineError } from './oneline';

describe('notify: NotifyPlanner (pure)', () => {
  const lim = { notifyMaxAttempts: 3, notifyBackoffBaseMs: 1000, notifyBackoffMaxMs: 1500 };

  it('sends each owed job once at a time, backs off exponentially (capped), gives up after the last attempt', () => {
    const p = new NotifyPlanner(lim);
    assert.deepEqual(p.due(['a', 'b'], 0), ['a', 'b']);
    assert.deepEqual(p.due(['a', 'b'], 10), [], 'in flight: not sent twice');
    assert.equal(p.attempt('a'), 1);
    assert.deepEqual(p.failed('a', 100), { action: 'retry', atMs: 1100, attempts: 1 });
    p.done('b');
    assert.deepEqual(p.due(['a'], 1099), [], 'not before its backoff');
    assert.deepEqual(p.due(['a'], 1100), ['a']);
    assert.deepEqual(p.failed('a', 1200), { action: 'retry', atMs: 2700, attempts: 2 }, 'doubled, capped at 1500');
    assert.deepEqual(p.due(['a'], 2700), ['a']);
    assert.deepEqual(p.failed('a', 2800), { action: 'give-up', attempts: 3 });
    assert.equal(p.size, 0);
  });

  it('a new leader term starts afresh (reset)', () => {
    const p = new NotifyPlanner(lim);
    p.due(['a'], 0);
    p.failed('a', 0);
    p.reset();
    assert.deepEqual(p.due(['a'], 1), ['a']);
    assert.equal(p.attempt('a'), 1);
  });

  it('takes http and https URLs only', () => {
    assert.equal(checkNotifyUrl('http://127.0.0.1:9/x'), null);
    assert.equal(checkNotifyUrl('https://example.org/hook'), null);
    assert.match(checkNotifyUrl('ftp://x')!, /not an http:\/\/ or https:\/\/ URL/);
    assert.match(checkNotifyUrl('nope')!, /is not a URL/);
  });
});

describe('notify: --notify and --notify-cmd on a real grid dev', function () {
  this.timeout(180_000);
  let g: Grid;
  let tmp: string;
  let server: http.Server;
  let url = '';
  const posts: { status: number; body: Record<string, unknown>; contentType: string }[] = [];
  const inputs = fs.readdirSync(path.join(EXAMPLES, 'wordcount', 'data')).map((f) => path.join(EXAMPLES, 'wordcount', 'data', f));

  before(async () => {
    tmp = makeTmpDir();
    // the first two POSTs fail (500), the third is taken
    server = http.createServer((req, res) => {
      let text = '';
      req.on('data', (b: Buffer) => (text += b.toString()));
      req.on('end', () => {
        const status = posts.length < 2 ? 500 : 200;
        posts.push({ status, body: JSON.parse(text) as Record<string, unknown>, contentType: String(req.headers['content-type']) });
        res.writeHead(status).end();
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    url = `http://127.0.0.1:${(server.address() as { port: number }).port}/hook`;
    g = await startGrid({ workers: 2 });
  });
  after(async () => {
    await g?.stop();
    server?.close();
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('the master POSTs the final status as JSON, retrying after failures until one is taken; --notify-cmd gets it on stdin', async () => {
    const got = path.join(tmp, 'notify-cmd.json');
    const r = await g.run(['submit', path.join(EXAMPLES, 'wordcount', 'job.js'), '--inputs', ...inputs, '--wait', '--notify', url, '--notify-cmd', `cat > ${got}; echo "$GRID_JOB_ID $GRID_JOB_STATE" >> ${got}.env`]);
    assert.equal(r.code, 0, r.stderr);
    const jobId = r.stdout.split('\n')[0]!.trim();
    // client side: the command ran once the job ended, with the status on stdin
    const viaCmd = JSON.parse(fs.readFileSync(got, 'utf8'));
    assert.equal(viaCmd.jobId, jobId);
    assert.equal(viaCmd.state, 'succeeded');
    assert.equal(fs.readFileSync(`${got}.env`, 'utf8'), `${jobId} succeeded\n`);
    // master side: two failures, then the delivery
    await waitFor(() => posts.some((p) => p.status === 200), 'a POST taken', 60_000);
    assert.equal(posts.length, 3);
    assert.deepEqual(posts.map((p) => p.body.attempt), [1, 2, 3]);
    for (const p of posts) {
      assert.equal(p.contentType, 'application/json');
      assert.equal(p.body.jobId, jobId);
      assert.equal(p.body.state, 'succeeded');
      assert.equal(p.body.taskCount, inputs.length);
      assert.equal(p.body.tasksSucceeded, inputs.length);
      assert.equal(p.body.tasksCancelled, 0);
    }
    const master = g.state.nodes.find((n) => n.role === 'master')!;
    await waitFor(async () => ((await adminStatus(master.adminPort)) as { counters: { notifyDelivered: number } }).counters.notifyDelivered === 1, 'delivery recorded');
    const st = (await adminStatus(master.adminPort)) as { counters: { notifyFailedAttempts: number } };
    assert.equal(st.counters.notifyFailedAttempts, 2);
  });

  it('a bad --notify URL, or --notify-cmd without --wait, is refused before anything is uploaded', async () => {
    const job = path.join(EXAMPLES, 'wordcount', 'job.js');
    oneLineError(await runGrid(['submit', job, '--inputs', job, '--notify', 'ftp://example.org/x']), /BAD_REQUEST: --notify "ftp:\/\/example\.org\/x" is not an http:\/\/ or https:\/\/ URL/);
    oneLineError(await runGrid(['submit', job, '--inputs', job, '--notify-cmd', 'true']), /BAD_REQUEST: --notify-cmd runs when `submit --wait` sees the job end/);
  });
});
