/**
 * The master's side of the master <-> balancer protocol as a pure state machine
 * (docs/balancer.md, "The lease" and "The feed"). No sockets, no timers, no clock: every
 * input carries `nowMs` (the shell's monotonic milliseconds) and returns the effects the
 * shell must carry out, in order.
 *
 * Two jobs:
 * - Lease arbiter. Only the Raft leader answers. The dispatch role is a lease with an epoch;
 *   a new epoch (a new holder) is recorded through Raft (`propose`, then `leaseApplied` once
 *   committed) before anyone is told. The holder renews it with every balancer_hello; a
 *   renewal is local to the leader (no Raft entry). The lease runs `leaseMs` from the moment
 *   the leader decided (grant or renewal); the holder measures it from the moment it SENT
 *   the request, minus its own safety margin, so it stops before the leader could hand the
 *   role to anyone else. A new leader does not know when the holder last renewed, so it
 *   treats the lease as held for `leaseMs + newLeaderWaitMs` from its election.
 * - Credit feed. The holder says how many tasks it has received in this epoch (`fed`) and up
 *   to which count it can take (`creditLimit`); the master sends at most
 *   creditLimit - sent, in batches of at most `feedBatchMax`. A new epoch starts the feed
 *   over from every open task (running ones first, so the new holder can adopt them).
 *
 * Failover without waiting for a retry: a standby that was refused because the lease was
 * held is remembered (its last request); the refusal comes with a `wakeAt` effect (the time
 * the lease can expire), and the shell calls `wake(nowMs)` then. If the holder did not renew
 * and a standby asked within the last `leaseMs` (it is alive), its remembered request is
 * decided as if it arrived now: the new epoch is proposed at once, instead of on the
 * standby's next hello. Safe: the standby measures the lease from when it SENT that request
 * (earlier still), so its lease only gets shorter. The request's credit comes along: the
 * grant is followed at once by the first tasks (no round trip for a credit hello).
 *
 * Ordering contract: effects are executed in array order; `propose` must be committed and
 * applied (leaseApplied) before the holder may be told (`grant`), which this machine does by
 * answering only from leaseApplied.
 */
import { assert } from '../common/errors';

export interface FeedSettings {
  /** how long a grant or renewal lasts at the master, ms (default 400) */
  leaseMs: number;
  /** a new leader waits leaseMs + this before granting the lease to another balancer, ms */
  newLeaderWaitMs: number;
  /** most tasks in one feed batch (default 256) */
  feedBatchMax: number;
  /**
   * while this leader has heard from no primary, an auxiliary is given a free lease only once
   * it has been asking this long, ms (default 1000), so that at start-up a primary that starts
   * a moment after it still goes first. Once a primary has asked, its last ask + leaseMs is
   * the bound instead: at a failover even an auxiliary that has just restarted takes over
   * when the dead primary's lease ends.
   */
  auxiliaryStartWaitMs: number;
}

export type BalancerRoleName = 'primary' | 'auxiliary';

export interface LeaseRequest {
  nodeUuid: string;
  role: BalancerRoleName;
  /** the epoch the balancer believes it holds (0 = none) */
  epoch: number;
  requestSeq: number;
  fed: number;
  creditLimit: number;
}

export type FeedEffect =
  /** record a new epoch through Raft; then call leaseApplied (or proposalFailed) */
  | { kind: 'propose'; epoch: number; holder: string; role: BalancerRoleName }
  | { kind: 'grant'; to: string; epoch: number; requestSeq: number; leaseMs: number }
  | { kind: 'refuse'; to: string; reason: string }
  /** send these tasks (keys "job/index") to the holder, one task_dispatch each, in order */
  | { kind: 'send'; to: string; epoch: number; keys: string[] }
  /** call wake(nowMs) at (or soon after) this time: a lease may expire with a standby waiting */
  | { kind: 'wakeAt'; atMs: number }
  | { kind: 'event'; event: FeedEvent };

