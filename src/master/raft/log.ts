/**
 * The in-memory Raft log of one core: a compacted prefix (the snapshot) followed by entries.
 * Tracks what the shell has made durable (`stabled`), what is committed and what is applied.
 * Pure: no I/O. Mirrors etcd's raftLog + unstable, simplified because the whole
 * uncompacted log lives in memory (the shell compacts it through snapshots).
 */
import { assert } from '../../common/errors';
import { Entry, Snapshot } from './types';

/** Bytes an entry counts for in size limits: its data plus a fixed header estimate. */
export const ENTRY_OVERHEAD_BYTES = 24;
export const entrySize = (e: Entry): number => e.data.length + ENTRY_OVERHEAD_BYTES;

export class RaftLog {
  /** index and term of the last entry covered by the snapshot (0, 0 = none) */
  snapIndex = 0;
  snapTerm = 0;
  /** entries after the snapshot: ents[i].index === snapIndex + 1 + i */
  ents: Entry[] = [];
  committed = 0;
  applied = 0;
  /** highest index the shell has persisted (as far as the core knows) */
  stabled = 0;
  /** a snapshot received from the leader, not yet handed to the shell */
  pendingSnapshot: Snapshot | undefined;

  firstIndex(): number {
    return this.snapIndex + 1;
  }
  lastIndex(): number {
    return this.snapIndex + this.ents.length;
  }
  lastTerm(): number {
    return this.term(this.lastIndex())!;
  }

  /** Term of entry `i`, or undefined when it is compacted away or beyond the end. */
  term(i: number): number | undefined {
    if (i === this.snapIndex) return this.snapTerm;
    if (i < this.snapIndex || i > this.lastIndex()) return undefined;
    return this.ents[i - this.snapIndex - 1]!.term;
  }

  entry(i: number): Entry | undefined {
    if (i <= this.snapIndex || i > this.lastIndex()) return undefined;
    return this.ents[i - this.snapIndex - 1];
  }

  matchTerm(i: number, t: number): boolean {
    return this.term(i) === t;
  }

  /** §5.4.1: is a log ending at (index, term) at least as up to date as ours? */
  isUpToDate(index: number, term: number): boolean {
    const lt = this.lastTerm();
    return term > lt || (term === lt && index >= this.lastIndex());
  }

  /** Entries [lo, hi) limited to maxBytes (at least one entry when lo < hi). */
  slice(lo: number, hi: number, maxBytes: number): Entry[] {
    assert(lo > this.snapIndex && hi <= this.lastIndex() + 1, `slice [${lo}, ${hi}) within (${this.snapIndex}, ${this.lastIndex() + 1}]`);
    const out: Entry[] = [];
    let size = 0;
    for (let i = lo; i < hi; i++) {
      const e = this.ents[i - this.snapIndex - 1]!;
      size += entrySize(e);
      if (out.length > 0 && size > maxBytes) break;
      out.push(e);
    }
    return out;
  }

  /** Leader append: entries must follow the last index. */
  append(ents: Entry[]): void {
    if (ents.length === 0) return;
    assert(ents[0]!.index === this.lastIndex() + 1, 'leader appends at lastIndex + 1');
    for (const e of ents) this.ents.push(e);
  }

  /** Replaces everything from ents[0].index on (§5.3: delete the conflicting entry and all that follow). */
  truncateAndAppend(ents: Entry[]): void {
    if (ents.length === 0) return;
    const after = ents[0]!.index;
    assert(after > this.committed, `never truncate committed entries (at ${after}, committed ${this.committed})`);
    assert(after > this.snapIndex && after <= this.lastIndex() + 1, 'append is contiguous');
    this.ents.length = after - this.snapIndex - 1;
    for (const e of ents) this.ents.push(e);
    // entries the shell persisted at or after `after` are superseded: they must be written again
    if (this.stabled >= after) this.stabled = after - 1;
  }

  /** First index in `ents` whose term conflicts with ours or that we do not have; 0 if none. */
  findConflict(ents: Entry[]): number {
    for (const e of ents) if (!this.matchTerm(e.index, e.term)) return e.index;
    return 0;
  }

  /**
   * Fast backtracking hint (etcd findConflictByTerm): the largest index <= `index` whose term
   * is <= `term`. Entries after it cannot match a log whose entry `index` has term `term`.
   */
  findConflictByTerm(index: number, term: number): number {
    let i = Math.min(index, this.lastIndex());
    for (; i > this.snapIndex; i--) if (this.term(i)! <= term) return i;
    return this.snapIndex;
  }

  /** Follower side of AppendEntries (§5.3). Returns the last new index, or undefined on mismatch. */
  maybeAppend(index: number, logTerm: number, committed: number, ents: Entry[]): number | undefined {
    if (!this.matchTerm(index, logTerm)) return undefined;
    const lastNew = index + ents.length;
    const ci = this.findConflict(ents);
    if (ci !== 0) {
      assert(ci > this.committed, `conflict at ${ci} with committed entry (committed ${this.committed})`);
      this.truncateAndAppend(ents.slice(ci - index - 1));
    }
    this.commitTo(Math.min(committed, lastNew));
    return lastNew;
  }

  commitTo(c: number): void {
    if (c <= this.committed) return;
    assert(c <= this.lastIndex(), `commit ${c} beyond last index ${this.lastIndex()}`);
    this.committed = c;
  }

  /** §5.4.2: commit by counting only entries of the current term. */
  maybeCommit(maxIndex: number, term: number): boolean {
    if (maxIndex > this.committed && this.term(maxIndex) === term) {
      this.commitTo(maxIndex);
      return true;
    }
    return false;
  }

  /** Follower installs a leader's snapshot: the whole log is replaced (§7). */
  restore(s: Snapshot): void {
    this.snapIndex = s.index;
    this.snapTerm = s.term;
    this.ents = [];
    this.committed = s.index;
    this.stabled = s.index;
    this.pendingSnapshot = s;
  }

  /** Drops entries up to `index` (already applied and captured in a snapshot). */
  compact(index: number): void {
    assert(index > this.snapIndex && index <= this.applied, `compact ${index} within (${this.snapIndex}, applied ${this.applied}]`);
    const t = this.term(index)!;
    this.ents = this.ents.slice(index - this.snapIndex);
    this.snapIndex = index;
    this.snapTerm = t;
  }

  /** Entries persisted? Everything after `stabled` still has to be written by the shell. */
  unstableEntries(): Entry[] {
    const from = Math.max(this.stabled, this.snapIndex) + 1;
    return from > this.lastIndex() ? [] : this.ents.slice(from - this.snapIndex - 1);
  }

  stableTo(index: number, term: number): void {
    if (index > this.stabled && this.matchTerm(index, term)) this.stabled = index;
  }

  /** Committed entries not yet applied, limited to maxBytes (at least one). */
  nextCommitted(maxBytes: number): Entry[] {
    const lo = Math.max(this.applied, this.snapIndex) + 1;
    if (lo > this.committed) return [];
    return this.slice(lo, this.committed + 1, maxBytes);
  }

  hasNextCommitted(): boolean {
    return this.committed > Math.max(this.applied, this.snapIndex);
  }
}
