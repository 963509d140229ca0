/**
 * The web dashboard every master serves on its admin port (docs/operations.md "Dashboard"):
 * GET /dashboard (plain HTML, JS and CSS from src/master/dashboard/, no build step) and the
 * JSON it polls:
 *
 *   GET /dashboard/api/overview[?limit=N&state=S]  jobs, counts, masters, balancers, storage, workers
 *   GET /dashboard/api/jobs/JOB[?offset=O]          one job and its tasks (log tails cut)
 *   GET /dashboard/api/jobs/JOB/tasks/I             one task with its whole log tail
 *
 * Jobs and tasks come from this master's SQLite state. On the leader that is the truth; on
 * a follower it is the replicated state up to its applied index, so a follower serves the
 * page too and says so (with its applied index and which master leads). The other nodes
 * come from their admin /status (cluster-view.ts).
 */
import fs from 'node:fs';
import path from 'node:path';
import { AdminResponse, AdminRoute, GridError } from '../common';
import { JobState, isUuid } from '../messages';
import { ClusterView, NodeAnswer } from './cluster-view';
import { MAX_VIEW_JOBS, jobById, jobTasks, jobsByState, recentJobs, taskByIndex, tasksByState } from './views';
import type Database from 'better-sqlite3';

/** The static files, next to this module's source (dist/src/master -> src/master/dashboard). */
export const ASSET_DIR = path.resolve(__dirname, '..', '..', '..', 'src', 'master', 'dashboard');
const ASSETS: Record<string, string> = {
  '/dashboard': 'index.html',
  '/dashboard/': 'index.html',
  '/dashboard/app.js': 'app.js',
  '/dashboard/style.css': 'style.css',
};
const TYPES: Record<string, string> = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.css': 'text/css; charset=utf-8' };
/** Jobs listed in an overview unless ?limit= says otherwise. */
export const DEFAULT_VIEW_JOBS = 50;

export interface DashboardSource {
  nodeId: string;
  endpoint(): string;
  db(): Database.Database;
  /** the replica's status (role, term, leader, leaderEndpoint, commit, applied, peers) */
  raft(): Record<string, unknown> | null;
  /** this master's own /status */
  status(): Record<string, unknown>;
  /** when the latest attempt of a task started, as the leader saw it */
  startedAtMs(jobUuid: string, taskIndex: number): number | undefined;
}

export class Dashboard {
  constructor(
    private readonly src: DashboardSource,
    private readonly nodes: ClusterView,
  ) {
    for (const f of new Set(Object.values(ASSETS))) {
      if (!fs.existsSync(path.join(ASSET_DIR, f))) throw new GridError('CONFIG_INVALID', `the dashboard file ${path.join(ASSET_DIR, f)} is missing`, 'reinstall grid: src/master/dashboard/ ships with it');
    }
  }

  readonly route: AdminRoute = async (p, q) => {
    if (p === '/favicon.ico') return { status: 204, type: 'image/x-icon', body: '' };
    if (p === '/') return { status: 302, type: 'text/plain', body: 'see /dashboard\n', headers: { location: '/dashboard' } };
    const asset = ASSETS[p];
    if (asset) return { status: 200, type: TYPES[path.extname(asset)]!, body: await fs.promises.readFile(path.join(ASSET_DIR, asset)) };
    if (p === '/dashboard/api/overview') return json(200, await this.overview(q));
    const m = /^\/dashboard\/api\/jobs\/([^/]+)(?:\/tasks\/([^/]+))?$/.exec(p);
    if (m) return this.job(decodePart(m[1]!), m[2], q);
    if (p.startsWith('/dashboard/')) return json(404, { error: `no such dashboard path ${p}` });
    return undefined;
  };

