/**
 * The Raft core: a pure state machine in the manner of etcd's raft.go + rawnode.go.
 * No I/O, no timers, no clock, no Math.random: time arrives as tick(), randomness through
 * cfg.random, network input through step(), and everything the shell must do comes back as
 * one Ready batch (persist, send, apply), acknowledged with advance().
 *
 * Section numbers refer to the Raft paper (Ongaro & Ousterhout 2014); "thesis" to
 * Ongaro's dissertation (pre-vote §9.6, check-quorum §6.2, leader transfer §3.10,
 * ReadIndex §6.4). Membership is static (no joint consensus yet, docs/raft.md).
 */
import { assert } from '../../common/errors';
import { GridError } from '../../common/errors';
import { RaftConfig, ResolvedRaftConfig, resolveRaftConfig } from './config';
import { RaftLog, entrySize } from './log';
import { Progress } from './progress';
import { Entry, HardState, NONE, NotLeaderError, RaftMessage, RaftMessageType, RaftStatus, ReadState, Ready, Role, Snapshot, raftMessage } from './types';

export interface Restored {
  hardState: HardState;
  /** the latest durable snapshot (meta and state machine bytes), if any */
  snapshot?: Snapshot;
  /** durable entries after the snapshot, contiguous */
  entries: Entry[];
  /** highest index the state machine already holds (a persistent state machine); default: snapshot index */
  applied?: number;
}

type CampaignKind = 'preElection' | 'election' | 'transfer';

interface PendingRead {
  ctx: string;
  index: number;
  acks: Set<string>;
}

const emptyHardState = (): HardState => ({ term: 0, vote: NONE, commit: 0 });

export class RaftCore {
  readonly id: string;
  private readonly cfg: ResolvedRaftConfig;
  private readonly peers: readonly string[];
  private readonly quorum: number;

  private role: Role = 'follower';
  private term = 0;
  private vote = NONE;
  private lead = NONE;
  readonly log = new RaftLog();
  /** latest snapshot this node holds (sent to followers behind the compacted log) */
  private snapshot: Snapshot | undefined;

  private prs = new Map<string, Progress>();
  private votes = new Map<string, boolean>();
  private electionElapsed = 0;
  private heartbeatElapsed = 0;
  private randomizedElectionTimeout = 0;
  private leadTransferee = NONE;
  private uncommittedBytes = 0;

  /** ReadIndex requests waiting for a heartbeat quorum, oldest first (thesis §6.4) */
  private pendingReads: PendingRead[] = [];
  /** ReadIndex requests that arrived before this leader committed an entry of its term */
  private deferredReads: string[] = [];

  private msgs: RaftMessage[] = [];
  private readStates: ReadState[] = [];
  private prevHardState: HardState;
  /** the Ready handed out and not yet advanced (the ordering contract allows one at a time) */
  private outstanding: Ready | undefined;

  constructor(cfg: RaftConfig, restored: Restored) {
    this.cfg = resolveRaftConfig(cfg);
    this.id = cfg.id;
    this.peers = [...cfg.peers];
    this.quorum = Math.floor(this.peers.length / 2) + 1;
    const hs = restored.hardState ?? emptyHardState();
    if (restored.snapshot) {
      this.log.snapIndex = restored.snapshot.index;
      this.log.snapTerm = restored.snapshot.term;
      this.snapshot = restored.snapshot;
    }
    let expect = this.log.snapIndex + 1;
    for (const e of restored.entries) {
      if (e.index < expect) continue; // covered by the snapshot (a crash between snapshot and delete)
      if (e.index !== expect) throw new GridError('INTERNAL', `raft log has a gap: expected entry ${expect}, found ${e.index}`, 'the raft database is damaged; restore this master from a peer');
      this.log.ents.push(e);
      expect++;
    }
    this.log.stabled = this.log.lastIndex();
    this.term = hs.term;
    this.vote = hs.vote;
    this.log.committed = Math.max(this.log.snapIndex, Math.min(hs.commit, this.log.lastIndex()));
    this.log.applied = Math.max(this.log.snapIndex, Math.min(restored.applied ?? 0, this.log.committed));
    this.prevHardState = { term: this.term, vote: this.vote, commit: this.log.committed };
    this.becomeFollower(this.term, NONE);
  }

