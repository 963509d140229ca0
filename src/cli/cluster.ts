/**
 * `grid cluster [--json]`: every node of a grid and how it is doing, read from each node's
 * admin `GET /status` (docs/operations.md "grid cluster"). The nodes come from the dev.json
 * of a running `grid dev`, or from `--admin HOST:PORT,...` for a grid started by hand.
 *
 * A node that does not answer within `clusterStatusTimeoutMs` (or is dead per dev.json) is
 * listed as unreachable with the reason; this command never fails because a node is down,
 * that is what it is for. The --json shape is a documented, stable interface: fields are
 * only ever added.
 */
import http from 'node:http';
import { Command } from 'commander';
import { GridError, adminAuthHeader } from '../common';
import { loadClientConfig } from './config';
import { DEFAULT_DATA_DIR, DevState, devStatePath, readDevState } from './endpoints';

/** Most bytes of one /status answer read (a worker's lists are bounded; this is a guard). */
export const MAX_STATUS_BYTES = 4 * 1024 * 1024;
/** Most --admin addresses one call takes. */
export const MAX_ADMIN_TARGETS = 256;

/** One node to ask: where its admin API is and what dev.json says about it. */
export interface ClusterTarget {
  /** dev.json name (master-0, worker-1, ...) or, for --admin, HOST:PORT */
  name: string;
  /** from dev.json; undefined for --admin (the answer says) */
  role?: string;
  pid: number | null;
  /** HOST:PORT of the admin API */
  admin: string;
  /** the node's main ZeroMQ endpoint when known */
  endpoint: string | null;
  /** dev.json says the node is dead: it is not asked */
  deadBecause?: string;
}

export type StatusAnswer = { ok: true; body: Record<string, unknown> } | { ok: false; error: string };

interface Base {
  name: string;
  pid: number | null;
  admin: string;
  reachable: boolean;
  /** why it is unreachable, else null */
  error: string | null;
}

export interface MasterView extends Base {
  endpoint: string | null;
  /** Raft role: leader, follower, candidate, preCandidate; null when unknown */
  role: string | null;
  term: number | null;
  commit: number | null;
  applied: number | null;
  /** the leader's endpoint as this master knows it, or null */
  leader: string | null;
  /**
   * workers as this master knows them (worker_status forwarded by the active balancer; the
   * leader knows them, followers do not), or null when unknown
   */
  workers: { workerUuid: string; state: string; jobUuid: string; lastSeenMsAgo: number }[] | null;
}

export interface BalancerView extends Base {
  endpoint: string | null;
  /** the master (list) it is configured with */
  master: string | null;
  /** hello-pending or connected */
  masterState: string | null;
  workers: number | null;
  tasksRunning: number | null;
  /** as configured: primary or auxiliary (docs/balancer.md, "The pair") */
  role: string | null;
  /** holds the dispatch lease now */
  active: boolean | null;
  /** the lease epoch it holds or last held (0 = never) */
  epoch: number | null;
}

export interface StorageView extends Base {
  endpoint: string | null;
}

export interface WorkerView extends Base {
  slots: number | null;
  running: number | null;
  queued: number | null;
}

export interface ClusterView {
  /** dev.json path or `--admin` */
  source: string;
  /** endpoint of the master every reachable master agrees leads, or null */
  leader: string | null;
  masters: MasterView[];
  balancers: BalancerView[];
  storage: StorageView[];
  workers: WorkerView[];
  /** --admin addresses that did not answer, so their role is unknown */
  unknown: Base[];
}

// ---- pure parts --------------------------------------------------------------------------------

const ADMIN_RE = /^([^:\s,/]+):(\d{1,5})$/;

/** Parses `--admin HOST:PORT,HOST:PORT,...`. */
export function parseAdminList(v: string): ClusterTarget[] {
  const items = v.split(',').map((x) => x.trim());
  if (items.length > MAX_ADMIN_TARGETS) throw new GridError('BAD_REQUEST', `--admin lists ${items.length} nodes; at most ${MAX_ADMIN_TARGETS}`);
  return items.map((a) => {
    const m = ADMIN_RE.exec(a);
    const port = m ? Number(m[2]) : 0;
    if (!m || port < 1 || port > 65535) {
      throw new GridError('BAD_REQUEST', `--admin entry ${JSON.stringify(a)} is not HOST:PORT`, 'give admin addresses like 127.0.0.1:7710,127.0.0.1:7711 (each node\'s --admin-port)');
    }
    return { name: a, pid: null, admin: a, endpoint: null };
  });
}

