/**
 * The master's Prometheus metrics (docs/operations.md "Metrics"). Jobs and tasks by state
 * are counted in this master's SQLite state on scrape (a follower counts its replica, so
 * every master answers; query the leader with grid_raft_is_leader == 1); Raft figures come
 * from the replica's status. Two latencies are observed by the leader as they happen:
 * dispatch (the leader hands an attempt to the balancer -> a worker says it started) and
 * task (handed to the balancer -> its result committed).
 */
import type Database from 'better-sqlite3';
import type { Histogram } from 'prom-client';
import { LATENCY_BUCKETS_S, DURATION_BUCKETS_S, NodeMetrics, Sample, ServerStats, countsAsSamples } from '../common';
import { jobsByState, tasksByState } from './views';

/** Most attempts whose dispatch time the leader remembers (oldest forgotten first). */
export const MAX_TRACKED_ATTEMPTS = 100_000;

export interface RaftView {
  role: string;
  term: number;
  commit: number;
  applied: number;
  lastIndex: number;
}

/** What the master shell lets the metrics read; every call is cheap and side-effect free. */
export interface MasterMetricsSource {
  /** the job database, or null once the node stopped */
  db(): Database.Database | null;
  raft(): RaftView | null;
  raftCounters(): Record<string, number>;
  balancerConnected(): boolean;
  /** task results and started notes waiting for the next Raft proposal */
  queues(): { results: number; started: number };
  counters(): Record<string, number>;
  /** results that settled a task (applied since start), and second settlings of one task */
  accepted(): { results: number; duplicates: number };
  server(): ServerStats;
}

const key = (jobUuid: string, taskIndex: number, attempt: number): string => `${jobUuid}/${taskIndex}/${attempt}`;

export class MasterMetrics {
  readonly node: NodeMetrics;
  private readonly dispatchLatency: Histogram<string>;
  private readonly taskLatency: Histogram<'outcome'>;
  /** attempt -> when the leader first handed it to a balancer, ms */
  private readonly dispatchedAt = new Map<string, number>();
  /** job/task -> when its latest attempt started, ms (for the dashboard's elapsed time) */
  private readonly startedAt = new Map<string, number>();

  constructor(nodeId: string, src: MasterMetricsSource) {
    const m = (this.node = new NodeMetrics({ role: 'master', nodeId }));
    const db = (): Database.Database | null => {
      const d = src.db();
      return d && d.open ? d : null;
    };
    m.gauge('grid_jobs', 'jobs in this master\'s state, by state (running, succeeded, failed, cancelled)', ['state'], () => byState(db(), jobsByState));
    m.gauge('grid_tasks', 'tasks of every job in this master\'s state, by state (pending, running, succeeded, failed, cancelled)', ['state'], () => byState(db(), tasksByState));
    const raft = (f: (r: RaftView) => number) => (): number => {
      const r = src.raft();
      return r ? f(r) : 0;
    };
    m.gauge('grid_raft_term', 'current Raft term of this master', [], raft((r) => r.term));
    m.gauge('grid_raft_is_leader', '1 on the master that leads, else 0', [], raft((r) => (r.role === 'leader' ? 1 : 0)));
    m.gauge('grid_raft_commit_index', 'highest Raft log index known committed', [], raft((r) => r.commit));
    m.gauge('grid_raft_applied_index', 'highest Raft log index applied to the job state', [], raft((r) => r.applied));
    m.gauge('grid_raft_last_index', 'last index in this master\'s Raft log', [], raft((r) => r.lastIndex));
    m.gauge('grid_raft_apply_lag', 'committed entries not yet applied (commit index - applied index)', [], raft((r) => Math.max(0, r.commit - r.applied)));
    m.counter('grid_raft_events_total', 'Raft replica events: proposals, applied entries, snapshots taken, dropped sends', ['event'], () => countsAsSamples('event', src.raftCounters()));
    m.gauge('grid_master_balancer_connected', '1 while a balancer holds an unexpired dispatch lease from this (leading) master', [], () => (src.balancerConnected() ? 1 : 0));
    m.gauge('grid_master_queue_depth', 'items waiting for the next Raft proposal, by queue (results, started)', ['queue'], () => {
      const q = src.queues();
      return [
        [{ queue: 'results' }, q.results],
        [{ queue: 'started' }, q.started],
      ];
    });
    m.counter('grid_master_events_total', 'master events while leading: jobs submitted, tasks dispatched, results committed, result batches, balancer hellos', ['event'], () =>
      countsAsSamples('event', src.counters()),
    );
    m.counter('grid_master_results_accepted_total', 'results that settled a task, applied on this master since start; kind="duplicate" counts a task settled twice (exactly-once broken: alert if above 0)', ['kind'], () => {
      const a = src.accepted();
      return [
        [{ kind: 'settled' }, a.results],
        [{ kind: 'duplicate' }, a.duplicates],
      ];
    });
    m.rpcServer(() => src.server());
    this.dispatchLatency = m.histogram('grid_master_dispatch_latency_seconds', 'leader hands a task attempt to the balancer -> a worker reports it started', [], LATENCY_BUCKETS_S);
    this.taskLatency = m.histogram('grid_master_task_latency_seconds', 'leader hands a task attempt to the balancer -> its result is committed, by outcome', ['outcome'], DURATION_BUCKETS_S);
  }

  /** The leader hands an attempt to the balancer (again, after a hello: the first time counts). */
  dispatched(jobUuid: string, taskIndex: number, attempt: number, nowMs: number): void {
    const k = key(jobUuid, taskIndex, attempt);
    if (this.dispatchedAt.has(k)) return;
    bounded(this.dispatchedAt).set(k, nowMs);
  }

  started(jobUuid: string, taskIndex: number, attempt: number, nowMs: number): void {
    const t = this.dispatchedAt.get(key(jobUuid, taskIndex, attempt));
    if (t !== undefined) this.dispatchLatency.observe(Math.max(0, nowMs - t) / 1000);
    bounded(this.startedAt).set(`${jobUuid}/${taskIndex}`, nowMs);
  }

  resulted(jobUuid: string, taskIndex: number, attempt: number, outcome: string, nowMs: number): void {
    const k = key(jobUuid, taskIndex, attempt);
    const t = this.dispatchedAt.get(k);
    if (t === undefined) return;
    this.dispatchedAt.delete(k);
    this.taskLatency.observe({ outcome }, Math.max(0, nowMs - t) / 1000);
  }

  /** When the latest attempt of a task started, as this master saw it (leader only). */
  startedAtMs(jobUuid: string, taskIndex: number): number | undefined {
    return this.startedAt.get(`${jobUuid}/${taskIndex}`);
  }

  /** A former leader forgets: the next leader measures from its own dispatch. */
  forget(): void {
    this.dispatchedAt.clear();
    this.startedAt.clear();
  }
}

function byState(db: Database.Database | null, f: (db: Database.Database) => Record<string, number>): Sample[] {
  if (!db) return [];
  return Object.entries(f(db)).map(([state, n]): Sample => [{ state }, n]);
}

/** Makes room for one more entry by forgetting the oldest (Map keeps insertion order). */
function bounded<V>(m: Map<string, V>): Map<string, V> {
  if (m.size >= MAX_TRACKED_ATTEMPTS) {
    const oldest = m.keys().next().value;
    if (oldest !== undefined) m.delete(oldest);
  }
  return m;
}
