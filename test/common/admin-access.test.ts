// Who may use a node's admin HTTP API (src/common/admin.ts; docs/operations.md "Admin HTTP:
// bind and token"; issue 9, "Admin HTTP"): loopback by default with no token; any other bind
// address needs adminToken (a node without one refuses to start); with a token every request
// carries it or gets 401. On real servers and a real node process (grid storage).
import assert from 'node:assert/strict';
import { ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { AdminServer, GridError, checkAdminSettings, isLoopbackHost } from '../../src/common';
import { loadStorageConfig } from '../../src/storage/config';
import { TEST_TRUST_DIR } from '../helpers/security';
import { httpGet } from './http-get';

const TOKEN = 'c2f1e0d9b8a7f6e5d4c3b2a1';
const STORAGE_MAIN = path.resolve(__dirname, '../../src/storage/main.js');
const bearer = (t: string): Record<string, string> => ({ authorization: `Bearer ${t}` });
const basic = (t: string): Record<string, string> => ({ authorization: `Basic ${Buffer.from(`admin:${t}`).toString('base64')}` });

function refused(f: () => unknown): GridError {
  try {
    f();
  } catch (e) {
    assert.ok(e instanceof GridError, `expected a GridError, got ${String(e)}`);
    return e;
  }
  assert.fail('expected CONFIG_INVALID, it was accepted');
}

describe('admin HTTP bind and token', function () {
  this.timeout(30_000);
  let admin: AdminServer | undefined;
  afterEach(async () => {
    await admin?.close();
    admin = undefined;
  });
  const server = (host: string, token?: string): AdminServer => new AdminServer({ host, port: 0, token, health: () => null, status: () => ({ role: 'test' }) });

  it('knows loopback addresses from the rest', () => {
    for (const h of ['127.0.0.1', '127.1.2.3', '::1', '[::1]', 'localhost', 'LOCALHOST']) assert.ok(isLoopbackHost(h), h);
    for (const h of ['0.0.0.0', '::', '10.0.0.2', '192.168.1.1', 'example.com', '128.0.0.1']) assert.ok(!isLoopbackHost(h), h);
  });

  it('serves loopback (the default) without a token', async () => {
    admin = server('127.0.0.1');
    const port = await admin.start();
    assert.equal((await httpGet(port, '/healthz')).status, 200);
    assert.equal(JSON.parse((await httpGet(port, '/status')).body).role, 'test');
  });

  it('refuses a non-loopback bind without a token, naming both settings and what to do', () => {
    const e = refused(() => server('0.0.0.0'));
    assert.equal(e.code, 'CONFIG_INVALID');
    assert.match(e.message, /setting adminHost is 0\.0\.0\.0, not loopback, and setting adminToken is empty/);
    assert.match(e.hint ?? '', /set adminToken .*GRID_ADMIN_TOKEN.*or keep adminHost 127\.0\.0\.1/);
    // the role tables check it at start too, before the node opens anything
    const c = refused(() => loadStorageConfig({ adminHost: '0.0.0.0' }));
    assert.match(c.message, /adminToken is empty/);
    assert.equal(refused(() => checkAdminSettings({ adminHost: '0.0.0.0', adminToken: 'short' })).code, 'CONFIG_INVALID');
    assert.equal(loadStorageConfig({ adminHost: '0.0.0.0', adminToken: TOKEN }).adminToken, TOKEN);
  });

  it('with a token: no token or a wrong one gets 401 with a clear body; the right one (Bearer or Basic) gets 200', async () => {
    admin = server('0.0.0.0', TOKEN);
    const port = await admin.start();
    for (const path of ['/healthz', '/status', '/nope']) {
      const none = await httpGet(port, path);
      assert.equal(none.status, 401, path);
      assert.match(JSON.parse(none.body).error, /^not authorized: this admin server requires adminToken and it carries no token; send "Authorization: Bearer TOKEN"/);
    }
    for (const wrong of [bearer(TOKEN.slice(0, -1)), bearer(TOKEN + 'x'), bearer(''), basic('nope'), { authorization: TOKEN }]) {
      const r = await httpGet(port, '/status', 5000, wrong);
      assert.equal(r.status, 401, JSON.stringify(wrong));
      assert.match(JSON.parse(r.body).error, /the token it carries is wrong/);
    }
    assert.equal((await httpGet(port, '/healthz', 5000, bearer(TOKEN))).status, 200);
    assert.equal(JSON.parse((await httpGet(port, '/status', 5000, bearer(TOKEN))).body).role, 'test');
    assert.equal((await httpGet(port, '/status', 5000, basic(TOKEN))).status, 200);
  });

  describe('a real node process (grid storage)', () => {
    let dir: string;
    const children: ChildProcess[] = [];
    beforeEach(() => {
      dir = fs.mkdtempSync(path.join(os.tmpdir(), 'grid-admin-test-'));
    });
    afterEach(() => {
      for (const ch of children.splice(0)) if (ch.exitCode === null && ch.pid) process.kill(ch.pid, 'SIGKILL');
      fs.rmSync(dir, { recursive: true, force: true });
    });

    /** Starts storage; resolves with its admin port at GRID_READY, or its exit code and stderr. */
    function run(args: string[], token?: string): Promise<{ adminPort?: number; code?: number | null; err: string }> {
      const env: NodeJS.ProcessEnv = { ...process.env, GRID_TRUST_DIR: TEST_TRUST_DIR, GRID_ENROLL: 'true' };
      delete env.GRID_ADMIN_TOKEN;
      if (token !== undefined) env.GRID_ADMIN_TOKEN = token;
      const child = spawn(process.execPath, [STORAGE_MAIN, '--data-dir', dir, '--bind', 'tcp://127.0.0.1:0', '--admin-port', '0', ...args], { stdio: ['ignore', 'pipe', 'pipe'], env });
      children.push(child);
      return new Promise((resolve, reject) => {
        let out = '';
        let err = '';
        const timer = setTimeout(() => reject(new Error(`storage neither ready nor exited in 15 s; stderr: ${err}`)), 15_000);
        child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
        child.stdout!.on('data', (d: Buffer) => {
          out += d.toString();
          const m = /GRID_READY (.*)\n/.exec(out);
          if (m) {
            clearTimeout(timer);
            resolve({ adminPort: (JSON.parse(m[1]!) as { adminPort: number }).adminPort, err });
          }
        });
        child.on('exit', (code) => {
          clearTimeout(timer);
          resolve({ code, err });
        });
      });
    }

    it('on loopback (the default) answers without a token', async () => {
      const r = await run([]);
      assert.ok(r.adminPort, `storage did not start: ${r.err}`);
      assert.equal((await httpGet(r.adminPort, '/healthz')).status, 200);
    });

    it('with --admin-host 0.0.0.0 and no token exits 1 with CONFIG_INVALID naming adminToken', async () => {
      const r = await run(['--admin-host', '0.0.0.0']);
      assert.equal(r.adminPort, undefined, 'it started an open admin server');
      assert.equal(r.code, 1);
      assert.match(r.err, /CONFIG_INVALID: setting adminHost is 0\.0\.0\.0, not loopback, and setting adminToken is empty/);
      assert.match(r.err, /GRID_ADMIN_TOKEN/);
    });

    it('with --admin-host 0.0.0.0 and GRID_ADMIN_TOKEN: 401 without or with a wrong token, 200 with it', async () => {
      const r = await run(['--admin-host', '0.0.0.0'], TOKEN);
      assert.ok(r.adminPort, `storage did not start: ${r.err}`);
      assert.equal((await httpGet(r.adminPort, '/healthz')).status, 401);
      assert.equal((await httpGet(r.adminPort, '/status', 5000, bearer('wrong-token-wrong-token'))).status, 401);
      assert.equal((await httpGet(r.adminPort, '/healthz', 5000, bearer(TOKEN))).status, 200);
      assert.equal(JSON.parse((await httpGet(r.adminPort, '/status', 5000, bearer(TOKEN))).body).role, 'storage');
    });
  });
});