export type FeedEvent =
  | { type: 'lease:proposed'; epoch: number; holder: string; role: BalancerRoleName }
  | { type: 'lease:granted'; epoch: number; holder: string; role: BalancerRoleName }
  /** lateMs: how long after the exact end of the lease this was noticed (the expiry itself is at log time - lateMs) */
  | { type: 'lease:expired'; epoch: number; holder: string; lateMs: number }
  | { type: 'feed:reset'; epoch: number; open: number };

/** Most auxiliaries whose asking time is remembered (a pair has one; scripts may send more). */
const MAX_TRACKED_AUXILIARIES = 64;

interface Pending {
  epoch: number;
  holder: string;
  role: BalancerRoleName;
  requestSeq: number;
  /** the requester's room when it asked (creditLimit - fed): its first credit in the new epoch */
  room: number;
}

/** A lease request refused because the lease was held: decided again at wake(). */
interface Waiting {
  req: LeaseRequest;
  atMs: number;
}

export class Feed {
  /** replicated: the current epoch and its holder (as applied from the Raft log) */
  private epoch = 0;
  private holder = '';
  private holderRole: BalancerRoleName = 'primary';
  private leader = false;
  /** the lease is held (as far as this leader knows) until this time */
  private expiresAtMs = -Infinity;
  private expiredNoted = false;
  /**
   * The highest request_seq heard from the holder in its epoch (0 = unknown: a new leader).
   * A balancer numbers its hellos 1, 2, ... per process, so a hello from the holder that
   * claims another epoch with a HIGHER number crossed the grant in flight (it was sent before
   * the grant arrived), while a lower one comes from a restarted process that lost its state.
   */
  private holderSeq = 0;
  private pending: Pending | null = null;
  /** when a primary last asked (so an auxiliary does not take a lease a live primary wants) */
  private primaryAskedMs = -Infinity;
  private leaderSinceMs = 0;
  /** auxiliaries asking: since when (reset after a silence of 2 x leaseMs); bounded */
  private readonly auxAsking = new Map<string, { firstMs: number; lastMs: number }>();
  /** standbys refused while the lease was held: their last request; bounded */
  private readonly waiting = new Map<string, Waiting>();
  /** feed state of the current epoch: tasks not yet sent, in order */
  private readonly queue = new Map<string, true>();
  private readonly sent = new Set<string>();
  private sentCount = 0;
  private creditLimit = 0;
  readonly counters = { grants: 0, renewals: 0, refusals: 0, proposals: 0, tasksSent: 0, batches: 0 };

  constructor(readonly s: FeedSettings) {
    assert(s.leaseMs > 0 && s.feedBatchMax > 0, 'feed settings are positive');
  }

  // ---- leadership and replicated state ---------------------------------------------------

  /** Replicated state as applied (also on followers, and after a restart or a snapshot). */
  restore(epoch: number, holder: string, role: BalancerRoleName): void {
    this.epoch = epoch;
    this.holder = holder;
    this.holderRole = role;
  }

  /** This master now leads: whoever holds the lease may have renewed it just before. */
  becameLeader(nowMs: number, openKeys: string[]): FeedEffect[] {
    this.leader = true;
    this.leaderSinceMs = nowMs;
    this.pending = null;
    this.holderSeq = 0;
    this.expiresAtMs = this.holder ? nowMs + this.s.leaseMs + this.s.newLeaderWaitMs : -Infinity;
    this.expiredNoted = false;
    const out: FeedEffect[] = [];
    this.resetFeed(out, openKeys);
    return out;
  }

  lostLeadership(): void {
    this.leader = false;
    this.pending = null;
    this.waiting.clear();
    this.queue.clear();
    this.sent.clear();
  }

