/**
 * Deterministic simulation of a Raft cluster (TigerBeetle VOPR style): the REAL RaftCore on
 * a simulated network, disk and clock, all driven by one seeded PRNG, so any failure replays
 * from its seed. Faults: message loss, delay, reordering, duplication, symmetric and
 * asymmetric partitions, crash/restart losing unsynced writes, clock skew (each node ticks
 * at its own rate). Simulated clients run puts and ReadIndex gets on a replicated KV store.
 * Raft invariants are checked after every step; linearizability and progress at the end.
 */
import { RaftCore, Restored } from '../../../src/master/raft/core';
import { Entry, HardState, NotLeaderError, RaftMessage, Ready, Snapshot } from '../../../src/master/raft/types';
import { KvOp, checkKv } from './linearizability';
import { Prng } from './prng';

export interface SimOptions {
  seed: number;
  /** simulated time units with faults; a node tick is ~10 units */
  faultyUnits: number;
  /** time units after faults stop, within which progress must be shown */
  calmUnits: number;
  verbose: boolean;
  log?: (line: string) => void;
}

export interface SimResult {
  seed: number;
  ok: boolean;
  error?: string;
  /** the time unit at which the failure was seen */
  at?: number;
  stats: { steps: number; messages: number; commits: number; crashes: number; snapshotsSent: number; ops: number; leaderTerms: number };
}

/** What survives a crash: only what the shell synced. */
interface Disk {
  hardState: HardState;
  snapshot?: Snapshot;
  entries: Entry[];
}

interface KvState {
  kv: Record<string, string>;
  lastSeq: Record<string, number>;
}

interface Node {
  id: string;
  core?: RaftCore;
  disk: Disk;
  /** the Ready whose writes are being synced; lost on crash */
  syncing?: { rd: Ready; doneAt: number };
  sm: KvState;
  applied: number;
  tickPeriod: number;
  nextTickAt: number;
  restartAt: number;
  compactEvery: number;
  /** reads confirmed by ReadIndex, waiting for apply */
  reads: { ctx: string; index: number }[];
  incarnation: number;
}

interface Flight {
  at: number;
  seq: number;
  m: RaftMessage;
}

interface Client {
  id: string;
  seq: number;
  guess: string;
  op?: {
    h: KvOp;
    seq: number;
    node: string;
    incarnation: number;
    ctx: string;
    deadline: number;
    retryAt: number;
    attempt: number;
  };
  nextOpAt: number;
}

const KEYS = ['a', 'b', 'c'];
const TICK_UNITS = 10;

export class SimFailure extends Error {}

export class Simulation {
  readonly rng: Prng;
  readonly ids: string[];
  readonly nodes = new Map<string, Node>();
  private flights: Flight[] = [];
  private flightSeq = 0;
  now = 0;
  /** blocked[a][b]: messages a -> b are dropped */
  private blocked = new Set<string>();
  private partitionUntil = 0;
  private lossP: number;
  private dupP: number;
  private maxDelay: number;
  private faults = true;
  private readonly cfgBase: { electionTicks: number; heartbeatTicks: number; maxSizePerMsgBytes: number; maxInflightMsgs: number; maxInflightBytes: number; preVote: boolean; checkQuorum: boolean; snapshotRetryTicks: number };
  readonly clients: Client[] = [];
  readonly history: KvOp[] = [];
  private leaderOfTerm = new Map<number, string>();
  /** index -> term:data of every entry any node applied (state machine safety) */
  private appliedAt = new Map<number, string>();
  /** index -> { term, atTerm } of entries known committed (leader completeness) */
  private committedAt = new Map<number, { term: number; atTerm: number }>();
  private maxCommitted = 0;
  stats = { steps: 0, messages: 0, commits: 0, crashes: 0, snapshotsSent: 0, ops: 0, leaderTerms: 0 };

