// Pure parts of the CLI: argument checks, endpoint resolution (flag > env > dev.json >
// default), result path safety, config validation, dev's crash policy and mount parsing.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import fc from 'fast-check';
import { GridError } from '../../src/common';
import { checkJobIdArg, checkReadableFile, parseJobOptions } from '../../src/cli/args';
import { CLIENT_DEFAULTS, loadClientConfig, loadDevConfig } from '../../src/cli/config';
import { DEV_DEFAULTS } from '../../src/cli/config';
import { decideOnExit, mainEndpoint, mountsUnder, nodeName, parseDevOptions, plannedPorts, probeFreePorts } from '../../src/cli/dev';
import { PORT_PROBE_MIN, ephemeralRange } from '../../src/common';
import { DevState, readDevState, resolveEndpoints } from '../../src/cli/endpoints';
import { outputPath, unsafeOutputName } from '../../src/cli/paths';
import { makeTmpDir } from '../helpers/grid';

/** uid and gid of `nobody`, for checks that root would pass trivially */
const NOBODY = 65534;

function gridError(f: () => unknown, code: string, re?: RegExp): void {
  assert.throws(f, (e: unknown) => {
    assert.ok(e instanceof GridError, `expected a GridError, got ${String(e)}`);
    assert.equal(e.code, code);
    if (re) assert.match(e.describe(), re);
    return true;
  });
}

