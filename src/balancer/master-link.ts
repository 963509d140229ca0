/**
 * The balancer's link to the masters (docs/balancer.md, "Master link", "Replicated
 * masters"): hello until answered, renewals every leaseRenewMs while connected, silence,
 * NOT_LEADER redirects over the configured list (MasterCursor), bounded redirect loops.
 * Pure: time is passed in; it appends outputs to the caller's batch.
 */
import { MessageInput } from '../messages';
import { BackoffSettings, backoffDelayMs } from '../common/backoff';
import { MasterCursor } from '../common/leader';
import { DispatchCounters, DispatchEvent, DispatchOutput, HelloReason, MasterState, RedirectWhy } from './contract';

export interface MasterLinkHost {
  /** the balancer_hello to send now (lease request, renewal and credit) */
  helloMsg(nowMs: number): MessageInput<'balancer_hello'>;
  /** the link moved to another master: results sent to the old one are due again */
  linkMoved(): void;
  readonly counters: DispatchCounters;
}

export interface MasterLinkSettings {
  livenessMs: number;
  masterRedirectMinMs: number;
  leaseRenewMs: number;
  /** unanswered hellos repeat after backoffDelayMs(n, helloRetry): masterHelloRetryBaseMs / MaxMs */
  helloRetry: BackoffSettings;
  /** jitter source in [0, 1] */
  random: () => number;
}

export class MasterLink {
  state: MasterState = 'hello-pending';
  heardMs: number | null = null;
  readonly cursor: MasterCursor;
  /** the master the link points at (a NOT_LEADER hint may name one outside the list) */
  endpoint: string;
  /** since when the link waits for an answer from this master (hello-pending) */
  private waitSinceMs = 0;
  /** hello-pending: the next hello goes out at this time */
  private nextHelloAtMs = Infinity;
  /** when the last hello after a redirect went out (they are masterRedirectMinMs apart) */
  private redirectHelloMs = -Infinity;
  /** a redirect's hello waits for masterRedirectMinMs to pass */
  private redirectHelloDue = false;
  private renewSentMs = -Infinity;
  /** hellos sent since the master last answered: the backoff's attempt number */
  private unanswered = 0;

  constructor(
    masters: readonly string[],
    private readonly s: MasterLinkSettings,
    private readonly host: MasterLinkHost,
  ) {
    this.cursor = new MasterCursor([...masters]);
    this.endpoint = this.cursor.current;
  }

  start(out: DispatchOutput[], nowMs: number): void {
    this.waitSinceMs = nowMs;
    this.hello(out, nowMs, 'start');
  }

  /** Any message from the current master: true when it answers a hello (first since it). */
  heard(nowMs: number): boolean {
    const answered = this.state !== 'connected';
    this.heardMs = nowMs;
    this.unanswered = 0;
    if (answered) this.state = 'connected';
    return answered;
  }

  private emit(out: DispatchOutput[], event: DispatchEvent): void {
    out.push({ kind: 'event', event });
  }

  /**
   * Every hello waits for an answer: the state is hello-pending until any master message
   * arrives, and hello repeats meanwhile, after masterHelloRetryBaseMs doubled per unanswered
   * hello up to masterHelloRetryMaxMs, with equal jitter (the master answers a hello at once).
   */
  hello(out: DispatchOutput[], nowMs: number, reason: HelloReason): void {
    if (this.state === 'connected') this.waitSinceMs = nowMs;
    if (reason === 'redirect') this.redirectHelloMs = nowMs;
    this.redirectHelloDue = false;
    // until an answer, hellos repeat with backoff and jitter (at most masterHelloRetryMaxMs apart)
    this.nextHelloAtMs = nowMs + backoffDelayMs(this.unanswered++, this.s.helloRetry, this.s.random);
    this.state = 'hello-pending';
    this.host.counters.masterHellos++;
    this.renewSentMs = nowMs;
    this.emit(out, { type: 'master:hello', reason });
    out.push({ kind: 'toMaster', msg: this.host.helloMsg(nowMs) });
  }

  /**
   * Moves the master link: to the leader a follower named (or the next master when it named
   * none), or to the next master after silence. A new endpoint gets a `masterLink` output and
   * a hello at once, except that hellos after redirects are at least masterRedirectMinMs
   * apart (during an election every master says "not me", and two masters with stale views
   * may name each other: neither must become a tight loop). Unacknowledged results are made
   * due, so they reach the new master as soon as it answers.
   */
  redirect(out: DispatchOutput[], nowMs: number, why: RedirectWhy, hint: string | undefined): void {
    const from = this.endpoint;
    const to = why === 'not-leader' ? this.cursor.redirect(hint) : this.cursor.next();
    this.endpoint = to;
    this.host.counters.masterRedirects++;
    this.emit(out, { type: 'master:redirect', from, to, why, hint: hint ?? null });
    if (to !== from) {
      out.push({ kind: 'masterLink', endpoint: to });
      // Results sent to the old master may never have arrived: all are due now (they keep
      // their order; the re-send in tick runs once the new master has answered).
      this.host.linkMoved();
    }
    this.state = 'hello-pending';
    this.waitSinceMs = nowMs;
    const dueMs = this.redirectHelloMs + this.s.masterRedirectMinMs;
    if (nowMs >= dueMs) this.hello(out, nowMs, 'redirect');
    else {
      this.redirectHelloDue = true;
      this.nextHelloAtMs = dueMs;
    }
  }

  tick(out: DispatchOutput[], nowMs: number): void {
    const several = this.cursor.endpoints.length > 1;
    if (this.state === 'hello-pending') {
      // A master that leaves hellos unanswered for the liveness time is skipped (dead, or
      // cut off); with one master there is nowhere else to go, so keep asking it.
      if (several && nowMs - this.waitSinceMs > this.s.livenessMs) {
        this.redirect(out, nowMs, 'unanswered', undefined);
        return;
      }
      // Until any master message answers, say hello again (backoff with jitter).
      if (nowMs >= this.nextHelloAtMs) this.hello(out, nowMs, this.redirectHelloDue ? 'redirect' : 'unanswered');
      return;
    }
    const silentMs = nowMs - (this.heardMs ?? nowMs);
    if (silentMs > this.s.livenessMs) {
      this.state = 'hello-pending';
      this.emit(out, { type: 'master:lost', silentMs });
      // A dead leader is skipped: the next master either leads or names the leader.
      if (several) this.redirect(out, nowMs, 'silent', undefined);
      else {
        this.waitSinceMs = nowMs;
        this.hello(out, nowMs, 'silent');
      }
      return;
    }
    if (nowMs - this.renewSentMs >= this.s.leaseRenewMs) {
      // The hello is the lease request or renewal, the credit and the heartbeat in one.
      this.renew(out, nowMs);
    }
  }

  /** balancer_hello without leaving the connected state (a renewal: answers keep coming). */
  renew(out: DispatchOutput[], nowMs: number): void {
    this.renewSentMs = nowMs;
    out.push({ kind: 'toMaster', msg: this.host.helloMsg(nowMs) });
  }
}