  constructor(readonly opts: SimOptions) {
    this.rng = new Prng(opts.seed);
    const r = this.rng;
    const n = r.chance(0.5) ? 3 : 5;
    this.ids = Array.from({ length: n }, (_, i) => `n${i + 1}`);
    this.lossP = r.pick([0, 0.01, 0.05, 0.15]);
    this.dupP = r.pick([0, 0.02, 0.1]);
    this.maxDelay = r.pick([3, 10, 25]);
    this.cfgBase = {
      electionTicks: 10,
      heartbeatTicks: r.pick([1, 2]),
      maxSizePerMsgBytes: r.pick([64, 256, 4096]),
      maxInflightMsgs: r.pick([1, 3, 64]),
      maxInflightBytes: r.pick([256, 1 << 20]),
      preVote: r.chance(0.75),
      checkQuorum: r.chance(0.75),
      snapshotRetryTicks: 20,
    };
    for (const id of this.ids) {
      const node: Node = {
        id,
        disk: { hardState: { term: 0, vote: '', commit: 0 }, entries: [] },
        sm: { kv: {}, lastSeq: {} },
        applied: 0,
        // clock skew: each node's tick lasts 8..12 units
        tickPeriod: r.int(TICK_UNITS - 2, TICK_UNITS + 2),
        nextTickAt: r.int(1, TICK_UNITS),
        restartAt: 0,
        compactEvery: r.int(4, 40),
        reads: [],
        incarnation: 0,
      };
      this.nodes.set(id, node);
      this.start(node);
    }
    const nClients = r.int(2, 4);
    for (let i = 0; i < nClients; i++) this.clients.push({ id: `c${i + 1}`, seq: 0, guess: r.pick(this.ids), nextOpAt: r.int(0, 50) });
    this.log(`cluster ${n} nodes, loss ${this.lossP}, dup ${this.dupP}, maxDelay ${this.maxDelay}, cfg ${JSON.stringify(this.cfgBase)}, clients ${nClients}`);
  }

  private log(s: string): void {
    if (this.opts.verbose) (this.opts.log ?? console.log)(`[${this.now}] ${s}`);
  }

  private fail(what: string): never {
    throw new SimFailure(what);
  }

  // ---- node lifecycle ------------------------------------------------------------------

  private start(node: Node): void {
    node.incarnation++;
    const d = node.disk;
    const restored: Restored = { hardState: { ...d.hardState }, entries: d.entries.slice(), snapshot: d.snapshot };
    node.core = new RaftCore({ id: node.id, peers: this.ids, random: () => this.rng.next(), ...this.cfgBase }, restored);
    // the state machine is rebuilt from the snapshot, then the core hands committed entries again
    node.sm = d.snapshot ? (JSON.parse(d.snapshot.data.toString()) as KvState) : { kv: {}, lastSeq: {} };
    node.applied = d.snapshot?.index ?? 0;
    node.reads = [];
    node.syncing = undefined;
  }

  private crash(node: Node): void {
    this.log(`crash ${node.id} (unsynced Ready lost: ${node.syncing ? 'yes' : 'no'})`);
    node.core = undefined;
    node.syncing = undefined;
    node.restartAt = this.now + this.rng.int(20, 400);
    this.stats.crashes++;
  }

  // ---- the shell: persist, send, apply, advance ------------------------------------------------

  private persist(node: Node, rd: Ready): void {
    const d = node.disk;
    if (rd.snapshot) {
      d.snapshot = rd.snapshot;
      d.entries = [];
    }
    if (rd.entries.length > 0) {
      const first = rd.entries[0]!.index;
      d.entries = d.entries.filter((e) => e.index < first).concat(rd.entries);
    }
    if (rd.hardState) d.hardState = { ...rd.hardState };
  }

  private completeReady(node: Node, rd: Ready): void {
    const core = node.core!;
    this.persist(node, rd);
    // ordering contract: what a message promises is durable now
    for (const m of rd.messages) {
      if (m.type === 'voteResp' && !m.reject && node.disk.hardState.term === m.term && node.disk.hardState.vote !== m.to) this.fail(`${node.id} sent a vote for ${m.to} that is not on disk`);
      this.send(m);
    }
    if (rd.snapshot) {
      node.sm = JSON.parse(rd.snapshot.data.toString()) as KvState;
      node.applied = rd.snapshot.index;
    }
    for (const e of rd.committedEntries) this.apply(node, e);
    for (const rs of rd.readStates) node.reads.push(rs);
    core.advance(rd);
    this.serveReads(node);
    // compaction after apply (§7); the snapshot is written durably before entries are dropped
    const st = core.status();
    if (node.applied - st.snapshotIndex >= node.compactEvery) {
      const snap = core.compact(node.applied, Buffer.from(JSON.stringify(node.sm)));
      node.disk.snapshot = snap;
      node.disk.entries = node.disk.entries.filter((e) => e.index > snap.index);
      this.log(`${node.id} compacted to ${snap.index}`);
    }
  }