  /**
   * A lease command was applied. On the leader that proposed it, the pending requester is
   * granted now; the feed starts over for the new epoch.
   */
  leaseApplied(epoch: number, holder: string, role: BalancerRoleName, nowMs: number, openKeys: string[]): FeedEffect[] {
    const out: FeedEffect[] = [];
    if (epoch <= this.epoch) return out; // applied twice (restart): nothing changes
    this.restore(epoch, holder, role);
    if (!this.leader) return out;
    const p = this.pending;
    this.pending = null;
    this.expiresAtMs = nowMs + this.s.leaseMs;
    this.expiredNoted = false;
    this.resetFeed(out, openKeys);
    this.waiting.delete(holder);
    this.holderSeq = p && p.holder === holder ? p.requestSeq : 0;
    this.counters.grants++;
    this.emit(out, { type: 'lease:granted', epoch, holder, role });
    if (p && p.epoch === epoch && p.holder === holder) {
      out.push({ kind: 'grant', to: holder, epoch, requestSeq: p.requestSeq, leaseMs: this.s.leaseMs });
      // the request's credit counts for the new epoch: the first tasks follow the grant at once
      this.creditLimit = p.room;
      this.pump(out);
    }
    return out;
  }

  /** The proposal of a new epoch was not committed (timeout, leadership lost): ask again. */
  proposalFailed(): void {
    this.pending = null;
  }

  // ---- requests ----------------------------------------------------------------------------

  /** A balancer_hello reached the leader. */
  request(r: LeaseRequest, nowMs: number): FeedEffect[] {
    const out: FeedEffect[] = [];
    assert(this.leader, 'only the leader arbitrates the lease');
    if (r.role === 'primary') this.primaryAskedMs = nowMs;
    else this.noteAuxiliary(r.nodeUuid, nowMs);
    this.waiting.delete(r.nodeUuid);
    this.noteExpiry(out, nowMs);
    const wakeAtMs = this.decide(out, r, nowMs);
    if (wakeAtMs !== null) {
      // refused while the lease is held (or a primary may still ask): decided again then
      this.waiting.set(r.nodeUuid, { req: r, atMs: nowMs });
      if (this.waiting.size > MAX_TRACKED_AUXILIARIES) this.waiting.delete(this.waiting.keys().next().value!);
      out.push({ kind: 'wakeAt', atMs: wakeAtMs });
    }
    return out;
  }

  /**
   * The lease may have expired (the shell calls this at a `wakeAt` time): a standby that
   * asked within the last leaseMs is decided again with its remembered request, primaries
   * first, so a dead holder is replaced right when its lease ends, not on the next hello.
   */
  wake(nowMs: number): FeedEffect[] {
    const out: FeedEffect[] = [];
    if (!this.leader) return out;
    this.noteExpiry(out, nowMs);
    let next = Infinity;
    const alive = [...this.waiting.values()].filter((w) => nowMs - w.atMs <= this.s.leaseMs && w.req.nodeUuid !== this.holder);
    alive.sort((a, b) => (a.req.role === b.req.role ? b.atMs - a.atMs : a.req.role === 'primary' ? -1 : 1));
    for (const w of alive) {
      const decided: FeedEffect[] = [];
      const again = this.decide(decided, w.req, nowMs);
      if (again === null) {
        // proposed (refusals are not re-sent: the standby hears from its own next hello)
        this.waiting.delete(w.req.nodeUuid);
        out.push(...decided.filter((e) => e.kind !== 'refuse'));
        return out;
      }
      next = Math.min(next, again);
    }
    if (next < Infinity) out.push({ kind: 'wakeAt', atMs: next });
    return out;
  }

