/**
 * `grid dev`: a whole grid on one machine. Supervises storage, master, balancer and N
 * workers as child processes (`node bin/grid.js <role> ...`, stdio piped, IPC channel).
 *
 * Start order (docs/architecture.md, "Endpoints and ports"): storage and master first; the
 * balancer with the master's real endpoint from its ready message; then the workers with
 * the balancer's and storage's real endpoints. A child that does not announce ready within
 * `readyTimeoutMs` aborts start-up with its last output lines.
 *
 * Crash policy: a crashed node whose role is in `--restart` (default: worker) is started
 * again after `restartDelayMs`, at most `maxRestarts` times, on the SAME endpoint and admin
 * port it had, so its peers reconnect by themselves. Any other crash (a dead master, storage
 * or balancer) is reported loudly and the node stays dead: the grid cannot take or run jobs
 * until the operator looks at its log and restarts dev. (`--restart worker,master` makes a
 * master restart too; its jobs are safe in SQLite and clients retry for masterRetryWindowMs.)
 *
 * Stop (SIGINT/SIGTERM): workers first (they unmount FUSE), then the rest; SIGTERM, then
 * SIGKILL after `stopGraceMs`; any FUSE mount left under the data dir is lazily unmounted;
 * dev.json is removed; exit 0.
 */
