/**
 * Durable Raft state in SQLite (better-sqlite3; WAL, synchronous=FULL so a commit is on disk
 * when it returns): the hard state, the log entries and the latest snapshot. save(rd) writes
 * one Ready in ONE transaction. GroupCommitter drives a core's Ready loop so that every
 * proposal, vote and append that arrived since the last flush shares one transaction (one
 * fsync): many proposals, one fsync.
 */
import Database from 'better-sqlite3';
import { assert, GridError } from '../../common/errors';
import { RAFT_DEFAULTS } from './config';
import type { RaftCore, Restored } from './core';
import { Entry, EntryType, HardState, RaftMessage, RaftStorageError, Ready, Snapshot } from './types';

const SCHEMA = `
CREATE TABLE IF NOT EXISTS raft_hard_state (id INTEGER PRIMARY KEY CHECK (id = 1), term INTEGER NOT NULL, vote TEXT NOT NULL, commit_index INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS raft_entries (idx INTEGER PRIMARY KEY, term INTEGER NOT NULL, type INTEGER NOT NULL, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS raft_snapshot (id INTEGER PRIMARY KEY CHECK (id = 1), idx INTEGER NOT NULL, term INTEGER NOT NULL, data BLOB NOT NULL);
`;

const TYPE_CODE: Record<EntryType, number> = { normal: 0, noop: 1 };
const CODE_TYPE: EntryType[] = ['normal', 'noop'];

export class RaftStorage {
  private readonly db: Database.Database;
  private readonly q;
  /** transactions committed (each is one fsync of the WAL) */
  transactions = 0;

  constructor(readonly file: string) {
    try {
      this.db = new Database(file);
      this.db.pragma('journal_mode = WAL');
      this.db.pragma('synchronous = FULL');
      this.db.exec(SCHEMA);
    } catch (e) {
      throw new RaftStorageError(`cannot open the raft database ${file}: ${(e as Error).message}`, 'check that the data folder exists and is writable', e);
    }
    this.q = {
      putHs: this.db.prepare('INSERT INTO raft_hard_state (id, term, vote, commit_index) VALUES (1, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET term = excluded.term, vote = excluded.vote, commit_index = excluded.commit_index'),
      getHs: this.db.prepare('SELECT term, vote, commit_index FROM raft_hard_state WHERE id = 1'),
      delFrom: this.db.prepare('DELETE FROM raft_entries WHERE idx >= ?'),
      delUpTo: this.db.prepare('DELETE FROM raft_entries WHERE idx <= ?'),
      delAll: this.db.prepare('DELETE FROM raft_entries'),
      putEntry: this.db.prepare('INSERT INTO raft_entries (idx, term, type, data) VALUES (?, ?, ?, ?)'),
      entries: this.db.prepare('SELECT idx, term, type, data FROM raft_entries WHERE idx > ? ORDER BY idx'),
      putSnap: this.db.prepare('INSERT INTO raft_snapshot (id, idx, term, data) VALUES (1, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET idx = excluded.idx, term = excluded.term, data = excluded.data'),
      getSnap: this.db.prepare('SELECT idx, term, data FROM raft_snapshot WHERE id = 1'),
      count: this.db.prepare('SELECT COUNT(*) AS n FROM raft_entries'),
    };
  }

  /** What a core restarts from: new RaftCore(cfg, storage.load()). */
  load(): Restored {
    const hs = this.q.getHs.get() as { term: number; vote: string; commit_index: number } | undefined;
    const sn = this.q.getSnap.get() as { idx: number; term: number; data: Buffer } | undefined;
    const snapshot: Snapshot | undefined = sn ? { index: sn.idx, term: sn.term, data: sn.data } : undefined;
    const rows = this.q.entries.all(snapshot?.index ?? 0) as { idx: number; term: number; type: number; data: Buffer }[];
    const entries: Entry[] = rows.map((r) => {
      const type = CODE_TYPE[r.type];
      if (!type) throw new RaftStorageError(`raft entry ${r.idx} in ${this.file} has unknown type ${r.type}`, 'the database is damaged; rebuild this master from a peer');
      return { index: r.idx, term: r.term, type, data: r.data };
    });
    const hardState: HardState = hs ? { term: hs.term, vote: hs.vote, commit: hs.commit_index } : { term: 0, vote: '', commit: 0 };
    return { hardState, snapshot, entries };
  }