  // ---- public API (the shell's view) ------------------------------------------------------

  /** One unit of logical time: drives elections and heartbeats. */
  tick(): void {
    if (this.role === 'leader') this.tickHeartbeat();
    else this.tickElection();
  }

  /** Proposes a command. Throws NotLeaderError on a follower or during a leader transfer. */
  propose(data: Buffer): void {
    if (this.role !== 'leader') throw new NotLeaderError(this.lead || undefined);
    if (this.leadTransferee !== NONE) throw new NotLeaderError(undefined, 'transferring');
    const size = data.length;
    if (this.uncommittedBytes > 0 && this.uncommittedBytes + size > this.cfg.maxUncommittedBytes) {
      throw new GridError('UNAVAILABLE', `the raft leader has ${this.uncommittedBytes} bytes of proposals not yet committed (maxUncommittedBytes ${this.cfg.maxUncommittedBytes})`, 'retry after a moment; a follower may be slow');
    }
    this.appendEntries([{ index: 0, term: 0, type: 'normal', data }]);
    this.bcastAppend();
  }

  /**
   * Asks for a linearizable read (thesis §6.4). On the leader, a ReadState {ctx, index}
   * appears in a later Ready once a heartbeat round confirmed leadership; the shell serves
   * the read when applied >= index. Throws NotLeaderError elsewhere.
   */
  readIndex(ctx: string): void {
    if (this.role !== 'leader') throw new NotLeaderError(this.lead || undefined);
    if (this.log.term(this.log.committed) !== this.term) {
      // no entry of this term committed yet: our commit index may be stale (§8); wait for the no-op
      if (!this.deferredReads.includes(ctx)) this.deferredReads.push(ctx);
      return;
    }
    this.startRead(ctx);
  }

  /** Hands leadership to `to` (thesis §3.10) once it has caught up; for graceful shutdown. */
  transferLeadership(to: string): void {
    if (this.role !== 'leader') throw new NotLeaderError(this.lead || undefined);
    if (!this.prs.has(to)) throw new GridError('BAD_REQUEST', `cannot transfer leadership to ${to}: not a peer`, `pick one of ${this.peers.join(', ')}`);
    if (to === this.id || to === this.leadTransferee) return;
    this.leadTransferee = to;
    // the transfer must finish within one election timeout or it is abandoned (tickHeartbeat)
    this.electionElapsed = 0;
    const pr = this.prs.get(to)!;
    if (pr.match === this.log.lastIndex()) this.send({ type: 'timeoutNow', to });
    else this.sendAppend(to);
  }

  /** Processes one message from a peer. Stale or malformed-by-term messages are ignored. */
  step(m: RaftMessage): void {
    assert(m.to === this.id, `message for ${m.to} stepped into ${this.id}`);
    if (!this.prs.has(m.from) && !this.peers.includes(m.from)) return; // not a member: ignore
    if (m.term > this.term) {
      if (m.type === 'vote' || m.type === 'preVote') {
        const inLease = this.cfg.checkQuorum && this.lead !== NONE && this.electionElapsed < this.cfg.electionTicks;
        // leader lease (thesis §4.2.3): while we hear from a leader, a disruptive candidate is ignored
        if (!m.transfer && inLease) return;
      }
      if (m.type === 'preVote') {
        // never change our term for a pre-vote
      } else if (m.type === 'preVoteResp' && !m.reject) {
        // our pre-vote granted; the term rises when we campaign for real
      } else if (m.type === 'app' || m.type === 'heartbeat' || m.type === 'snap') {
        this.becomeFollower(m.term, m.from);
      } else {
        this.becomeFollower(m.term, NONE);
      }
    } else if (m.term < this.term) {
      if ((this.cfg.checkQuorum || this.cfg.preVote) && (m.type === 'heartbeat' || m.type === 'app')) {
        // a leader cut off by a partition learns the new term and steps down
        this.send({ type: 'appResp', to: m.from });
      } else if (m.type === 'preVote') {
        this.send({ type: 'preVoteResp', to: m.from, reject: true });
      }
      return;
    }

    if (m.type === 'vote' || m.type === 'preVote') {
      this.handleVoteRequest(m);
      return;
    }
    switch (this.role) {
      case 'leader':
        this.stepLeader(m);
        break;
      case 'candidate':
      case 'preCandidate':
        this.stepCandidate(m);
        break;
      case 'follower':
        this.stepFollower(m);
        break;
    }
  }