import { ChildProcess, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { Command } from 'commander';
import { GridError, announceReady } from '../common';
import { intFlag } from './args';
import { DevConfig, loadDevConfig } from './config';
import { DEFAULT_DATA_DIR, DevNodeState, DevState, devStatePath, readDevState } from './endpoints';

export const DEV_ROLES = ['master', 'balancer', 'storage', 'worker'] as const;
export type DevRole = (typeof DEV_ROLES)[number];

/** Port offsets from --port-base (docs/architecture.md, "Endpoints and ports"). */
export const PORT_OFFSETS = { master: 0, balancer: 1, storage: 2, adminMaster: 10, adminBalancer: 11, adminStorage: 12, adminWorker0: 20 } as const;

export interface DevOptions {
  workers: number;
  /** absolute */
  dataDir: string;
  /** 0 = every port ephemeral */
  portBase: number;
  slots?: number;
  prefetch?: number;
  /** roles restarted after a crash */
  restart: readonly DevRole[];
}

/** How a child is started: by default `node bin/grid.js <role> ...args`. Tests swap it. */
export type Launcher = (role: DevRole, args: string[]) => { command: string; argv: string[] };

export const GRID_BIN = path.resolve(__dirname, '..', '..', '..', 'bin', 'grid.js');
export const defaultLauncher: Launcher = (role, args) => ({ command: process.execPath, argv: [GRID_BIN, role, ...args] });

// ---- pure parts --------------------------------------------------------------------------------

export function tcp(port: number): string {
  return `tcp://127.0.0.1:${port}`;
}

/** Bind endpoint and admin port of a node before its first start. */
export function plannedPorts(o: Pick<DevOptions, 'portBase'>, role: DevRole, index = 0): { bind?: string; adminPort: number } {
  const P = o.portBase;
  const at = (off: number): number => (P === 0 ? 0 : P + off);
  switch (role) {
    case 'master':
      return { bind: tcp(at(PORT_OFFSETS.master)), adminPort: at(PORT_OFFSETS.adminMaster) };
    case 'balancer':
      return { bind: tcp(at(PORT_OFFSETS.balancer)), adminPort: at(PORT_OFFSETS.adminBalancer) };
    case 'storage':
      return { bind: tcp(at(PORT_OFFSETS.storage)), adminPort: at(PORT_OFFSETS.adminStorage) };
    case 'worker':
      return { adminPort: at(PORT_OFFSETS.adminWorker0 + index) };
  }
}

/** The main endpoint in a ready message (each role names its endpoints its own way). */
export function mainEndpoint(role: DevRole, endpoints: Record<string, string>): string | undefined {
  const prefer: Record<DevRole, string[]> = {
    master: ['clients', 'master'],
    balancer: ['workers', 'balancer'],
    storage: ['clients', 'storage'],
    worker: [],
  };
  for (const k of prefer[role]) if (endpoints[k]) return endpoints[k];
  return Object.values(endpoints)[0];
}

export type ExitDecision = { action: 'restart'; delayMs: number; message: string } | { action: 'leave-dead'; message: string };

/** What dev does when a node that was serving exits on its own. Pure: tested directly. */
export function decideOnExit(
  n: { name: string; role: DevRole; pid: number; restarts: number; outputFile: string },
  how: { code: number | null; signal: NodeJS.Signals | null },
  restartRoles: readonly DevRole[],
  cfg: Pick<DevConfig, 'maxRestarts' | 'restartDelayMs'>,
): ExitDecision {
  const why = how.signal ? `killed by ${how.signal}` : `exited with code ${how.code}`;
  const base = `${n.name} (pid ${n.pid}) ${why}; its output is in ${n.outputFile}`;
  if (restartRoles.includes(n.role) && n.restarts < cfg.maxRestarts) {
    return { action: 'restart', delayMs: cfg.restartDelayMs, message: `${base}; restarting it in ${cfg.restartDelayMs} ms (restart ${n.restarts + 1} of at most ${cfg.maxRestarts})` };
  }
  const impact: Record<DevRole, string> = {
    master: 'NO JOBS CAN BE SUBMITTED OR FINISHED until the grid is restarted',
    storage: 'NO FILES CAN BE UPLOADED OR READ until the grid is restarted',
    balancer: 'NO TASKS WILL BE DISPATCHED until the grid is restarted',
    worker: 'the other workers carry on',
  };
  const tooMany = restartRoles.includes(n.role) ? ` after ${n.restarts} restarts` : '';
  return { action: 'leave-dead', message: `${n.role === 'worker' ? '' : '!!! '}${base}${tooMany}; it stays down: ${impact[n.role]}` };
}

/** Mount points under `dir` listed in /proc/mounts text (octal escapes decoded). */
export function mountsUnder(procMounts: string, dir: string): string[] {
  const root = dir.endsWith('/') ? dir : dir + '/';
  const out: string[] = [];
  for (const line of procMounts.split('\n')) {
    const mp = line.split(' ')[1];
    if (!mp) continue;
    const p = mp.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
    if (p === dir || p.startsWith(root)) out.push(p);
  }
  // deepest first, so nested mounts go before their parents
  return out.sort((a, b) => b.length - a.length);
}

/** Lazily unmounts every mount under `dir`; returns those it could not unmount. */
export function unmountAllUnder(dir: string): { unmounted: string[]; failed: string[] } {
  let text = '';
  try {
    text = fs.readFileSync('/proc/mounts', 'utf8');
  } catch {
    return { unmounted: [], failed: [] };
  }
  let real = dir;
  try {
    real = fs.realpathSync(dir);
  } catch {
    // dir is gone: nothing of ours can be mounted there by path, but check the given path anyway
  }
  const unmounted: string[] = [];
  const failed: string[] = [];
  for (const mp of new Set([...mountsUnder(text, real), ...mountsUnder(text, dir)])) {
    const ok = ['fusermount', 'fusermount3'].some((cmd) => spawnSync(cmd, ['-uz', mp], { stdio: 'ignore' }).status === 0) || spawnSync('umount', ['-l', mp], { stdio: 'ignore' }).status === 0;
    (ok ? unmounted : failed).push(mp);
  }
  return { unmounted, failed };
}

// ---- the supervisor ----------------------------------------------------------------------------

/** Keeps the last `max` lines written to a stream, for error reports. */
class LineTail {
  private lines: string[] = [];
  private partial = '';
  constructor(private readonly max: number) {}
  push(chunk: Buffer): string[] {
    const parts = (this.partial + chunk.toString('utf8')).split('\n');
    this.partial = parts.pop() ?? '';
    for (const l of parts) this.lines.push(l);
    if (this.lines.length > this.max) this.lines.splice(0, this.lines.length - this.max);
    return parts;
  }
  get(): string[] {
    return this.partial ? [...this.lines, this.partial].slice(-this.max) : this.lines.slice();
  }
}

interface Node extends DevNodeState {
  role: DevRole;
  index: number;
  args: () => string[];
  child?: ChildProcess;
  tail: LineTail;
  exited?: Promise<void>;
}

interface ReadyMsg {
  type?: string;
  role?: string;
  nodeId?: string;
  endpoints?: Record<string, string>;
  adminPort?: number;
}

export interface SupervisorIo {
  /** a line for the person running dev */
  say(line: string): void;
  launcher?: Launcher;
}

export class DevSupervisor {
  private readonly nodes: Node[] = [];
  private stopping = false;
  private readonly logDir: string;
  private readonly startedAtMs = Date.now();
  private readonly timers = new Set<NodeJS.Timeout>();
  private endpointsOf: { master: string; balancer: string; storage: string } = { master: '', balancer: '', storage: '' };

  constructor(
    readonly o: DevOptions,
    readonly cfg: DevConfig,
    private readonly io: SupervisorIo,
  ) {
    this.logDir = path.join(o.dataDir, 'logs');
  }

  get statePath(): string {
    return devStatePath(this.o.dataDir);
  }

  /** Starts every node in order; on failure stops what started and throws. */
  async start(): Promise<DevState> {
    fs.mkdirSync(this.logDir, { recursive: true });
    const left = unmountAllUnder(this.o.dataDir);
    if (left.unmounted.length) this.io.say(`unmounted FUSE mounts left over from an earlier run: ${left.unmounted.join(', ')}`);
    try {
      const [storage, master] = await Promise.all([this.launch('storage', 0, () => this.roleArgs('storage', 0)), this.launch('master', 0, () => this.roleArgs('master', 0))]);
      this.endpointsOf.storage = this.endpointOf(storage);
      this.endpointsOf.master = this.endpointOf(master);
      const balancer = await this.launch('balancer', 0, () => this.roleArgs('balancer', 0));
      this.endpointsOf.balancer = this.endpointOf(balancer);
      await Promise.all(Array.from({ length: this.o.workers }, (_, i) => this.launch('worker', i, () => this.roleArgs('worker', i))));
    } catch (e) {
      await this.stop();
      throw e;
    }
    const state = this.writeState();
    return state;
  }

  private endpointOf(n: Node): string {
    const ep = mainEndpoint(n.role, n.endpoints);
    if (!ep) throw new GridError('UNAVAILABLE', `${n.name} announced no endpoint`, `see ${n.outputFile}`);
    return ep;
  }

  /** Arguments of a role; a restarted node keeps the endpoint and admin port it had. */
  private roleArgs(role: DevRole, i: number): string[] {
    const name = role === 'worker' ? `worker-${i}` : role;
    const prev = this.nodes.find((n) => n.name === name);
    const planned = plannedPorts(this.o, role, i);
    const adminPort = prev?.adminPort || planned.adminPort;
    const bind = prev ? mainEndpoint(role, prev.endpoints) ?? planned.bind : planned.bind;
    const dataDir = path.join(this.o.dataDir, name);
    const a = ['--data-dir', dataDir, '--admin-port', String(adminPort)];
    if (role === 'balancer') a.push('--master', this.endpointsOf.master);
    if (role === 'worker') {
      a.push('--balancer', this.endpointsOf.balancer, '--storage', this.endpointsOf.storage, '--mount', path.join(dataDir, 'mnt'));
      if (this.o.slots !== undefined) a.push('--slots', String(this.o.slots));
      if (this.o.prefetch !== undefined) a.push('--prefetch', String(this.o.prefetch));
    } else if (bind) {
      a.push('--bind', bind);
    }
    return a;
  }

  private async launch(role: DevRole, index: number, args: () => string[]): Promise<Node> {
    const name = role === 'worker' ? `worker-${index}` : role;
    let n = this.nodes.find((x) => x.name === name);
    if (!n) {
      n = {
        name,
        role,
        index,
        pid: 0,
        nodeId: '',
        endpoints: {},
        adminPort: 0,
        dataDir: path.join(this.o.dataDir, name),
        outputFile: path.join(this.logDir, `${name}.out`),
        state: 'restarting',
        restarts: 0,
        args,
        tail: new LineTail(this.cfg.logTailLines),
      };
      this.nodes.push(n);
    }
    await this.spawnAndWait(n);
    return n;
  }

  private spawnAndWait(n: Node): Promise<void> {
    const { command, argv } = (this.io.launcher ?? defaultLauncher)(n.role, n.args());
    fs.mkdirSync(n.dataDir, { recursive: true });
    const outFd = fs.openSync(n.outputFile, 'a');
    fs.writeSync(outFd, `--- grid dev: starting ${n.name}: ${[command, ...argv].join(' ')}\n`);
    // own process group: a Ctrl-C in dev's terminal reaches only dev, which then stops the
    // nodes in order (workers first) instead of all of them racing; if dev dies, the nodes
    // see the IPC channel close and stop by themselves
    const child = spawn(command, argv, { stdio: ['ignore', 'pipe', 'pipe', 'ipc'], env: process.env, detached: true });
    n.child = child;
    n.pid = child.pid ?? 0;
    n.state = 'restarting';
    const write = (b: Buffer): void => {
      try {
        fs.writeSync(outFd, b);
      } catch {
        // the log file is best effort; the tail in memory still has it
      }
    };
    child.once('close', () => fs.closeSync(outFd));
    return new Promise<void>((resolve, reject) => {
      // starting -> serving (resolved) or failed (rejected); an exit only counts as a crash
      // once the node was serving
      let phase: 'starting' | 'serving' | 'failed' = 'starting';
      const fail = (what: string): void => {
        if (phase !== 'starting') return;
        phase = 'failed';
        clearTimeout(timer);
        reject(this.startFailure(n, what));
      };
      const onReady = (m: ReadyMsg): void => {
        if (phase !== 'starting' || !m.endpoints) return;
        phase = 'serving';
        clearTimeout(timer);
        n.nodeId = m.nodeId ?? '';
        n.endpoints = m.endpoints;
        n.adminPort = m.adminPort ?? 0;
        n.state = 'running';
        resolve();
      };
      const timer = setTimeout(() => fail(`did not announce ready within ${this.cfg.readyTimeoutMs} ms`), this.cfg.readyTimeoutMs);
      child.on('message', (m: ReadyMsg) => {
        if (m && m.type === 'ready') onReady(m);
      });
      child.stdout!.on('data', (b: Buffer) => {
        write(b);
        for (const l of n.tail.push(b)) {
          // a node without IPC support still prints GRID_READY {json}
          if (l.startsWith('GRID_READY ')) {
            try {
              onReady(JSON.parse(l.slice('GRID_READY '.length)) as ReadyMsg);
            } catch {
              // not JSON: wait for the IPC message
            }
          }
        }
      });
      child.stderr!.on('data', (b: Buffer) => {
        write(b);
        n.tail.push(b);
      });
      child.on('error', (e) => fail(`could not be started: ${e.message}`));
      n.exited = new Promise<void>((res) => {
        child.on('exit', (code, signal) => {
          if (phase === 'serving') this.onExit(n, child, code, signal);
          else fail(signal ? `was killed by ${signal} before it was ready` : `exited with code ${code} before it was ready`);
          res();
        });
      });
    });
  }

  private startFailure(n: Node, what: string): GridError {
    const tail = n.tail.get();
    const shown = tail.length ? `; its last output:\n  ${tail.join('\n  ')}\n` : '; it printed nothing';
    return new GridError('UNAVAILABLE', `grid dev: ${n.name} (pid ${n.pid}) ${what}${shown}`, `full output in ${n.outputFile}`);
  }

  private onExit(n: Node, child: ChildProcess, code: number | null, signal: NodeJS.Signals | null): void {
    if (this.stopping || n.child !== child) return;
    const d = decideOnExit(n, { code, signal }, this.o.restart, this.cfg);
    const tail = n.tail.get().slice(-Math.min(5, this.cfg.logTailLines));
    this.io.say(`grid dev: ${d.message}${tail.length ? `\n  last output:\n    ${tail.join('\n    ')}` : ''}`);
    if (d.action === 'leave-dead') {
      n.state = 'dead';
      this.writeState();
      return;
    }
    n.state = 'restarting';
    n.restarts++;
    this.writeState();
    const t = setTimeout(() => {
      this.timers.delete(t);
      if (this.stopping) return;
      this.spawnAndWait(n).then(
        () => {
          this.io.say(`grid dev: ${n.name} is back (pid ${n.pid})`);
          this.writeState();
        },
        (e: GridError) => {
          // it exited before it was ready, or it hung: make sure it is gone, and say so
          n.child?.kill('SIGKILL');
          n.state = 'dead';
          this.io.say(`grid dev: restart of ${n.name} failed: ${e.describe()}`);
          this.writeState();
        },
      );
    }, d.delayMs);
    this.timers.add(t);
  }

  state(): DevState {
    return {
      pid: process.pid,
      dataDir: this.o.dataDir,
      logDir: this.logDir,
      startedAtMs: this.startedAtMs,
      master: this.endpointsOf.master,
      balancer: this.endpointsOf.balancer,
      storage: this.endpointsOf.storage,
      nodes: this.nodes.map((n) => ({
        name: n.name,
        role: n.role,
        pid: n.pid,
        nodeId: n.nodeId,
        endpoints: n.endpoints,
        adminPort: n.adminPort,
        dataDir: n.dataDir,
        outputFile: n.outputFile,
        state: n.state,
        restarts: n.restarts,
      })),
    };
  }

  /** dev.json, replaced atomically so a reader never sees half a file. */
  writeState(): DevState {
    const s = this.state();
    if (this.stopping) return s;
    const tmp = `${this.statePath}.${process.pid}.tmp`;
    fs.writeFileSync(tmp, JSON.stringify(s, null, 2) + '\n');
    fs.renameSync(tmp, this.statePath);
    return s;
  }

  /** Stops every child (workers first), unmounts leftovers, removes dev.json. Idempotent. */
  async stop(): Promise<{ killed: string[]; unmounted: string[]; failedUnmounts: string[] }> {
    this.stopping = true;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    const killed: string[] = [];
    const workers = this.nodes.filter((n) => n.role === 'worker');
    const others = this.nodes.filter((n) => n.role !== 'worker');
    for (const group of [workers, others]) {
      await Promise.all(group.map((n) => this.stopOne(n).then((k) => k && killed.push(n.name))));
    }
    const um = unmountAllUnder(this.o.dataDir);
    try {
      fs.rmSync(this.statePath, { force: true });
    } catch {
      // already gone
    }
    return { killed, unmounted: um.unmounted, failedUnmounts: um.failed };
  }

  /** SIGTERM, then SIGKILL after stopGraceMs. Resolves true when SIGKILL was needed. */
  private async stopOne(n: Node): Promise<boolean> {
    const c = n.child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return false;
    const exited = n.exited ?? Promise.resolve();
    c.kill('SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    const graceOver = new Promise<boolean>((r) => {
      timer = setTimeout(() => r(true), this.cfg.stopGraceMs);
    });
    const needKill = await Promise.race([exited.then(() => false), graceOver]);
    clearTimeout(timer);
    if (needKill) {
      c.kill('SIGKILL');
      await exited;
    }
    n.state = 'dead';
    return needKill;
  }
}

