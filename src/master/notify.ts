/**
 * Job notifications (`grid submit --notify URL`): when a job ends, the master leader
 * HTTP-POSTs its final status as JSON to the URL, retrying with exponential backoff.
 *
 * The URL and the outcome of its delivery are replicated (Raft commands `notify` and
 * `notified`), so every master knows which notifications are still owed. Only the leader
 * sends. After a leader change the new leader sends every owed notification again, counting
 * attempts from 1: delivery is AT LEAST ONCE (a POST that succeeded just before the old
 * leader died, before `notified` was committed, is sent again). Receivers dedupe by `jobId`.
 *
 * NotifyPlanner is the pure part (no I/O, no clock: time passed in); the master's shell
 * does the HTTP and proposes `notified`.
 */
import { backoffDelayMs } from '../common/backoff';

export interface NotifyLimits {
  /** attempts before a notification is given up (and logged), e.g. 8 */
  notifyMaxAttempts: number;
  /** delay after the first failed attempt, doubled per attempt, ms */
  notifyBackoffBaseMs: number;
  /** largest delay between attempts, ms */
  notifyBackoffMaxMs: number;
}

interface Attempting {
  attempts: number;
  nextAtMs: number;
  inFlight: boolean;
}

export type NotifyDecision = { action: 'retry'; atMs: number; attempts: number } | { action: 'give-up'; attempts: number };

/** When to POST each owed notification; leader-local (a new leader starts afresh). */
export class NotifyPlanner {
  private readonly jobs = new Map<string, Attempting>();

  /**
   * @param random  jitter source for the backoff (src/common/backoff.ts); the node passes
   *   Math.random, so masters that fail to reach one URL together do not retry together
   */
  constructor(
    private readonly lim: NotifyLimits,
    private readonly random: () => number = () => 1,
  ) {}

  /** Of the owed notifications, those to send now; each is marked in flight. */
  due(owed: readonly string[], nowMs: number): string[] {
    const out: string[] = [];
    for (const jobUuid of owed) {
      let a = this.jobs.get(jobUuid);
      if (!a) {
        a = { attempts: 0, nextAtMs: nowMs, inFlight: false };
        this.jobs.set(jobUuid, a);
      }
      if (a.inFlight || a.nextAtMs > nowMs) continue;
      a.inFlight = true;
      a.attempts++;
      out.push(jobUuid);
    }
    return out;
  }

  /** The number of the attempt in flight (1 = first). */
  attempt(jobUuid: string): number {
    return this.jobs.get(jobUuid)?.attempts ?? 0;
  }

  /** A POST failed: retry after the backoff, or give up after notifyMaxAttempts. */
  failed(jobUuid: string, nowMs: number): NotifyDecision {
    const a = this.jobs.get(jobUuid);
    if (!a) return { action: 'give-up', attempts: 0 };
    a.inFlight = false;
    if (a.attempts >= this.lim.notifyMaxAttempts) {
      this.jobs.delete(jobUuid);
      return { action: 'give-up', attempts: a.attempts };
    }
    const delay = backoffDelayMs(a.attempts - 1, { baseMs: this.lim.notifyBackoffBaseMs, maxMs: this.lim.notifyBackoffMaxMs }, this.random);
    a.nextAtMs = nowMs + delay;
    return { action: 'retry', atMs: a.nextAtMs, attempts: a.attempts };
  }

  /** A POST succeeded (or the outcome is being recorded): forget the job. */
  done(jobUuid: string): void {
    this.jobs.delete(jobUuid);
  }

  /** Leadership lost: a later leader term starts afresh. */
  reset(): void {
    this.jobs.clear();
  }

  get size(): number {
    return this.jobs.size;
  }
}

/** Only http and https URLs are posted to; anything else is refused at submit. */
export function checkNotifyUrl(url: string): string | null {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return `${JSON.stringify(url)} is not a URL`;
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') return `${JSON.stringify(url)} is not an http:// or https:// URL`;
  return null;
}