  hasReady(): boolean {
    if (this.outstanding) return false;
    const l = this.log;
    return this.msgs.length > 0 || this.readStates.length > 0 || l.pendingSnapshot !== undefined || this.hardStateChanged() || l.stabled < l.lastIndex() || l.hasNextCommitted();
  }

  /** The next batch of work. See the ordering contract on Ready (types.ts). */
  ready(): Ready {
    assert(!this.outstanding, 'ready() called again before advance(): the shell must persist, send, apply and advance first');
    const l = this.log;
    const hs = this.hardState();
    const rd: Ready = {
      entries: l.unstableEntries(),
      messages: this.msgs,
      committedEntries: l.pendingSnapshot ? [] : l.nextCommitted(this.cfg.maxCommittedSizePerReadyBytes),
      readStates: this.readStates,
    };
    if (this.hardStateChanged()) rd.hardState = hs;
    if (l.pendingSnapshot) rd.snapshot = l.pendingSnapshot;
    // messages that depend on state persisted by this Ready must not leave before it: assert
    // that every vote we send granted is covered by the hard state of this Ready or before
    for (const m of rd.messages) {
      if (m.type === 'voteResp' && !m.reject) assert(hs.term > m.term || (hs.term === m.term && hs.vote === m.to), 'a granted vote is persisted with the Ready that sends it');
      if (m.type === 'app') assert(m.index + m.entries.length <= l.lastIndex(), 'appends only send entries in the log');
    }
    this.msgs = [];
    this.readStates = [];
    this.outstanding = rd;
    return rd;
  }

  /** The shell persisted, sent and applied `rd`. */
  advance(rd: Ready): void {
    assert(this.outstanding === rd, 'advance() must get the Ready returned by the last ready()');
    this.outstanding = undefined;
    const l = this.log;
    if (rd.hardState) this.prevHardState = rd.hardState;
    if (rd.snapshot) {
      if (l.pendingSnapshot === rd.snapshot) l.pendingSnapshot = undefined;
      l.applied = Math.max(l.applied, rd.snapshot.index);
      if (!this.snapshot || rd.snapshot.index > this.snapshot.index) this.snapshot = rd.snapshot;
    }
    if (rd.entries.length > 0) {
      const last = rd.entries[rd.entries.length - 1]!;
      l.stableTo(last.index, last.term);
    }
    if (rd.committedEntries.length > 0) {
      const last = rd.committedEntries[rd.committedEntries.length - 1]!;
      assert(last.index <= l.committed, 'applied entries were committed');
      l.applied = Math.max(l.applied, last.index);
    }
  }

  /**
   * After the shell applied up to `index` and captured the state machine as `snapshotData`,
   * drops the log up to `index` (§7). Returns the snapshot, which the shell persists
   * (storage.saveSnapshot) before deleting entries.
   */
  compact(index: number, snapshotData: Buffer): Snapshot {
    if (index <= this.log.snapIndex) return this.snapshot!;
    if (index > this.log.applied) throw new GridError('BAD_REQUEST', `cannot compact to ${index}: only ${this.log.applied} applied`, 'compact only what the state machine has applied');
    const snap: Snapshot = { index, term: this.log.term(index)!, data: snapshotData };
    this.log.compact(index);
    this.snapshot = snap;
    return snap;
  }

