// Seeded random-schedule simulation of the dispatch state machine (docs/balancer.md,
// "Invariants"): a simulated master and simulated workers exchange real (codec round-tripped)
// messages with the pure Dispatcher under fake time, with worker crashes, partitions, task
// failures, master pauses and lost acknowledgements. A failing seed replays exactly. The
// simulated master runs the real master Feed (src/master/feed.ts: lease + credit feed), with
// Raft commits taken as instant; a master pause is a restart (a new leader with a new feed).
import assert from 'node:assert/strict';
import { Dispatcher, DispatchOutput } from '../../src/balancer';
import { Message, MessageInput, MessageOf, NIL_UUID, TaskOutcome, ERROR_CODES, decode, encode } from '../../src/messages';
import { Feed, FeedEffect } from '../../src/master/feed';
import { makeDispatcher, readyMsg, taskMsg, SOFTWARE } from './helpers';

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A deterministic UUID from a number (the simulation must not use crypto randomness). */
function uuidOf(prefix: number, n: number): string {
  const h = (prefix.toString(16).padStart(8, '0') + n.toString(16).padStart(24, '0')).slice(0, 32);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-8${h.slice(17, 20)}-${h.slice(20)}`;
}

const wire = (m: MessageInput): Message => decode(encode(m));

interface SimWorker {
  id: string;
  slots: number;
  prefetch: number;
  mode: 'up' | 'dead' | 'partitioned';
  /** its connection to the balancer; a new one after every crash or partition (ZeroMQ reconnect) */
  conn: number;
  /** sent worker_ready and not yet greeted: UNAVAILABLE errors still in flight are about the old registration */
  awaitingGreeting: boolean;
  readySentMs: number;
  untilMs: number;
  lastBeatMs: number;
  /** key job/task/attempt -> task */
  running: Map<string, MessageOf<'worker_request'>>;
  /** key job/task/attempt -> when it arrived (a worker ends every task within its timeout) */
  receivedMs: Map<string, number>;
  /** results sent and not yet acknowledged, with when they were last sent */
  unacked: Map<string, { msg: MessageInput<'task_result'>; sentMs: number }>;
}

interface MasterTask {
  spec: MessageOf<'task_dispatch'>;
  attempts: Set<number>;
  finals: Set<number>;
  cancelled: boolean;
}

class Sim {
  readonly rng: () => number;
  readonly d: Dispatcher;
  now = 0;
  chaos = true;
  readonly workers: SimWorker[] = [];
  readonly tasks = new Map<string, MasterTask>();
  masterPausedUntil = -1;
  /** like the real master: it heartbeats a balancer only after that balancer's hello */
  masterKnowsBalancer = false;
  masterBeatMs = 0;
  restartPending = false;
  readonly masterId = uuidOf(0xfeed, 1);
  feed!: Feed;
  /** the replicated lease (survives master restarts, as Raft state does) */
  lease = { epoch: 0, holder: '', role: 'primary' as const };
  private readonly pending: (() => void)[] = [];
  readonly cancelledJobs = new Set<string>();
  readonly jobs: string[];
  stats = { dispatches: 0, crashes: 0, partitions: 0, pauses: 0, failures: 0, lostResults: 0, deadlines: 0 };

  constructor(readonly seed: number) {
    this.rng = mulberry32(seed);
    const r = this.rng;
    this.d = makeDispatcher({
      nodeUuid: uuidOf(0xba1, seed),
      maxQueuedTasks: r() < 0.3 ? 5 + Math.floor(r() * 10) : 1000,
      maxCachedFilesPerWorker: Math.floor(r() * 8),
      retryBackoffBaseMs: 100 + Math.floor(r() * 400),
      resultResendMs: 500 + Math.floor(r() * 2000),
      // short deadlines, so lost results are recovered within the run (task timeout is 10 s)
      taskDeadlineSlackMs: 1000 + Math.floor(r() * 3000),
      queuedDeadlineMs: Math.floor(r() * 3000),
      // its own stream, so the draws above stay those of each seed
      random: mulberry32(seed ^ 0x5eed),
    });
    const nWorkers = 1 + Math.floor(r() * 5);
    for (let i = 0; i < nWorkers; i++) {
      this.workers.push({ id: uuidOf(0xa0, seed * 16 + i), slots: 1 + Math.floor(r() * 3), prefetch: Math.floor(r() * 3), mode: 'up', conn: 0, awaitingGreeting: true, readySentMs: 0, untilMs: 0, lastBeatMs: 0, running: new Map(), receivedMs: new Map(), unacked: new Map() });
    }
    this.jobs = [uuidOf(0x10b, seed * 4), uuidOf(0x10b, seed * 4 + 1)];
    const files = Array.from({ length: 6 }, (_, i) => uuidOf(0xf11e, seed * 8 + i));
    for (const job of this.jobs) {
      const n = 5 + Math.floor(r() * 20);
      for (let i = 0; i < n; i++) {
        const spec = taskMsg(job, i, { maxRetries: Math.floor(r() * 3), taskCount: n, inputs: [files[Math.floor(r() * files.length)]!, files[Math.floor(r() * files.length)]!] });
        this.tasks.set(`${job}/${i}`, { spec, attempts: new Set(), finals: new Set(), cancelled: false });
      }
    }
  }

  // ---- plumbing: every message goes through the codec, delivered in FIFO order ----------

  private run(out: DispatchOutput[]): void {
    for (const o of out) {
      if (o.kind === 'toMaster') {
        const m = wire(o.msg);
        this.pending.push(() => this.masterGets(m));
      } else if (o.kind === 'toWorker') {
        const w = this.workers.find((x) => x.id === o.workerId);
        assert.ok(w, `message to a worker that never existed: ${o.workerId}`);
        const m = wire(o.msg);
        this.pending.push(() => this.workerGets(w, m));
      }
    }
  }

  private pump(): void {
    for (let i = 0; this.pending.length > 0; i++) {
      assert.ok(i < 100_000, 'message storm: the machine keeps answering itself');
      this.pending.shift()!();
      this.checkInvariants();
    }
  }

  private fromMaster(m: MessageInput): void {
    this.run(this.d.onMaster(wire(m), this.now));
  }

  private fromWorker(w: SimWorker, m: MessageInput): void {
    this.run(this.d.onWorker(w.id, wire(m), this.now, `${w.id}#${w.conn}`));
  }

  // ---- the master --------------------------------------------------------------------------

  private get masterUp(): boolean {
    return this.now >= this.masterPausedUntil;
  }

  /** A (re)started master leader: a new Feed over the replicated lease and the open tasks. */
  newLeader(): void {
    this.feed = new Feed({ leaseMs: 1000, newLeaderWaitMs: 500, feedBatchMax: 7, auxiliaryStartWaitMs: 1000 });
    this.feed.restore(this.lease.epoch, this.lease.holder, this.lease.role);
    this.runFeed(this.feed.becameLeader(this.now, this.openKeys()));
  }

  private openKeys(): string[] {
    return [...this.tasks].filter(([, t]) => t.finals.size === 0 && !t.cancelled).map(([k]) => k);
  }

  private runFeed(effects: FeedEffect[]): void {
    for (const e of effects) {
      if (e.kind === 'propose') {
        this.lease = { epoch: e.epoch, holder: e.holder, role: 'primary' };
        this.runFeed(this.feed.leaseApplied(e.epoch, e.holder, e.role, this.now, this.openKeys()));
      } else if (e.kind === 'grant') {
        this.fromMaster({ type: 'lease_grant', node_uuid: this.masterId, epoch: e.epoch, request_seq: e.requestSeq, lease_ms: e.leaseMs });
      } else if (e.kind === 'refuse') {
        this.fromMaster({ type: 'error_reply', node_uuid: this.masterId, request_uuid: NIL_UUID, error_code: ERROR_CODES.LEASE_HELD, message: e.reason });
      } else if (e.kind === 'send') {
        for (const k of e.keys) {
          const t = this.tasks.get(k)!;
          this.fromMaster({ ...t.spec, attempt: t.attempts.size, epoch: e.epoch });
        }
      }
    }
  }

  private masterGets(m: Message): void {
    if (!this.masterUp) return; // paused: as if its socket were down
    switch (m.type) {
      case 'balancer_hello':
        this.masterKnowsBalancer = true;
        this.runFeed(this.feed.request({ nodeUuid: m.node_uuid, role: 'primary', epoch: m.epoch, requestSeq: m.request_seq, fed: m.fed, creditLimit: m.credit_limit }, this.now));
        break;
      case 'task_result': {
        const t = this.tasks.get(`${m.job_uuid}/${m.task_index}`)!;
        assert.ok(t, 'result for a task the master never made');
        assert.ok(this.feed.isCurrent(m.node_uuid, m.epoch), `result under epoch ${m.epoch} from the holder of epoch ${this.lease.epoch}`);
        if (m.final === 1) this.feed.settled([`${m.job_uuid}/${m.task_index}`]);
        t.attempts.add(m.attempt);
        if (m.final === 1) t.finals.add(m.attempt);
        if (this.chaos && this.rng() < 0.15) break; // the ack is lost
        this.fromMaster({ type: 'result_ack', node_uuid: this.masterId, job_uuid: m.job_uuid, task_index: m.task_index, attempt: m.attempt });
        break;
      }
      default:
        break;
    }
  }

  // ---- workers -----------------------------------------------------------------------------

  private workerGets(w: SimWorker, m: Message): void {
    if (w.mode !== 'up') return;
    switch (m.type) {
      case 'worker_request': {
        this.stats.dispatches++;
        assert.ok(!this.cancelledJobs.has(m.job_uuid), `task ${m.task_index} of a cancelled job dispatched`);
        w.running.set(`${m.job_uuid}/${m.task_index}/${m.attempt}`, m);
        w.receivedMs.set(`${m.job_uuid}/${m.task_index}/${m.attempt}`, this.now);
        assert.ok(w.running.size <= w.slots + w.prefetch, `worker capacity ${w.slots}+${w.prefetch} exceeded: ${w.running.size}`);
        this.fromWorker(w, { type: 'task_started', node_uuid: w.id, job_uuid: m.job_uuid, worker_uuid: w.id, task_index: m.task_index, attempt: m.attempt, epoch: m.epoch });
        break;
      }
      case 'result_ack':
        w.unacked.delete(`${m.job_uuid}/${m.task_index}/${m.attempt}`);
        break;
      case 'task_cancel':
        for (const [k, t] of w.running) if (t.job_uuid === m.job_uuid && (m.scope === 0 || (t.task_index === m.task_index && t.attempt === m.attempt))) (w.running.delete(k), w.receivedMs.delete(k));
        break;
      case 'error_reply':
        assert.equal(m.error_code, ERROR_CODES.UNAVAILABLE, `unexpected error_reply: ${m.message}`);
        // The balancer forgot us: register again (tasks in hand are given up). Errors that
        // arrive before the greeting answer messages sent before our last worker_ready.
        if (!w.awaitingGreeting) this.rejoin(w);
        break;
      case 'generic_message':
      case 'balancer_state':
        w.awaitingGreeting = false;
        break;
    }
  }

  private rejoin(w: SimWorker): void {
    w.mode = 'up';
    w.running.clear();
    w.receivedMs.clear();
    w.awaitingGreeting = true;
    w.readySentMs = this.now;
    w.lastBeatMs = this.now;
    this.fromWorker(w, readyMsg(w.id, w.slots, w.prefetch));
  }

  private stepWorker(w: SimWorker): void {
    const r = this.rng;
    if (w.mode !== 'up') {
      if (this.now >= w.untilMs) {
        w.conn++;
        if (w.mode === 'dead') this.rejoin(w);
        else w.mode = 'up'; // partition healed: it carries on, on a new connection
      }
      return;
    }
    if (this.chaos && r() < 0.004) {
      this.stats.crashes++;
      w.mode = 'dead';
      w.running.clear();
      w.receivedMs.clear();
      w.unacked.clear();
      w.untilMs = this.now + 500 + r() * 6000;
      return;
    }
    if (this.chaos && r() < 0.004) {
      this.stats.partitions++;
      w.mode = 'partitioned';
      w.untilMs = this.now + 500 + r() * 6000;
      return;
    }
    if (w.awaitingGreeting && this.now - w.readySentMs > 3000) {
      this.rejoin(w); // the greeting never came (lost with a broken connection): say ready again
      return;
    }
    if (this.now - w.lastBeatMs >= 1000) {
      w.lastBeatMs = this.now;
      this.fromWorker(w, { type: 'worker_status', node_uuid: w.id, job_uuid: NIL_UUID, state: 0 });
    }
    for (const [k, t] of [...w.running]) {
      // like a real worker, every task ends within its timeout_ms (killed at the latest)
      const overdue = this.now - (w.receivedMs.get(k) ?? this.now) >= t.timeout_ms - 1000;
      if (!overdue && r() > 0.08) continue;
      w.running.delete(k);
      w.receivedMs.delete(k);
      if (this.chaos && r() < 0.03) {
        // the result is lost for good (the worker forgets it; the balancer never hears):
        // only the balancer's per-attempt deadline can move this task on
        this.stats.lostResults++;
        continue;
      }
      const fail = this.chaos && r() < 0.3;
      if (fail) this.stats.failures++;
      const msg: MessageInput<'task_result'> = {
        type: 'task_result', node_uuid: w.id, job_uuid: t.job_uuid, worker_uuid: w.id, log_file_uuid: NIL_UUID,
        task_index: t.task_index, attempt: t.attempt, exit_code: fail ? 1 : 0, duration_ms: 1,
        outcome: fail ? TaskOutcome.exit_nonzero : TaskOutcome.ok, final: 0,
        output_file_uuids: [], output_names: [], error: '', log_tail: '', epoch: t.epoch,
      };
      w.unacked.set(k, { msg, sentMs: this.now });
      this.fromWorker(w, msg);
    }
    for (const u of w.unacked.values()) {
      if (this.now - u.sentMs < 1000) continue;
      u.sentMs = this.now;
      this.fromWorker(w, u.msg);
    }
  }

  // ---- the schedule ------------------------------------------------------------------------

  step(): void {
    const r = this.rng;
    this.now += 1 + Math.floor(r() * 250);
    if (this.chaos && this.masterUp && r() < 0.003) {
      // the master restarts: down for a while, then it knows no balancer until a hello
      this.stats.pauses++;
      this.masterPausedUntil = this.now + 1000 + r() * 6000;
      this.masterKnowsBalancer = false;
      this.restartPending = true;
    }
    if (this.restartPending && this.masterUp) {
      this.restartPending = false;
      this.newLeader();
    }
    if (this.masterUp && this.masterKnowsBalancer && this.now - this.masterBeatMs >= 1000) {
      this.masterBeatMs = this.now;
      this.fromMaster({ type: 'generic_message', node_uuid: this.masterId });
    }
    if (this.chaos && this.cancelledJobs.size === 0 && r() < 0.002 && this.masterUp) {
      const job = this.jobs[1]!;
      this.cancelledJobs.add(job);
      for (const t of this.tasks.values()) if (t.spec.job_uuid === job && t.finals.size === 0) t.cancelled = true;
      this.feed.settledJob(job);
      this.fromMaster({ type: 'task_cancel', node_uuid: this.masterId, job_uuid: job, task_index: 0, attempt: 0, scope: 0 });
    }
    for (const w of this.workers) this.stepWorker(w);
    this.run(this.d.tick(this.now));
    this.pump();
  }

  start(): void {
    this.newLeader();
    this.run(this.d.start(0));
    for (const w of this.workers) this.fromWorker(w, readyMsg(w.id, w.slots, w.prefetch));
    this.pump();
  }

  checkInvariants(): void {
    // a (task, attempt) never runs on two workers at once
    const seen = new Map<string, string>();
    for (const w of this.workers) {
      for (const k of w.running.keys()) {
        assert.ok(!seen.has(k), `attempt ${k} runs on ${seen.get(k)} and ${w.id}`);
        seen.set(k, w.id);
      }
    }
    // at most one attempt of a task ever settles it
    for (const [k, t] of this.tasks) assert.ok(t.finals.size <= 1, `task ${k} settled by attempts ${[...t.finals].join(', ')}`);
    for (const ws of this.d.status(this.now).workers) assert.ok(ws.load <= ws.slots + ws.prefetch, `balancer over capacity on ${ws.workerId}`);
  }

  settled(): boolean {
    for (const t of this.tasks.values()) if (t.finals.size === 0 && !t.cancelled) return false;
    return true;
  }
}

