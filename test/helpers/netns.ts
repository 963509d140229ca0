// A multi-host harness on one machine (docs/operations.md, "Many hosts"): each "host" is a
// Linux network namespace with its own loopback and one address on a private /24, joined
// to the others through a bridge that lives in a namespace of its own ("switch"), so
// nothing touches the machine's own network. Traffic between hosts is real TCP over veth
// pairs. Processes run inside with `ip netns exec` (which also gives them their own mount
// namespace: a worker's FUSE mount is seen only there and vanishes with it).
//
// Names are unique per run (pid + random), every process is killed by PID and every
// namespace removed in destroy(), which also runs at process exit if a test forgot it.
// Needs root and iproute2 (`ip`).
import { ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';

/** one "host": a network namespace with one address */
export interface Host {
  /** namespace name (ip netns) */
  ns: string;
  /** its address on the harness network */
  addr: string;
}

/** A process started inside a host, and how to stop it. */
export interface HostProc {
  proc: ChildProcess;
  host: Host;
  /** what it printed so far (stdout + stderr) */
  output(): string;
  /** resolves with the first match of re in its stdout, or rejects when it exits or timeoutMs passes */
  waitFor(re: RegExp, timeoutMs?: number): Promise<RegExpExecArray>;
  /** SIGTERM, then SIGKILL after killAfterMs; resolves when it has exited */
  stop(killAfterMs?: number): Promise<void>;
}

const live = new Set<NetHarness>();
process.once('exit', () => {
  for (const h of live) h.destroySync();
});

function ip(args: string[]): void {
  execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

/** Whether this process may build namespaces (root with ip); the reason when not. */
export function netnsProblem(): string | null {
  if (process.geteuid?.() !== 0) return 'network namespaces need root';
  const r = spawnSync('ip', ['netns', 'list']);
  if (r.error || r.status !== 0) return `ip netns does not work here: ${r.error?.message ?? r.stderr.toString().trim()}`;
  return null;
}

export class NetHarness {
  readonly hosts: Host[] = [];
  private readonly procs = new Set<HostProc>();
  private readonly namespaces: string[] = [];
  private readonly sw: string;
  /** network prefix, e.g. 10.77.3 (a /24) */
  readonly net: string;

  /** Makes n hosts on one switch. Throws (after cleaning up) if any step fails. */
  constructor(n: number, readonly tag = `g${process.pid % 100000}${randomBytes(2).toString('hex')}`) {
    // a /24 chosen at random: the namespaces are private, this only keeps runs apart in logs
    this.net = `10.${200 + (randomBytes(1)[0]! % 50)}.${randomBytes(1)[0]! % 250}`;
    this.sw = `${tag}-sw`;
    live.add(this);
    try {
      this.addNs(this.sw);
      ip(['-n', this.sw, 'link', 'add', 'br0', 'type', 'bridge']);
      ip(['-n', this.sw, 'link', 'set', 'br0', 'up']);
      for (let i = 0; i < n; i++) this.addHost(i);
    } catch (e) {
      this.destroySync();
      throw e;
    }
  }

  private addNs(name: string): void {
    ip(['netns', 'add', name]);
    this.namespaces.push(name);
    ip(['-n', name, 'link', 'set', 'lo', 'up']);
  }

  private addHost(i: number): void {
    const ns = `${this.tag}-h${i}`;
    this.addNs(ns);
    // veth names are at most 15 bytes: made in the host namespace, the peer moved to the switch
    const a = `v${i}a`;
    const b = `v${i}b`;
    ip(['-n', ns, 'link', 'add', a, 'type', 'veth', 'peer', 'name', b, 'netns', this.sw]);
    ip(['-n', this.sw, 'link', 'set', b, 'master', 'br0']);
    ip(['-n', this.sw, 'link', 'set', b, 'up']);
    const addr = `${this.net}.${i + 1}`;
    ip(['-n', ns, 'addr', 'add', `${addr}/24`, 'dev', a]);
    ip(['-n', ns, 'link', 'set', a, 'up']);
    this.hosts.push({ ns, addr });
  }

  /** Starts cmd with args inside host h (its network, its own mount namespace). */
  spawn(h: Host, cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env): HostProc {
    const proc = spawn('ip', ['netns', 'exec', h.ns, cmd, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env });
    let out = '';
    let stdout = '';
    proc.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      stdout += d.toString();
    });
    proc.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<void>((r) => {
      if (proc.exitCode !== null || proc.signalCode !== null) r();
      else proc.once('exit', () => r());
    });
    const hp: HostProc = {
      proc,
      host: h,
      output: () => out,
      waitFor: (re, timeoutMs = 30_000) =>
        new Promise((resolve, reject) => {
          const check = (): boolean => {
            const m = re.exec(stdout);
            if (m) {
              done();
              resolve(m);
            }
            return !!m;
          };
          const onExit = () => {
            if (check()) return;
            done();
            reject(new Error(`${cmd} in ${h.ns} exited (${proc.exitCode ?? proc.signalCode}) before printing ${re}:\n${out}`));
          };
          const timer = setTimeout(() => {
            done();
            reject(new Error(`${cmd} in ${h.ns} did not print ${re} within ${timeoutMs} ms:\n${out}`));
          }, timeoutMs);
          const done = () => {
            clearTimeout(timer);
            proc.stdout!.off('data', check);
            proc.off('exit', onExit);
          };
          proc.stdout!.on('data', check);
          proc.once('exit', onExit);
          check();
        }),
      stop: async (killAfterMs = 8000) => {
        if (proc.exitCode === null && proc.signalCode === null) {
          proc.kill('SIGTERM');
          const t = setTimeout(() => proc.kill('SIGKILL'), killAfterMs);
          await exited;
          clearTimeout(t);
        }
        this.procs.delete(hp);
      },
    };
    this.procs.add(hp);
    return hp;
  }

  /** Runs cmd inside host h to its end; never rejects. */
  run(h: Host, cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env, timeoutMs = 120_000): Promise<{ code: number; stdout: string; stderr: string }> {
    return new Promise((resolve) => {
      const p = spawn('ip', ['netns', 'exec', h.ns, cmd, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env });
      let stdout = '';
      let stderr = '';
      p.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
      p.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
      const t = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
      p.once('close', (code, signal) => {
        clearTimeout(t);
        resolve({ code: code ?? (signal ? 128 : -1), stdout, stderr });
      });
    });
  }

  /** Stops every process (SIGTERM, then SIGKILL) and removes every namespace. */
  async destroy(): Promise<void> {
    await Promise.all([...this.procs].map((p) => p.stop()));
    this.destroySync();
  }

  /** The synchronous last resort: SIGKILL by pid, then remove the namespaces. */
  destroySync(): void {
    for (const p of this.procs) {
      if (p.proc.pid && p.proc.exitCode === null && p.proc.signalCode === null) {
        try {
          process.kill(p.proc.pid, 'SIGKILL');
        } catch {
          // gone
        }
      }
    }
    this.procs.clear();
    // deleting a namespace takes its veth ends (and so their peers) with it
    for (const ns of this.namespaces.splice(0).reverse()) spawnSync('ip', ['netns', 'del', ns]);
    live.delete(this);
  }

  /** Namespaces of this run still present (for the cleanup check). */
  leftovers(): string[] {
    const list = spawnSync('ip', ['netns', 'list']).stdout.toString();
    return list
      .split('\n')
      .map((l) => l.split(' ')[0]!)
      .filter((n) => n.startsWith(`${this.tag}-`));
  }
}