// ---- the command -------------------------------------------------------------------------------

interface DevFlags {
  workers?: string;
  dataDir?: string;
  portBase?: string;
  slots?: string;
  prefetch?: string;
  restart?: string;
}

export function parseDevOptions(f: DevFlags, cfg: DevConfig): DevOptions {
  const restart = (f.restart ?? 'worker')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '' && s !== 'none');
  for (const r of restart) {
    if (!(DEV_ROLES as readonly string[]).includes(r)) throw new GridError('BAD_REQUEST', `--restart names unknown role ${JSON.stringify(r)}`, `use a comma list of ${DEV_ROLES.join(', ')}, or none`);
  }
  const portBase = intFlag(f.portBase, '--port-base', 0, 65535 - 100, 7700);
  if (portBase !== 0 && portBase < 1024) throw new GridError('BAD_REQUEST', `--port-base must be 0 (ephemeral) or at least 1024, got ${portBase}`);
  const workers = intFlag(f.workers, '--workers', 0, cfg.maxWorkers, 2);
  if (portBase !== 0 && portBase + PORT_OFFSETS.adminWorker0 + workers > 65535) throw new GridError('BAD_REQUEST', `--port-base ${portBase} leaves no room for ${workers} worker admin ports`);
  return {
    workers,
    dataDir: path.resolve(f.dataDir ?? DEFAULT_DATA_DIR),
    portBase,
    slots: f.slots === undefined ? undefined : intFlag(f.slots, '--slots', 1, 1024, 1),
    prefetch: f.prefetch === undefined ? undefined : intFlag(f.prefetch, '--prefetch', 0, 1024, 0),
    restart: restart as DevRole[],
  };
}

