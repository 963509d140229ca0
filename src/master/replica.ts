/**
 * The master's Raft shell (docs/raft.md, "The master's shell"): one RaftCore, its SQLite log
 * (raft.db), group commit, one ticker and a DEALER per peer. The master proposes commands
 * and waits for them to be applied; it serves reads after a ReadIndex barrier. All ordering
 * (persist -> send -> apply -> advance) is done by GroupCommitter.
 */
import * as zmq from 'zeromq';
import { Logger } from 'pino';
import { GridError, Security, clientSocket, notLeader, peerIdFromEndpoint, watchServerKey } from '../common';
import { newUuid } from '../messages';
import { Entry, GroupCommitter, NotLeaderError, RaftCore, RaftMessage, RaftStorage, Ready, Snapshot, encodeRaft } from './raft';

export interface ReplicaOptions {
  /** this master's client endpoint; one of `peers` */
  self: string;
  /** every master's client endpoint, this one included (1, 3 or 5) */
  peers: string[];
  raftDbPath: string;
  log: Logger;
  /** the master's keys and trust: peers are reached over CURVE (src/common/zmq.ts) */
  security: Security;
  tickMs: number;
  electionTicks: number;
  heartbeatTicks: number;
  /** a proposal not applied within this long is refused with UNAVAILABLE (the client retries) */
  proposalTimeoutMs: number;
  /** take a snapshot and compact the log every this many applied entries */
  snapshotEveryEntries: number;
  /** most time a graceful stop waits for a leader transfer */
  transferWaitMs: number;
  /** the index the state machine has applied (from its own database) */
  appliedIndex: number;
  /** applies one committed command; its return value resolves the proposer's promise */
  apply(index: number, data: Buffer): unknown;
  /** marks a no-op or empty entry applied */
  applyNoop(index: number): void;
  /** replaces the state machine with a snapshot's bytes */
  restore(snapshot: Snapshot): void;
  /** the state machine's bytes as of what it applied (for a snapshot) */
  capture(): Buffer;
  /** leadership changed (true = this master now leads) */
  onLeadership(leader: boolean): void;
}

interface Waiter {
  resolve(v: unknown): void;
  reject(e: Error): void;
  timer: NodeJS.Timeout;
}

/** Most raft messages queued to one peer before newer ones are dropped (Raft re-sends). */
const PEER_SEND_HWM = 1000;

export class Replica {
  readonly id: string;
  readonly core: RaftCore;
  private readonly storage: RaftStorage;
  private readonly committer: GroupCommitter;
  private readonly peerIds = new Map<string, string>(); // raft id -> endpoint
  private readonly out = new Map<string, zmq.Dealer>();
  private readonly proposals = new Map<string, Waiter>();
  private readonly reads = new Map<string, { index: number; w: Waiter }>();
  private readonly readyReads: { index: number; w: Waiter }[] = [];
  private ticker?: NodeJS.Timeout;
  private leader = false;
  private lastSnapshotIndex = 0;
  private stopped = false;
  readonly counters = { proposals: 0, applied: 0, snapshots: 0, sendDrops: 0 };

  constructor(private readonly o: ReplicaOptions) {
    if (!o.peers.includes(o.self)) throw new GridError('CONFIG_INVALID', `this master's endpoint ${o.self} is not in its peer list ${o.peers.join(',')}`, 'list every master, this one included, in --peers');
    this.id = peerIdFromEndpoint(o.self);
    for (const p of o.peers) this.peerIds.set(peerIdFromEndpoint(p), p);
    this.storage = new RaftStorage(o.raftDbPath);
    const restored = this.storage.load();
    if (restored.snapshot && o.appliedIndex < restored.snapshot.index) {
      // crashed between saving a snapshot and installing it into the state machine
      o.restore(restored.snapshot);
      o.appliedIndex = restored.snapshot.index;
    }
    this.lastSnapshotIndex = restored.snapshot?.index ?? 0;
    this.core = new RaftCore(
      {
        id: this.id,
        peers: [...this.peerIds.keys()],
        electionTicks: o.electionTicks,
        heartbeatTicks: o.heartbeatTicks,
        maxSizePerMsgBytes: 1024 * 1024,
        maxInflightMsgs: 256,
        maxInflightBytes: 32 * 1024 * 1024,
        preVote: true,
        checkQuorum: true,
        random: Math.random,
      },
      { ...restored, applied: o.appliedIndex },
    );
    this.committer = new GroupCommitter(this.core, this.storage, { send: (ms) => this.send(ms), apply: (rd) => this.applyReady(rd) });
    for (const id of this.peerIds.keys()) if (id !== this.id) this.peerSocket(id);
  }

