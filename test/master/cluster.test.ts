// Three real `grid master --peers` processes on fixed loopback ports (docs/raft.md,
// "Guarantees"; Raft paper §5.2 election, §5.4 safety, §7 snapshots): a SIGKILLed leader is
// replaced within seconds and no accepted job is lost; with two of three dead the survivor
// refuses with NOT_LEADER (no quorum) and serves nothing; a follower that fell far behind
// catches up by snapshot; all three restarted keep their state.
import assert from 'node:assert/strict';
import { ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { GridError, MasterCursor, RemoteError, RpcClient, leaderHint, silentLogger } from '../../src/common';
import { JobState, MessageInput, MessageOf, newUuid } from '../../src/messages';

const BIN = path.resolve(__dirname, '../../../bin/grid.js');

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
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

class Cluster {
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
      const c = new RpcClient({ endpoint: ep, nodeUuid: newUuid(), log: this.log });
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

function submitMsg(n: number, jobUuid = newUuid()): MessageInput<'job_submit_request'> {
  return {
    type: 'job_submit_request',
    node_uuid: newUuid(),
    request_uuid: newUuid(),
    job_uuid: jobUuid,
    program_file_uuid: newUuid(),
    chunk_size: 1,
    max_retries: 0,
    task_timeout_ms: 10_000,
    memory_limit_mb: 256,
    output_limit_bytes: 1 << 20,
    input_file_uuids: Array.from({ length: n }, () => newUuid()),
    input_names: Array.from({ length: n }, (_, i) => `f${i}`),
    args: [],
    program_name: 'job.js',
  };
}

const status = (job: string): MessageInput<'job_status_request'> => ({ type: 'job_status_request', node_uuid: newUuid(), request_uuid: newUuid(), job_uuid: job });

describe('three masters on Raft (real processes)', function () {
  this.timeout(120_000);
  let root: string;
  let c: Cluster;

  beforeEach(async () => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'grid-raft-cluster-'));
    const cfg = path.join(root, 'master.json');
    // small snapshot interval so a lagging follower must be caught up by snapshot
    fs.writeFileSync(cfg, JSON.stringify({ snapshotEveryEntries: 20 }));
    c = new Cluster(root, cfg);
    await c.init(3);
    await Promise.all([0, 1, 2].map((i) => c.start(i)));
  });
  afterEach(async () => {
    await c.stopAll();
    if (process.env.GRID_KEEP_TMP) console.log(`kept ${root}`);
    else fs.rmSync(root, { recursive: true, force: true });
  });

  it('elects a new leader within seconds of a SIGKILL and loses no accepted job', async () => {
    await c.leader();
    const jobs: string[] = [];
    for (let i = 0; i < 5; i++) {
      const sub = submitMsg(10);
      assert.equal((await c.request(sub)).type, 'job_submit_response');
      jobs.push(sub.job_uuid);
    }
    const old = await c.leader();
    const t0 = Date.now();
    await c.kill(old);
    const next = await c.leader(10_000);
    const failoverMs = Date.now() - t0;
    assert.notEqual(next, old);
    assert.ok(failoverMs < 10_000, `failover took ${failoverMs} ms`);
    for (const j of jobs) {
      const s = (await c.request(status(j))) as unknown as MessageOf<'job_status_response'>;
      assert.equal(s.task_count, 10);
      assert.equal(s.state, JobState.running);
    }
    // a submit retried after the leader change is applied once
    const again = (await c.request({ ...submitMsg(10, jobs[0]), request_uuid: newUuid() })) as unknown as MessageOf<'job_submit_response'>;
    assert.equal(again.created, 0);
    const list = (await c.request({ type: 'job_list_request', node_uuid: newUuid(), request_uuid: newUuid(), limit: 100 })) as unknown as MessageOf<'job_list_response'>;
    assert.equal(list.job_uuids.length, 5);
  });

  it('with two of three dead, the survivor refuses with NOT_LEADER and serves nothing stale', async () => {
    const sub = submitMsg(3);
    await c.request(sub);
    const l = await c.leader();
    const others = [0, 1, 2].filter((i) => i !== l);
    await c.kill(others[0]!);
    await c.kill(l);
    const survivor = c.masters[others[1]!]!;
    // It first still names the dead leader; once its election timeout passes it knows no
    // master leads, and it never answers from its (possibly stale) state.
    const t0 = Date.now();
    let last: unknown;
    while (Date.now() - t0 < 10_000) {
      const cl = new RpcClient({ endpoint: survivor.endpoint, nodeUuid: newUuid(), log: c.log });
      try {
        await cl.request(status(sub.job_uuid), { timeoutMs: 2000 });
        assert.fail('a master without a quorum answered a read');
      } catch (e) {
        last = e;
        if (e instanceof RemoteError && e.code === 'NOT_LEADER' && leaderHint(e.message) === undefined) break;
        if (e instanceof RemoteError && (e.code === 'NOT_LEADER' || e.code === 'UNAVAILABLE')) {
          await new Promise((r) => setTimeout(r, 100));
          continue;
        }
        throw e;
      } finally {
        cl.close();
      }
    }
    assert.ok(last instanceof RemoteError && last.code === 'NOT_LEADER', String(last));
    assert.match((last as Error).message, /^leader=unknown;.*no quorum/);
  });

  it('catches a far-behind follower up by snapshot, and keeps everything across a full restart', async () => {
    const l = await c.leader();
    const f = [0, 1, 2].find((i) => i !== l)!;
    await c.kill(f);
    const jobs: string[] = [];
    for (let i = 0; i < 30; i++) {
      const sub = submitMsg(2);
      await c.request(sub);
      jobs.push(sub.job_uuid);
    }
    const lead = (await c.raft(await c.leader()))!;
    assert.ok(lead.counters.snapshots >= 1, 'the leader compacted its log');
    await c.start(f);
    const t0 = Date.now();
    for (;;) {
      const r = await c.raft(f);
      if (r && r.applied >= lead.applied) break;
      if (Date.now() - t0 > 15_000) throw new Error(`follower did not catch up: ${JSON.stringify(r)} vs ${lead.applied}`);
      await new Promise((res) => setTimeout(res, 100));
    }
    const logs = path.join(c.masters[f]!.dir, 'logs');
    const log = fs.readdirSync(logs).map((x) => fs.readFileSync(path.join(logs, x), 'utf8')).join('');
    assert.match(log, /raft:snapshot installed/, `follower ${f} (leader was ${l}): ${JSON.stringify(await c.raft(f))}\nleader: ${JSON.stringify(lead)}`);
    // restart all three: state intact
    await c.stopAll();
    await Promise.all([0, 1, 2].map((i) => c.start(i)));
    await c.leader();
    for (const j of [jobs[0]!, jobs[29]!]) {
      const s = (await c.request(status(j))) as unknown as MessageOf<'job_status_response'>;
      assert.equal(s.task_count, 2);
    }
  });
});