  /**
   * Decides a request: renew, propose, or refuse. Returns the time it may be decided
   * differently when refused because the lease is held or a primary may ask, else null.
   */
  private decide(out: FeedEffect[], r: LeaseRequest, nowMs: number): number | null {
    const held = nowMs < this.expiresAtMs;
    if (r.nodeUuid === this.holder && this.holder !== '' && !this.pending) {
      if (r.epoch === this.epoch || r.requestSeq > this.holderSeq) {
        // Renewal (also at a new leader, and also just after expiry when nobody else took it);
        // or a hello the holder sent before the grant of its epoch reached it (a higher
        // request_seq than the granted one): the same process, so the same epoch, renewed.
        const crossed = r.epoch !== this.epoch;
        this.expiresAtMs = nowMs + this.s.leaseMs;
        this.expiredNoted = false;
        this.holderSeq = Math.max(this.holderSeq, r.requestSeq);
        this.counters.renewals++;
        out.push({ kind: 'grant', to: r.nodeUuid, epoch: this.epoch, requestSeq: r.requestSeq, leaseMs: this.s.leaseMs });
        if (!crossed) this.credit(out, r); // a crossed hello's fed counts another epoch
        return null;
      }
      // The holder lost its state (restart): it gets a new epoch, so its workers report what they hold.
      this.propose(out, r);
      return null;
    }
    if (this.pending) {
      // the requester itself is answered by the grant once the epoch is applied
      if (this.pending.holder !== r.nodeUuid) this.refuse(out, r.nodeUuid, `the masters are recording epoch ${this.pending.epoch} for balancer ${this.pending.holder}`);
      return null;
    }
    if (held) {
      this.refuse(out, r.nodeUuid, `balancer ${this.holder} holds epoch ${this.epoch} for ${Math.ceil(this.expiresAtMs - nowMs)} ms more`);
      return this.expiresAtMs;
    }
    if (r.role === 'auxiliary') {
      // A primary that asked within a lease period, or that may be about to ask (the leader
      // is new), comes first: the auxiliary takes over only when the primary is gone.
      // While no primary was heard at all (start-up), the auxiliary also waits until it has
      // been asking auxiliaryStartWaitMs.
      const startWaitUntil = this.primaryAskedMs === -Infinity ? (this.auxAsking.get(r.nodeUuid)?.firstMs ?? nowMs) + this.s.auxiliaryStartWaitMs : -Infinity;
      const waitUntil = Math.max(Math.max(this.primaryAskedMs, this.leaderSinceMs) + this.s.leaseMs, startWaitUntil);
      if (nowMs < waitUntil) {
        this.refuse(out, r.nodeUuid, `the lease is free but a primary balancer asked or may ask; the auxiliary waits ${Math.ceil(waitUntil - nowMs)} ms more`);
        return waitUntil;
      }
    }
    this.propose(out, r);
    return null;
  }

  private noteAuxiliary(nodeUuid: string, nowMs: number): void {
    const a = this.auxAsking.get(nodeUuid);
    if (a && nowMs - a.lastMs <= 2 * this.s.leaseMs) {
      a.lastMs = nowMs;
      return;
    }
    this.auxAsking.delete(nodeUuid);
    this.auxAsking.set(nodeUuid, { firstMs: nowMs, lastMs: nowMs });
    if (this.auxAsking.size > MAX_TRACKED_AUXILIARIES) this.auxAsking.delete(this.auxAsking.keys().next().value!);
  }

  private propose(out: FeedEffect[], r: LeaseRequest): void {
    const epoch = this.epoch + 1;
    this.pending = { epoch, holder: r.nodeUuid, role: r.role, requestSeq: r.requestSeq, room: Math.max(0, r.creditLimit - r.fed) };
    this.counters.proposals++;
    this.emit(out, { type: 'lease:proposed', epoch, holder: r.nodeUuid, role: r.role });
    out.push({ kind: 'propose', epoch, holder: r.nodeUuid, role: r.role });
  }

  private refuse(out: FeedEffect[], to: string, reason: string): void {
    this.counters.refusals++;
    out.push({ kind: 'refuse', to, reason });
  }

  private noteExpiry(out: FeedEffect[], nowMs: number): void {
    if (this.holder && !this.expiredNoted && nowMs >= this.expiresAtMs && this.expiresAtMs > -Infinity) {
      this.expiredNoted = true;
      this.emit(out, { type: 'lease:expired', epoch: this.epoch, holder: this.holder, lateMs: Math.max(0, Math.round(nowMs - this.expiresAtMs)) });
    }
  }

  /** Time passes: notes an expiry (for the log). */
  tick(nowMs: number): FeedEffect[] {
    const out: FeedEffect[] = [];
    if (this.leader) this.noteExpiry(out, nowMs);
    return out;
  }