  private writeReady(rd: Ready): void {
    if (rd.snapshot) {
      // an installed snapshot replaces the whole log (§7)
      this.q.putSnap.run(rd.snapshot.index, rd.snapshot.term, rd.snapshot.data);
      this.q.delAll.run();
    }
    if (rd.entries.length > 0) {
      // appending at an index already stored replaces it and everything after (§5.3)
      this.q.delFrom.run(rd.entries[0]!.index);
      for (const e of rd.entries) this.q.putEntry.run(e.index, e.term, TYPE_CODE[e.type], e.data);
    }
    if (rd.hardState) this.q.putHs.run(rd.hardState.term, rd.hardState.vote, rd.hardState.commit);
  }

  /** Persists one Ready (hard state, entries, snapshot) in one transaction. */
  save(rd: Ready): void {
    this.saveMany([rd]);
  }

  /** Persists several Readies, in order, in one transaction (one fsync). */
  saveMany(rds: Ready[]): void {
    if (!rds.some((rd) => rd.hardState || rd.entries.length > 0 || rd.snapshot)) return;
    this.db.transaction(() => {
      for (const rd of rds) this.writeReady(rd);
    })();
    this.transactions++;
  }

  /** After core.compact(): stores the snapshot and drops the entries it covers, atomically. */
  saveSnapshot(s: Snapshot): void {
    this.db.transaction(() => {
      const cur = this.q.getSnap.get() as { idx: number } | undefined;
      if (cur && cur.idx >= s.index) return;
      this.q.putSnap.run(s.index, s.term, s.data);
      this.q.delUpTo.run(s.index);
    })();
    this.transactions++;
  }

  entryCount(): number {
    return (this.q.count.get() as { n: number }).n;
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}

/** What the GroupCommitter hands back to the node shell, in contract order. */
export interface ReadyIo {
  /** step 2: messages, after their state is durable */
  send(messages: RaftMessage[]): void;
  /** step 3: install rd.snapshot (if any), apply rd.committedEntries in order, serve rd.readStates */
  apply(rd: Ready): void;
}

export interface GroupCommitterOptions {
  /** how long proposals may wait to share one fsync; default RAFT_DEFAULTS.groupCommitDelayMs */
  groupCommitDelayMs?: number;
}

/**
 * Drives one core's Ready loop with group commit: the shell calls schedule() after every
 * propose/step/tick; everything that accumulates until the flush goes out as one Ready,
 * persisted in one transaction. This is the only place that orders persist -> send -> apply
 * -> advance, so a shell cannot get the contract wrong.
 */
export class GroupCommitter {
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  readonly stats = { readies: 0, transactions: 0, entriesWritten: 0 };
  private readonly delayMs: number;

  constructor(
    private readonly core: RaftCore,
    private readonly storage: RaftStorage,
    private readonly io: ReadyIo,
    opts: GroupCommitterOptions = {},
  ) {
    this.delayMs = opts.groupCommitDelayMs ?? RAFT_DEFAULTS.groupCommitDelayMs;
    if (!Number.isInteger(this.delayMs) || this.delayMs < 0 || this.delayMs > 1000) throw new GridError('CONFIG_INVALID', `groupCommitDelayMs is ${this.delayMs}`, 'set groupCommitDelayMs to an integer in 0..1000');
  }

  /** Arranges a flush soon (coalescing everything until then). */
  schedule(): void {
    if (this.timer || this.closed) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.flush();
    }, this.delayMs);
  }

  /** Processes every pending Ready now. Returns how many were processed. */
  flush(): number {
    let n = 0;
    while (!this.closed && this.core.hasReady()) {
      const rd = this.core.ready();
      const before = this.storage.transactions;
      this.storage.save(rd); // 1. durable (one transaction, one fsync)
      this.stats.transactions += this.storage.transactions - before;
      this.stats.entriesWritten += rd.entries.length;
      this.io.send(rd.messages); // 2.
      this.io.apply(rd); // 3.
      this.core.advance(rd); // 4.
      this.stats.readies++;
      n++;
      assert(n < 1_000_000, 'flush loop is bounded');
    }
    return n;
  }

  /** core.compact + durable snapshot, for after apply. */
  compact(index: number, snapshotData: Buffer): Snapshot {
    const s = this.core.compact(index, snapshotData);
    this.storage.saveSnapshot(s);
    return s;
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }
}
