/**
 * Logs (issue 11): one field vocabulary across roles, and `grid dev`'s merged, readable
 * stream of every node's lines while the files keep JSON.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { prettyLogLine } from '../../src/cli/dev/pretty';
import { EXAMPLES, Grid, startGrid } from '../helpers/grid';

/** Keys the vocabulary replaced: a line carrying one of them is a regression. */
const RETIRED = ['jobUuid', 'job_uuid', 'fileUuid', 'file_uuid', 'workerUuid', 'worker_uuid', 'task_index'];

describe('logs: prettyLogLine', () => {
  const line = JSON.stringify({ level: 30, time: Date.UTC(2026, 0, 1, 18, 4, 5, 123), pid: 1, role: 'worker', nodeId: 'n', msg: 'task finished', jobId: '3f2a9c1e-0000-4000-8000-000000000000', taskIndex: 3, error: 'a b' });

  it('one line: time, level, node, message, then the fields (ids shortened, spaced values quoted)', () => {
    assert.equal(prettyLogLine('worker-1', line, { color: false, minLevel: 30 }), '18:04:05.123 INFO  worker-1   task finished  jobId=3f2a9c1e taskIndex=3 error="a b"');
  });
  it('colors on a terminal; filters below the level; leaves non-log lines to the caller', () => {
    assert.match(prettyLogLine('worker-1', line, { color: true, minLevel: 30 })!, /\x1b\[32mINFO \x1b\[0m/);
    assert.equal(prettyLogLine('worker-1', line, { color: false, minLevel: 40 }), '');
    assert.equal(prettyLogLine('worker-1', 'plain text', { color: false, minLevel: 30 }), undefined);
    assert.equal(prettyLogLine('worker-1', '{"not":"pino"}', { color: false, minLevel: 30 }), undefined);
  });
});

describe('logs: on a real grid dev', function () {
  this.timeout(180_000);
  let g: Grid;
  before(async () => {
    g = await startGrid({ workers: 2 });
    const inputs = fs.readdirSync(path.join(EXAMPLES, 'wordcount', 'data')).map((f) => path.join(EXAMPLES, 'wordcount', 'data', f));
    const r = await g.run(['submit', path.join(EXAMPLES, 'wordcount', 'job.js'), '--inputs', ...inputs, '--wait']);
    assert.equal(r.code, 0, r.stderr);
  });
  after(async () => {
    await g?.stop();
  });

  it("dev's terminal shows every node's lines merged and readable, not raw JSON", () => {
    const out = g.devOutput();
    for (const re of [/INFO  storage +file stored  fileId=[0-9a-f]{8} /, /INFO  master +job:accepted  jobId=[0-9a-f]{8} tasks=\d+/, /INFO  worker-\d +task finished  jobId=[0-9a-f]{8} taskIndex=\d/, /INFO  balancer +task:settled  (pairRole=primary )?event=task:settled .*jobId=[0-9a-f]{8}/]) {
      assert.match(out, re);
    }
    assert.doesNotMatch(out, /^\{"level":/m, 'no raw JSON line in the terminal');
    assert.doesNotMatch(out, /\x1b\[/, 'no colors when stdout is not a terminal');
  });

  it('the files keep JSON, every line with role and nodeId, and one vocabulary across roles', () => {
    const roles = new Set<string>();
    let taskLines = 0;
    for (const n of g.state.nodes) {
      const dir = path.join(n.dataDir, 'logs');
      for (const f of fs.readdirSync(dir)) {
        for (const text of fs.readFileSync(path.join(dir, f), 'utf8').split('\n').filter((l) => l !== '')) {
          const j = JSON.parse(text) as Record<string, unknown>;
          assert.equal(typeof j.role, 'string', text);
          assert.equal(typeof j.nodeId, 'string', text);
          roles.add(j.role as string);
          for (const k of RETIRED) assert.ok(!(k in j), `${n.name}: retired field ${k} in ${text}`);
          if ('taskIndex' in j) {
            taskLines++;
            assert.match(String(j.jobId), /^[0-9a-f-]{36}$/, `a task line names its job as jobId: ${text}`);
          }
        }
      }
    }
    assert.deepEqual([...roles].sort(), ['balancer', 'master', 'storage', 'worker']);
    assert.ok(taskLines > 0);
  });
});