/** The nodes of a running `grid dev`, as its dev.json lists them. */
export function targetsFromDev(s: DevState): ClusterTarget[] {
  return s.nodes.map((n) => {
    const ep = Object.values(n.endpoints ?? {})[0];
    const endpoint = n.role === 'master' ? n.endpoints?.clients ?? ep ?? null : n.role === 'balancer' ? n.endpoints?.workers ?? ep ?? null : n.role === 'storage' ? n.endpoints?.clients ?? ep ?? null : null;
    const t: ClusterTarget = { name: n.name, role: n.role, pid: n.pid || null, admin: `127.0.0.1:${n.adminPort}`, endpoint };
    if (n.state === 'dead') t.deadBecause = `dead according to grid dev (its output: ${n.outputFile})`;
    else if (!n.adminPort) t.deadBecause = `no admin port yet (${n.state})`;
    return t;
  });
}

const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);
const str = (v: unknown): string | null => (typeof v === 'string' && v !== '' ? v : null);
const obj = (v: unknown): Record<string, unknown> | undefined => (typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined);
const count = (v: unknown): number | null => (Array.isArray(v) ? v.length : num(v));

/** Builds the view from the targets and their answers (same order). Pure: tested directly. */
export function buildView(source: string, targets: readonly ClusterTarget[], answers: readonly StatusAnswer[]): ClusterView {
  const v: ClusterView = { source, leader: null, masters: [], balancers: [], storage: [], workers: [], unknown: [] };
  targets.forEach((t, i) => {
    const a = answers[i]!;
    const body = a.ok ? a.body : {};
    const base: Base = { name: t.name, pid: t.pid ?? num(body.pid), admin: t.admin, reachable: a.ok, error: a.ok ? null : a.error };
    const role = t.role ?? str(body.role);
    switch (role) {
      case 'master': {
        const raft = obj(body.raft);
        v.masters.push({
          ...base,
          endpoint: t.endpoint ?? str(body.endpoint),
          role: raft ? str(raft.role) : null,
          term: raft ? num(raft.term) : null,
          commit: raft ? num(raft.commit) : null,
          applied: raft ? num(raft.applied) : null,
          workers: Array.isArray(body.workers) ? (body.workers as MasterView['workers']) : null,
          leader: raft ? str(raft.leaderEndpoint) : null,
        });
        break;
      }
      case 'balancer': {
        const m = obj(body.master);
        v.balancers.push({
          ...base,
          endpoint: t.endpoint ?? str(body.endpoint),
          master: m ? str(m.endpoint) : null,
          masterState: m ? str(m.state) : null,
          workers: count(body.workers),
          tasksRunning: num(body.tasksRunning),
          role: str(body.pairRole),
          active: typeof body.active === 'boolean' ? body.active : null,
          epoch: num(body.epoch),
        });
        break;
      }
      case 'storage':
        v.storage.push({ ...base, endpoint: t.endpoint ?? str(body.endpoint) ?? str(obj(body.endpoints)?.clients) });
        break;
      case 'worker':
        v.workers.push({ ...base, slots: num(body.slots), running: count(body.running), queued: count(body.queued) });
        break;
      default:
        v.unknown.push(base);
    }
  });
  v.leader = agreedLeader(v.masters);
  return v;
}

/**
 * The master that leads: the one that says it is leader, in the highest term any reachable
 * master reports (a deposed leader cut off from the others may still think it leads in an
 * older term). Null when none does.
 */
export function agreedLeader(masters: readonly MasterView[]): string | null {
  const leaders = masters.filter((m) => m.reachable && m.role === 'leader');
  if (leaders.length === 0) return null;
  const top = leaders.reduce((a, b) => ((b.term ?? -1) > (a.term ?? -1) ? b : a));
  return top.endpoint ?? top.name;
}

const cell = (v: unknown): string => (v === null || v === undefined ? '-' : String(v));

