/**
 * The worker's Prometheus metrics (docs/operations.md "Metrics"): read on scrape from the
 * node's status snapshot (slots, tasks running and queued, results not yet acknowledged,
 * FUSE reads and the chunk cache), plus one histogram observed when a task finishes (how
 * long its program ran, by outcome).
 */
import type { Histogram } from 'prom-client';
import { DURATION_BUCKETS_S, NodeMetrics, Sample, countsAsSamples } from '../common';

/** The parts of WorkerNode.status() the metrics read; read defensively. */
export interface WorkerSnapshot {
  slots?: number;
  prefetch?: number;
  running?: unknown[];
  queued?: number;
  unackedResults?: number;
  reconnects?: number;
  fuse?: { reads?: number; readBytes?: number; readErrors?: number; writeRefused?: number; files?: number; cache?: Record<string, number> } | null;
  counts?: Record<string, number>;
}

export class WorkerMetrics {
  readonly node: NodeMetrics;
  private readonly duration: Histogram<'outcome'>;

  constructor(nodeId: string, snapshot: () => WorkerSnapshot) {
    const m = (this.node = new NodeMetrics({ role: 'worker', nodeId }));
    let last: { atMs: number; s: WorkerSnapshot } | undefined;
    const snap = (): WorkerSnapshot => {
      const now = Date.now();
      if (!last || now - last.atMs > 100) last = { atMs: now, s: snapshot() };
      return last.s;
    };
    m.gauge('grid_worker_slots', 'tasks this worker runs at once (its slots) and queues beyond them (prefetch)', ['kind'], () => [
      [{ kind: 'run' }, snap().slots ?? 0],
      [{ kind: 'prefetch' }, snap().prefetch ?? 0],
    ]);
    m.gauge('grid_worker_tasks', 'tasks on this worker now: running (started, incl. uploading) and queued (waiting for a slot)', ['state'], () => [
      [{ state: 'running' }, snap().running?.length ?? 0],
      [{ state: 'queued' }, snap().queued ?? 0],
    ]);
    m.gauge('grid_worker_unacked_results', 'task results sent to the balancer and not yet acknowledged', [], () => snap().unackedResults ?? 0);
    m.counter('grid_worker_balancer_reconnects_total', 'times this worker reconnected to its balancer', [], () => snap().reconnects ?? 0);
    m.counter('grid_worker_events_total', 'task events on this worker: dispatched, started, ok, failed, cancelled, results, acks, resends, ...', ['event'], () => countsAsSamples('event', snap().counts));
    const fuse = (f: (x: NonNullable<WorkerSnapshot['fuse']>) => number | undefined) => (): number => {
      const x = snap().fuse;
      return x ? (f(x) ?? 0) : 0;
    };
    m.counter('grid_fuse_read_bytes_total', 'bytes task programs read through this worker\'s FUSE mount', [], fuse((x) => x.readBytes));
    m.counter('grid_fuse_reads_total', 'read calls served by this worker\'s FUSE mount', [], fuse((x) => x.reads));
    m.counter('grid_fuse_read_errors_total', 'FUSE reads answered EIO (storage unreachable or data missing)', [], fuse((x) => x.readErrors));
    m.gauge('grid_fuse_files', 'input files visible in this worker\'s FUSE mount', [], fuse((x) => x.files));
    m.gauge('grid_worker_chunk_cache_bytes', 'bytes held by the FUSE chunk cache', [], fuse((x) => x.cache?.bytes));
    m.counter('grid_worker_chunk_cache_total', 'chunk cache lookups and work, by kind (hits, misses, joined, prefetches, evictions, fetch_errors)', ['kind'], () => {
      const c = snap().fuse?.cache ?? {};
      return countsAsSamples('kind', Object.fromEntries(['hits', 'misses', 'joined', 'prefetches', 'evictions', 'fetchErrors'].filter((k) => k in c).map((k) => [k, c[k]!]))) as Sample[];
    });
    this.duration = m.histogram('grid_worker_task_duration_seconds', 'how long task programs ran on this worker, by outcome (ok, exit_nonzero, timeout, ...)', ['outcome'], DURATION_BUCKETS_S);
  }

  taskFinished(outcome: string, durationMs: number): void {
    this.duration.observe({ outcome }, Math.max(0, durationMs) / 1000);
  }
}