describe('cli: submit arguments', () => {
  it('uses the documented defaults when no flag is given', () => {
    const o = parseJobOptions({});
    assert.deepEqual(o, { chunkSize: 1, maxRetries: 2, taskTimeoutMs: 600_000, memoryLimitMb: 1024, outputLimitBytes: 1024 * 1024 * 1024, args: [] });
  });

  it('converts seconds and MiB to the wire units', () => {
    const o = parseJobOptions({ chunkSize: '3', retries: '0', taskTimeout: '1.5', memoryLimit: '64', outputLimit: '2', args: ['a', 'b'] });
    assert.deepEqual(o, { chunkSize: 3, maxRetries: 0, taskTimeoutMs: 1500, memoryLimitMb: 64, outputLimitBytes: 2 * 1024 * 1024, args: ['a', 'b'] });
  });

  for (const [flag, key, bad] of [
    ['--chunk-size', 'chunkSize', '0'],
    ['--chunk-size', 'chunkSize', 'x'],
    ['--chunk-size', 'chunkSize', '1.5'],
    ['--retries', 'retries', '-1'],
    ['--task-timeout', 'taskTimeout', '0'],
    ['--task-timeout', 'taskTimeout', 'soon'],
    ['--memory-limit', 'memoryLimit', ''],
    ['--output-limit', 'outputLimit', '99999999999'],
  ] as const) {
    it(`refuses ${flag} ${JSON.stringify(bad)} with an error naming the flag`, () => {
      gridError(() => parseJobOptions({ [key]: bad }), 'BAD_REQUEST', new RegExp(flag.replace(/-/g, '\\-')));
    });
  }

  it('names a missing, a folder and an unreadable input file', function () {
    const tmp = makeTmpDir();
    try {
      gridError(() => checkReadableFile(path.join(tmp, 'nope.txt'), 'input file'), 'INPUT_UNREADABLE', /nope\.txt: it does not exist/);
      gridError(() => checkReadableFile(tmp, 'input file'), 'INPUT_UNREADABLE', /is not a regular file/);
      const locked = path.join(tmp, 'locked.txt');
      fs.writeFileSync(locked, 'x');
      fs.chmodSync(locked, 0o000);
      if (process.getuid?.() !== 0) gridError(() => checkReadableFile(locked, 'input file'), 'INPUT_UNREADABLE', /locked\.txt: permission denied/);
      else {
        // root reads anything, so as root (CI) the check runs in a child dropped to nobody
        fs.chmodSync(tmp, 0o755);
        const code = `try { require(${JSON.stringify(require.resolve('../../src/cli/args'))}).checkReadableFile(${JSON.stringify(locked)}, 'input file'); console.log('{}'); }
          catch (e) { console.log(JSON.stringify({ code: e.code, message: e.message })); }`;
        const out = execFileSync(process.execPath, ['-e', code], { uid: NOBODY, gid: NOBODY, encoding: 'utf8' });
        const e = JSON.parse(out) as { code?: string; message?: string };
        assert.equal(e.code, 'INPUT_UNREADABLE', out);
        assert.match(e.message!, /locked\.txt: permission denied/);
      }
      const ok = path.join(tmp, 'ok.txt');
      fs.writeFileSync(ok, 'x');
      checkReadableFile(ok, 'input file');
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  });

  it('accepts job ids and prefixes, refuses anything else', () => {
    checkJobIdArg('123e4567-e89b-42d3-a456-426614174000');
    checkJobIdArg('123e4567');
    gridError(() => checkJobIdArg('../etc'), 'BAD_REQUEST', /is not a job id/);
    gridError(() => checkJobIdArg('12'), 'BAD_REQUEST');
  });
});

describe('cli: endpoint resolution (flag, env, dev.json, default)', () => {
  const dev: DevState = {
    pid: process.pid,
    dataDir: '/x',
    logDir: '/x/logs',
    startedAtMs: 0,
    master: 'tcp://127.0.0.1:41000',
    balancer: 'tcp://127.0.0.1:41001',
    storage: 'tcp://127.0.0.1:41002',
    nodes: [],
  };

  it('prefers the flag, then the environment, then dev.json, then the default', () => {
    const env = { GRID_MASTER: 'tcp://127.0.0.1:9000', GRID_STORAGE: 'tcp://127.0.0.1:9002' };
    const devState = () => dev;
    assert.deepEqual(resolveEndpoints({ master: 'tcp://h:1', storage: 'tcp://h:2', env, devState }), { master: 'tcp://h:1', masters: ['tcp://h:1'], storage: 'tcp://h:2', masterFrom: '--master', storageFrom: '--storage' });
    assert.deepEqual(resolveEndpoints({ env, devState }), { master: env.GRID_MASTER, masters: [env.GRID_MASTER], storage: env.GRID_STORAGE, masterFrom: 'GRID_MASTER', storageFrom: 'GRID_STORAGE' });
    const r = resolveEndpoints({ env: {}, devState, dataDir: '/d' });
    assert.equal(r.master, dev.master);
    assert.equal(r.storage, dev.storage);
    assert.equal(r.masterFrom, '/d/dev.json');
    assert.deepEqual(resolveEndpoints({ env: {}, devState: () => undefined }), { master: 'tcp://127.0.0.1:7700', masters: ['tcp://127.0.0.1:7700'], storage: 'tcp://127.0.0.1:7702', masterFrom: 'default', storageFrom: 'default' });
  });

  it('takes a comma list of masters (replicated group) from the flag, the environment or dev.json', () => {
    const list = 'tcp://127.0.0.1:7700, tcp://127.0.0.1:7703,tcp://127.0.0.1:7704';
    const r = resolveEndpoints({ master: list, env: {} });
    assert.deepEqual(r.masters, ['tcp://127.0.0.1:7700', 'tcp://127.0.0.1:7703', 'tcp://127.0.0.1:7704']);
    assert.equal(r.master, r.masters.join(','));
    assert.deepEqual(resolveEndpoints({ env: { GRID_MASTER: 'tcp://a:1,tcp://b:2' } }).masters, ['tcp://a:1', 'tcp://b:2']);
    const group = { ...dev, masters: ['tcp://127.0.0.1:41000', 'tcp://127.0.0.1:41003', 'tcp://127.0.0.1:41004'] };
    assert.deepEqual(resolveEndpoints({ env: {}, devState: () => group }).masters, group.masters);
    // an older dev.json without `masters` still works
    assert.deepEqual(resolveEndpoints({ env: {}, devState: () => dev }).masters, [dev.master]);
    gridError(() => resolveEndpoints({ master: 'tcp://a:1,,tcp://b:2', env: {} }), 'CONFIG_INVALID', /--master has an empty entry/);
    gridError(() => resolveEndpoints({ master: 'tcp://a:1,a:2', env: {} }), 'CONFIG_INVALID', /--master must be an endpoint like .* got "a:2"/);
    gridError(() => resolveEndpoints({ env: { GRID_MASTER: 'tcp://a:1,tcp://a:1' } }), 'CONFIG_INVALID', /GRID_MASTER lists a master twice/);
    gridError(() => resolveEndpoints({ storage: 'tcp://a:1,tcp://b:2', env: {}, devState: () => undefined }), 'CONFIG_INVALID', /--storage must be an endpoint/);
  });

  it('refuses a malformed endpoint, naming where it came from', () => {
    gridError(() => resolveEndpoints({ master: 'localhost:7700', env: {} }), 'CONFIG_INVALID', /--master must be an endpoint/);
    gridError(() => resolveEndpoints({ env: { GRID_STORAGE: 'tcp://x' }, devState: () => undefined }), 'CONFIG_INVALID', /GRID_STORAGE/);
  });

  it('reads dev.json from the data dir, and ignores one whose dev process is gone', () => {
    const tmp = makeTmpDir();
    try {
      fs.writeFileSync(path.join(tmp, 'dev.json'), JSON.stringify(dev));
      assert.equal(readDevState(tmp)?.master, dev.master);
      assert.equal(resolveEndpoints({ env: {}, dataDir: tmp }).master, dev.master);
      assert.equal(readDevState(tmp, () => false), undefined);
      fs.writeFileSync(path.join(tmp, 'dev.json'), '{ half a file');
      assert.equal(readDevState(tmp), undefined);
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  });
});

describe('cli: result path safety (grid results)', () => {
  it('places outputs at DIR/<task>/<name>, subfolders allowed', () => {
    assert.equal(outputPath('/out', 3, 'counts.json'), '/out/3/counts.json');
    assert.equal(outputPath('/out', 0, 'stats/a.txt.json'), '/out/0/stats/a.txt.json');
  });

  for (const bad of ['', '..', '../x', 'a/../../x', '/etc/passwd', 'a//b', './a', 'a/.', 'a\\..\\b', 'a\0b']) {
    it(`refuses the output name ${JSON.stringify(bad)}`, () => {
      assert.ok(unsafeOutputName(bad));
      gridError(() => outputPath('/out', 1, bad), 'BAD_REQUEST', /refused because/);
    });
  }

  it('never yields a path outside DIR/<task>/ for any name (property)', () => {
    fc.assert(
      fc.property(fc.string({ unit: fc.constantFrom('a', '.', '/', '\\', '\0', 'b', '..') }), fc.nat(1000), (name, i) => {
        let p: string;
        try {
          p = outputPath('/out', i, name);
        } catch (e) {
          return e instanceof GridError;
        }
        return p.startsWith(`/out/${i}/`) && !p.slice(`/out/${i}/`.length).split('/').includes('..');
      }),
      { numRuns: 2000 },
    );
  });
});

describe('cli: config from the environment', () => {
  it('has the documented defaults', () => {
    assert.deepEqual(loadClientConfig({}), CLIENT_DEFAULTS);
    assert.deepEqual(loadDevConfig({}), DEV_DEFAULTS);
    assert.equal(CLIENT_DEFAULTS.masterRetryWindowMs, 30_000);
  });

  it('takes overrides and refuses bad values with CONFIG_INVALID naming the variable', () => {
    assert.equal(loadClientConfig({ GRID_MASTER_RETRY_WINDOW_MS: '500' }).masterRetryWindowMs, 500);
    gridError(() => loadClientConfig({ GRID_MASTER_RETRY_WINDOW_MS: 'soon' }), 'CONFIG_INVALID', /GRID_MASTER_RETRY_WINDOW_MS must be an integer/);
    gridError(() => loadDevConfig({ GRID_DEV_STOP_GRACE_MS: '-1' }), 'CONFIG_INVALID', /GRID_DEV_STOP_GRACE_MS/);
  });
});

describe('cli: grid dev planning and crash policy', () => {
  it('lays out ports as docs/architecture.md says, or all ephemeral with --port-base 0', () => {
    assert.deepEqual(plannedPorts({ portBase: 7700 }, 'master'), { bind: 'tcp://127.0.0.1:7700', adminPort: 7710 });
    assert.deepEqual(plannedPorts({ portBase: 7700 }, 'balancer'), { bind: 'tcp://127.0.0.1:7701', adminPort: 7711 });
    assert.deepEqual(plannedPorts({ portBase: 7700 }, 'storage'), { bind: 'tcp://127.0.0.1:7702', adminPort: 7712 });
    assert.deepEqual(plannedPorts({ portBase: 7700 }, 'worker', 3), { adminPort: 7723 });
    assert.deepEqual(plannedPorts({ portBase: 0 }, 'master'), { bind: 'tcp://127.0.0.1:0', adminPort: 0 });
    assert.deepEqual(plannedPorts({ portBase: 0 }, 'worker', 5), { adminPort: 0 });
  });

  it('places the masters of a group at P, P+3, P+4, ... (admin P+10, P+13, ...), below the workers', () => {
    const ports = [0, 1, 2, 3, 4].map((i) => plannedPorts({ portBase: 7700 }, 'master', i));
    assert.deepEqual(
      ports.map((p) => p.bind),
      ['tcp://127.0.0.1:7700', 'tcp://127.0.0.1:7703', 'tcp://127.0.0.1:7704', 'tcp://127.0.0.1:7705', 'tcp://127.0.0.1:7706'],
    );
    assert.deepEqual(
      ports.map((p) => p.adminPort),
      [7710, 7713, 7714, 7715, 7716],
    );
    // no clash with the balancer, storage or worker ports
    const others = [7701, 7702, 7711, 7712, 7720];
    for (const p of ports) assert.ok(!others.includes(Number(p.bind!.split(':').pop())) && !others.includes(p.adminPort));
    assert.equal(nodeName('master', 0), 'master');
    assert.equal(nodeName('master', 2, 3), 'master-2');
    assert.equal(nodeName('worker', 1, 3), 'worker-1');
  });

  it('probes distinct free ports for a group under --port-base 0, below the ephemeral range, never one twice', async () => {
    const ports = [...(await probeFreePorts(5)), ...(await probeFreePorts(5))];
    assert.equal(new Set(ports).size, 10);
    const [lo] = ephemeralRange();
    // an outgoing connection or a port-0 listener can take a port inside the range before its owner binds it
    for (const p of ports) assert.ok(p >= PORT_PROBE_MIN && p < lo, `port ${p} is not in [${PORT_PROBE_MIN}, ${lo})`);
  });

  it('finds each role\'s main endpoint in its ready message', () => {
    assert.equal(mainEndpoint('master', { clients: 'tcp://a:1' }), 'tcp://a:1');
    assert.equal(mainEndpoint('balancer', { master: 'tcp://m:1', workers: 'tcp://b:2' }), 'tcp://b:2');
    assert.equal(mainEndpoint('storage', { other: 'tcp://s:3' }), 'tcp://s:3');
  });

  it('parses and checks dev flags', () => {
    const cfg = DEV_DEFAULTS;
    const o = parseDevOptions({ workers: '4', portBase: '0', dataDir: 'x', restart: 'worker,master' }, cfg);
    assert.equal(o.workers, 4);
    assert.equal(o.portBase, 0);
    assert.equal(o.dataDir, path.resolve('x'));
    assert.deepEqual(o.restart, ['worker', 'master']);
    assert.deepEqual(parseDevOptions({ restart: 'none' }, cfg).restart, []);
    gridError(() => parseDevOptions({ restart: 'workers' }, cfg), 'BAD_REQUEST', /unknown role "workers"/);
    gridError(() => parseDevOptions({ workers: '-1' }, cfg), 'BAD_REQUEST', /--workers/);
    gridError(() => parseDevOptions({ portBase: '80' }, cfg), 'BAD_REQUEST', /--port-base/);
    assert.equal(o.masters, 1);
    assert.equal(parseDevOptions({ masters: '3' }, cfg).masters, 3);
    assert.equal(parseDevOptions({ masters: '5' }, cfg).masters, 5);
    gridError(() => parseDevOptions({ masters: '2' }, cfg), 'BAD_REQUEST', /--masters must be 1, 3, 5, got 2.*odd count/);
    gridError(() => parseDevOptions({ masters: '7' }, cfg), 'BAD_REQUEST', /--masters must be an integer from 1 to 5/);
  });

  const cfg = { maxRestarts: 2, restartDelayMs: 100 };
  const worker = { name: 'worker-1', role: 'worker' as const, pid: 42, restarts: 0, outputFile: '/d/logs/worker-1.out' };

  it('restarts a crashed worker, bounded by maxRestarts', () => {
    const d = decideOnExit(worker, { code: 1, signal: null }, ['worker'], cfg);
    assert.equal(d.action, 'restart');
    assert.match(d.message, /worker-1 \(pid 42\) exited with code 1.*worker-1\.out.*restart 1 of at most 2/);
    const last = decideOnExit({ ...worker, restarts: 2 }, { code: null, signal: 'SIGKILL' }, ['worker'], cfg);
    assert.equal(last.action, 'leave-dead');
    assert.match(last.message, /killed by SIGKILL.*after 2 restarts/);
  });

  it('reports a dead master or storage loudly and leaves it dead unless asked to restart it', () => {
    const m = decideOnExit({ ...worker, name: 'master', role: 'master' }, { code: null, signal: 'SIGKILL' }, ['worker'], cfg);
    assert.equal(m.action, 'leave-dead');
    assert.match(m.message, /^!!! master .*NO JOBS CAN BE SUBMITTED/);
    const s = decideOnExit({ ...worker, name: 'storage', role: 'storage' }, { code: 3, signal: null }, ['worker'], cfg);
    assert.match(s.message, /NO FILES/);
    assert.equal(decideOnExit({ ...worker, name: 'master', role: 'master' }, { code: 1, signal: null }, ['worker', 'master'], cfg).action, 'restart');
    assert.equal(decideOnExit(worker, { code: 1, signal: null }, [], cfg).action, 'leave-dead');
  });

  it('in a group of masters, reports a dead master clearly but as not fatal', () => {
    const m = decideOnExit({ ...worker, name: 'master-1', role: 'master' }, { code: null, signal: 'SIGKILL' }, ['worker'], cfg, 3);
    assert.equal(m.action, 'leave-dead');
    assert.match(m.message, /^!! master-1 \(pid 42\) killed by SIGKILL.*the other masters keep serving while 2 of 3 run/);
    assert.doesNotMatch(m.message, /NO JOBS/);
    assert.equal(decideOnExit({ ...worker, name: 'master-1', role: 'master' }, { code: 1, signal: null }, ['master'], cfg, 3).action, 'restart');
  });

  it('finds FUSE mounts under the data dir in /proc/mounts, deepest first, octal escapes decoded', () => {
    const text = [
      'proc /proc proc rw 0 0',
      'fuse /tmp/g/worker-0/mnt fuse rw 0 0',
      'fuse /tmp/g/worker\\0401/mnt fuse rw 0 0',
      'fuse /tmp/g2/mnt fuse rw 0 0',
      'fuse /tmp/g/worker-0/mnt/inner fuse rw 0 0',
    ].join('\n');
    const m = mountsUnder(text, '/tmp/g');
    assert.equal(m[0], '/tmp/g/worker-0/mnt/inner');
    assert.deepEqual([...m].sort(), ['/tmp/g/worker 1/mnt', '/tmp/g/worker-0/mnt', '/tmp/g/worker-0/mnt/inner']);
  });
});