  /**
   * The DEALER to a peer, made on first use: a peer whose key is not in the trust dir's
   * servers file yet (a group whose masters enroll as they start) is retried on the next send.
   * immediate: queue only to a connected peer. Messages to a master that is down are dropped
   * (Raft re-sends what still matters) instead of piling up in ZeroMQ and flooding it with
   * stale appends when it comes back.
   */
  private peerSocket(id: string): zmq.Dealer | undefined {
    let d = this.out.get(id);
    if (d || this.stopped) return d;
    const ep = this.peerIds.get(id)!;
    try {
      d = clientSocket(this.o.security, ep, { sendHighWaterMark: PEER_SEND_HWM, sendTimeout: 0, immediate: true }, (sock, key) =>
        watchServerKey(sock, this.o.security, ep, key, () => {
          // made with a key the peer no longer holds: the next send makes a new socket
          this.o.log.warn({ event: 'raft:peer-key-changed', peer: ep }, 'raft peer key changed in the servers file; reconnecting with the new key');
          if (this.out.get(id) === sock) this.out.delete(id);
          sock.close();
        }),
      );
    } catch (e) {
      if (!this.keyMissingLogged.has(id)) this.o.log.warn({ peer: ep, err: (e as Error).message }, 'raft peer not reachable yet: its key is unknown');
      this.keyMissingLogged.add(id);
      return undefined;
    }
    this.out.set(id, d);
    return d;
  }

  private readonly keyMissingLogged = new Set<string>();

  start(): void {
    if (this.peerIds.size === 1) {
      // A group of one needs no election timeout: campaign at once.
      for (let i = 0; i < this.o.electionTicks * 3 && this.core.status().role !== 'leader'; i++) this.core.tick();
      this.committer.flush();
      this.checkLeadership();
    }
    this.ticker = setInterval(() => this.tick(), this.o.tickMs);
  }

  private tick(): void {
    this.core.tick();
    this.committer.flush();
    this.checkLeadership();
    const applied = this.core.status().applied;
    if (applied - this.lastSnapshotIndex >= this.o.snapshotEveryEntries) {
      this.committer.compact(applied, this.o.capture());
      this.lastSnapshotIndex = applied;
      this.counters.snapshots++;
      this.o.log.info({ index: applied }, 'raft:snapshot taken; log compacted');
    }
  }

  /** Steps a message from a peer (already decoded from the wire). */
  step(m: RaftMessage): void {
    if (m.to !== this.id || !this.peerIds.has(m.from)) {
      this.o.log.warn({ from: m.from, to: m.to, type: m.type }, 'raft message not for this group dropped');
      return;
    }
    this.core.step(m);
    this.committer.schedule();
  }

  get isLeader(): boolean {
    this.checkLeadership(); // the role may have changed in a step since the last tick
    return this.leader;
  }

  /** The leader's client endpoint, if one is known. */
  get leaderEndpoint(): string | undefined {
    const l = this.core.status().leader;
    return l ? this.peerIds.get(l) : undefined;
  }

  /** NOT_LEADER unless this master leads. */
  requireLeader(): void {
    if (!this.isLeader) throw notLeader(this.leaderEndpoint);
  }

