/**
 * Test helpers for whole-grid tests: start `grid dev --port-base 0` in a temp dir, run
 * `grid ...` commands against it, and tear everything down, always.
 *
 *   let g: Grid;
 *   before(async () => { g = await startGrid({ workers: 2 }); });
 *   after(() => g?.stop());
 *   it('...', async () => { const r = await g.run(['submit', ...]); expect(r.code).to.equal(0); });
 *
 * Teardown (stop(), and also a process 'exit' hook in case a test run dies): SIGTERM dev,
 * wait, SIGKILL dev and any pid from dev.json that is still alive (and still a grid
 * process), lazily unmount every FUSE mount under the temp dir, remove the temp dir.
 */
import { ChildProcess, execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { unmountAllUnder } from '../../src/cli/dev';
import { DevState, devMasters, devStatePath } from '../../src/cli/endpoints';

/** The repository root (tests run from dist/test/...). */
export const REPO = path.resolve(__dirname, '..', '..', '..');
export const GRID_BIN = path.join(REPO, 'bin', 'grid.js');
export const EXAMPLES = path.join(REPO, 'examples');

/** How long `grid dev` may take to report every node ready. */
export const DEV_READY_TIMEOUT_MS = 60_000;
/** After SIGTERM, how long the helper waits for dev before it SIGKILLs everything. */
export const DEV_STOP_WAIT_MS = 15_000;
/** Longest a single `grid ...` command may run in a test before it is killed. */
export const RUN_TIMEOUT_MS = 120_000;
/** Time one GET of a node's admin /status may take in a test before it counts as no answer. */
export const ADMIN_GET_TIMEOUT_MS = 2_000;

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  timeoutMs?: number;
}

/**
 * Runs `node bin/grid.js ...args` and collects its output; never rejects (a timeout kills
 * it and shows as signal SIGKILL). The environment is the test's, plus `env`.
 */
export function runGrid(args: string[], o: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve) => {
    const p = execFile(
      process.execPath,
      [GRID_BIN, ...args],
      { cwd: o.cwd ?? REPO, env: { ...process.env, ...o.env }, timeout: o.timeoutMs ?? RUN_TIMEOUT_MS, killSignal: 'SIGKILL', maxBuffer: 256 * 1024 * 1024, encoding: 'utf8' },
      (e, stdout, stderr) => {
        resolve({ code: p.exitCode ?? (e && typeof (e as { code?: unknown }).code === 'number' ? (e as { code: number }).code : null), signal: p.signalCode, stdout, stderr });
      },
    );
  });
}

/** A TCP port that was free a moment ago (for "nobody listens here" tests). */
export { freePort } from './masters';