  status(): RaftStatus {
    const st: RaftStatus = {
      id: this.id,
      role: this.role,
      term: this.term,
      vote: this.vote,
      leader: this.lead,
      commit: this.log.committed,
      applied: this.log.applied,
      firstIndex: this.log.firstIndex(),
      lastIndex: this.log.lastIndex(),
      snapshotIndex: this.log.snapIndex,
      leadTransferee: this.leadTransferee,
    };
    if (this.role === 'leader') {
      st.progress = {};
      for (const [id, pr] of this.prs) st.progress[id] = { match: pr.match, next: pr.next, state: pr.state, inflight: pr.inflights.count(), recentActive: pr.recentActive };
    }
    return st;
  }

  // ---- state transitions -----------------------------------------------------------------

  private hardState(): HardState {
    return { term: this.term, vote: this.vote, commit: this.log.committed };
  }

  private hardStateChanged(): boolean {
    const p = this.prevHardState;
    return p.term !== this.term || p.vote !== this.vote || p.commit !== this.log.committed;
  }

  private reset(term: number): void {
    if (this.term !== term) {
      this.term = term;
      this.vote = NONE;
    }
    this.lead = NONE;
    this.electionElapsed = 0;
    this.heartbeatElapsed = 0;
    this.randomizedElectionTimeout = this.cfg.electionTicks + Math.floor(this.cfg.random() * this.cfg.electionTicks);
    this.leadTransferee = NONE;
    this.votes.clear();
    this.pendingReads = [];
    this.deferredReads = [];
    this.uncommittedBytes = 0;
    this.prs.clear();
    const last = this.log.lastIndex();
    for (const p of this.peers) {
      const pr = new Progress(last + 1, this.cfg.maxInflightMsgs, this.cfg.maxInflightBytes);
      if (p === this.id) pr.match = last;
      this.prs.set(p, pr);
    }
  }

  private becomeFollower(term: number, lead: string): void {
    this.reset(term);
    this.lead = lead;
    this.role = 'follower';
  }

  private becomePreCandidate(): void {
    assert(this.role !== 'leader', 'a leader does not pre-campaign');
    // a pre-candidate keeps its term and vote: pre-vote changes no durable state
    this.votes.clear();
    this.lead = NONE;
    this.role = 'preCandidate';
  }

  private becomeCandidate(): void {
    assert(this.role !== 'leader', 'a leader does not campaign');
    this.reset(this.term + 1);
    this.vote = this.id;
    this.role = 'candidate';
  }

  private becomeLeader(): void {
    assert(this.role === 'candidate', 'only a candidate becomes leader');
    this.reset(this.term);
    this.lead = this.id;
    this.role = 'leader';
    const self = this.prs.get(this.id)!;
    self.becomeReplicate();
    self.recentActive = true;
    // §8: a no-op of the new term lets the leader learn what is committed
    this.appendEntries([{ index: 0, term: 0, type: 'noop', data: Buffer.alloc(0) }]);
  }

  private campaign(kind: CampaignKind): void {
    let voteTerm: number;
    let type: RaftMessageType;
    if (kind === 'preElection') {
      this.becomePreCandidate();
      voteTerm = this.term + 1;
      type = 'preVote';
    } else {
      this.becomeCandidate();
      voteTerm = this.term;
      type = 'vote';
    }
    this.votes.set(this.id, true);
    if (this.tally().granted >= this.quorum) {
      this.onWin(kind);
      return;
    }
    for (const p of this.peers) {
      if (p === this.id) continue;
      this.send({ type, to: p, term: voteTerm, index: this.log.lastIndex(), logTerm: this.log.lastTerm(), transfer: kind === 'transfer' });
    }
  }

  private onWin(kind: CampaignKind): void {
    if (kind === 'preElection') this.campaign('election');
    else {
      this.becomeLeader();
      this.bcastAppend();
    }
  }

  private tally(): { granted: number; rejected: number } {
    let granted = 0;
    let rejected = 0;
    for (const v of this.votes.values()) v ? granted++ : rejected++;
    return { granted, rejected };
  }

  private hup(kind: CampaignKind): void {
    if (this.role === 'leader') return;
    this.campaign(kind);
  }

