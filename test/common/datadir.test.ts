// Private data dirs (docs/operations.md, "Containment"): folders 0700, files 0600, fixed at start.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { persistentNodeId } from '../../src/common';
import { secureDataDir } from '../../src/common/datadir';

const mode = (p: string) => fs.lstatSync(p).mode & 0o777;

describe('private data dirs', () => {
  let tmp: string;
  beforeEach(() => (tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'grid-datadir-'))));
  afterEach(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('closes an existing loose data dir: folders 0700, files lose group/other bits, symlinks untouched', () => {
    const d = path.join(tmp, 'data');
    fs.mkdirSync(path.join(d, 'logs', 'old'), { recursive: true, mode: 0o755 });
    fs.chmodSync(d, 0o755);
    fs.writeFileSync(path.join(d, 'store.db'), 'x', { mode: 0o644 });
    fs.writeFileSync(path.join(d, 'store.db-wal'), 'x', { mode: 0o666 });
    fs.writeFileSync(path.join(d, 'logs', 'old', 'a.log'), 'x', { mode: 0o644 });
    fs.writeFileSync(path.join(d, 'tool'), 'x', { mode: 0o755 });
    fs.writeFileSync(path.join(tmp, 'outside'), 'x', { mode: 0o644 });
    fs.symlinkSync(path.join(tmp, 'outside'), path.join(d, 'link'));
    const changed = secureDataDir(d);
    assert.equal(changed, 7);
    assert.deepEqual(
      [d, path.join(d, 'logs'), path.join(d, 'logs', 'old')].map(mode),
      [0o700, 0o700, 0o700],
    );
    assert.equal(mode(path.join(d, 'store.db')), 0o600);
    assert.equal(mode(path.join(d, 'store.db-wal')), 0o600);
    assert.equal(mode(path.join(d, 'logs', 'old', 'a.log')), 0o600);
    assert.equal(mode(path.join(d, 'tool')), 0o700, "the owner's execute bit is kept");
    assert.equal(mode(path.join(tmp, 'outside')), 0o644, 'a symlink is not followed');
    assert.equal(secureDataDir(d), 0, 'nothing left to fix');
  });

  it('every node makes its data dir private when it takes its id, and the id file is 0600', () => {
    const d = path.join(tmp, 'node');
    const prev = process.umask(0o022); // a loose umask: the explicit modes must hold anyway
    try {
      persistentNodeId(d, () => '11111111-2222-4333-8444-555555555555');
    } finally {
      process.umask(prev);
    }
    assert.equal(mode(d), 0o700);
    assert.equal(mode(path.join(d, 'node-id')), 0o600);
  });
});