export function makeTmpDir(prefix = 'grid-test-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/**
 * A folder a sandboxed task can read (for gate files a test opens): the sandbox hides /tmp,
 * /var/tmp, /dev/shm and /run/lock from tasks (docs/operations.md, "Containment") and test
 * folders are 0700, so as root it is made in /run, 0755. Without root (no sandbox) it is an
 * ordinary temp folder. The caller removes it.
 */
export function taskVisibleDir(prefix = 'grid-test-shared-'): string {
  if (process.geteuid?.() !== 0) return makeTmpDir(prefix);
  const d = fs.mkdtempSync(path.join('/run', prefix));
  fs.chmodSync(d, 0o755);
  return d;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** True when pid runs bin/grid.js (so a reused pid is never killed by mistake). */
function isGridProcess(pid: number): boolean {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(GRID_BIN);
  } catch {
    return false;
  }
}

export interface GridOptions {
  workers?: number;
  /** masters in a replicated group (`--masters`): 1, 3 or 5; default 1 */
  masters?: number;
  /** balancers (`--balancers`): 1, or 2 for a primary/auxiliary pair; default 1 */
  balancers?: number;
  slots?: number;
  prefetch?: number;
  /** roles dev restarts after a crash (`--restart`); default dev's own (worker) */
  restart?: string;
  /** extra environment for dev and its nodes */
  env?: NodeJS.ProcessEnv;
  readyTimeoutMs?: number;
  /** a folder to make the grid's temp folder in (default the OS temp folder); see taskVisibleDir */
  under?: string;
}

export class Grid {
  /** the latest dev.json seen (kept after dev removes it, for teardown) */
  state!: DevState;
  private devOut = '';
  private stopped?: Promise<void>;
  private readonly knownPids = new Set<number>();

  constructor(
    readonly tmp: string,
    readonly dev: ChildProcess,
    readonly env: NodeJS.ProcessEnv,
  ) {}

  get dataDir(): string {
    return path.join(this.tmp, 'grid');
  }
  /** the first master (the only one unless started with masters: 3) */
  get master(): string {
    return this.state.master;
  }
  /** every master endpoint, in --peers order */
  get masters(): string[] {
    return devMasters(this.state);
  }
  /** dev.json entries of the masters (master, or master-0, master-1, ...) */
  masterNodes(): DevState['nodes'] {
    return this.refreshState().nodes.filter((n) => n.role === 'master');
  }

  /**
   * The master that leads now, read from each master's admin GET /status (`raft.role`), or
   * undefined when none does (an election, or no quorum). A group of one always leads.
   */
  async leader(): Promise<DevState['nodes'][number] | undefined> {
    const nodes = this.masterNodes().filter((n) => n.state === 'running');
    const st = await Promise.all(nodes.map((n) => adminStatus(n.adminPort)));
    let best: { n: DevState['nodes'][number]; term: number } | undefined;
    nodes.forEach((n, i) => {
      const raft = (st[i] as { raft?: { role?: string; term?: number } } | undefined)?.raft;
      if (raft?.role === 'leader' && (!best || (raft.term ?? 0) > best.term)) best = { n, term: raft.term ?? 0 };
    });
    return best?.n;
  }

  /** Waits until some master leads and returns it. */
  async waitForLeader(timeoutMs = 30_000): Promise<DevState['nodes'][number]> {
    let found: DevState['nodes'][number] | undefined;
    await waitFor(async () => !!(found = await this.leader()), 'a master to lead', timeoutMs, 100);
    return found!;
  }
  get storage(): string {
    return this.state.storage;
  }
  get balancer(): string {
    return this.state.balancer;
  }

  /** Everything dev printed so far (its own messages; nodes' output is in their .out files). */
  devOutput(): string {
    return this.devOut;
  }

  /** Re-reads dev.json (it changes when dev restarts a node). */
  refreshState(): DevState {
    try {
      this.state = JSON.parse(fs.readFileSync(devStatePath(this.dataDir), 'utf8')) as DevState;
      for (const n of this.state.nodes) this.knownPids.add(n.pid);
    } catch {
      // dev removed it while stopping; keep the last one
    }
    return this.state;
  }

  node(name: string): DevState['nodes'][number] {
    const n = this.refreshState().nodes.find((x) => x.name === name);
    if (!n) throw new Error(`no node ${name} in dev.json; nodes: ${this.state.nodes.map((x) => x.name).join(', ')}`);
    return n;
  }

  /** Runs `grid ...args` against this grid (GRID_MASTER = every master, comma separated; GRID_STORAGE). */
  run(args: string[], o: RunOptions = {}): Promise<RunResult> {
    return runGrid(args, { ...o, env: { GRID_MASTER: this.masters.join(','), GRID_STORAGE: this.storage, ...this.env, ...o.env } });
  }

  /** Last lines of a node's captured stdout/stderr, for failure messages. */
  nodeOutput(name: string, lines = 40): string {
    try {
      return fs.readFileSync(this.node(name).outputFile, 'utf8').split('\n').slice(-lines).join('\n');
    } catch {
      return '';
    }
  }

  /** Teardown; safe to call twice and when start failed half way. */
  stop(): Promise<void> {
    return (this.stopped ??= this.teardown());
  }

  private async teardown(): Promise<void> {
    this.refreshState();
    try {
      if (this.dev.exitCode === null && this.dev.signalCode === null) {
        const gone = new Promise<void>((r) => this.dev.once('exit', () => r()));
        this.dev.kill('SIGTERM');
        const t = new Promise<void>((r) => setTimeout(r, DEV_STOP_WAIT_MS).unref());
        await Promise.race([gone, t]);
        if (this.dev.exitCode === null && this.dev.signalCode === null) {
          this.dev.kill('SIGKILL');
          await gone;
        }
      }
    } finally {
      this.killLeftovers();
      live.delete(this);
      unmountAllUnder(this.tmp);
      fs.rmSync(this.tmp, { recursive: true, force: true });
    }
  }

  /** SIGKILLs every node pid dev ever reported that is still a running grid process. */
  killLeftovers(): void {
    for (const pid of this.knownPids) if (alive(pid) && isGridProcess(pid)) process.kill(pid, 'SIGKILL');
    if (this.dev.pid && alive(this.dev.pid) && this.dev.exitCode === null) this.dev.kill('SIGKILL');
  }

  /** @internal */
  appendOut(s: string): void {
    this.devOut += s;
  }
  /** @internal */
  notePid(pid: number): void {
    this.knownPids.add(pid);
  }
}

/** Grids not yet torn down; killed synchronously if the test process exits early. */
const live = new Set<Grid>();
process.on('exit', () => {
  for (const g of live) {
    g.killLeftovers();
    try {
      unmountAllUnder(g.tmp);
      fs.rmSync(g.tmp, { recursive: true, force: true });
    } catch {
      // best effort at exit
    }
  }
});

/** Starts `grid dev --port-base 0 --data-dir <tmp>/grid` and waits until every node is ready. */
export async function startGrid(o: GridOptions = {}): Promise<Grid> {
  const tmp = o.under ? fs.mkdtempSync(path.join(o.under, 'grid-test-')) : makeTmpDir();
  const dataDir = path.join(tmp, 'grid');
  const args = ['dev', '--port-base', '0', '--data-dir', dataDir, '--workers', String(o.workers ?? 2)];
  if (o.masters !== undefined) args.push('--masters', String(o.masters));
  if (o.balancers !== undefined) args.push('--balancers', String(o.balancers));
  if (o.slots !== undefined) args.push('--slots', String(o.slots));
  if (o.prefetch !== undefined) args.push('--prefetch', String(o.prefetch));
  if (o.restart !== undefined) args.push('--restart', o.restart);
  const env = { ...o.env };
  const dev = spawn(process.execPath, [GRID_BIN, ...args], { cwd: tmp, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const g = new Grid(tmp, dev, env);
  live.add(g);
  const timeoutMs = o.readyTimeoutMs ?? DEV_READY_TIMEOUT_MS;
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`grid dev not ready within ${timeoutMs} ms:\n${g.devOutput()}`)), timeoutMs);
      const onData = (b: Buffer): void => {
        g.appendOut(b.toString());
        if (/^GRID_READY \{"role":"dev"/m.test(g.devOutput())) {
          clearTimeout(timer);
          resolve();
        }
      };
      dev.stdout!.on('data', onData);
      dev.stderr!.on('data', (b: Buffer) => g.appendOut(b.toString()));
      dev.once('exit', (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`grid dev exited (${signal ?? code}) before it was ready:\n${g.devOutput()}`));
      });
    });
    if (dev.pid) g.notePid(dev.pid);
    g.refreshState();
    if (!g.state) throw new Error(`grid dev said ready but wrote no ${devStatePath(dataDir)}`);
  } catch (e) {
    await g.stop();
    throw e;
  }
  return g;
}

/** Sleeps until `cond()` is true or `timeoutMs` passes (then throws `what`). */
export async function waitFor(cond: () => boolean | Promise<boolean>, what: string, timeoutMs = 30_000, stepMs = 100): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, stepMs));
  }
}

export function pidAlive(pid: number): boolean {
  return alive(pid);
}

/** GET http://127.0.0.1:<port>/status as JSON, or undefined when the node does not answer. */
export function adminStatus(port: number, timeoutMs = ADMIN_GET_TIMEOUT_MS): Promise<unknown> {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/status', agent: false, timeout: timeoutMs }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (b: Buffer) => parts.push(b));
      res.on('error', () => resolve(undefined));
      res.on('end', () => {
        try {
          resolve(JSON.parse(Buffer.concat(parts).toString('utf8')));
        } catch {
          resolve(undefined);
        }
      });
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(undefined));
  });
}