  // ---- the feed ------------------------------------------------------------------------------

  private credit(out: FeedEffect[], r: LeaseRequest): void {
    // Idempotent: a lost or repeated hello changes nothing; the limit only grows. A balancer
    // that received more than this leader sent got them from an earlier leader in the same
    // epoch: count those too, so the credit bounds what it holds, not what this leader sent.
    if (r.creditLimit > this.creditLimit) this.creditLimit = r.creditLimit;
    if (r.fed > this.sentCount) this.sentCount = r.fed;
    this.pump(out);
  }

  /** New tasks (a job was accepted): queued for the holder. */
  added(keys: string[]): FeedEffect[] {
    const out: FeedEffect[] = [];
    if (!this.leader) return out;
    for (const k of keys) if (!this.sent.has(k)) this.queue.set(k, true);
    this.pump(out);
    return out;
  }

  /** Tasks settled or cancelled: never sent again in this epoch. */
  settled(keys: string[]): void {
    for (const k of keys) {
      this.queue.delete(k);
      this.sent.delete(k);
    }
  }

  /** Every task of a job settled (cancelled, or failed). */
  settledJob(jobUuid: string): void {
    const prefix = `${jobUuid}/`;
    for (const k of [...this.queue.keys()]) if (k.startsWith(prefix)) this.queue.delete(k);
    for (const k of [...this.sent]) if (k.startsWith(prefix)) this.sent.delete(k);
  }

  /**
   * Sends what the credit allows, one batch of at most feedBatchMax per call (a hello, a new
   * job, a grant): the rest goes with the next hellos (every leaseRenewMs). So at most one
   * batch is ever queued on the wire ahead of the answer to a renewal: a grant never waits
   * behind hundreds of tasks at a busy balancer, which would let its lease run out.
   */
  pump(out: FeedEffect[] = []): FeedEffect[] {
    if (!this.leader || !this.holder || this.pending) return out;
    const room = this.creditLimit - this.sentCount;
    if (room > 0 && this.queue.size > 0) {
      const keys: string[] = [];
      for (const k of this.queue.keys()) {
        if (keys.length >= Math.min(room, this.s.feedBatchMax)) break;
        keys.push(k);
      }
      for (const k of keys) {
        this.queue.delete(k);
        this.sent.add(k);
      }
      this.sentCount += keys.length;
      this.counters.tasksSent += keys.length;
      this.counters.batches++;
      out.push({ kind: 'send', to: this.holder, epoch: this.epoch, keys });
    }
    return out;
  }

  private resetFeed(out: FeedEffect[], openKeys: string[]): void {
    this.queue.clear();
    this.sent.clear();
    this.sentCount = 0;
    this.creditLimit = 0;
    for (const k of openKeys) this.queue.set(k, true);
    this.emit(out, { type: 'feed:reset', epoch: this.epoch, open: openKeys.length });
  }

  private emit(out: FeedEffect[], event: FeedEvent): void {
    out.push({ kind: 'event', event });
  }

  // ---- queries -------------------------------------------------------------------------------

  /** Is `epoch` from `nodeUuid` the current one (results and task_started are refused otherwise)? */
  isCurrent(nodeUuid: string, epoch: number): boolean {
    return epoch > 0 && epoch === this.epoch && nodeUuid === this.holder;
  }

  get isLeader(): boolean {
    return this.leader;
  }

  status(nowMs: number): { epoch: number; holder: string | null; role: BalancerRoleName; leaseLeftMs: number | null; pendingEpoch: number | null; queued: number; sent: number; creditLimit: number } {
    return {
      epoch: this.epoch,
      holder: this.holder || null,
      role: this.holderRole,
      leaseLeftMs: this.leader && this.holder ? Math.max(0, Math.round(this.expiresAtMs - nowMs)) : null,
      pendingEpoch: this.pending?.epoch ?? null,
      queued: this.queue.size,
      sent: this.sentCount,
      creditLimit: this.creditLimit,
    };
  }
}