  // ---- ticks -------------------------------------------------------------------------------

  private tickElection(): void {
    this.electionElapsed++;
    if (this.electionElapsed >= this.randomizedElectionTimeout) {
      this.electionElapsed = 0;
      this.hup(this.cfg.preVote ? 'preElection' : 'election');
    }
  }

  private tickHeartbeat(): void {
    this.heartbeatElapsed++;
    this.electionElapsed++;
    if (this.electionElapsed >= this.cfg.electionTicks) {
      this.electionElapsed = 0;
      if (this.cfg.checkQuorum) {
        // thesis §6.2: a leader that has not heard from a majority for an election timeout steps down
        let active = 0;
        for (const [id, pr] of this.prs) {
          if (id === this.id || pr.recentActive) active++;
          if (id !== this.id) pr.recentActive = false;
        }
        if (active < this.quorum) {
          this.becomeFollower(this.term, NONE);
          return;
        }
      }
      if (this.leadTransferee !== NONE) this.leadTransferee = NONE; // transfer took too long: abandon it
    }
    for (const [id, pr] of this.prs) {
      if (id === this.id || pr.state !== 'snapshot') continue;
      if (++pr.snapshotElapsed >= this.cfg.snapshotRetryTicks) {
        // the snapshot (or its answer) was probably lost: probe again, which resends it if needed
        pr.becomeProbe();
        this.sendAppend(id);
      }
    }
    if (this.heartbeatElapsed >= this.cfg.heartbeatTicks) {
      this.heartbeatElapsed = 0;
      this.bcastHeartbeat(this.pendingReads.length > 0 ? this.pendingReads[this.pendingReads.length - 1]!.ctx : '');
    }
  }

  // ---- message handling ----------------------------------------------------------------------

  private handleVoteRequest(m: RaftMessage): void {
    const respType = m.type === 'vote' ? 'voteResp' : 'preVoteResp';
    // §5.2 one vote per term; a pre-vote for a future term may be granted regardless
    const canVote = this.vote === m.from || (this.vote === NONE && this.lead === NONE) || (m.type === 'preVote' && m.term > this.term);
    if (canVote && this.log.isUpToDate(m.index, m.logTerm)) {
      // answer at the requested term: the candidate counts only answers for its own term
      this.send({ type: respType, to: m.from, term: m.term, reject: false });
      if (m.type === 'vote') {
        this.electionElapsed = 0;
        this.vote = m.from;
      }
    } else {
      this.send({ type: respType, to: m.from, reject: true });
    }
  }

  private stepCandidate(m: RaftMessage): void {
    const myResp = this.role === 'preCandidate' ? 'preVoteResp' : 'voteResp';
    switch (m.type) {
      case 'app':
      case 'heartbeat':
      case 'snap':
        this.becomeFollower(m.term, m.from); // a leader of our term exists (§5.2)
        this.stepFollower(m);
        return;
      case 'preVoteResp':
      case 'voteResp': {
        if (m.type !== myResp) return;
        if (!this.votes.has(m.from)) this.votes.set(m.from, !m.reject);
        const { granted, rejected } = this.tally();
        if (granted >= this.quorum) this.onWin(this.role === 'preCandidate' ? 'preElection' : 'election');
        else if (rejected >= this.quorum) this.becomeFollower(this.term, NONE);
        return;
      }
      default:
        return; // timeoutNow, stale responses
    }
  }

  private stepFollower(m: RaftMessage): void {
    switch (m.type) {
      case 'app':
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleAppend(m);
        return;
      case 'heartbeat':
        this.electionElapsed = 0;
        this.lead = m.from;
        this.log.commitTo(Math.min(m.commit, this.log.lastIndex()));
        this.send({ type: 'heartbeatResp', to: m.from, context: m.context });
        return;
      case 'snap':
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleSnapshot(m);
        return;
      case 'timeoutNow':
        // thesis §3.10: the leader asks us to take over; skip pre-vote and the lease
        this.hup('transfer');
        return;
      default:
        return;
    }
  }

