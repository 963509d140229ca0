// --notify across a leader change (docs/operations.md, "Notifications"; src/master/notify.ts)
// on a real `grid dev --masters 3` with a local HTTP receiver. The leader POSTs the final
// status; the receiver takes the body but holds the answer, so the leader never learns of the
// delivery; the leader is SIGKILLed. The new leader sends the notification again (at least
// once): the receiver sees the same job twice, with the same final status, and can dedupe by
// jobId (finishedAtMs is the same in every repeat; attempt and sentBy differ).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import Database from 'better-sqlite3';
import { EXAMPLES, Grid, adminStatus, makeTmpDir, startGrid, waitFor } from '../helpers/grid';

/** The notifications row of a job in a master's jobs.db (read-only, while it runs). */
function notificationState(dataDir: string, jobId: string): { state: number; attempts: number; error: string } | undefined {
  let db: Database.Database | undefined;
  try {
    db = new Database(path.join(dataDir, 'jobs.db'), { readonly: true, fileMustExist: true });
    return db.prepare('SELECT state, attempts, error FROM notifications WHERE job_uuid = ?').get(jobId) as { state: number; attempts: number; error: string } | undefined;
  } catch {
    return undefined; // not yet created, or busy: asked again
  } finally {
    db?.close();
  }
}

interface Post {
  body: Record<string, unknown>;
  answered: number | null;
}

describe('e2e: --notify survives a leader SIGKILL (grid dev --masters 3)', function () {
  this.timeout(240_000);
  let g: Grid | undefined;
  let tmp: string;
  let server: http.Server | undefined;
  let url = '';
  const posts: Post[] = [];
  /** 'hold': take the body, never answer (the sender cannot know it arrived); 'ok': answer 200 */
  let mode: 'hold' | 'ok' = 'hold';
  const held: http.ServerResponse[] = [];

  before(async () => {
    tmp = makeTmpDir('grid-e2e-notify-');
    server = http.createServer((req, res) => {
      let text = '';
      req.on('data', (b: Buffer) => (text += b.toString()));
      req.on('end', () => {
        const p: Post = { body: JSON.parse(text) as Record<string, unknown>, answered: null };
        posts.push(p);
        if (mode === 'hold') {
          held.push(res);
          res.on('error', () => undefined); // its sender is killed while it waits
          return;
        }
        p.answered = 200;
        res.writeHead(200).end();
      });
    });
    await new Promise<void>((r) => server!.listen(0, '127.0.0.1', () => r()));
    url = `http://127.0.0.1:${(server.address() as { port: number }).port}/hook`;
    g = await startGrid({ masters: 3, workers: 1 });
  });
  after(async () => {
    await g?.stop();
    for (const r of held) r.destroy();
    server?.closeAllConnections();
    await new Promise((r) => server?.close(r));
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('the new leader sends it again; the receiver gets the same final status and dedupes by jobId', async () => {
    const grid = g!;
    const input = path.join(EXAMPLES, 'wordcount', 'data', fs.readdirSync(path.join(EXAMPLES, 'wordcount', 'data'))[0]!);
    const r = await grid.run(['submit', path.join(EXAMPLES, 'wordcount', 'job.js'), '--inputs', input, '--notify', url]);
    assert.equal(r.code, 0, r.stderr);
    const jobId = r.stdout.trim();

    // the job ends, the leader POSTs; the receiver holds the answer
    await waitFor(() => posts.length > 0, 'the first POST', 120_000);
    const first = posts[0]!;
    assert.equal(first.body.jobId, jobId);
    assert.equal(first.body.attempt, 1);
    const leader = await grid.waitForLeader();
    const leaderId = ((await adminStatus(leader.adminPort)) as { nodeId: string }).nodeId;
    assert.equal(first.body.sentBy, leaderId, 'the leader sends notifications');

    mode = 'ok';
    process.kill(leader.pid, 'SIGKILL');
    const next = await grid.waitForLeader(30_000);
    assert.notEqual(next.name, leader.name, 'another master leads');
    const nextId = ((await adminStatus(next.adminPort)) as { nodeId: string }).nodeId;

    await waitFor(() => posts.some((p) => p.answered === 200), 'a POST taken after the leader change', 60_000);
    const taken = posts.find((p) => p.answered === 200)!;
    assert.equal(taken.body.sentBy, nextId, 'sent by the new leader');
    assert.equal(taken.body.attempt, 1, 'a new leader counts attempts from 1');
    // a repeat of the same notification: everything but attempt and sentBy is the same
    const strip = (b: Record<string, unknown>) => ({ ...b, attempt: undefined, sentBy: undefined });
    assert.deepEqual(strip(taken.body), strip(first.body));
    assert.equal(taken.body.state, 'succeeded');
    assert.equal(typeof taken.body.finishedAtMs, 'number');
    const byJob = new Map(posts.map((p) => [p.body.jobId, p]));
    assert.equal(byJob.size, 1, 'deduped by jobId, the receiver has one notification');

    // the delivery is committed: no master owes it any more, so no third POST comes
    await waitFor(async () => ((await adminStatus(next.adminPort)) as { counters: { notifyDelivered: number } }).counters.notifyDelivered === 1, 'the delivery recorded by the new leader');
    // replicated: every surviving master has it recorded as delivered (state 1), so no later
    // leader owes it (a third POST would need a leader change before this commit)
    const survivors = grid.masterNodes().filter((n) => n.name !== leader.name);
    assert.equal(survivors.length, 2);
    await waitFor(() => survivors.every((n) => notificationState(n.dataDir, jobId)?.state === 1), 'the delivery replicated to both surviving masters');
    assert.deepEqual(notificationState(next.dataDir, jobId), { state: 1, attempts: 1, error: '' });
  });
});
