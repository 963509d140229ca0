// Scenario tests of the pure Raft core (docs/raft.md). Each names the Raft paper section
// (Ongaro & Ousterhout 2014) or thesis section (Ongaro 2014) it checks.
import assert from 'node:assert/strict';
import { GridError } from '../../src/common/errors';
import { NotLeaderError, RaftCore } from '../../src/master/raft';
import { Harness } from './harness';

const ids3 = ['n1', 'n2', 'n3'];
const data = (s: string) => Buffer.from(s);

describe('raft core: scenarios', () => {
  it('§5.2 elects exactly one leader, which commits a no-op of its term (§8)', () => {
    const h = new Harness(ids3);
    h.elect('n1');
    assert.deepEqual(h.leaders(), ['n1']);
    for (const id of ids3) {
      const st = h.core(id).status();
      assert.equal(st.term, 1, 'pre-vote does not raise the term');
      assert.equal(st.leader, 'n1');
      assert.equal(h.nodes.get(id)!.applied.length, 1);
      assert.equal(h.nodes.get(id)!.applied[0]!.type, 'noop');
    }
  });

  it('§5.3 replicates proposals in order to every node; a follower refuses with the leader id', () => {
    const h = new Harness(ids3);
    h.elect('n1');
    for (const s of ['a', 'b', 'c']) h.core('n1').propose(data(s));
    h.stabilize();
    for (const id of ids3) {
      assert.deepEqual(h.nodes.get(id)!.applied.filter((e) => e.type === 'normal').map((e) => e.data.toString()), ['a', 'b', 'c']);
    }
    assert.throws(() => h.core('n2').propose(data('x')), (e: unknown) => e instanceof NotLeaderError && e.leaderId === 'n1' && e.code === 'NOT_LEADER');
  });

  it('§5.3 fast backtracking: a follower with a long divergent tail is repaired in few round trips', () => {
    const h = new Harness(ids3);
    h.elect('n1');
    h.isolate('n1');
    for (let i = 0; i < 50; i++) h.core('n1').propose(data(`stale${i}`)); // never committed
    h.stabilize();
    const nl = h.electAmong(['n2', 'n3']);
    for (let i = 0; i < 5; i++) h.core(nl).propose(data(`new${i}`));
    h.stabilize();
    h.heal();
    const before = h.sent.length;
    h.tickAll(3);
    const rejects = h.sent.slice(before).filter((m) => m.type === 'appResp' && m.reject && m.from === 'n1').length;
    assert.ok(rejects <= 3, `n1 rejected ${rejects} appends; the conflict hint should skip the whole stale term`);
    const n1 = h.nodes.get('n1')!.applied.filter((e) => e.type === 'normal').map((e) => e.data.toString());
    assert.deepEqual(n1, ['new0', 'new1', 'new2', 'new3', 'new4']);
  });

  it('thesis §9.6 pre-vote: a rejoining partitioned node does not depose a healthy leader', () => {
    const h = new Harness(ids3, 2);
    h.elect('n1');
    const term = h.core('n1').status().term;
    h.isolate('n3');
    for (let i = 0; i < 100; i++) h.tickAll();
    assert.equal(h.core('n3').status().term, term, 'pre-vote kept the term of the isolated node');
    h.heal();
    h.tickAll(5);
    assert.deepEqual(h.leaders(), ['n1']);
    assert.equal(h.core('n1').status().term, term);
  });

  it('thesis §9.6 (contrast): without pre-vote or check-quorum, the rejoining node disrupts the leader', () => {
    const h = new Harness(ids3, 2, { preVote: false, checkQuorum: false });
    h.elect('n1');
    const term = h.core('n1').status().term;
    h.isolate('n3');
    for (let i = 0; i < 100; i++) h.tickAll();
    assert.ok(h.core('n3').status().term > term + 1, 'the isolated node kept raising its term');
    h.heal();
    h.tickAll(25);
    assert.ok(h.core('n1').status().term > term, 'the leader was forced to a newer term');
  });

  it('thesis §6.2 check-quorum: a leader cut off from the majority steps down; the majority elects another', () => {
    const h = new Harness(ids3, 3);
    h.elect('n1');
    h.isolate('n1');
    for (let i = 0; i < 25; i++) h.tick('n1');
    assert.equal(h.core('n1').status().role, 'follower');
    assert.throws(() => h.core('n1').propose(data('x')), NotLeaderError);
    assert.throws(() => h.core('n1').readIndex('r'), NotLeaderError);
    const nl = h.electAmong(['n2', 'n3']);
    assert.equal(h.core(nl).status().term, h.core('n1').status().term + 1);
  });

  it('§7 snapshots: a follower behind the compacted log gets InstallSnapshot, then the rest', () => {
    const h = new Harness(ids3, 4);
    h.elect('n1');
    h.isolate('n3');
    for (let i = 0; i < 20; i++) h.core('n1').propose(data(`e${i}`));
    h.stabilize();
    const applied = h.core('n1').status().applied;
    h.core('n1').compact(applied, data('state-at-' + applied));
    h.core('n1').propose(data('after'));
    h.stabilize();
    assert.equal(h.core('n1').status().firstIndex, applied + 1);
    h.heal();
    h.tickAll(3);
    const n3 = h.nodes.get('n3')!;
    assert.equal(n3.snapshots.length, 1);
    assert.equal(n3.snapshots[0]!.index, applied);
    assert.equal(n3.snapshots[0]!.data.toString(), 'state-at-' + applied);
    assert.deepEqual(n3.applied.filter((e) => e.type === 'normal').map((e) => e.data.toString()), ['after']);
    assert.equal(h.core('n3').status().commit, h.core('n1').status().commit);
  });

  it('thesis §3.10 leader transfer: TimeoutNow hands leadership over; proposals are refused meanwhile', () => {
    const h = new Harness(ids3, 5);
    h.elect('n1');
    const term = h.core('n1').status().term;
    h.cut.add('n1>n2'); // n2 is behind, so the transfer waits for it to catch up
    h.core('n1').propose(data('x'));
    h.stabilize();
    h.cut.clear();
    h.core('n1').transferLeadership('n2');
    assert.throws(() => h.core('n1').propose(data('y')), (e: unknown) => e instanceof NotLeaderError && e.reason === 'transferring');
    h.stabilize();
    assert.deepEqual(h.leaders(), ['n2']);
    assert.equal(h.core('n2').status().term, term + 1);
    assert.throws(() => h.core('n1').transferLeadership('n3'), NotLeaderError);
  });

  it('thesis §6.4 ReadIndex: served after a heartbeat quorum; deferred until the leader commits in its term', () => {
    const h = new Harness(ids3, 6);
    h.elect('n1');
    h.core('n1').propose(data('w'));
    h.stabilize();
    h.core('n1').readIndex('r1');
    h.stabilize();
    const commit = h.core('n1').status().commit;
    assert.deepEqual(h.nodes.get('n1')!.reads, [{ ctx: 'r1', index: commit }]);
    // an isolated leader cannot confirm leadership: no read state
    h.isolate('n1');
    h.core('n1').readIndex('r2');
    h.stabilize();
    assert.equal(h.nodes.get('n1')!.reads.length, 1);
    // a fresh leader whose no-op is not yet committed defers the read
    h.heal();
    const g = new Harness(ids3, 7);
    g.drop = (m) => m.type === 'app'; // the no-op of the new term cannot replicate
    g.elect('n1');
    g.core('n1').readIndex('early');
    g.tick('n1', 3); // heartbeats get through, but the read must still wait
    assert.equal(g.nodes.get('n1')!.reads.length, 0);
    g.drop = undefined;
    g.tick('n1', 2);
    const rs = g.nodes.get('n1')!.reads;
    assert.equal(rs.length, 1);
    assert.equal(rs[0]!.ctx, 'early');
    assert.ok(rs[0]!.index >= 1, 'the read waits for the no-op of the new term');
  });

  it('§5.2/§5.4.1 restart: term, vote and log come back from the restored state; stale candidates get no vote', () => {
    const h = new Harness(ids3, 8);
    h.elect('n1');
    h.core('n1').propose(data('a'));
    h.stabilize();
    const st = h.core('n2').status();
    const log = h.core('n2').log;
    const entries = log.ents.slice();
    const restarted = new RaftCore(
      { id: 'n2', peers: ids3, electionTicks: 10, heartbeatTicks: 1, maxSizePerMsgBytes: 1024, maxInflightMsgs: 4, maxInflightBytes: 4096, preVote: true, checkQuorum: true, random: () => 0.5 },
      { hardState: { term: st.term, vote: st.vote, commit: st.commit }, entries },
    );
    const rs = restarted.status();
    assert.equal(rs.term, st.term);
    assert.equal(rs.vote, st.vote);
    assert.equal(rs.lastIndex, st.lastIndex);
    // a candidate with a shorter log is refused (§5.4.1)
    restarted.step({ type: 'vote', from: 'n3', to: 'n2', term: st.term + 1, index: 1, logTerm: 1, entries: [], commit: 0, reject: false, rejectHint: 0, context: '', transfer: false });
    const rd = restarted.ready();
    const resp = rd.messages.find((m) => m.type === 'voteResp')!;
    assert.equal(resp.reject, true);
  });

  it('asserts the Ready ordering contract: one Ready at a time, advance with that Ready', () => {
    const h = new Harness(ids3, 9);
    const c = h.core('n1');
    c.tick();
    for (let i = 0; i < 30 && !c.hasReady(); i++) c.tick();
    const rd = c.ready();
    assert.throws(() => c.ready(), /before advance/);
    assert.throws(() => c.advance({ ...rd }), /advance\(\) must get/);
    c.advance(rd);
  });

  it('rejects bad configuration with CONFIG_INVALID naming the field', () => {
    const base = { id: 'n1', peers: ids3, electionTicks: 10, heartbeatTicks: 1, maxSizePerMsgBytes: 1024, maxInflightMsgs: 4, maxInflightBytes: 4096, preVote: true, checkQuorum: true, random: () => 0.5 };
    const empty = { hardState: { term: 0, vote: '', commit: 0 }, entries: [] };
    const bad = (over: object, re: RegExp) => assert.throws(() => new RaftCore({ ...base, ...over }, empty), (e: unknown) => e instanceof GridError && e.code === 'CONFIG_INVALID' && re.test(e.message));
    bad({ peers: ['n1', 'n2'] }, /peers has 2/);
    bad({ id: 'n9' }, /not among peers/);
    bad({ heartbeatTicks: 10 }, /heartbeatTicks/);
    bad({ maxInflightMsgs: 0 }, /maxInflightMsgs/);
    bad({ random: 3 }, /random/);
  });
});