  private handleAppend(m: RaftMessage): void {
    const l = this.log;
    if (m.index < l.committed) {
      this.send({ type: 'appResp', to: m.from, index: l.committed });
      return;
    }
    const lastNew = l.maybeAppend(m.index, m.logTerm, m.commit, m.entries);
    if (lastNew !== undefined) {
      this.send({ type: 'appResp', to: m.from, index: lastNew });
      return;
    }
    // fast backtracking: name the last index that could match a log with term m.logTerm at m.index
    const hintIndex = l.findConflictByTerm(Math.min(m.index, l.lastIndex()), m.logTerm);
    this.send({ type: 'appResp', to: m.from, index: m.index, reject: true, rejectHint: hintIndex, logTerm: l.term(hintIndex) ?? 0 });
  }

  private handleSnapshot(m: RaftMessage): void {
    const s = m.snapshot!;
    const l = this.log;
    if (s.index <= l.committed) {
      this.send({ type: 'appResp', to: m.from, index: l.committed });
      return;
    }
    if (l.matchTerm(s.index, s.term)) {
      // we already have the entries: just learn that they are committed
      l.commitTo(s.index);
      this.send({ type: 'appResp', to: m.from, index: l.committed });
      return;
    }
    l.restore(s);
    // kept in memory at once so that, should we lead before the shell persists it, we can ship it on
    this.snapshot = s;
    this.send({ type: 'appResp', to: m.from, index: l.lastIndex() });
  }

  private stepLeader(m: RaftMessage): void {
    const pr = this.prs.get(m.from);
    if (!pr) return;
    switch (m.type) {
      case 'appResp':
        pr.recentActive = true;
        this.handleAppendResponse(m, pr);
        return;
      case 'heartbeatResp':
        pr.recentActive = true;
        pr.probeSent = false;
        // a full window whose appends were lost would never drain: free one slot per heartbeat (etcd)
        if (pr.state === 'replicate' && pr.inflights.full()) pr.inflights.freeFirst();
        if (pr.match < this.log.lastIndex()) this.sendAppend(m.from);
        if (m.context !== '') this.ackRead(m.context, m.from);
        return;
      default:
        return; // vote responses of an old campaign, timeoutNow for another node
    }
  }

  private handleAppendResponse(m: RaftMessage, pr: Progress): void {
    if (m.reject) {
      let nextProbe = m.rejectHint;
      if (m.logTerm > 0) nextProbe = this.log.findConflictByTerm(m.rejectHint, m.logTerm);
      if (pr.maybeDecrTo(m.index, nextProbe)) {
        if (pr.state === 'replicate') pr.becomeProbe();
        this.sendAppend(m.from);
      }
      return;
    }
    const wasPaused = pr.isPaused();
    if (!pr.maybeUpdate(m.index)) {
      if (wasPaused && pr.state === 'probe') this.sendAppend(m.from);
      return;
    }
    if (pr.state === 'probe') pr.becomeReplicate();
    else if (pr.state === 'snapshot' && pr.match >= pr.pendingSnapshot) {
      pr.becomeProbe();
      pr.becomeReplicate();
    } else if (pr.state === 'replicate') pr.inflights.freeLE(m.index);

    if (this.maybeCommit()) this.bcastAppend();
    else if (wasPaused) this.sendAppend(m.from);
    // pipelining: keep the window full
    while (this.maybeSendAppend(m.from, false)) {
      /* each call sends one more batch */
    }
    if (m.from === this.leadTransferee && pr.match === this.log.lastIndex()) this.send({ type: 'timeoutNow', to: m.from });
  }

  private maybeCommit(): boolean {
    const matches = [...this.prs.values()].map((p) => p.match).sort((a, b) => b - a);
    const mci = matches[this.quorum - 1]!;
    const before = this.log.committed;
    if (!this.log.maybeCommit(mci, this.term)) return false;
    // committed bytes no longer count against maxUncommittedBytes
    for (let i = before + 1; i <= this.log.committed; i++) {
      const e = this.log.entry(i);
      if (e && e.term === this.term) this.uncommittedBytes = Math.max(0, this.uncommittedBytes - e.data.length);
    }
    if (this.deferredReads.length > 0 && this.log.term(this.log.committed) === this.term) {
      const ds = this.deferredReads;
      this.deferredReads = [];
      for (const ctx of ds) this.startRead(ctx);
    }
    return true;
  }

