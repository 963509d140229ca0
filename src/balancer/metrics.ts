/**
 * The balancer's Prometheus metrics (docs/operations.md "Metrics"), all read on scrape from
 * the node's status snapshot (BalancerNode.status()), never from dispatch internals, so
 * they follow whatever the dispatcher keeps: the task queues, the workers and their slots,
 * the master link, and the dispatcher's event counters (one label value per counter).
 */
import { NodeMetrics, Sample, ServerStats, countsAsSamples } from '../common';

/** The parts of the status snapshot the metrics read; every field optional, read defensively. */
export interface BalancerSnapshot {
  master?: { state?: string };
  workers?: { state?: string; slots?: number; prefetch?: number; load?: number }[];
  tasksHeld?: number;
  tasksQueued?: number;
  tasksBackoff?: number;
  tasksRunning?: number;
  unackedResults?: number;
  counters?: object;
  server?: ServerStats;
}

export function balancerMetrics(nodeId: string, snapshot: () => BalancerSnapshot): NodeMetrics {
  const m = new NodeMetrics({ role: 'balancer', nodeId });
  // one snapshot per scrape, shared by every metric of that scrape
  let last: { atMs: number; s: BalancerSnapshot } | undefined;
  const snap = (): BalancerSnapshot => {
    const now = Date.now();
    if (!last || now - last.atMs > 100) last = { atMs: now, s: snapshot() };
    return last.s;
  };
  m.gauge('grid_balancer_tasks', 'tasks this balancer holds, by where they are (queued: ready for a slot; backoff: waiting to retry; running: on a worker; held: all of them)', ['state'], () => {
    const s = snap();
    const out: Sample[] = [];
    for (const [state, v] of [
      ['queued', s.tasksQueued],
      ['backoff', s.tasksBackoff],
      ['running', s.tasksRunning],
      ['held', s.tasksHeld],
    ] as const) {
      if (typeof v === 'number') out.push([{ state }, v]);
    }
    return out;
  });
  m.gauge('grid_balancer_unacked_results', 'task results sent to the master and not yet acknowledged', [], () => snap().unackedResults ?? 0);
  m.gauge('grid_balancer_master_connected', '1 while the master answers this balancer', [], () => (snap().master?.state === 'connected' ? 1 : 0));
  m.gauge('grid_balancer_workers', 'workers registered with this balancer, by state', ['state'], () => {
    const n = new Map<string, number>();
    for (const w of snap().workers ?? []) n.set(w.state ?? 'unknown', (n.get(w.state ?? 'unknown') ?? 0) + 1);
    return [...n].map(([state, v]): Sample => [{ state }, v]);
  });
  m.gauge('grid_balancer_worker_slots', 'task slots of the registered workers: total, busy (tasks on them) and free', ['kind'], () => {
    let total = 0;
    let busy = 0;
    for (const w of snap().workers ?? []) {
      total += w.slots ?? 0;
      busy += w.load ?? 0;
    }
    return [
      [{ kind: 'total' }, total],
      [{ kind: 'busy' }, busy],
      [{ kind: 'free' }, Math.max(0, total - busy)],
    ];
  });
  m.counter('grid_balancer_events_total', 'dispatcher events by kind: tasks received, dispatched, retried, settled; workers joined and lost; results forwarded; ...', ['event'], () =>
    countsAsSamples('event', snap().counters as Record<string, number> | undefined),
  );
  m.rpcServer(() => snap().server);
  return m;
}
