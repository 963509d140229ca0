/**
 * The balancer's task table (docs/balancer.md, "The state machine"): every task held, in one
 * of three states, with the queue (ready, in arrival order), the backoff set and an index by
 * job. A data structure only: the Dispatcher decides the transitions.
 */
import { TaskSpec, taskKey } from './contract';

export interface HeldTask {
  readonly key: string;
  readonly spec: TaskSpec;
  attempt: number;
  state: 'queued' | 'backoff' | 'running';
  /** backoff: not dispatched before this time */
  notBeforeMs: number;
  workerId?: string;
  dispatchedAtMs: number;
  started: boolean;
  /** running: past this time without a result, the attempt is settled lost */
  deadlineMs: number;
  /** workers an earlier attempt failed or was lost on, so a retry prefers another one */
  failedOn: string[];
  /** running because a worker reported holding it after a failover (not dispatched here) */
  adopted?: boolean;
}

export class TaskTable {
  readonly tasks = new Map<string, HeldTask>();
  /** tasks ready to dispatch, in arrival order (Map keeps insertion order) */
  readonly queue = new Map<string, HeldTask>();
  /** tasks waiting out a retry backoff */
  readonly backoff = new Map<string, HeldTask>();
  readonly byJob = new Map<string, Set<string>>();

  /** A new task, queued. */
  add(spec: TaskSpec): HeldTask {
    const key = taskKey(spec.job_uuid, spec.task_index);
    const t: HeldTask = { key, spec, attempt: spec.attempt, state: 'queued', notBeforeMs: 0, dispatchedAtMs: 0, started: false, deadlineMs: Infinity, failedOn: [] };
    this.tasks.set(key, t);
    this.queue.set(key, t);
    let s = this.byJob.get(spec.job_uuid);
    if (!s) this.byJob.set(spec.job_uuid, (s = new Set()));
    s.add(key);
    return t;
  }

  get(key: string): HeldTask | undefined {
    return this.tasks.get(key);
  }

  has(key: string): boolean {
    return this.tasks.has(key);
  }

  get size(): number {
    return this.tasks.size;
  }

  forget(t: HeldTask): void {
    this.tasks.delete(t.key);
    this.queue.delete(t.key);
    this.backoff.delete(t.key);
    const s = this.byJob.get(t.spec.job_uuid);
    s?.delete(t.key);
    if (s && s.size === 0) this.byJob.delete(t.spec.job_uuid);
  }

  /** Backoffs that ended by nowMs go back to the queue. */
  releaseDue(nowMs: number): void {
    for (const t of [...this.backoff.values()]) {
      if (t.notBeforeMs <= nowMs) {
        this.backoff.delete(t.key);
        t.state = 'queued';
        this.queue.set(t.key, t);
      }
    }
  }

  clear(): void {
    this.tasks.clear();
    this.queue.clear();
    this.backoff.clear();
    this.byJob.clear();
  }
}
