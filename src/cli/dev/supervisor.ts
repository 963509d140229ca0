/**
 * The `grid dev` supervisor: starts storage, the master(s), the balancer and N workers as
 * child processes (`node bin/grid.js <role> ...`, stdio piped, IPC channel), applies the
 * crash policy and stops them in order.
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
 * Stop: workers first (they unmount FUSE), then the rest; SIGTERM, then SIGKILL after
 * `stopGraceMs`; any FUSE mount left under the data dir is lazily unmounted; dev.json is
 * removed.
 */
import { ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { GridError, LOG_STDOUT_ENV, authorizeKey, clientTrustDir, keyFingerprint, loadOrCreateKeyPair, probeFreePorts } from '../../common';
import { unmountAllUnder } from '../../common/mounts';
import { DevConfig } from '../config';
import { DevNodeState, DevState, devStatePath } from '../endpoints';
import { LineTail } from './output';
import { DevOptions, DevRole, Launcher, decideOnExit, defaultLauncher, mainEndpoint, nodeName, plannedPorts, tcp } from './plan';

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
  /**
   * every complete line a node writes to stdout (its JSON log lines, GRID_LOG_STDOUT=1 is
   * set for the children when given), for dev's merged view; GRID_READY lines excluded
   */
  nodeLine?(name: string, line: string): void;
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
    this.setUpTrust();
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

  /** The trust dir every node and the client share: GRID_TRUST_DIR, else <data-dir>/trust. */
  get trustDir(): string {
    return clientTrustDir(this.o.dataDir);
  }

  get securityOn(): boolean {
    return (process.env.GRID_SECURITY || 'curve') !== 'off';
  }

  /**
   * Security on (the default): the local user's client key (<trust dir>/client.key, made on
   * first use) is authorized as a client; each node enrolls its own key and endpoint when it
   * starts (--enroll), so the nodes of this grid, and only they and this user, connect.
   */
  private setUpTrust(): void {
    if (!this.securityOn) {
      this.io.say('!! security is OFF (GRID_SECURITY=off): any local process can talk to every node');
      return;
    }
    const k = loadOrCreateKeyPair(this.trustDir, 'client');
    authorizeKey(this.trustDir, 'clients', k.publicKey, `dev-client-${keyFingerprint(k.publicKey)}`);
  }

  get balancerCount(): number {
    return this.o.balancers ?? 1;
  }

  get masterCount(): number {
    return this.o.masters ?? 1;
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
    if (this.securityOn) a.push('--trust-dir', this.trustDir, '--enroll');
    if (role === 'master' && this.masterCount > 1) a.push('--peers', this.masterBinds.join(','));
    if (role === 'master') a.push('--dashboard-nodes-file', this.statePath); // the dashboard shows every node
    if (role === 'balancer') a.push('--master', this.endpointsOf.masters.join(','), '--role', i === 0 ? 'primary' : 'auxiliary');
    if (role === 'worker') {
      a.push('--balancer', this.endpointsOf.balancers.join(','), '--storage', this.endpointsOf.storage, '--mount', path.join(dataDir, 'mnt'));
      if (this.o.slots !== undefined) a.push('--slots', String(this.o.slots));
      if (this.o.prefetch !== undefined) a.push('--prefetch', String(this.o.prefetch));
      if (this.o.staged) a.push('--staged');
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
    const env = this.io.nodeLine ? { ...process.env, [LOG_STDOUT_ENV]: '1' } : process.env;
    const child = spawn(command, argv, { stdio: ['ignore', 'pipe', 'pipe', 'ipc'], env, detached: true });
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
          } else {
            this.io.nodeLine?.(n.name, l);
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