function table(header: string[], rows: string[][]): string[] {
  // a short row's last cell (an UNREACHABLE reason) runs on freely and does not widen columns
  const widths = header.map((h, i) => Math.max(h.length, ...rows.filter((r) => r.length === header.length || i < r.length - 1).map((r) => (r[i] ?? '').length)));
  const line = (r: string[]): string => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd();
  return [line(header), ...rows.map(line)];
}

/** The human form of the view. */
export function formatView(v: ClusterView): string[] {
  const out: string[] = [];
  const down = (b: Base): string => `UNREACHABLE: ${b.error ?? 'no answer'}`;
  if (v.masters.length) {
    const ok = v.masters.filter((m) => m.reachable).length;
    out.push(`masters (${ok} of ${v.masters.length} reachable; ${v.leader ? `leader ${v.leader}` : 'NO LEADER'})`);
    out.push(
      ...table(
        ['NAME', 'ENDPOINT', 'PID', 'ROLE', 'TERM', 'COMMIT', 'APPLIED', 'LEADER'],
        v.masters.map((m) => (m.reachable ? [m.name, cell(m.endpoint), cell(m.pid), cell(m.role), cell(m.term), cell(m.commit), cell(m.applied), cell(m.leader)] : [m.name, cell(m.endpoint), cell(m.pid), down(m)])),
      ).map((l) => '  ' + l),
    );
  } else {
    out.push('masters: none listed');
  }
  if (v.balancers.length) {
    out.push('balancers');
    out.push(
      ...table(
        ['NAME', 'ENDPOINT', 'PID', 'ROLE', 'LEASE', 'EPOCH', 'MASTER', 'WORKERS', 'RUNNING'],
        v.balancers.map((b) =>
          b.reachable
            ? [b.name, cell(b.endpoint), cell(b.pid), cell(b.role), b.active ? 'ACTIVE' : 'standby', cell(b.epoch), `${cell(b.masterState)} ${cell(b.master)}`, cell(b.workers), cell(b.tasksRunning)]
            : [b.name, cell(b.endpoint), cell(b.pid), cell(b.role), down(b)],
        ),
      ).map((l) => '  ' + l),
    );
    if (v.balancers.every((b) => !b.reachable)) {
      out.push(`  !!! ${v.balancers.length === 1 ? 'the balancer is' : `all ${v.balancers.length} balancers are`} down: NO TASK IS DISPATCHED. Jobs wait (nothing is lost) and continue when a balancer returns.`);
    } else if (!v.balancers.some((b) => b.reachable && b.active)) {
      out.push('  no balancer holds the dispatch lease right now (a failover takes about the master\'s leaseMs); tasks wait');
    }
  }
  if (v.storage.length) {
    out.push('storage');
    out.push(...table(['NAME', 'ENDPOINT', 'PID', 'STATE'], v.storage.map((s) => [s.name, cell(s.endpoint), cell(s.pid), s.reachable ? 'up' : down(s)])).map((l) => '  ' + l));
  }
  if (v.workers.length) {
    const slots = v.workers.reduce((a, w) => a + (w.slots ?? 0), 0);
    const running = v.workers.reduce((a, w) => a + (w.running ?? 0), 0);
    out.push(`workers (${v.workers.filter((w) => w.reachable).length} of ${v.workers.length} reachable; ${running} of ${slots} slots busy)`);
    out.push(
      ...table(
        ['NAME', 'PID', 'SLOTS', 'RUNNING', 'QUEUED'],
        v.workers.map((w) => (w.reachable ? [w.name, cell(w.pid), cell(w.slots), cell(w.running), cell(w.queued)] : [w.name, cell(w.pid), down(w)])),
      ).map((l) => '  ' + l),
    );
  }
  const lead = v.masters.find((m) => m.reachable && m.role === 'leader');
  if (lead?.workers) {
    out.push(`workers seen by the master leader (worker_status through the active balancer): ${lead.workers.length}`);
    if (lead.workers.length) out.push(...table(['WORKER', 'STATE', 'LAST SEEN'], lead.workers.map((w) => [w.workerUuid, w.state, `${w.lastSeenMsAgo} ms ago`])).map((l) => '  ' + l));
  }
  if (v.unknown.length) {
    out.push('not answering (role unknown)');
    out.push(...v.unknown.map((u) => `  ${u.admin}  ${down(u)}`));
  }
  return out;
}