  private apply(node: Node, e: Entry): void {
    if (e.index !== node.applied + 1) this.fail(`${node.id} applies ${e.index} after ${node.applied}`);
    const sig = `${e.term}:${e.type}:${e.data.toString('hex')}`;
    const prev = this.appliedAt.get(e.index);
    if (prev === undefined) {
      this.appliedAt.set(e.index, sig);
      this.stats.commits++;
    } else if (prev !== sig) this.fail(`state machine safety: ${node.id} applied ${sig} at ${e.index}, another node applied ${prev}`);
    node.applied = e.index;
    if (e.type !== 'normal') return;
    const cmd = JSON.parse(e.data.toString()) as { c: string; s: number; k: string; v: string };
    const last = node.sm.lastSeq[cmd.c] ?? 0;
    if (cmd.s > last) {
      node.sm.kv[cmd.k] = cmd.v;
      node.sm.lastSeq[cmd.c] = cmd.s;
    }
    // answer the client waiting on this node for this request
    for (const cl of this.clients) {
      const op = cl.op;
      if (op && op.h.kind === 'put' && cl.id === cmd.c && op.seq === cmd.s && op.node === node.id && op.incarnation === node.incarnation) this.finish(cl);
    }
  }

  private serveReads(node: Node): void {
    const keep: { ctx: string; index: number }[] = [];
    for (const r of node.reads) {
      if (node.applied < r.index) {
        keep.push(r);
        continue;
      }
      for (const cl of this.clients) {
        const op = cl.op;
        if (op && op.h.kind === 'get' && op.ctx === r.ctx && op.node === node.id) {
          op.h.value = node.sm.kv[op.h.key] ?? null;
          this.finish(cl);
        }
      }
    }
    node.reads = keep;
  }

  // ---- network ----------------------------------------------------------------------------------

  private send(m: RaftMessage): void {
    this.stats.messages++;
    if (m.type === 'snap') this.stats.snapshotsSent++;
    if (this.blocked.has(`${m.from}>${m.to}`)) return;
    if (this.faults && this.rng.chance(this.lossP)) return;
    const copies = this.faults && this.rng.chance(this.dupP) ? 2 : 1;
    for (let i = 0; i < copies; i++) {
      const long = this.faults && this.rng.chance(0.02);
      const delay = long ? this.rng.int(this.maxDelay, this.maxDelay * 8) : this.rng.int(1, this.maxDelay);
      this.flights.push({ at: this.now + delay, seq: this.flightSeq++, m });
    }
  }

  private deliverDue(): void {
    if (this.flights.length === 0) return;
    const due: Flight[] = [];
    const rest: Flight[] = [];
    for (const f of this.flights) (f.at <= this.now ? due : rest).push(f);
    if (due.length === 0) return;
    this.flights = rest;
    due.sort((a, b) => a.at - b.at || a.seq - b.seq);
    for (const f of due) {
      const node = this.nodes.get(f.m.to)!;
      if (!node.core) continue;
      if (this.blocked.has(`${f.m.from}>${f.m.to}`)) continue;
      node.core.step(f.m);
    }
  }

  // ---- faults ---------------------------------------------------------------------------------

  private injectFaults(): void {
    const r = this.rng;
    for (const node of this.nodes.values()) {
      if (!node.core && this.now >= node.restartAt) {
        this.log(`restart ${node.id}`);
        this.start(node);
      }
    }
    if (r.chance(0.0008)) {
      const alive = [...this.nodes.values()].filter((n) => n.core);
      if (alive.length > 0) this.crash(r.pick(alive));
    }
    if (this.blocked.size > 0 && this.now >= this.partitionUntil) {
      this.log('partition healed');
      this.blocked.clear();
    }
    if (this.blocked.size === 0 && r.chance(0.0015)) this.partition();
  }

  private partition(): void {
    const r = this.rng;
    const ids = this.ids;
    const kind = r.int(0, 3);
    const cut = (a: string, b: string): void => {
      this.blocked.add(`${a}>${b}`);
      this.blocked.add(`${b}>${a}`);
    };
    if (kind === 0) {
      // isolate one node (often the leader)
      const leader = ids.find((id) => this.nodes.get(id)!.core?.status().role === 'leader');
      const x = leader && r.chance(0.6) ? leader : r.pick(ids);
      for (const y of ids) if (y !== x) cut(x, y);
      this.log(`partition: isolate ${x}`);
    } else if (kind === 1) {
      // split into a minority and a majority
      const shuffled = ids.slice().sort(() => r.next() - 0.5);
      const k = r.int(1, Math.floor(ids.length / 2));
      const minority = shuffled.slice(0, k);
      for (const a of minority) for (const b of ids) if (!minority.includes(b)) cut(a, b);
      this.log(`partition: minority ${minority.join(',')}`);
    } else if (kind === 2) {
      // asymmetric: one node hears nobody but can still talk (or the reverse)
      const x = r.pick(ids);
      const inbound = r.chance(0.5);
      for (const y of ids) if (y !== x) this.blocked.add(inbound ? `${y}>${x}` : `${x}>${y}`);
      this.log(`partition: ${x} ${inbound ? 'deaf' : 'mute'}`);
    } else {
      // random one-way links
      for (const a of ids) for (const b of ids) if (a !== b && r.chance(0.3)) this.blocked.add(`${a}>${b}`);
      this.log(`partition: random links ${[...this.blocked].join(' ')}`);
    }
    this.partitionUntil = this.now + r.int(50, 1500);
  }

