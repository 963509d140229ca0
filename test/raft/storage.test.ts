// RaftStorage and GroupCommitter on real SQLite files (docs/raft.md, "Storage").
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { GroupCommitter, RaftCore, RaftMessage, RaftStorage, Ready } from '../../src/master/raft';

const ids = ['n1', 'n2', 'n3'];
const cfg = (id: string) => ({ id, peers: ids, electionTicks: 10, heartbeatTicks: 1, maxSizePerMsgBytes: 1 << 20, maxInflightMsgs: 64, maxInflightBytes: 1 << 24, preVote: false, checkQuorum: false, random: () => 0 });
const rd = (p: Partial<Ready>): Ready => ({ entries: [], messages: [], committedEntries: [], readStates: [], ...p });
const e = (index: number, term: number, s: string) => ({ index, term, type: 'normal' as const, data: Buffer.from(s) });

describe('raft storage (SQLite)', () => {
  let dir: string;
  const open: RaftStorage[] = [];
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'raft-storage-'));
  });
  afterEach(() => {
    for (const s of open.splice(0)) s.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  const mk = () => {
    const s = new RaftStorage(path.join(dir, 'raft.db'));
    open.push(s);
    return s;
  };

  it('saves hard state and entries, truncates a conflicting tail, and loads them after reopening', () => {
    const s = mk();
    s.save(rd({ hardState: { term: 2, vote: 'n2', commit: 1 }, entries: [e(1, 1, 'a'), e(2, 1, 'b'), e(3, 2, 'c')] }));
    s.save(rd({ entries: [e(2, 3, 'B')] })); // replaces 2 and drops 3
    s.close();
    const r = mk().load();
    assert.deepEqual(r.hardState, { term: 2, vote: 'n2', commit: 1 });
    assert.deepEqual(r.entries.map((x) => [x.index, x.term, x.data.toString()]), [[1, 1, 'a'], [2, 3, 'B']]);
    assert.equal(r.snapshot, undefined);
  });

  it('compaction stores the snapshot and deletes the entries it covers; an installed snapshot replaces the log', () => {
    const s = mk();
    s.save(rd({ entries: [1, 2, 3, 4].map((i) => e(i, 1, `v${i}`)) }));
    s.saveSnapshot({ index: 2, term: 1, data: Buffer.from('S2') });
    assert.equal(s.entryCount(), 2);
    let r = s.load();
    assert.equal(r.snapshot!.index, 2);
    assert.deepEqual(r.entries.map((x) => x.index), [3, 4]);
    s.save(rd({ snapshot: { index: 10, term: 3, data: Buffer.from('S10') }, hardState: { term: 3, vote: '', commit: 10 } }));
    r = s.load();
    assert.equal(r.snapshot!.data.toString(), 'S10');
    assert.deepEqual(r.entries, []);
  });

  it('refuses an unusable path with a typed error', () => {
    assert.throws(() => new RaftStorage(path.join(dir, 'missing', 'sub', 'raft.db')), (x: unknown) => (x as Error).name === 'RaftStorageError' && /cannot open/.test((x as Error).message));
  });

  it('group commit: many proposals share one transaction, and a restarted core recovers them', async () => {
    // three real cores, each with its own SQLite file; the network is direct delivery
    const stores = new Map(ids.map((id) => [id, new RaftStorage(path.join(dir, `${id}.db`))]));
    open.push(...stores.values());
    const cores = new Map(ids.map((id) => [id, new RaftCore(cfg(id), stores.get(id)!.load())]));
    const applied = new Map(ids.map((id) => [id, [] as string[]]));
    const inbox: RaftMessage[] = [];
    const gcs = new Map(
      ids.map((id) => [
        id,
        new GroupCommitter(cores.get(id)!, stores.get(id)!, {
          send: (ms) => inbox.push(...ms),
          apply: (r) => applied.get(id)!.push(...r.committedEntries.filter((x) => x.type === 'normal').map((x) => x.data.toString())),
        }),
      ]),
    );
    const settle = () => {
      for (let i = 0; i < 1000; i++) {
        for (const g of gcs.values()) g.flush();
        if (inbox.length === 0) return;
        for (const m of inbox.splice(0)) cores.get(m.to)!.step(m);
      }
    };
    const n1 = cores.get('n1')!;
    for (let i = 0; i < 30 && n1.status().role !== 'leader'; i++) {
      n1.tick();
      settle();
    }
    assert.equal(n1.status().role, 'leader');
    const g1 = gcs.get('n1')!;
    const before = { ...g1.stats };
    for (let i = 0; i < 200; i++) n1.propose(Buffer.from(`p${i}`));
    await new Promise<void>((resolve) => {
      g1.schedule(); // flushes on the next turn of the event loop
      setTimeout(resolve, 20);
    });
    assert.equal(g1.stats.transactions - before.transactions, 1, '200 proposals, one transaction (one fsync)');
    assert.equal(g1.stats.entriesWritten - before.entriesWritten, 200);
    settle();
    for (const id of ids) assert.equal(applied.get(id)!.length, 200, `${id} applied every proposal`);
    for (const g of gcs.values()) g.close();
    // restart n2 from its file: same log, same term
    const st = cores.get('n2')!.status();
    stores.get('n2')!.close();
    const s2 = new RaftStorage(path.join(dir, 'n2.db'));
    open.push(s2);
    const again = new RaftCore(cfg('n2'), s2.load()).status();
    assert.equal(again.term, st.term);
    assert.equal(again.lastIndex, st.lastIndex);
    assert.equal(again.commit, st.commit);
  });
});