async function runDev(f: DevFlags): Promise<void> {
  const cfg = loadDevConfig();
  const o = parseDevOptions(f, cfg);
  const running = readDevState(o.dataDir);
  if (running) throw new GridError('BAD_REQUEST', `a grid dev (pid ${running.pid}) already runs with data dir ${o.dataDir}`, 'stop it first, or use another --data-dir');
  fs.mkdirSync(o.dataDir, { recursive: true });
  const devLog = path.join(o.dataDir, 'logs', 'dev.log');
  fs.mkdirSync(path.dirname(devLog), { recursive: true });
  const say = (line: string): void => {
    process.stdout.write(line + '\n');
    try {
      fs.appendFileSync(devLog, `${new Date().toISOString()} ${line}\n`);
    } catch {
      // the terminal has it
    }
  };
  const sup = new DevSupervisor(o, cfg, { say });
  let stopped: Promise<void> | undefined;
  const shutdown = (why: string): Promise<void> =>
    (stopped ??= (async () => {
      say(`grid dev: ${why}: stopping every node (SIGTERM, SIGKILL after ${cfg.stopGraceMs} ms)`);
      const r = await sup.stop();
      if (r.killed.length) say(`grid dev: had to SIGKILL ${r.killed.join(', ')}`);
      if (r.unmounted.length) say(`grid dev: unmounted leftover FUSE mounts: ${r.unmounted.join(', ')}`);
      if (r.failedUnmounts.length) say(`grid dev: COULD NOT UNMOUNT ${r.failedUnmounts.join(', ')}; run fusermount -uz on them`);
      say('grid dev: stopped');
    })());
  let startDone = false;
  const onSignal = (sig: string): void => {
    void shutdown(`got ${sig}`).then(() => process.exit(startDone ? 0 : 1));
  };
  process.on('SIGINT', () => onSignal('SIGINT'));
  process.on('SIGTERM', () => onSignal('SIGTERM'));
  say(`grid dev: starting storage, master, balancer and ${o.workers} worker(s) in ${o.dataDir}`);
  let s: DevState;
  try {
    s = await sup.start();
  } catch (e) {
    if (stopped) return; // a signal arrived during start-up; its handler exits
    throw e;
  }
  startDone = true;
  say(
    [
      `grid dev: ready (${o.workers} worker${o.workers === 1 ? '' : 's'})`,
      `  master    ${s.master}    (clients find it through ${sup.statePath}, or export GRID_MASTER=${s.master})`,
      `  storage   ${s.storage}`,
      `  balancer  ${s.balancer}`,
      `  logs      ${s.logDir}  (each node's stdout/stderr: <name>.out; its JSON log: ${o.dataDir}/<name>/logs/)`,
      `  state     ${sup.statePath}`,
      `crashed nodes restarted: ${o.restart.length ? o.restart.join(', ') : 'none'}. Press Ctrl-C to stop.`,
    ].join('\n'),
  );
  announceReady({ role: 'dev', nodeId: String(process.pid), endpoints: { master: s.master, storage: s.storage, balancer: s.balancer }, adminPort: 0, statePath: sup.statePath });
  // keep running until a signal: the children's pipes keep the event loop alive
  await new Promise<void>(() => undefined);
}

export function registerDevCommand(program: Command): void {
  program
    .command('dev')
    .description('run a whole grid on this machine: storage, master, balancer and N workers')
    .option('--workers <n>', 'number of workers (default 2)')
    .option('--data-dir <dir>', `folder for every node's data, logs and dev.json (default ${DEFAULT_DATA_DIR})`)
    .option('--port-base <port>', 'first port (default 7700; 0 = every port ephemeral)')
    .option('--slots <n>', 'tasks each worker runs at once (default: the worker\'s own)')
    .option('--prefetch <n>', 'tasks each worker queues beyond its slots (default: the worker\'s own)')
    .option('--restart <roles>', 'comma list of roles restarted after a crash, or none (default worker)')
    .action((f: DevFlags) => runDev(f));
}