  private heal(): void {
    this.faults = false;
    this.blocked.clear();
    for (const node of this.nodes.values()) if (!node.core) this.start(node);
    this.log('faults stop; all nodes up, network healed');
  }

  // ---- clients --------------------------------------------------------------------------------

  private finish(cl: Client): void {
    const op = cl.op!;
    op.h.ret = this.now;
    this.log(`client ${cl.id} ${op.h.kind} ${op.h.key}=${op.h.value} done [${op.h.invoke}, ${op.h.ret}]`);
    cl.op = undefined;
    cl.guess = op.node;
    cl.nextOpAt = this.now + this.rng.int(0, 30);
  }

  private runClients(): void {
    const r = this.rng;
    for (const cl of this.clients) {
      if (!cl.op) {
        if (this.now < cl.nextOpAt) continue;
        cl.seq++;
        const key = r.pick(KEYS);
        const put = r.chance(0.6);
        const h: KvOp = { client: cl.id, kind: put ? 'put' : 'get', key, value: put ? `${cl.id}.${cl.seq}` : null, invoke: this.now, ret: Infinity };
        this.history.push(h);
        this.stats.ops++;
        cl.op = { h, seq: cl.seq, node: '', incarnation: 0, ctx: '', deadline: 0, retryAt: this.now, attempt: 0 };
      }
      const op = cl.op;
      if (op.node !== '') {
        const n = this.nodes.get(op.node)!;
        const gone = !n.core || n.incarnation !== op.incarnation;
        if (!gone && this.now < op.deadline) continue;
        op.node = ''; // timed out or the node crashed: retry elsewhere (same request id)
        op.retryAt = this.now + r.int(5, 20);
        cl.guess = r.pick(this.ids);
      }
      if (this.now < op.retryAt) continue;
      this.attempt(cl);
    }
  }

  private attempt(cl: Client): void {
    const op = cl.op!;
    const node = this.nodes.get(cl.guess)!;
    op.attempt++;
    if (!node.core) {
      cl.guess = this.rng.pick(this.ids);
      op.retryAt = this.now + 5;
      return;
    }
    try {
      if (op.h.kind === 'put') {
        node.core.propose(Buffer.from(JSON.stringify({ c: cl.id, s: op.seq, k: op.h.key, v: op.h.value })));
      } else {
        op.ctx = `${cl.id}:${op.seq}:${op.attempt}`;
        node.core.readIndex(op.ctx);
      }
      op.node = node.id;
      op.incarnation = node.incarnation;
      op.deadline = this.now + 40 * TICK_UNITS;
    } catch (e) {
      if (!(e instanceof NotLeaderError)) throw e;
      cl.guess = e.leaderId ?? this.rng.pick(this.ids);
      op.retryAt = this.now + this.rng.int(2, 10);
    }
  }

  // ---- invariants (checked after every step) -------------------------------------------------

  private checkInvariants(): void {
    const live = [...this.nodes.values()].filter((n) => n.core);
    for (const n of live) {
      const st = n.core!.status();
      if (st.role === 'leader') {
        const prev = this.leaderOfTerm.get(st.term);
        if (prev === undefined) {
          this.leaderOfTerm.set(st.term, n.id);
          this.stats.leaderTerms++;
          this.log(`${n.id} leads term ${st.term}`);
        } else if (prev !== n.id) this.fail(`election safety: ${prev} and ${n.id} both lead term ${st.term}`);
      }
      // record committed entries (leader completeness)
      const l = n.core!.log;
      for (let i = Math.max(this.maxCommitted + 1, l.snapIndex + 1); i <= l.committed; i++) {
        this.committedAt.set(i, { term: l.term(i)!, atTerm: st.term });
      }
      if (l.committed > this.maxCommitted) this.maxCommitted = l.committed;
    }
    for (const n of live) {
      const st = n.core!.status();
      if (st.role !== 'leader') continue;
      const l = n.core!.log;
      for (let i = l.snapIndex + 1; i <= this.maxCommitted; i++) {
        const c = this.committedAt.get(i);
        if (!c || c.atTerm >= st.term) continue;
        if (l.term(i) !== c.term) this.fail(`leader completeness: ${n.id} leads term ${st.term} without entry ${i} (term ${c.term}) committed at term ${c.atTerm}`);
      }
    }
    // log matching (§5.3): same index and term => identical prefix
    for (let a = 0; a < live.length; a++) {
      for (let b = a + 1; b < live.length; b++) this.checkLogMatching(live[a]!, live[b]!);
    }
  }

