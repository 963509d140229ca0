// Real `grid master` processes in a Raft group, for tests and benchmarks: fixed loopback
// ports, admin /status polling, a client that follows NOT_LEADER like the CLI does.
import { ChildProcess, spawn } from 'node:child_process';
import http from 'node:http';
import path from 'node:path';
import { GridError, MasterCursor, RemoteError, RpcClient, leaderHint, probeFreePorts, silentLogger } from '../../src/common';
import { MessageInput, MessageOf, newUuid } from '../../src/messages';
import { testSecurity } from './security';

const BIN = path.resolve(__dirname, '../../../bin/grid.js');

/** A free loopback port below the ephemeral range (src/common/ports.ts says why). */
export async function freePort(): Promise<number> {
  return (await probeFreePorts(1))[0]!;
}

function getJson(port: number, p: string): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: p, timeout: 1000 }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => {
        try {
          resolve(JSON.parse(body) as Record<string, unknown>);
        } catch (e) {
          reject(e);
        }
      });
    });
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error('timeout')));
  });
}

interface Master {
  endpoint: string;
  dir: string;
  proc?: ChildProcess;
  adminPort?: number;
}

export class Cluster {
  readonly masters: Master[] = [];
  readonly log = silentLogger();
  constructor(
    readonly root: string,
    readonly configFile: string,
  ) {}

  async init(n: number): Promise<void> {
    for (let i = 0; i < n; i++) {
      const dir = path.join(this.root, `m${i}`);
      this.masters.push({ endpoint: `tcp://127.0.0.1:${await freePort()}`, dir });
    }
  }

  get peers(): string {
    return this.masters.map((m) => m.endpoint).join(',');
  }

  start(i: number): Promise<void> {
    const m = this.masters[i]!;
    const proc = spawn(process.execPath, [BIN, 'master', '--peers', this.peers, '--bind', m.endpoint, '--data-dir', m.dir, '--admin-port', '0', '--config', this.configFile], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    m.proc = proc;
    return new Promise<void>((resolve, reject) => {
      let out = '';
      proc.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
        const r = /GRID_READY (.*)\n/.exec(out);
        if (r && m.adminPort === undefined) {
          m.adminPort = JSON.parse(r[1]!).adminPort as number;
          resolve();
        }
      });
      proc.stderr!.on('data', (d: Buffer) => (out += d.toString()));
      proc.once('exit', (code) => reject(new Error(`master ${i} exited ${code} before ready: ${out}`)));
    });
  }

  async kill(i: number, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const m = this.masters[i]!;
    const p = m.proc;
    m.adminPort = undefined;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    const gone = new Promise((r) => p.once('exit', r));
    p.kill(signal);
    await gone;
  }

  async raft(i: number): Promise<{ role: string; term: number; applied: number; commit: number; counters: { snapshots: number } } | undefined> {
    const port = this.masters[i]!.adminPort;
    if (port === undefined) return undefined;
    try {
      return (await getJson(port, '/status')).raft as never;
    } catch {
      return undefined;
    }
  }

  /** Index of the live master that leads, waiting for one. */
  async leader(timeoutMs = 10_000): Promise<number> {
    const t0 = Date.now();
    for (;;) {
      for (let i = 0; i < this.masters.length; i++) if ((await this.raft(i))?.role === 'leader') return i;
      if (Date.now() - t0 > timeoutMs) throw new Error(`no leader within ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** A request that follows NOT_LEADER hints and moves on after timeouts, like the CLI. */
  async request(m: MessageInput, windowMs = 10_000): Promise<MessageOf<MessageInput['type']> & Record<string, unknown>> {
    const cursor = new MasterCursor(this.masters.map((x) => x.endpoint));
    let ep = cursor.current;
    const t0 = Date.now();
    let last: unknown;
    while (Date.now() - t0 < windowMs) {
      const c = new RpcClient({ security: testSecurity(), endpoint: ep, nodeUuid: newUuid(), log: this.log });
      try {
        return (await c.request(m, { timeoutMs: 500 })) as never;
      } catch (e) {
        last = e;
        if (e instanceof RemoteError && e.code === 'NOT_LEADER') {
          const hint = leaderHint(e.message);
          if (!hint) await new Promise((r) => setTimeout(r, 100));
          ep = cursor.redirect(hint);
        } else if (e instanceof GridError && e.code === 'TIMEOUT') ep = cursor.next();
        else throw e;
      } finally {
        c.close();
      }
    }
    throw last;
  }

  async stopAll(): Promise<void> {
    for (let i = 0; i < this.masters.length; i++) await this.kill(i, 'SIGKILL');
  }
}


/** A job_submit_request of n one-input tasks with fresh ids (no real files behind them). */
export function submitMsg(n: number, jobUuid = newUuid(), maxRetries = 0): MessageInput<'job_submit_request'> {
  return {
    type: 'job_submit_request',
    node_uuid: newUuid(),
    request_uuid: newUuid(),
    job_uuid: jobUuid,
    program_file_uuid: newUuid(),
    chunk_size: 1,
    max_retries: maxRetries,
    task_timeout_ms: 10_000,
    memory_limit_mb: 256,
    output_limit_bytes: 1 << 20,
    input_file_uuids: Array.from({ length: n }, () => newUuid()),
    input_names: Array.from({ length: n }, (_, i) => `f${i}`),
    args: [],
    program_name: 'job.js',
  };
}
