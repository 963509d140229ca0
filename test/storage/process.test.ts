/**
 * The storage node as its own OS process (node dist/src/storage/main.js): GRID_READY, the
 * admin API, a client round trip, a clean SIGTERM shutdown, restart on the same data dir,
 * and config errors (docs/storage.md "Running", "Configuration").
 */
import assert from 'node:assert/strict';
import { ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { parseJsonc } from '../../src/common';
import { loadStorageConfig, sampleConfig, STORAGE_DEFAULTS } from '../../src/storage/config';
import { MiB, bytes, client, httpGet, rejection, tempDir } from './helpers';

const MAIN = path.resolve(__dirname, '../../src/storage/main.js');

interface Started {
  child: ChildProcess;
  ready: { nodeId: string; endpoints: { clients: string }; adminPort: number };
}

function start(args: string[]): Promise<Started> {
  const child = spawn(process.execPath, [MAIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  return new Promise((resolve, reject) => {
    let out = '';
    let err = '';
    const timer = setTimeout(() => reject(new Error(`no GRID_READY in 10 s; stderr: ${err}`)), 10_000);
    child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /GRID_READY (.*)\n/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve({ child, ready: JSON.parse(m[1]!) });
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`storage exited with ${code} before GRID_READY; stderr: ${err}`));
    });
  });
}

function exited(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => child.once('exit', (code) => resolve(code)));
}

describe('storage node process (main.ts)', function () {
  this.timeout(30_000);
  let dir: string;
  const children: ChildProcess[] = [];
  beforeEach(() => {
    dir = tempDir();
  });
  afterEach(() => {
    for (const ch of children.splice(0)) if (ch.exitCode === null && ch.pid) process.kill(ch.pid, 'SIGKILL');
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('announces GRID_READY, serves clients and the admin API, stops on SIGTERM and keeps data across a restart', async () => {
    const args = ['--data-dir', dir, '--bind', 'tcp://127.0.0.1:0', '--admin-port', '0'];
    const a = await start(args);
    children.push(a.child);
    assert.match(a.ready.endpoints.clients, /^tcp:\/\/127\.0\.0\.1:\d+$/);
    const c = client(a.ready.endpoints.clients);
    const data = bytes(2 * MiB + 1, 41);
    let fileUuid: string;
    try {
      fileUuid = (await c.putBuffer(data)).fileUuid;
      assert.equal((await httpGet(a.ready.adminPort, '/healthz')).code, 200);
      const st = JSON.parse((await httpGet(a.ready.adminPort, '/status')).body);
      assert.deepEqual([st.role, st.nodeId, st.files, st.bytesStored, st.chunks], ['storage', a.ready.nodeId, 1, data.length, 3]);
      assert.ok(st.requests.byType.file_put_request >= 3);
    } finally {
      c.close();
    }
    process.kill(a.child.pid!, 'SIGTERM');
    assert.equal(await exited(a.child), 0);
    const log = fs.readdirSync(path.join(dir, 'logs'));
    assert.deepEqual(log, [`storage-${a.ready.nodeId}.log`]);
    assert.match(fs.readFileSync(path.join(dir, 'logs', log[0]!), 'utf8'), /"file stored"/);

    const b = await start(args);
    children.push(b.child);
    assert.equal(b.ready.nodeId, a.ready.nodeId);
    const c2 = client(b.ready.endpoints.clients);
    try {
      assert.ok((await c2.read(fileUuid, 0, data.length)).equals(data));
    } finally {
      c2.close();
    }
    process.kill(b.child.pid!, 'SIGTERM');
    assert.equal(await exited(b.child), 0);
  });

  it('exits 1 with a CONFIG_INVALID line for bad flags or a bad config file', async () => {
    const run = (args: string[]) =>
      new Promise<{ code: number | null; err: string }>((resolve) => {
        const ch = spawn(process.execPath, [MAIN, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
        children.push(ch);
        let err = '';
        ch.stderr!.on('data', (d: Buffer) => (err += d.toString()));
        ch.on('exit', (code) => resolve({ code, err }));
      });
    const r1 = await run(['--data-dir', dir, '--quota-bytes', 'lots']);
    assert.equal(r1.code, 1);
    assert.match(r1.err, /CONFIG_INVALID: setting quotaBytes must be an integer/);
    const cfg = path.join(dir, 'storage.json');
    fs.writeFileSync(cfg, '{ "chunkSizeByte": 5 }');
    const r2 = await run(['--config', cfg]);
    assert.equal(r2.code, 1);
    assert.match(r2.err, /unknown setting "chunkSizeByte"/);
  });

  it('sampleConfig() is commented JSONC that loads to the defaults; flags override it', async () => {
    const text = sampleConfig();
    assert.match(text, /^\/\/ /m);
    const file = path.join(dir, 'storage.json');
    fs.writeFileSync(file, text);
    const parsed = parseJsonc(text, file);
    assert.deepEqual(Object.keys(parsed).sort(), Object.keys(STORAGE_DEFAULTS).sort());
    const cfg = loadStorageConfig({ quotaBytes: '12345' }, file);
    assert.equal(cfg.quotaBytes, 12345);
    assert.equal(cfg.chunkSizeBytes, STORAGE_DEFAULTS.chunkSizeBytes);
    assert.equal(cfg.dataDir, path.resolve(STORAGE_DEFAULTS.dataDir));
    assert.equal((await rejection(Promise.resolve().then(() => loadStorageConfig({ maxReadBytes: 0 })))).code, 'CONFIG_INVALID');
    assert.equal((await rejection(Promise.resolve().then(() => loadStorageConfig({ bind: 'localhost' })))).code, 'CONFIG_INVALID');
  });
});
