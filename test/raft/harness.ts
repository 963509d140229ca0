/**
 * A tiny fault-free network for scenario tests: real RaftCores, an in-memory disk per node,
 * messages delivered in order unless a link is cut. Deterministic (seeded random).
 */
import { RaftCore } from '../../src/master/raft/core';
import { Entry, RaftMessage, ReadState, Snapshot } from '../../src/master/raft/types';
import { Prng } from './sim/prng';

export interface HNode {
  core: RaftCore;
  applied: Entry[];
  reads: ReadState[];
  snapshots: Snapshot[];
}

export class Harness {
  readonly nodes = new Map<string, HNode>();
  readonly queue: RaftMessage[] = [];
  readonly cut = new Set<string>();
  readonly sent: RaftMessage[] = [];
  /** messages for which this returns true are dropped */
  drop: ((m: RaftMessage) => boolean) | undefined;
  private readonly rng: Prng;

  constructor(
    readonly ids: string[],
    seed = 1,
    readonly opts: { preVote?: boolean; checkQuorum?: boolean; electionTicks?: number } = {},
  ) {
    this.rng = new Prng(seed);
    for (const id of ids) this.nodes.set(id, { core: this.mk(id), applied: [], reads: [], snapshots: [] });
  }

  mk(id: string): RaftCore {
    return new RaftCore(
      {
        id,
        peers: this.ids,
        electionTicks: this.opts.electionTicks ?? 10,
        heartbeatTicks: 1,
        maxSizePerMsgBytes: 1 << 20,
        maxInflightMsgs: 16,
        maxInflightBytes: 1 << 20,
        preVote: this.opts.preVote ?? true,
        checkQuorum: this.opts.checkQuorum ?? true,
        random: () => this.rng.next(),
      },
      { hardState: { term: 0, vote: '', commit: 0 }, entries: [] },
    );
  }

  core(id: string): RaftCore {
    return this.nodes.get(id)!.core;
  }

  isolate(id: string): void {
    for (const o of this.ids) if (o !== id) this.cut.add(`${id}>${o}`).add(`${o}>${id}`);
  }

  heal(): void {
    this.cut.clear();
  }

  /** Runs every node's Ready (persist is implicit: the in-memory core is the disk here). */
  private pumpReadies(): boolean {
    let any = false;
    for (const n of this.nodes.values()) {
      while (n.core.hasReady()) {
        any = true;
        const rd = n.core.ready();
        for (const m of rd.messages) {
          this.sent.push(m);
          if (!this.cut.has(`${m.from}>${m.to}`) && !(this.drop && this.drop(m))) this.queue.push(m);
        }
        if (rd.snapshot) n.snapshots.push(rd.snapshot);
        n.applied.push(...rd.committedEntries);
        n.reads.push(...rd.readStates);
        n.core.advance(rd);
      }
    }
    return any;
  }

  /** Delivers messages until the network is quiet. */
  stabilize(maxRounds = 10_000): void {
    for (let i = 0; i < maxRounds; i++) {
      const moved = this.pumpReadies();
      if (this.queue.length === 0 && !moved) return;
      const batch = this.queue.splice(0);
      for (const m of batch) this.nodes.get(m.to)!.core.step(m);
    }
    throw new Error('harness did not stabilize');
  }

  tick(id: string, times = 1): void {
    for (let i = 0; i < times; i++) {
      this.core(id).tick();
      this.stabilize();
    }
  }

  tickAll(times = 1): void {
    for (let i = 0; i < times; i++) {
      for (const id of this.ids) this.core(id).tick();
      this.stabilize();
    }
  }

  /** Ticks only `id` until it leads (used to pick a leader deterministically). */
  elect(id: string): void {
    for (let i = 0; i < 100 && this.core(id).status().role !== 'leader'; i++) this.tick(id);
    if (this.core(id).status().role !== 'leader') throw new Error(`${id} did not become leader`);
  }

  /** Ticks everyone until one of `among` leads; returns it. */
  electAmong(among: string[]): string {
    for (let i = 0; i < 200; i++) {
      const l = this.leaders().find((id) => among.includes(id));
      if (l) return l;
      this.tickAll();
    }
    throw new Error(`none of ${among.join(',')} became leader`);
  }

  leaders(): string[] {
    return this.ids.filter((id) => this.core(id).status().role === 'leader');
  }
}
