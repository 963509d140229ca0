/**
 * Leader-side replication state of one follower (etcd tracker.Progress): probe (one append
 * at a time until the match point is found), replicate (pipelined appends bounded by the
 * inflight window), snapshot (waiting for an InstallSnapshot to land).
 */
import { assert } from '../../common/errors';

/** Sliding window of appends sent but not acknowledged: bounded by count and bytes. */
export class Inflights {
  private readonly items: { index: number; bytes: number }[] = [];
  private bytes = 0;
  constructor(
    private readonly maxMsgs: number,
    private readonly maxBytes: number,
  ) {}
  add(index: number, bytes: number): void {
    assert(!this.full(), 'inflights add while full');
    this.items.push({ index, bytes });
    this.bytes += bytes;
  }
  /** Frees every append whose last index is <= index (acknowledged). */
  freeLE(index: number): void {
    let n = 0;
    while (n < this.items.length && this.items[n]!.index <= index) this.bytes -= this.items[n++]!.bytes;
    if (n > 0) this.items.splice(0, n);
  }
  /** Frees the oldest append (after a heartbeat answer, so a lost append cannot stall the window). */
  freeFirst(): void {
    const it = this.items.shift();
    if (it) this.bytes -= it.bytes;
  }
  full(): boolean {
    return this.items.length >= this.maxMsgs || this.bytes >= this.maxBytes;
  }
  count(): number {
    return this.items.length;
  }
  reset(): void {
    this.items.length = 0;
    this.bytes = 0;
  }
}

export type ProgressState = 'probe' | 'replicate' | 'snapshot';

export class Progress {
  match = 0;
  next: number;
  state: ProgressState = 'probe';
  /** probe state: an append is out; wait for its answer (or a heartbeat answer) before the next */
  probeSent = false;
  /** snapshot state: the index of the snapshot being installed */
  pendingSnapshot = 0;
  /** ticks since the snapshot was sent; resent after snapshotRetryTicks */
  snapshotElapsed = 0;
  /** heard from this peer since the last check-quorum round */
  recentActive = false;
  readonly inflights: Inflights;

  constructor(next: number, maxMsgs: number, maxBytes: number) {
    this.next = next;
    this.inflights = new Inflights(maxMsgs, maxBytes);
  }

  private resetState(state: ProgressState): void {
    this.probeSent = false;
    this.pendingSnapshot = 0;
    this.snapshotElapsed = 0;
    this.state = state;
    this.inflights.reset();
  }

  becomeProbe(): void {
    // after a snapshot, continue right after it (the follower has it, or will re-probe)
    if (this.state === 'snapshot') {
      const ps = this.pendingSnapshot;
      this.resetState('probe');
      this.next = Math.max(this.match + 1, ps + 1);
    } else {
      this.resetState('probe');
      this.next = this.match + 1;
    }
  }

  becomeReplicate(): void {
    this.resetState('replicate');
    this.next = this.match + 1;
  }

  becomeSnapshot(snapIndex: number): void {
    this.resetState('snapshot');
    this.pendingSnapshot = snapIndex;
  }

  /** An append up to n was acknowledged. Returns false for a stale answer. */
  maybeUpdate(n: number): boolean {
    let updated = false;
    if (this.match < n) {
      this.match = n;
      updated = true;
      this.probeSent = false;
    }
    this.next = Math.max(this.next, n + 1);
    return updated;
  }

  /**
   * A rejection of the append after `rejected`; `matchHint` is the leader's best guess of the
   * last matching index. Returns false when the rejection is stale (etcd MaybeDecrTo).
   */
  maybeDecrTo(rejected: number, matchHint: number): boolean {
    if (this.state === 'replicate') {
      if (rejected <= this.match) return false;
      this.next = this.match + 1;
      return true;
    }
    if (this.next - 1 !== rejected) return false;
    this.next = Math.max(Math.min(rejected, matchHint + 1), this.match + 1);
    this.probeSent = false;
    return true;
  }

  isPaused(): boolean {
    switch (this.state) {
      case 'probe':
        return this.probeSent;
      case 'replicate':
        return this.inflights.full();
      case 'snapshot':
        return true;
    }
  }
}
