/**
 * The balancer's worker registry (docs/balancer.md, "Workers (Paranoid Pirate)", "Dispatch"):
 * registered workers in join order, what each holds, the files each probably caches (a
 * bounded LRU), and the choice of a worker for a task. A data structure with the worker
 * choice rule; the Dispatcher decides joins, losses and liveness.
 */
import { LRUCache } from 'lru-cache';
import { WorkerState } from '../messages';
import { HeldTask } from './tasks';

export interface WorkerRec {
  readonly id: string;
  /** the connection it registered on (undefined: the shell does not track connections) */
  readonly connectionId: string | undefined;
  slots: number;
  prefetch: number;
  /** task keys sent to this worker and not finished */
  readonly assigned: Set<string>;
  /** LRU of file ids the worker probably has cached (WorkerRegistry.newCache) */
  readonly cache: LRUCache<string, true>;
  lastSeenMs: number;
  readonly joinedMs: number;
  state: number;
  jobUuid: string;
  dispatched: number;
  results: number;
  /** adopted attempts whose task the master has not fed yet (they take capacity) */
  readonly adoptedKeys: Set<string>;
}

const STATE_NAMES = Object.fromEntries(Object.entries(WorkerState).map(([k, v]) => [v, k])) as Record<number, string>;

export class WorkerRegistry {
  /** workers in join order (ties in dispatch go to the earlier one) */
  readonly workers = new Map<string, WorkerRec>();

  constructor(private readonly maxCachedFilesPerWorker: number) {}

  /**
   * The best worker with room for `t`: one that has not failed it, then most cached inputs,
   * then least load, then earliest joined. undefined when no worker has room.
   */
  pickWorker(t: HeldTask): WorkerRec | undefined {
    let best: WorkerRec | undefined;
    let bestFresh = false;
    let bestHits = -1;
    for (const w of this.workers.values()) {
      if (w.assigned.size + w.adoptedKeys.size >= w.slots + w.prefetch) continue;
      const fresh = !t.failedOn.includes(w.id);
      let hits = 0;
      if (w.cache.size > 0) for (const f of t.spec.input_file_uuids) if (w.cache.has(f)) hits++;
      const better =
        !best ||
        (fresh && !bestFresh) ||
        (fresh === bestFresh && (hits > bestHits || (hits === bestHits && w.assigned.size < best.assigned.size)));
      if (better) {
        best = w;
        bestFresh = fresh;
        bestHits = hits;
      }
    }
    return best;
  }

  /**
   * An empty file-id LRU for a joining worker. lru-cache is a pure data structure (no timer,
   * no clock: no ttl is used), so it fits the pure dispatch core. Bounded by maxSize with
   * each id counting 1 rather than by `max`: with `max`, lru-cache preallocates its index
   * arrays for the whole bound up front (about 12 bytes per slot, 120 KB per worker at the
   * default 10000); with maxSize they grow with what the worker really announced.
   */
  newCache(): LRUCache<string, true> {
    return new LRUCache<string, true>({ maxSize: Math.max(1, this.maxCachedFilesPerWorker), sizeCalculation: () => 1 });
  }

  touchCache(w: WorkerRec, fileUuid: string): void {
    if (this.maxCachedFilesPerWorker === 0) return;
    // set moves an id to the most recently used end and drops the least recent past the bound
    w.cache.set(fileUuid, true);
  }

  statusRows(nowMs: number) {
    return [...this.workers.values()].map((w) => ({
      workerId: w.id,
      slots: w.slots,
      prefetch: w.prefetch,
      load: w.assigned.size,
      state: STATE_NAMES[w.state] ?? String(w.state),
      lastSeenMsAgo: nowMs - w.lastSeenMs,
      joinedMsAgo: nowMs - w.joinedMs,
      dispatched: w.dispatched,
      results: w.results,
      cachedFiles: w.cache.size,
    }));
  }
}
