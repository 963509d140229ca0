// Shared config helpers (src/common/config.ts): JSONC files, node ids kept across restarts,
// and a clear typed error for a data dir that cannot be used.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { GridError, parseJsonc, persistentNodeId } from '../../src/common';
import { newUuid } from '../../src/messages';

describe('common config', () => {
  let dir: string;
  beforeEach(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), 'grid-common-config-'))));
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('keeps a node id across restarts, creating the data dir', () => {
    const d = path.join(dir, 'a', 'b');
    const id = persistentNodeId(d, newUuid);
    assert.equal(persistentNodeId(d, newUuid), id);
    assert.equal(fs.readFileSync(path.join(d, 'node-id'), 'utf8').trim(), id);
  });

  it('refuses a data dir that cannot be used with CONFIG_INVALID naming it', () => {
    const file = path.join(dir, 'plain-file');
    fs.writeFileSync(file, 'x');
    assert.throws(
      () => persistentNodeId(path.join(file, 'sub'), newUuid),
      (e: unknown) => e instanceof GridError && e.code === 'CONFIG_INVALID' && e.message.includes(path.join(file, 'sub')) && /ENOTDIR/.test(e.message),
    );
  });

  it('reads JSON with // comments, but not // inside strings', () => {
    assert.deepEqual(parseJsonc('// top\n{ "a": "tcp://x:1", // trailing\n "b": 2 }', 't'), { a: 'tcp://x:1', b: 2 });
    assert.throws(() => parseJsonc('{ "a": }', 't'), (e: unknown) => e instanceof GridError && e.code === 'CONFIG_INVALID');
  });
});
