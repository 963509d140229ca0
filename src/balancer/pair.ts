/**
 * The balancer pair's side of the dispatch lease as a pure state machine (docs/balancer.md,
 * "The pair" and "The lease"). Binary Star lets each balancer decide alone and needs client
 * votes against split brain; here the Raft leader decides and this machine only keeps the
 * balancer's own view of the lease it was granted. No clock: `nowMs` is passed in by the
 * shell from a monotonic source.
 *
 * Clock assumption (the only one): the balancer's and the master's clocks advance at rates
 * that differ by less than leaseSafetyMarginMs / leaseMs (1/6 with the defaults, 50 of 300). No
 * synchronized clocks are needed: the balancer measures the lease from the moment it SENT
 * the request that a grant answers (always before the master received it), and stops
 * leaseSafetyMarginMs before its end; the master measures from the moment it granted. So
 * the balancer's lease ends strictly before the master's, and the master gives the role to
 * another balancer only after its own lease ended.
 *
 * Time that runs backwards (a wall-clock step, if the shell ever passed one) is clamped:
 * `nowMs` never goes below the largest value seen, so a step back cannot revive a lease.
 */
import { assert } from '../common/errors';

export interface PairSettings {
  /** send balancer_hello (lease request, renewal, credit) this often, ms (default 50) */
  leaseRenewMs: number;
  /** stop dispatching this long before the granted lease ends, ms (default 50) */
  leaseSafetyMarginMs: number;
}

/** Most request send times remembered (a grant for an older request is ignored). */
export const MAX_REMEMBERED_REQUESTS = 64;

export type GrantOutcome =
  /** a new epoch: this balancer just became the active one */
  | 'activated'
  | 'renewed'
  /** an old epoch, an unknown request, or a grant that ends before now: changes nothing */
  | 'ignored';

export class LeaseHolder {
  private epochHeld = 0;
  private validUntilMs = -Infinity;
  private seq = 0;
  private readonly sentAt = new Map<number, number>();
  private maxNowMs = -Infinity;
  /** a refusal since the last grant: another balancer holds (or is being given) the lease */
  private refused = false;

  constructor(readonly s: PairSettings) {
    assert(s.leaseRenewMs > 0 && s.leaseSafetyMarginMs >= 0, 'pair settings are valid');
  }

  private clamp(nowMs: number): number {
    if (nowMs > this.maxNowMs) this.maxNowMs = nowMs;
    return this.maxNowMs;
  }

  /** A balancer_hello goes out now: its sequence number (echoed by the grant). */
  request(nowMs: number): number {
    const now = this.clamp(nowMs);
    this.seq++;
    this.sentAt.set(this.seq, now);
    if (this.sentAt.size > MAX_REMEMBERED_REQUESTS) this.sentAt.delete(this.sentAt.keys().next().value!);
    return this.seq;
  }

  /**
   * lease_grant arrived. A new epoch is always taken, even from a grant that arrived too late
   * to be valid (or answers a request too old to remember): the masters made this balancer
   * the holder, and the tasks they feed under that epoch follow the grant, so it must not drop
   * them as stale. It only dispatches once a grant is valid on its own clock (a renewal).
   */
  onGrant(epoch: number, requestSeq: number, leaseMs: number, nowMs: number): GrantOutcome {
    const now = this.clamp(nowMs);
    const sent = this.sentAt.get(requestSeq);
    if (epoch < this.epochHeld || epoch === 0) return 'ignored';
    // valid until (the request's send time + lease - margin); never valid for an unknown request
    const until = sent === undefined ? -Infinity : sent + leaseMs - this.s.leaseSafetyMarginMs;
    if (epoch > this.epochHeld) {
      this.epochHeld = epoch;
      this.validUntilMs = until;
      this.refused = false;
      return 'activated';
    }
    if (until <= now) return 'ignored'; // took longer to arrive than the lease lasts
    if (until > this.validUntilMs) this.validUntilMs = until;
    this.refused = false;
    return 'renewed';
  }

  /**
   * The master refused the lease (LEASE_HELD): someone else holds it or is being given it.
   * Returns true when this balancer had an epoch it must now give up (drop its soft state).
   */
  onRefused(nowMs: number): boolean {
    this.clamp(nowMs);
    this.validUntilMs = -Infinity;
    const had = !this.refused && this.epochHeld > 0;
    this.refused = true;
    return had;
  }

  /** May this balancer dispatch now? */
  active(nowMs: number): boolean {
    return this.clamp(nowMs) < this.validUntilMs;
  }

  /** The epoch this balancer holds or last held (0 = never). */
  get epoch(): number {
    return this.epochHeld;
  }

  /** The epoch to claim in balancer_hello: 0 once refused (it must get a new one). */
  get claimedEpoch(): number {
    return this.refused ? 0 : this.epochHeld;
  }

  /** ms of lease left (0 when not active) */
  leftMs(nowMs: number): number {
    return Math.max(0, this.validUntilMs - this.clamp(nowMs));
  }
}