  /** Proposes a command; resolves with what apply() returned once it is committed and applied. */
  propose(cmd: Record<string, unknown>): Promise<unknown> {
    this.requireLeader();
    const pid = newUuid();
    const data = Buffer.from(JSON.stringify({ ...cmd, pid }));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.proposals.delete(pid);
        reject(new GridError('UNAVAILABLE', `the masters did not commit this change within ${this.o.proposalTimeoutMs} ms`, 'retry; a majority of masters must be up'));
      }, this.o.proposalTimeoutMs);
      this.proposals.set(pid, { resolve, reject, timer });
      try {
        this.core.propose(data);
      } catch (e) {
        clearTimeout(timer);
        this.proposals.delete(pid);
        reject(e instanceof NotLeaderError ? notLeader(this.leaderEndpoint) : e);
        return;
      }
      this.counters.proposals++;
      this.committer.schedule();
    });
  }

  /**
   * Linearizable read barrier (ReadIndex, Raft thesis §6.4): resolves once this leader has
   * confirmed it still leads and has applied everything committed before the read began.
   */
  readBarrier(): Promise<void> {
    this.requireLeader();
    const ctx = newUuid();
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.reads.delete(ctx);
        reject(new GridError('UNAVAILABLE', `this master could not confirm its leadership within ${this.o.proposalTimeoutMs} ms`, 'retry; a majority of masters must be up'));
      }, this.o.proposalTimeoutMs);
      this.reads.set(ctx, { index: 0, w: { resolve: () => resolve(), reject, timer } });
      try {
        this.core.readIndex(ctx);
      } catch (e) {
        clearTimeout(timer);
        this.reads.delete(ctx);
        reject(e instanceof NotLeaderError ? notLeader(this.leaderEndpoint) : e);
        return;
      }
      this.committer.schedule();
    });
  }

  private send(ms: RaftMessage[]): void {
    for (const m of ms) {
      const d = this.peerSocket(m.to);
      if (!d) {
        this.counters.sendDrops++;
        continue;
      }
      d.send(encodeRaft(m)).catch(() => {
        this.counters.sendDrops++; // peer down or slow: Raft re-sends what matters
      });
    }
  }

  private applyReady(rd: Ready): void {
    if (rd.snapshot) {
      this.o.restore(rd.snapshot);
      this.lastSnapshotIndex = rd.snapshot.index;
      this.o.log.info({ index: rd.snapshot.index }, 'raft:snapshot installed');
    }
    for (const e of rd.committedEntries) this.applyEntry(e);
    for (const rs of rd.readStates) {
      const r = this.reads.get(rs.ctx);
      if (!r) continue;
      this.reads.delete(rs.ctx);
      r.index = rs.index;
      this.readyReads.push(r);
    }
    this.releaseReads(rd.committedEntries.length ? rd.committedEntries[rd.committedEntries.length - 1]!.index : this.core.status().applied);
  }

  private releaseReads(applied: number): void {
    for (let i = this.readyReads.length - 1; i >= 0; i--) {
      const r = this.readyReads[i]!;
      if (r.index <= applied) {
        this.readyReads.splice(i, 1);
        clearTimeout(r.w.timer);
        r.w.resolve(undefined);
      }
    }
  }

  private applyEntry(e: Entry): void {
    this.counters.applied++;
    if (e.type !== 'normal' || e.data.length === 0) {
      this.o.applyNoop(e.index);
      return;
    }
    let pid: string | undefined;
    let result: unknown;
    let error: Error | undefined;
    try {
      pid = (JSON.parse(e.data.toString()) as { pid?: string }).pid;
      result = this.o.apply(e.index, e.data);
    } catch (err) {
      error = err as Error;
    }
    const w = pid ? this.proposals.get(pid) : undefined;
    if (!w) return;
    this.proposals.delete(pid!);
    clearTimeout(w.timer);
    if (error) w.reject(error);
    else w.resolve(result);
  }

  private checkLeadership(): void {
    const now = this.core.status().role === 'leader';
    if (now === this.leader) return;
    this.leader = now;
    this.o.log.info({ term: this.core.status().term, leader: now }, now ? 'raft:leader (this master leads)' : 'raft:follower (leadership lost)');
    if (!now) {
      // Proposals in flight may still commit; their clients retry and are answered from the
      // applied state (every command is idempotent).
      for (const [pid, w] of this.proposals) {
        clearTimeout(w.timer);
        w.reject(notLeader(this.leaderEndpoint));
        this.proposals.delete(pid);
      }
      for (const [ctx, r] of this.reads) {
        clearTimeout(r.w.timer);
        r.w.reject(notLeader(this.leaderEndpoint));
        this.reads.delete(ctx);
      }
      for (const r of this.readyReads.splice(0)) {
        clearTimeout(r.w.timer);
        r.w.reject(notLeader(this.leaderEndpoint));
      }
    }
    this.o.onLeadership(now);
  }

  status(): Record<string, unknown> {
    const s = this.core.status();
    return {
      id: this.id,
      role: s.role,
      term: s.term,
      leader: s.leader,
      leaderEndpoint: this.leaderEndpoint ?? null,
      commit: s.commit,
      applied: s.applied,
      lastIndex: s.lastIndex,
      peers: [...this.peerIds].map(([id, endpoint]) => ({ id, endpoint })),
      counters: this.counters,
      groupCommit: this.committer.stats,
    };
  }

  /**
   * Graceful stop: a leader hands leadership to the most caught-up peer first (thesis
   * §3.10), so the group does not wait an election timeout.
   */
  async stop(): Promise<void> {
    if (this.stopped) return;
    if (this.leader && this.peerIds.size > 1) {
      const s = this.core.status();
      const others = [...this.peerIds.keys()].filter((id) => id !== this.id);
      const best = others.sort((a, b) => (s.progress?.[b]?.match ?? 0) - (s.progress?.[a]?.match ?? 0))[0]!;
      try {
        this.core.transferLeadership(best);
        this.committer.flush();
        const t0 = Date.now();
        while (this.core.status().role === 'leader' && Date.now() - t0 < this.o.transferWaitMs) {
          await new Promise((r) => setTimeout(r, 10));
          this.committer.flush();
        }
        this.o.log.info({ to: this.peerIds.get(best), done: this.core.status().role !== 'leader' }, 'raft:leadership transferred for shutdown');
      } catch (e) {
        this.o.log.warn({ err: (e as Error).message }, 'raft: leadership transfer failed');
      }
    }
    this.stopped = true;
    if (this.ticker) clearInterval(this.ticker);
    this.committer.close();
    for (const d of this.out.values()) d.close();
    this.storage.close();
  }
}
