/**
 * A machine without libfuse2 (issue 11, "Install and start"): every client command works,
 * `grid worker` fails with one line naming the packages, the install/test check says the
 * same, and `grid dev` runs the example job with staged workers.
 *
 * libfuse.so.2 is hidden from the loader for real: each command runs in its own mount
 * namespace (`unshare -m`) where an overlay over the library folder has whiteouts for
 * libfuse.so.2*, so fuse-native's dlopen fails with "cannot open shared object file" exactly
 * as on a machine without the package. The host's mounts are not touched (the namespace's
 * mounts are private and vanish with its last process).
 */
import assert from 'node:assert/strict';
import { ChildProcess, execFile, execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { EXAMPLES, GRID_BIN, REPO, freePort } from '../helpers/grid';
import { skipBecause } from '../helpers/requires';

const CHECK_FUSE = path.join(REPO, 'bin', 'check-fuse.js');
const INSTALL_LINE = /apt-get install fuse libfuse2/;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** The folder holding libfuse.so.2 on this machine (from the loader's cache). */
function libfuseDir(): string | undefined {
  try {
    const out = execFileSync('ldconfig', ['-p'], { encoding: 'utf8' });
    const m = /libfuse\.so\.2 \([^)]*\) => (\S+)/.exec(out);
    return m ? path.dirname(fs.realpathSync(m[1]!)) : undefined;
  } catch {
    return undefined;
  }
}

class NoFuse {
  readonly upper: string;
  readonly work: string;
  constructor(
    readonly tmp: string,
    readonly libDir: string,
  ) {
    this.upper = path.join(tmp, 'upper');
    this.work = path.join(tmp, 'work');
    fs.mkdirSync(this.upper);
    fs.mkdirSync(this.work);
    // an overlay whiteout (a 0:0 character device) hides the lower file of that name
    for (const f of fs.readdirSync(libDir).filter((n) => n.startsWith('libfuse.so.2'))) execFileSync('mknod', [path.join(this.upper, f), 'c', '0', '0']);
  }

  /** argv that runs `cmd args` with libfuse hidden. */
  argv(cmd: string, args: string[]): [string, string[]] {
    const script = `mount -t overlay overlay -o lowerdir=${this.libDir},upperdir=${this.upper},workdir=${this.work} ${this.libDir} || exit 97; exec "$@"`;
    return ['unshare', ['-m', '--propagation', 'private', '--', 'sh', '-c', script, 'sh', cmd, ...args]];
  }

  run(cmd: string, args: string[], env: NodeJS.ProcessEnv = {}, timeoutMs = 60_000): Promise<Run> {
    const [c, a] = this.argv(cmd, args);
    return new Promise((resolve) => {
      const p = execFile(c, a, { cwd: REPO, env: { ...process.env, ...env }, timeout: timeoutMs, killSignal: 'SIGKILL', encoding: 'utf8' }, (_e, stdout, stderr) => resolve({ code: p.exitCode, stdout, stderr }));
    });
  }

  grid(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Run> {
    return this.run(process.execPath, [GRID_BIN, ...args], env);
  }
}

/** stderr is exactly one line, no stack trace, no dlopen dump. */
function oneLine(r: Run, re: RegExp): void {
  const lines = r.stderr.split('\n').filter((l) => l !== '');
  assert.equal(lines.length, 1, `one line on stderr, got:\n${r.stderr}`);
  assert.match(lines[0]!, re);
  assert.doesNotMatch(r.stderr, /^\s+at /m, 'no stack trace');
}

describe('cli: a machine without libfuse2 (libfuse.so.2 hidden in a mount namespace)', function () {
  this.timeout(180_000);
  let tmp: string;
  let nf: NoFuse;

  before(async function () {
    const libDir = libfuseDir();
    if (process.getuid?.() !== 0 || !libDir) skipBecause(this, 'needs root (unshare, mount) and an installed libfuse.so.2 to hide');
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'grid-nofuse-'));
    nf = new NoFuse(tmp, libDir);
    const probe = await nf.run(process.execPath, ['-e', "require('fuse-native')"]);
    if (probe.code === 97) skipBecause(this, 'this kernel cannot mount an overlay in a mount namespace');
    // the hiding works: the load fails the way it does without the package
    assert.notEqual(probe.code, 0, 'fuse-native must not load with libfuse.so.2 hidden');
    assert.match(probe.stderr, /libfuse\.so\.2: cannot open shared object file/);
  });

  after(() => {
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('client commands work: --help, init, and a jobs with no master fails fast with the usual one line', async () => {
    const help = await nf.grid(['--help']);
    assert.equal(help.code, 0, help.stderr);
    assert.match(help.stdout, /submit/);
    const init = await nf.grid(['init', '--role', 'worker']);
    assert.equal(init.code, 0, init.stderr);
    assert.match(init.stdout, /"dataDir"/);
    const jobs = await nf.grid(['jobs'], { GRID_MASTER: `tcp://127.0.0.1:${await freePort()}`, GRID_DATA_DIR: tmp });
    assert.equal(jobs.code, 1);
    oneLine(jobs, /^grid: UNAVAILABLE: cannot connect to the master/);
  });

  it('grid worker fails with ONE line naming the packages', async () => {
    const r = await nf.grid(['worker', '--data-dir', path.join(tmp, 'w'), '--admin-port', '0']);
    assert.equal(r.code, 1);
    oneLine(r, /^grid: FUSE_UNAVAILABLE: FUSE is not installed: .*apt-get install fuse libfuse2.*--staged/);
  });

  it('the install check prints that line (exit 0); the test gate fails with it (exit 1)', async () => {
    const install = await nf.run(process.execPath, [CHECK_FUSE]);
    assert.equal(install.code, 0);
    oneLine(install, INSTALL_LINE);
    const gate = await nf.run(process.execPath, [CHECK_FUSE, '--for-tests']);
    assert.equal(gate.code, 1);
    oneLine(gate, /^grid: the tests need FUSE: .*apt-get install fuse libfuse2/);
    // and with FUSE present, both are silent
    const present = await new Promise<Run>((resolve) => {
      const p = execFile(process.execPath, [CHECK_FUSE, '--for-tests'], { encoding: 'utf8' }, (_e, stdout, stderr) => resolve({ code: p.exitCode, stdout, stderr }));
    });
    assert.equal(present.code, 0, present.stderr);
    assert.equal(present.stderr, '');
  });

  it('grid dev warns loudly, runs its workers staged, and the example job succeeds', async () => {
    const dataDir = path.join(tmp, 'grid');
    const [c, a] = nf.argv(process.execPath, [GRID_BIN, 'dev', '--port-base', '0', '--data-dir', dataDir, '--workers', '1']);
    const dev: ChildProcess = spawn(c, a, { cwd: tmp, env: process.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    dev.stdout!.on('data', (b: Buffer) => (out += b.toString()));
    dev.stderr!.on('data', (b: Buffer) => (out += b.toString()));
    const exited = new Promise<void>((r) => dev.once('exit', () => r()));
    try {
      await new Promise<void>((resolve, reject) => {
        const t = setInterval(() => {
          if (/^GRID_READY \{"role":"dev"/m.test(out)) {
            clearInterval(t);
            resolve();
          }
        }, 50);
        void exited.then(() => {
          clearInterval(t);
          reject(new Error(`grid dev exited before it was ready:\n${out}`));
        });
      });
      assert.match(out, /!!! grid dev: FUSE is not installed.*apt-get install fuse libfuse2/);
      assert.match(out, /The workers run STAGED/);
      const workerOut = fs.readFileSync(path.join(dataDir, 'logs', 'worker-0.out'), 'utf8');
      assert.match(workerOut, / worker .*--staged/, 'the worker was started --staged');
      const inputs = fs.readdirSync(path.join(EXAMPLES, 'wordcount', 'data')).map((f) => path.join(EXAMPLES, 'wordcount', 'data', f));
      const r = await nf.grid(['submit', path.join(EXAMPLES, 'wordcount', 'job.js'), '--inputs', ...inputs, '--wait'], { GRID_DATA_DIR: dataDir });
      assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}\n${out}`);
      const jobId = r.stdout.split('\n')[0]!.trim();
      const resDir = path.join(tmp, 'results');
      const res = await nf.grid(['results', jobId, '--out', resDir], { GRID_DATA_DIR: dataDir });
      assert.equal(res.code, 0, res.stderr);
      assert.equal(fs.readdirSync(resDir).length, inputs.length, 'one output folder per task');
    } finally {
      if (dev.exitCode === null && dev.signalCode === null) dev.kill('SIGTERM');
      await exited;
    }
  });
});
