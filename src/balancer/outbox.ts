/**
 * Results on their way to the master (docs/balancer.md, "Results"): kept until the master's
 * result_ack, ordered by when they were last sent (re-inserted on every send, so the re-send
 * scan stops at the first one not yet due), and which tasks settled here without the
 * master's ack yet. A data structure only: the Dispatcher decides what goes in.
 */
import { MessageInput } from '../messages';
import { resultKey } from './contract';

export interface Unacked {
  readonly msg: MessageInput<'task_result'>;
  /** the worker that reported it: acknowledged only once the master acknowledged (end to end) */
  readonly workerId: string | undefined;
  readonly taskKey: string;
  readonly final: boolean;
  /** made up here for a lost worker's attempt, not reported by a worker */
  readonly lost: boolean;
  lastSentMs: number;
}

export class ResultOutbox {
  readonly unacked = new Map<string, Unacked>();
  /** tasks settled here whose final result the master has not acknowledged yet */
  readonly settledUnacked = new Set<string>();

  add(msg: MessageInput<'task_result'>, taskKey: string, nowMs: number, lost: boolean, workerId: string | undefined): void {
    const k = resultKey(msg.job_uuid, msg.task_index, msg.attempt);
    const final = msg.final === 1;
    this.unacked.delete(k);
    this.unacked.set(k, { msg, workerId, taskKey, final, lost, lastSentMs: nowMs });
    if (final) this.settledUnacked.add(taskKey);
  }

  /** The master acknowledged (job, task, attempt): the entry, now forgotten, or undefined. */
  ack(jobUuid: string, taskIndex: number, attempt: number): Unacked | undefined {
    const k = resultKey(jobUuid, taskIndex, attempt);
    const u = this.unacked.get(k);
    if (!u) return undefined;
    this.unacked.delete(k);
    if (u.final) this.settledUnacked.delete(u.taskKey);
    return u;
  }

  get(k: string): Unacked | undefined {
    return this.unacked.get(k);
  }

  /** Results last sent resendMs ago or more, oldest first; each is marked sent now. */
  due(nowMs: number, resendMs: number): MessageInput<'task_result'>[] {
    const out: MessageInput<'task_result'>[] = [];
    for (const [k, u] of [...this.unacked]) {
      if (nowMs - u.lastSentMs < resendMs) break;
      this.unacked.delete(k);
      u.lastSentMs = nowMs;
      this.unacked.set(k, u);
      out.push(u.msg);
    }
    return out;
  }

  /** The master link moved: everything is due at once (order kept). */
  allDue(): void {
    for (const u of this.unacked.values()) u.lastSentMs = -Infinity;
  }

  get size(): number {
    return this.unacked.size;
  }

  clear(): void {
    this.unacked.clear();
    this.settledUnacked.clear();
  }
}
