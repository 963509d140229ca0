/**
 * The worker's side of the balancer link as a pure state machine (docs/architecture.md,
 * "Balancer -> worker (Paranoid Pirate)" and "Results"): when to heartbeat, when the
 * balancer counts as dead (reconnect), and which unacknowledged results to send again.
 * No sockets and no clock: the shell passes `nowMs` in and does what tick() returns.
 *
 * An unacknowledged result is re-sent with backoff and jitter (src/common/backoff.ts):
 * resultResendMs doubled per re-send up to resultResendMaxMs, half of it random, so the
 * workers of a balancer that stalled do not all re-send in the same tick, and a balancer that
 * is slow to acknowledge is not sent more the longer it is slow. A reconnect (a new balancer
 * socket) sends every pending result at once and starts the backoff again.
 */
import { backoffDelayMs } from '../common/backoff';

export interface LinkConfig {
  heartbeatIntervalMs: number;
  livenessMissed: number;
  /** first re-send of an unacknowledged result, ms (with equal jitter: half to all of it) */
  resultResendMs: number;
  /** largest pause between two re-sends of one result, ms (at least resultResendMs is used) */
  resultResendMaxMs: number;
  maxUnackedResults: number;
}

export interface LinkActions<R> {
  /** the balancer was silent for livenessMissed intervals: close, reconnect, send worker_ready */
  reconnect: boolean;
  /** send worker_status now */
  heartbeat: boolean;
  /** results to send again now */
  resend: R[];
}

interface Unacked<R> {
  result: R;
  /** when it is sent again unless acknowledged before */
  nextSendMs: number;
  sends: number;
}

/** Key of a result: job, task and attempt (result_ack carries exactly these). */
export function resultKey(jobUuid: string, taskIndex: number, attempt: number): string {
  return `${jobUuid}:${taskIndex}:${attempt}`;
}

export class BalancerLink<R> {
  private lastHeardMs: number;
  private lastHeartbeatMs = -Infinity;
  private readonly unacked = new Map<string, Unacked<R>>();
  reconnects = 0;

  /**
   * @param random  jitter source in [0, 1] for the re-send backoff; the shell passes
   *                Math.random, tests a constant
   */
  constructor(
    readonly cfg: LinkConfig,
    nowMs: number,
    private readonly random: () => number = Math.random,
  ) {
    this.lastHeardMs = nowMs;
  }

  /** When a result sent now for the sends-th time is due again. */
  private nextSend(nowMs: number, sends: number): number {
    const c = this.cfg;
    return nowMs + backoffDelayMs(sends - 1, { baseMs: c.resultResendMs, maxMs: Math.max(c.resultResendMs, c.resultResendMaxMs) }, this.random);
  }

  /** Any message from the balancer proves it alive. */
  heard(nowMs: number): void {
    this.lastHeardMs = nowMs;
  }

  /**
   * Records a finished result to be sent until acknowledged. Returns false when the bound
   * is reached (the oldest is then dropped: the balancer re-dispatches a task whose result
   * never arrives, so a lost result costs a re-run, never a wrong answer).
   */
  addResult(key: string, result: R, nowMs: number): boolean {
    let ok = true;
    if (!this.unacked.has(key) && this.unacked.size >= this.cfg.maxUnackedResults) {
      const oldest = this.unacked.keys().next().value as string;
      this.unacked.delete(oldest);
      ok = false;
    }
    this.unacked.set(key, { result, nextSendMs: this.nextSend(nowMs, 1), sends: 1 });
    return ok;
  }

  /** result_ack: forget the result. Returns whether it was pending. */
  ack(key: string): boolean {
    return this.unacked.delete(key);
  }

  has(key: string): boolean {
    return this.unacked.has(key);
  }

  get(key: string): R | undefined {
    return this.unacked.get(key)?.result;
  }

  /** Every result waiting for its acknowledgement (oldest first). */
  pendingResults(): R[] {
    return [...this.unacked.values()].map((u) => u.result);
  }

  get pending(): number {
    return this.unacked.size;
  }

  /** After a reconnect: the new socket gets every pending result at once. */
  reconnected(nowMs: number): R[] {
    this.reconnects++;
    this.lastHeardMs = nowMs;
    this.lastHeartbeatMs = -Infinity;
    const out: R[] = [];
    for (const u of this.unacked.values()) {
      // a new socket, perhaps a new balancer: the backoff starts again
      u.sends = 1;
      u.nextSendMs = this.nextSend(nowMs, 1);
      out.push(u.result);
    }
    return out;
  }

  tick(nowMs: number): LinkActions<R> {
    const c = this.cfg;
    const reconnect = nowMs - this.lastHeardMs >= c.livenessMissed * c.heartbeatIntervalMs;
    // 10% slack: the shell's timer fires about every interval, never exactly on it
    const heartbeat = nowMs - this.lastHeartbeatMs >= c.heartbeatIntervalMs * 0.9;
    if (heartbeat) this.lastHeartbeatMs = nowMs;
    const resend: R[] = [];
    if (!reconnect) {
      for (const u of this.unacked.values()) {
        if (nowMs >= u.nextSendMs) {
          u.sends++;
          u.nextSendMs = this.nextSend(nowMs, u.sends);
          resend.push(u.result);
        }
      }
    }
    return { reconnect, heartbeat, resend };
  }
}
