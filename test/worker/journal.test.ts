// The worker's execution journal (docs/worker.md "Execution journal") on a real SQLite file:
// a run is recorded when it starts and completed when it ends, a run cut off by a crash stays
// open, the file survives a reopen (a restarted worker), and it keeps only the newest rows.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ExecutionJournal, readExecutions } from '../../src/worker/journal';

describe('worker execution journal', () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'grid-journal-'));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  const JOB = '11111111-2222-4333-8444-555555555555';

  it('records start and end; a run the worker did not see end stays open across a reopen', () => {
    const j = new ExecutionJournal(dir);
    const a = j.started(JOB, 0, 0, 101, 1000);
    j.ended(a, 0, 'ok', 1500);
    j.started(JOB, 1, 0, 102, 1100); // the worker "dies" before this one ends
    j.close();
    const again = new ExecutionJournal(dir);
    const b = again.started(JOB, 1, 1, 103, 2000);
    again.ended(b, 1, 'exit_nonzero', 2100);
    assert.deepEqual(again.summary(), { recorded: 3, open: 1 });
    again.close();
    assert.deepEqual(
      readExecutions(dir, JOB).map((r) => [r.taskIndex, r.attempt, r.pid, r.startedAtMs, r.endedAtMs, r.exitCode, r.outcome]),
      [
        [0, 0, 101, 1000, 1500, 0, 'ok'],
        [1, 0, 102, 1100, 0, -1, ''],
        [1, 1, 103, 2000, 2100, 1, 'exit_nonzero'],
      ],
    );
    assert.deepEqual(readExecutions(dir, '99999999-2222-4333-8444-555555555555'), []);
    assert.deepEqual(readExecutions(path.join(dir, 'no-such-worker'), JOB), [], 'a worker that never ran anything has no journal');
  });

  it('keeps only the newest maxRecords rows, and ignores writes after close', () => {
    const j = new ExecutionJournal(dir, 5);
    for (let i = 0; i < 12; i++) j.ended(j.started(JOB, i, 0, 1000 + i, i), 0, 'ok', i + 1);
    assert.deepEqual(j.summary(), { recorded: 5, open: 0 });
    assert.deepEqual(readExecutions(dir, JOB).map((r) => r.taskIndex), [7, 8, 9, 10, 11]);
    j.close();
    assert.equal(j.started(JOB, 99, 0, 1, 1), 0);
    j.ended(1, 0, 'ok', 1); // no throw after close (a task ending while the worker stops)
    assert.equal(readExecutions(dir, JOB).length, 5);
  });
});
