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
 * Replicated masters (`--masters 3` or 5; docs/architecture.md "Replicated masters"): dev
 * fixes every master's port before the first starts (peers must know each other), starts
 * each as `grid master --peers E1,E2,E3 --bind Ei` in `<data-dir>/master-<i>`, and gives the
 * balancer and the clients the whole list. One dead master is then reported but not fatal:
 * the others keep serving while a majority runs.
 *
 * Stop (SIGINT/SIGTERM): workers first (they unmount FUSE), then the rest; SIGTERM, then
 * SIGKILL after `stopGraceMs`; any FUSE mount left under the data dir is lazily unmounted;
 * dev.json is removed; exit 0.
 */
import { ChildProcess, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { Command } from 'commander';
import { GridError, announceReady } from '../common';
import { intFlag } from './args';
import { DEV_MASTER_COUNTS, DevConfig, loadDevConfig } from './config';
import { DEFAULT_DATA_DIR, DevNodeState, DevState, devStatePath, readDevState } from './endpoints';

export const DEV_ROLES = ['master', 'balancer', 'storage', 'worker'] as const;
export type DevRole = (typeof DEV_ROLES)[number];

/**
 * Port offsets from --port-base (docs/architecture.md, "Endpoints and ports"). Master 0 is
 * at P; with --masters N the others at P+3 .. P+N+1 (admin P+13 ..), after balancer P+1 and
 * storage P+2, so a 1-master layout is unchanged.
 */
export const PORT_OFFSETS = { master: 0, balancer: 1, storage: 2, master1: 3, balancer1: 8, adminMaster: 10, adminBalancer: 11, adminStorage: 12, adminMaster1: 13, adminBalancer1: 18, adminWorker0: 20 } as const;

/** Most masters dev runs (a group of 5 tolerates 2 failures). */
export const MAX_DEV_MASTERS = 5;

export interface DevOptions {
  workers: number;
  /** masters in the group: 1, 3 or 5 (default 1) */
  masters?: number;
  /** balancers: 1, or 2 for a primary/auxiliary pair (default 1; docs/balancer.md) */
  balancers?: number;
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

/** The name of a node in dev.json and its data dir: master (or master-<i> in a group), worker-<i>, ... */
export function nodeName(role: DevRole, index: number, masters = 1, balancers = 1): string {
  if (role === 'worker') return `worker-${index}`;
  if (role === 'master' && masters > 1) return `master-${index}`;
  if (role === 'balancer' && balancers > 1) return `balancer-${index}`;
  return role;
}

/** Bind endpoint and admin port of a node before its first start. */
export function plannedPorts(o: Pick<DevOptions, 'portBase'>, role: DevRole, index = 0): { bind?: string; adminPort: number } {
  const P = o.portBase;
  const at = (off: number): number => (P === 0 ? 0 : P + off);
  switch (role) {
    case 'master':
      if (index > 0) return { bind: tcp(at(PORT_OFFSETS.master1 + index - 1)), adminPort: at(PORT_OFFSETS.adminMaster1 + index - 1) };
      return { bind: tcp(at(PORT_OFFSETS.master)), adminPort: at(PORT_OFFSETS.adminMaster) };
    case 'balancer':
      if (index > 0) return { bind: tcp(at(PORT_OFFSETS.balancer1)), adminPort: at(PORT_OFFSETS.adminBalancer1) };
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

/**
 * What dev does when a node that was serving exits on its own. Pure: tested directly.
 * `masters` is the size of the master group: with more than one, a dead master is not fatal.
 */
export function decideOnExit(
  n: { name: string; role: DevRole; pid: number; restarts: number; outputFile: string },
  how: { code: number | null; signal: NodeJS.Signals | null },
  restartRoles: readonly DevRole[],
  cfg: Pick<DevConfig, 'maxRestarts' | 'restartDelayMs'>,
  masters = 1,
  balancers = 1,
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
  if (n.role === 'balancer' && balancers > 1) {
    return { action: 'leave-dead', message: `!! ${base}${tooMany}; it stays down: the other balancer takes the dispatch lease (see \`grid cluster\`); if it dies too, NO TASKS WILL BE DISPATCHED` };
  }
  if (n.role === 'master' && masters > 1) {
    const majority = Math.floor(masters / 2) + 1;
    return {
      action: 'leave-dead',
      message: `!! ${base}${tooMany}; it stays down: the other masters keep serving while ${majority} of ${masters} run (see \`grid cluster\`)${
        restartRoles.includes('master') ? '' : '; `grid dev --restart worker,master` restarts dead masters'
      }`,
    };
  }
  return { action: 'leave-dead', message: `${n.role === 'worker' ? '' : '!!! '}${base}${tooMany}; it stays down: ${impact[n.role]}` };
}

/**
 * `count` distinct TCP ports on 127.0.0.1 that were free a moment ago: each is listened on
 * with port 0 (the kernel picks), all held open together so they differ, then released.
 * Used for the masters of a group under --port-base 0, whose ports must be known before
 * they start. Another process could take one in between; the master then fails to bind and
 * dev says so (start again).
 */
export async function probeFreePorts(count: number): Promise<number[]> {
  const servers: net.Server[] = [];
  try {
    const ports: number[] = [];
    for (let i = 0; i < count; i++) {
      const srv = net.createServer();
      servers.push(srv);
      await new Promise<void>((resolve, reject) => {
        srv.once('error', reject);
        srv.listen(0, '127.0.0.1', () => resolve());
      });
      ports.push((srv.address() as net.AddressInfo).port);
    }
    return ports;
  } finally {
    await Promise.all(servers.map((srv) => new Promise<void>((r) => srv.close(() => r()))));
  }
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
  private endpointsOf: { masters: string[]; balancer: string; balancers: string[]; storage: string } = { masters: [], balancer: '', balancers: [], storage: '' };
  /** every master's bind endpoint, fixed before the first starts (a group's --peers) */
  private masterBinds: string[] = [];

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
      this.masterBinds = await this.planMasters();
      const [storage, ...masters] = await Promise.all([
        this.launch('storage', 0, () => this.roleArgs('storage', 0)),
        ...this.masterBinds.map((_, i) => this.launch('master', i, () => this.roleArgs('master', i))),
      ]);
      this.endpointsOf.storage = this.endpointOf(storage!);
      this.endpointsOf.masters = masters.map((m) => this.endpointOf(m));
      const balancers = await Promise.all(Array.from({ length: this.balancerCount }, (_, i) => this.launch('balancer', i, () => this.roleArgs('balancer', i))));
      this.endpointsOf.balancers = balancers.map((b) => this.endpointOf(b));
      this.endpointsOf.balancer = this.endpointsOf.balancers[0]!;
      await Promise.all(Array.from({ length: this.o.workers }, (_, i) => this.launch('worker', i, () => this.roleArgs('worker', i))));
    } catch (e) {
      await this.stop();
      throw e;
    }
    const state = this.writeState();
    return state;
  }

  get masterCount(): number {
    return this.o.masters ?? 1;
  }

  get balancerCount(): number {
    return this.o.balancers ?? 1;
  }

  /**
   * Bind endpoints of the masters. One master binds as planned (port 0 is fine: its real
   * endpoint comes back in its ready message). A group needs real ports up front.
   */
  private async planMasters(): Promise<string[]> {
    const n = this.masterCount;
    if (n === 1) return [plannedPorts(this.o, 'master', 0).bind!];
    if (this.o.portBase !== 0) return Array.from({ length: n }, (_, i) => plannedPorts(this.o, 'master', i).bind!);
    return (await probeFreePorts(n)).map(tcp);
  }

  private endpointOf(n: Node): string {
    const ep = mainEndpoint(n.role, n.endpoints);
    if (!ep) throw new GridError('UNAVAILABLE', `${n.name} announced no endpoint`, `see ${n.outputFile}`);
    return ep;
  }

  /** Arguments of a role; a restarted node keeps the endpoint and admin port it had. */
  private roleArgs(role: DevRole, i: number): string[] {
    const name = nodeName(role, i, this.masterCount, this.balancerCount);
    const prev = this.nodes.find((n) => n.name === name);
    const planned = role === 'master' ? { ...plannedPorts(this.o, role, i), bind: this.masterBinds[i] } : plannedPorts(this.o, role, i);
    const adminPort = prev?.adminPort || planned.adminPort;
    const bind = prev ? mainEndpoint(role, prev.endpoints) ?? planned.bind : planned.bind;
    const dataDir = path.join(this.o.dataDir, name);
    const a = ['--data-dir', dataDir, '--admin-port', String(adminPort)];
    if (role === 'master' && this.masterCount > 1) a.push('--peers', this.masterBinds.join(','));
    if (role === 'master') a.push('--dashboard-nodes-file', this.statePath); // the dashboard shows every node
    if (role === 'balancer') a.push('--master', this.endpointsOf.masters.join(','), '--role', i === 0 ? 'primary' : 'auxiliary');
    if (role === 'worker') {
      a.push('--balancer', this.endpointsOf.balancers.join(','), '--storage', this.endpointsOf.storage, '--mount', path.join(dataDir, 'mnt'));
      if (this.o.slots !== undefined) a.push('--slots', String(this.o.slots));
      if (this.o.prefetch !== undefined) a.push('--prefetch', String(this.o.prefetch));
    } else if (bind) {
      a.push('--bind', bind);
    }
    return a;
  }

  private async launch(role: DevRole, index: number, args: () => string[]): Promise<Node> {
    const name = nodeName(role, index, this.masterCount, this.balancerCount);
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
    const d = decideOnExit(n, { code, signal }, this.o.restart, this.cfg, this.masterCount, this.balancerCount);
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
      master: this.endpointsOf.masters[0] ?? '',
      masters: [...this.endpointsOf.masters],
      balancer: this.endpointsOf.balancer,
      balancers: [...this.endpointsOf.balancers],
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
  masters?: string;
  dataDir?: string;
  portBase?: string;
  slots?: string;
  prefetch?: string;
  restart?: string;
  balancers?: string;
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
  const masters = intFlag(f.masters, '--masters', 1, MAX_DEV_MASTERS, 1);
  const balancers = intFlag(f.balancers, '--balancers', 1, 2, 1);
  if (!(DEV_MASTER_COUNTS as readonly number[]).includes(masters)) {
    throw new GridError('BAD_REQUEST', `--masters must be ${DEV_MASTER_COUNTS.join(', ')}, got ${masters}`, 'a Raft group needs an odd count: 3 survive one dead master, 5 survive two');
  }
  if (portBase !== 0 && portBase + PORT_OFFSETS.adminWorker0 + workers > 65535) throw new GridError('BAD_REQUEST', `--port-base ${portBase} leaves no room for ${workers} worker admin ports`);
  return {
    workers,
    masters,
    balancers,
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
  const nm = o.masters ?? 1;
  say(`grid dev: starting storage, ${nm === 1 ? 'master' : `${nm} masters`}, balancer and ${o.workers} worker(s) in ${o.dataDir}`);
  let s: DevState;
  try {
    s = await sup.start();
  } catch (e) {
    if (stopped) return; // a signal arrived during start-up; its handler exits
    throw e;
  }
  startDone = true;
  const masters = s.masters ?? [s.master];
  const masterLines =
    masters.length === 1
      ? [`  master    ${s.master}    (clients find it through ${sup.statePath}, or export GRID_MASTER=${s.master})`]
      : [
          ...masters.map((m, i) => `  master-${i}  ${m}`),
          `            (clients find them through ${sup.statePath}, or export GRID_MASTER=${masters.join(',')}; \`grid cluster\` shows which leads)`,
        ];
  say(
    [
      `grid dev: ready (${masters.length === 1 ? '' : `${masters.length} masters, `}${o.workers} worker${o.workers === 1 ? '' : 's'})`,
      ...masterLines,
      `  storage   ${s.storage}`,
      ...(o.balancers === 2 ? [`  balancers ${s.balancers?.join(' (primary), ')} (auxiliary)`] : [`  balancer  ${s.balancer}`]),
      `  dashboard http://127.0.0.1:${s.nodes.find((n) => n.role === 'master')?.adminPort}/dashboard  (metrics: GET /metrics on every node's admin port)`,
      `  logs      ${s.logDir}  (each node's stdout/stderr: <name>.out; its JSON log: ${o.dataDir}/<name>/logs/)`,
      `  state     ${sup.statePath}`,
      `crashed nodes restarted: ${o.restart.length ? o.restart.join(', ') : 'none'}. Press Ctrl-C to stop.`,
    ].join('\n'),
  );
  announceReady({
    role: 'dev',
    nodeId: String(process.pid),
    endpoints: { master: masters.join(','), storage: s.storage, balancer: s.balancer },
    adminPort: 0,
    statePath: sup.statePath,
  });
  // keep running until a signal: the children's pipes keep the event loop alive
  await new Promise<void>(() => undefined);
}

export function registerDevCommand(program: Command): void {
  program
    .command('dev')
    .description('run a whole grid on this machine: storage, master(s), balancer and N workers')
    .option('--workers <n>', 'number of workers (default 2)')
    .option('--balancers <n>', 'balancers: 1, or 2 for a primary/auxiliary pair fenced by a lease from the masters (default 1); the second at P+8')
    .option('--masters <n>', 'masters in a replicated group: 1, 3 or 5 (default 1); with --port-base P they are at P, P+3, P+4, ...')
    .option('--data-dir <dir>', `folder for every node's data, logs and dev.json (default ${DEFAULT_DATA_DIR})`)
    .option('--port-base <port>', 'first port (default 7700; 0 = every port ephemeral)')
    .option('--slots <n>', 'tasks each worker runs at once (default: the worker\'s own)')
    .option('--prefetch <n>', 'tasks each worker queues beyond its slots (default: the worker\'s own)')
    .option('--restart <roles>', 'comma list of roles restarted after a crash, or none (default worker)')
    .action((f: DevFlags) => runDev(f));
}