// ---- I/O ---------------------------------------------------------------------------------------

/** GET http://HOST:PORT/status; never rejects: a failure is an answer saying why. */
export function fetchStatus(admin: string, timeoutMs: number, token = ''): Promise<StatusAnswer> {
  const [host, port] = [admin.slice(0, admin.lastIndexOf(':')), Number(admin.slice(admin.lastIndexOf(':') + 1))];
  return new Promise((resolve) => {
    let done = false;
    const finish = (a: StatusAnswer): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      resolve(a);
    };
    const req = http.get({ host, port, path: '/status', agent: false, headers: adminAuthHeader(token) }, (res) => {
      const parts: Buffer[] = [];
      let size = 0;
      res.on('data', (b: Buffer) => {
        size += b.length;
        if (size > MAX_STATUS_BYTES) {
          req.destroy();
          finish({ ok: false, error: `its /status answer is over ${MAX_STATUS_BYTES} bytes` });
          return;
        }
        parts.push(b);
      });
      res.on('error', (e) => finish({ ok: false, error: e.message }));
      res.on('end', () => {
        if (res.statusCode !== 200) return finish({ ok: false, error: `GET /status answered HTTP ${res.statusCode}` });
        try {
          const body = JSON.parse(Buffer.concat(parts).toString('utf8')) as unknown;
          const o = obj(body);
          finish(o ? { ok: true, body: o } : { ok: false, error: 'its /status answer is not a JSON object' });
        } catch {
          finish({ ok: false, error: 'its /status answer is not JSON (is this a grid admin port?)' });
        }
      });
    });
    const timer = setTimeout(() => {
      req.destroy();
      finish({ ok: false, error: `no answer to GET /status within ${timeoutMs} ms` });
    }, timeoutMs);
    req.on('error', (e: NodeJS.ErrnoException) => finish({ ok: false, error: e.code === 'ECONNREFUSED' ? `nothing listens at ${admin} (connection refused)` : e.message }));
  });
}

export interface ClusterFlags {
  json?: boolean;
  dataDir?: string;
  admin?: string;
}

/** Reads every node's status; resolves the nodes from --admin or dev.json. */
export async function readCluster(f: ClusterFlags, env: NodeJS.ProcessEnv = process.env): Promise<ClusterView> {
  const cfg = loadClientConfig(env);
  let source: string;
  let targets: ClusterTarget[];
  if (f.admin !== undefined) {
    targets = parseAdminList(f.admin);
    source = '--admin';
  } else {
    const dataDir = f.dataDir ?? env.GRID_DATA_DIR ?? DEFAULT_DATA_DIR;
    const s = readDevState(dataDir);
    if (!s) {
      throw new GridError(
        'UNAVAILABLE',
        `no running \`grid dev\` in ${dataDir} (no ${devStatePath(dataDir)} of a live dev) and no --admin given`,
        'start `grid dev`, pass its --data-dir, or list the nodes\' admin ports: --admin 127.0.0.1:7710,127.0.0.1:7711,...',
      );
    }
    targets = targetsFromDev(s);
    source = devStatePath(dataDir);
  }
  const answers = await Promise.all(
    targets.map((t): Promise<StatusAnswer> => (t.deadBecause ? Promise.resolve({ ok: false, error: t.deadBecause }) : fetchStatus(t.admin, cfg.clusterStatusTimeoutMs, cfg.adminToken))),
  );
  return buildView(source, targets, answers);
}

export function registerClusterCommand(program: Command): void {
  program
    .command('cluster')
    .description('every master (role, term, commit), balancer, storage node and worker (slots, running), from their admin /status')
    .option('--json', 'the stable machine-readable form (docs/operations.md)')
    .option('--data-dir <dir>', 'where `grid dev` keeps dev.json (default ./.grid)')
    .option('--admin <list>', 'admin HOST:PORT of each node, comma separated, for a grid not started by `grid dev`')
    .action(async (f: ClusterFlags) => {
      const v = await readCluster(f);
      process.stdout.write(f.json ? JSON.stringify(v) + '\n' : formatView(v).join('\n') + '\n');
    });
}