  private async overview(q: URLSearchParams): Promise<unknown> {
    const now = Date.now();
    const db = this.src.db();
    const limit = intParam(q, 'limit', DEFAULT_VIEW_JOBS, 1, MAX_VIEW_JOBS);
    const stateName = q.get('state');
    let state: number | undefined;
    if (stateName) {
      state = (JobState as Record<string, number>)[stateName];
      if (state === undefined) throw badRequest(`state ${JSON.stringify(stateName)} is not a job state; use one of ${Object.keys(JobState).join(', ')}`);
    }
    const answers = this.nodes.configured ? await this.nodes.answers(now) : [];
    const raft = this.src.raft();
    return {
      nowMs: now,
      servedBy: {
        nodeId: this.src.nodeId,
        endpoint: this.src.endpoint(),
        raftRole: raft?.role ?? null,
        term: raft?.term ?? null,
        leader: raft?.leaderEndpoint ?? null,
        commit: raft?.commit ?? null,
        applied: raft?.applied ?? null,
      },
      jobsByState: jobsByState(db),
      tasksByState: tasksByState(db),
      jobs: recentJobs(db, limit, state),
      nodesConfigured: this.nodes.configured,
      ...this.nodeViews(answers, now),
    };
  }

  private job(id: string, task: string | undefined, q: URLSearchParams): AdminResponse {
    if (!isUuid(id)) return json(400, { error: `${JSON.stringify(id)} is not a job id (a UUID)` });
    const db = this.src.db();
    const job = jobById(db, id);
    if (!job) return json(404, { error: `no job ${id} on this master` });
    if (task !== undefined) {
      const i = Number(task);
      const t = Number.isInteger(i) && i >= 0 ? taskByIndex(db, id, i) : undefined;
      if (!t) return json(404, { error: `job ${id} has no task ${task}` });
      return json(200, { job, task: t });
    }
    const offset = intParam(q, 'offset', 0, 0, Number.MAX_SAFE_INTEGER);
    const tasks = jobTasks(db, id, offset).map((t) => ({ ...t, startedAtMs: t.state === 'running' ? (this.src.startedAtMs(id, t.index) ?? null) : null }));
    return json(200, { nowMs: Date.now(), job, offset, tasks, more: offset + tasks.length < job.taskCount });
  }

  private nodeViews(answers: NodeAnswer[], nowMs: number) {
    const self = this.src.status();
    const byRole = (r: string): NodeAnswer[] => answers.filter((a) => a.role === r);
    const masterAnswers = byRole('master');
    if (!masterAnswers.some((a) => a.status?.nodeId === this.src.nodeId)) {
      masterAnswers.unshift({ name: 'this master', role: 'master', admin: '', reachable: true, error: null, status: self });
    }
    const raftOf = (s: Record<string, unknown> | null): Record<string, unknown> => (s?.raft as Record<string, unknown> | undefined) ?? {};
    const masters = masterAnswers.map((a) => {
      const s = a.status?.nodeId === this.src.nodeId ? self : a.status;
      const r = raftOf(s);
      return { ...base(a, s), self: s?.nodeId === this.src.nodeId, role: r.role ?? null, term: r.term ?? null, leader: r.leaderEndpoint ?? null, commit: r.commit ?? null, applied: r.applied ?? null };
    });
    // the masters this one knows from Raft but that no address was given for
    const myRaft = raftOf(self);
    for (const p of (myRaft.peers as { id: string; endpoint: string }[] | undefined) ?? []) {
      if (masters.some((m) => m.endpoint === p.endpoint)) continue;
      masters.push({ name: p.endpoint, nodeId: null, endpoint: p.endpoint, admin: null, reachable: null, error: 'no admin address configured (dashboardNodes)', self: false, role: p.endpoint === myRaft.leaderEndpoint ? 'leader' : null, term: null, leader: null, commit: null, applied: null });
    }
    const balancerAnswers = byRole('balancer');
    const balancers = balancerAnswers.map((a) => {
      const s = a.status;
      const master = (s?.master as Record<string, unknown> | undefined) ?? {};
      return {
        ...base(a, s),
        masterState: master.state ?? null,
        master: master.endpoint ?? null,
        workers: Array.isArray(s?.workers) ? (s!.workers as unknown[]).length : null,
        tasksQueued: s?.tasksQueued ?? null,
        tasksRunning: s?.tasksRunning ?? null,
        tasksBackoff: s?.tasksBackoff ?? null,
      };
    });
    if (balancers.length === 0 && self.balancer) {
      const b = self.balancer as { nodeUuid: string; lastSeenMsAgo: number };
      balancers.push({ name: 'connected balancer', nodeId: b.nodeUuid, endpoint: null, admin: null, reachable: null, error: 'no admin address configured (dashboardNodes)', masterState: 'connected', master: this.src.endpoint(), workers: null, tasksQueued: null, tasksRunning: null, tasksBackoff: null });
    }
    const storage = byRole('storage').map((a) => {
      const s = a.status;
      return { ...base(a, s), files: s?.files ?? null, bytesStored: s?.bytesStored ?? null, quotaBytes: s?.quotaBytes ?? null, chunks: s?.chunks ?? null, corruptChunks: Array.isArray(s?.corruptChunksSeen) ? (s!.corruptChunksSeen as unknown[]).length : null };
    });
    // a worker as the balancers see it (state, load, last heard) merged with its own /status
    const seen = new Map<string, Record<string, unknown>>();
    for (const b of balancerAnswers) for (const w of (b.status?.workers as Record<string, unknown>[] | undefined) ?? []) seen.set(String(w.workerId), w);
    const workers = byRole('worker').map((a) => {
      const s = a.status;
      const b = s ? seen.get(String(s.nodeId)) : undefined;
      if (s) seen.delete(String(s.nodeId));
      return workerView(base(a, s), s, b);
    });
    for (const [id, b] of seen) workers.push(workerView({ name: id, nodeId: id, endpoint: null, admin: null, reachable: null, error: null }, null, b));
    return { masters, balancers, storage, workers, nodesAskedAtMs: nowMs };
  }
}