  // ---- sending ------------------------------------------------------------------------------

  private send(p: Partial<RaftMessage> & { type: RaftMessageType; to: string }): void {
    this.msgs.push(raftMessage({ ...p, from: this.id, term: p.term ?? this.term }));
  }

  private appendEntries(es: Entry[]): void {
    let li = this.log.lastIndex();
    for (const e of es) {
      e.term = this.term;
      e.index = ++li;
      this.uncommittedBytes += e.data.length;
    }
    this.log.append(es);
    this.prs.get(this.id)!.maybeUpdate(this.log.lastIndex());
    // A group of one (phase 1's single master) commits on its own: the shell persists these
    // entries before it applies the Ready that carries them (the ordering contract).
    if (this.quorum === 1) this.maybeCommit();
  }

  private bcastAppend(): void {
    for (const p of this.peers) if (p !== this.id) this.sendAppend(p);
  }

  private sendAppend(to: string): void {
    this.maybeSendAppend(to, true);
  }

  /** etcd maybeSendAppend: one append (or a snapshot) to `to` unless its progress is paused. */
  private maybeSendAppend(to: string, sendIfEmpty: boolean): boolean {
    const pr = this.prs.get(to)!;
    if (pr.isPaused()) return false;
    const l = this.log;
    const prevIndex = pr.next - 1;
    const prevTerm = l.term(prevIndex);
    if (prevTerm === undefined) return this.sendSnapshot(to, pr);
    const ents = pr.next <= l.lastIndex() ? l.slice(pr.next, l.lastIndex() + 1, this.cfg.maxSizePerMsgBytes) : [];
    if (ents.length === 0 && !sendIfEmpty) return false;
    this.send({ type: 'app', to, index: prevIndex, logTerm: prevTerm, entries: ents, commit: l.committed });
    if (pr.state === 'replicate') {
      if (ents.length > 0) {
        let bytes = 0;
        for (const e of ents) bytes += entrySize(e);
        pr.next = ents[ents.length - 1]!.index + 1;
        pr.inflights.add(pr.next - 1, bytes);
      }
    } else if (pr.state === 'probe') {
      pr.probeSent = true;
    }
    return true;
  }

  private sendSnapshot(to: string, pr: Progress): boolean {
    const s = this.snapshot;
    assert(s !== undefined && s.index === this.log.snapIndex, 'a compacted log has its snapshot in memory');
    this.send({ type: 'snap', to, snapshot: s });
    pr.becomeSnapshot(s.index);
    return true;
  }

  private bcastHeartbeat(ctx: string): void {
    for (const [id, pr] of this.prs) {
      if (id === this.id) continue;
      // never tell a follower a commit index beyond what it is known to hold
      this.send({ type: 'heartbeat', to: id, commit: Math.min(pr.match, this.log.committed), context: ctx });
    }
  }

  // ---- ReadIndex (thesis §6.4) ------------------------------------------------------------------

  private startRead(ctx: string): void {
    if (this.pendingReads.some((r) => r.ctx === ctx)) return;
    this.pendingReads.push({ ctx, index: this.log.committed, acks: new Set([this.id]) });
    if (this.quorum === 1) this.ackRead(ctx, this.id);
    else this.bcastHeartbeat(ctx);
  }

  private ackRead(ctx: string, from: string): void {
    const at = this.pendingReads.findIndex((r) => r.ctx === ctx);
    if (at < 0) return;
    const r = this.pendingReads[at]!;
    r.acks.add(from);
    if (r.acks.size < this.quorum) return;
    // a quorum confirmed our leadership after every earlier request arrived: release them all
    for (const done of this.pendingReads.splice(0, at + 1)) this.readStates.push({ ctx: done.ctx, index: done.index });
  }
}