  private checkLogMatching(na: Node, nb: Node): void {
    const a = na.core!.log;
    const b = nb.core!.log;
    const lo = Math.max(a.snapIndex, b.snapIndex);
    const hi = Math.min(a.lastIndex(), b.lastIndex());
    let top = -1;
    for (let i = hi; i >= lo; i--) {
      if (a.term(i) === b.term(i)) {
        top = i;
        break;
      }
    }
    for (let i = top; i > lo; i--) {
      const ea = a.entry(i)!;
      const eb = b.entry(i)!;
      if (ea.term !== eb.term || ea.type !== eb.type || !ea.data.equals(eb.data)) this.fail(`log matching: ${na.id} and ${nb.id} agree at ${top} but differ at ${i}`);
    }
  }

  // ---- main loop --------------------------------------------------------------------------------

  private step(): void {
    this.stats.steps++;
    this.deliverDue();
    for (const node of this.nodes.values()) {
      if (!node.core) continue;
      if (this.now >= node.nextTickAt) {
        node.core.tick();
        node.nextTickAt = this.now + node.tickPeriod;
      }
    }
    this.runClients();
    for (const node of this.nodes.values()) this.pump(node);
    if (this.faults) this.injectFaults();
    this.checkInvariants();
  }

  /** Moves node's Ready pipeline: sync takes 0..2 units; a crash meanwhile loses the writes. */
  private pump(node: Node): void {
    for (let guard = 0; guard < 10 && node.core; guard++) {
      if (node.syncing) {
        if (this.now < node.syncing.doneAt) return;
        const rd = node.syncing.rd;
        node.syncing = undefined;
        this.completeReady(node, rd);
        continue;
      }
      if (!node.core.hasReady()) return;
      const rd = node.core.ready();
      const needsSync = rd.hardState !== undefined || rd.entries.length > 0 || rd.snapshot !== undefined;
      node.syncing = { rd, doneAt: this.now + (needsSync && this.faults ? this.rng.int(0, 2) : 0) };
    }
  }

  run(): SimResult {
    const { faultyUnits, calmUnits } = this.opts;
    try {
      for (; this.now < faultyUnits; this.now++) this.step();
      this.heal();
      // progress: once faults stop, a fresh write must commit within calmUnits
      const mark = this.appliedAt.size;
      const probe: Client = { id: 'probe', seq: 0, guess: this.ids[0]!, nextOpAt: this.now };
      this.clients.push(probe);
      const end = this.now + calmUnits;
      let progressed = false;
      for (; this.now < end; this.now++) {
        this.step();
        if (probe.seq >= 1 && !probe.op && this.appliedAt.size > mark) {
          progressed = true;
          break;
        }
      }
      if (!progressed) this.fail(`no progress: a write did not commit within ${calmUnits} time units after faults stopped`);
      const lin = checkKv(this.history);
      if (!lin.ok) this.fail(`history not linearizable for key ${lin.badKey} (${lin.ops} operations)`);
      return { seed: this.opts.seed, ok: true, stats: this.stats };
    } catch (e) {
      const msg = e instanceof SimFailure ? e.message : `crash: ${(e as Error).stack ?? String(e)}`;
      for (const n of this.nodes.values()) this.log(`final ${n.id}: ${n.core ? JSON.stringify(n.core.status()) : 'down'} applied ${n.applied}`);
      for (const cl of this.clients) if (cl.op) this.log(`pending ${cl.id}: ${JSON.stringify({ ...cl.op, h: { ...cl.op.h, ret: 0 } })}`);
      return { seed: this.opts.seed, ok: false, error: msg, at: this.now, stats: this.stats };
    }
  }
}

export const DEFAULT_FAULTY_UNITS = 8000;
export const DEFAULT_CALM_UNITS = 3000;

export function runSeed(seed: number, verbose = false, log?: (s: string) => void): SimResult {
  return new Simulation({ seed, faultyUnits: DEFAULT_FAULTY_UNITS, calmUnits: DEFAULT_CALM_UNITS, verbose, log }).run();
}
