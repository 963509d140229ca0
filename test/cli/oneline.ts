/** Shared check of the CLI's error contract: exit 1 and exactly one line on stderr. */
import assert from 'node:assert/strict';
import { RunResult } from '../helpers/grid';

export function oneLineError(r: RunResult, re: RegExp): void {
  assert.equal(r.code, 1, `exit 1 expected, got ${r.code}; stderr:\n${r.stderr}`);
  const lines = r.stderr.split('\n').filter((l) => l !== '');
  assert.equal(lines.length, 1, `one line on stderr, got:\n${r.stderr}`);
  assert.match(lines[0]!, re);
}