function base(a: NodeAnswer, s: Record<string, unknown> | null) {
  return { name: a.name, nodeId: (s?.nodeId as string | undefined) ?? null, endpoint: (s?.endpoint as string | undefined) ?? null, admin: a.admin || null, reachable: a.reachable as boolean | null, error: a.error };
}

function workerView(b: ReturnType<typeof base>, s: Record<string, unknown> | null, seen: Record<string, unknown> | undefined) {
  const running = ((s?.running as Record<string, unknown>[] | undefined) ?? []).map((t) => ({ jobId: t.jobUuid, taskIndex: t.taskIndex, attempt: t.attempt, state: t.state }));
  return {
    ...b,
    slots: (s?.slots as number | undefined) ?? (seen?.slots as number | undefined) ?? null,
    running,
    load: (seen?.load as number | undefined) ?? (s ? running.length : null),
    queued: (s?.queued as number | undefined) ?? null,
    staged: (s?.staged as boolean | undefined) ?? null,
    balancerState: (seen?.state as string | undefined) ?? null,
    lastSeenMsAgo: (seen?.lastSeenMsAgo as number | undefined) ?? null,
    tasksOk: ((s?.counts as Record<string, number> | undefined)?.ok as number | undefined) ?? null,
    tasksFailed: ((s?.counts as Record<string, number> | undefined)?.failed as number | undefined) ?? null,
  };
}

function decodePart(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s; // not valid %-encoding: answered as not a job id
  }
}

function json(status: number, body: unknown): AdminResponse {
  return { status, type: 'application/json', body: JSON.stringify(body) + '\n' };
}

function badRequest(message: string): GridError {
  return new GridError('BAD_REQUEST', message);
}

function intParam(q: URLSearchParams, name: string, dflt: number, min: number, max: number): number {
  const raw = q.get(name);
  if (raw === null || raw === '') return dflt;
  const v = Number(raw);
  if (!Number.isInteger(v) || v < min || v > max) throw badRequest(`?${name}= must be an integer from ${min} to ${max}, got ${JSON.stringify(raw)}`);
  return v;
}