describe('balancer dispatch: seeded random schedules (docs/balancer.md "Invariants")', () => {
  const SEEDS = Number(process.env.GRID_SIM_SEEDS ?? 150);
  it(`keeps its invariants and settles every task once, over ${SEEDS} seeds`, () => {
    let chaosTotals = { dispatches: 0, crashes: 0, partitions: 0, pauses: 0, failures: 0, lostResults: 0, deadlines: 0 };
    for (let seed = 1; seed <= SEEDS; seed++) {
      const sim = new Sim(seed);
      try {
        sim.start();
        for (let i = 0; i < 400; i++) sim.step();
        // calm: no more faults; every worker answers, every task must settle
        sim.chaos = false;
        for (let i = 0; i < 5000 && !(sim.settled() && sim.d.status(sim.now).unackedResults === 0 && sim.d.status(sim.now).tasksHeld === 0); i++) sim.step();
        assert.ok(sim.settled(), 'every task settled at the master');
        const st = sim.d.status(sim.now);
        assert.equal(st.tasksHeld, 0, 'the balancer holds nothing at the end');
        assert.equal(st.unackedResults, 0, 'every result was acknowledged');
        for (const [k, t] of sim.tasks) if (!t.cancelled) assert.equal(t.finals.size, 1, `task ${k} settled exactly once`);
      } catch (e) {
        (e as Error).message = `seed ${seed} (software ${SOFTWARE}): ${(e as Error).message}`;
        throw e;
      }
      sim.stats.deadlines = sim.d.counters.deadlinesMissed;
      for (const k of Object.keys(chaosTotals) as (keyof typeof chaosTotals)[]) chaosTotals[k] += sim.stats[k];
    }
    // the schedules really exercised the faults (a simulation without faults proves little)
    assert.ok(chaosTotals.crashes > 10 && chaosTotals.partitions > 10 && chaosTotals.pauses > 10 && chaosTotals.failures > 100 && chaosTotals.lostResults > 10 && chaosTotals.deadlines >= chaosTotals.lostResults / 2, JSON.stringify(chaosTotals));
    chaosTotals = { ...chaosTotals };
  });
});
