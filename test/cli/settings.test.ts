/**
 * The declarative settings tables (src/common/settings.ts): one row per setting gives the
 * type, validation, defaults, `grid init`'s sample and the docs tables.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { GridError, SettingsSpec, SettingsTable, parseJsonc } from '../../src/common';

type AnyTable = SettingsTable<SettingsSpec>;
import { BALANCER_SETTINGS } from '../../src/balancer/config';
import { MASTER_SETTINGS } from '../../src/master/config';
import { STORAGE_SETTINGS } from '../../src/storage/config';
import { WORKER_SETTINGS } from '../../src/worker/config';
import { CLIENT_SETTINGS, DEV_SETTINGS, loadClientConfig } from '../../src/cli/config';
import { generatedDocs } from '../../src/cli/settings-docs';

const isConfigInvalid = (re: RegExp) => (e: unknown) => e instanceof GridError && e.code === 'CONFIG_INVALID' && re.test(e.message);

describe('settings tables', () => {
  const roles = [MASTER_SETTINGS, BALANCER_SETTINGS, WORKER_SETTINGS, STORAGE_SETTINGS] as unknown as AnyTable[];

  it('every role sample is commented JSONC holding exactly the defaults, and loads', () => {
    for (const t of roles) {
      const parsed = parseJsonc(t.sample(), t.role);
      assert.deepEqual(parsed, t.defaults, t.role);
      for (const k of t.keys) assert.match(t.sample(), new RegExp(`// .+\\n  "${k}"`), `${t.role}.${k} has a comment line`);
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'grid-settings-'));
      try {
        const f = path.join(dir, `${t.role}.json`);
        fs.writeFileSync(f, t.sample());
        const c = t.load({}, f) as Record<string, unknown>;
        assert.equal(c.dataDir, path.resolve(String((t.defaults as Record<string, unknown>).dataDir)), `${t.role}: paths are resolved`);
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    }
  });

  it('docs/ tables are the generated ones (run npm run gen:docs after changing a table)', () => {
    for (const [file, { before, after }] of generatedDocs()) assert.equal(before, after, `${file} is out of date: run npm run gen:docs`);
  });

  it('validation converts flag strings, names the setting, its range and refuses unknown keys', () => {
    const t = new SettingsTable('demo', {
      sizeBytes: { type: 'int', default: 10, min: 1, max: 100, unit: 'bytes', doc: 'a size' },
      on: { type: 'bool', default: false, doc: 'a switch' },
      at: { type: 'endpoint', default: 'tcp://127.0.0.1:1', doc: 'an endpoint' },
      name: { type: 'string', default: 'x', doc: 'a name' },
    });
    assert.deepEqual(t.validate({ sizeBytes: '42', on: 'true' }), { sizeBytes: 42, on: true, at: 'tcp://127.0.0.1:1', name: 'x' });
    assert.throws(() => t.validate({ sizeBytes: 101 }), isConfigInvalid(/setting sizeBytes must be an integer from 1 to 100, got 101/));
    assert.throws(() => t.validate({ sizeBytes: 1.5 }), isConfigInvalid(/sizeBytes/));
    assert.throws(() => t.validate({ on: 'yes' }), isConfigInvalid(/setting on must be true or false/));
    assert.throws(() => t.validate({ at: 'http://x' }), isConfigInvalid(/setting at must be an endpoint like tcp:/));
    assert.throws(() => t.validate({ name: '' }), isConfigInvalid(/setting name must be a non-empty string/));
    assert.throws(() => t.validate({ sizeByte: 3 }), isConfigInvalid(/unknown setting "sizeByte"/));
    assert.match(t.docsTable(), /\| `sizeBytes` \| 10 \| 1\.\.100 bytes \| a size \|/);
  });

  it('cross-setting checks run after the rows (balancer tickMs below heartbeatIntervalMs, master peers)', () => {
    assert.throws(() => BALANCER_SETTINGS.validate({ tickMs: 1000, heartbeatIntervalMs: 1000 }), isConfigInvalid(/tickMs \(1000\) must be below heartbeatIntervalMs/));
    assert.throws(() => MASTER_SETTINGS.validate({ peers: 'tcp://a:1,tcp://b:2' }), isConfigInvalid(/peers lists 2 masters/));
    assert.equal(WORKER_SETTINGS.validate({ dataDir: '/tmp/w' }).mount, '/tmp/w/mnt', 'worker mount "" = <dataDir>/mnt');
  });

  it('client and dev settings come from their environment variables; a bad one names the variable', () => {
    assert.equal(loadClientConfig({ GRID_POLL_INTERVAL_MS: '25' }).pollIntervalMs, 25);
    assert.throws(() => loadClientConfig({ GRID_POLL_INTERVAL_MS: 'soon' }), (e: unknown) => e instanceof GridError && /GRID_POLL_INTERVAL_MS must be an integer/.test(e.message) && /unset GRID_POLL_INTERVAL_MS/.test(e.describe()));
    for (const t of [CLIENT_SETTINGS, DEV_SETTINGS] as unknown as AnyTable[]) {
      for (const k of t.keys) assert.ok((t.spec as Record<string, { env?: string }>)[k]!.env, `${t.role}.${k} has a variable`);
    }
  });
});
