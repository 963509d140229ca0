// Deterministic tests of the master's Feed (src/master/feed.ts): the lease arbiter and the
// credit-based feed, with injected time (docs/balancer.md, "The lease", "The feed").
import assert from 'node:assert/strict';
import { Feed, FeedEffect, LeaseRequest } from '../../src/master/feed';

const P = 'primary-0000';
const X = 'auxiliary-00';
const LEASE = 400;
const WAIT = 500;
const AUX_WAIT = 300;

function feed(batch = 256): Feed {
  return new Feed({ leaseMs: LEASE, newLeaderWaitMs: WAIT, feedBatchMax: batch, auxiliaryStartWaitMs: AUX_WAIT });
}

function req(nodeUuid: string, o: Partial<LeaseRequest> = {}): LeaseRequest {
  return { nodeUuid, role: nodeUuid === X ? 'auxiliary' : 'primary', epoch: 0, requestSeq: 1, fed: 0, creditLimit: 0, ...o };
}

const kinds = (out: FeedEffect[]) => out.filter((e) => e.kind !== 'event').map((e) => e.kind);
const grantOf = (out: FeedEffect[]) => out.find((e) => e.kind === 'grant') as Extract<FeedEffect, { kind: 'grant' }> | undefined;
const sent = (out: FeedEffect[]) => out.flatMap((e) => (e.kind === 'send' ? e.keys : []));
const batches = (out: FeedEffect[]) => out.filter((e) => e.kind === 'send').map((e) => (e as { keys: string[] }).keys.length);

/** Grants `who` a new epoch the way the shell does: propose, commit (leaseApplied). */
function grant(f: Feed, who: string, nowMs: number, open: string[] = [], o: Partial<LeaseRequest> = {}): FeedEffect[] {
  const out = f.request(req(who, o), nowMs);
  const p = out.find((e) => e.kind === 'propose') as Extract<FeedEffect, { kind: 'propose' }> | undefined;
  assert.ok(p, `a proposal for ${who}: ${JSON.stringify(kinds(out))}`);
  return f.leaseApplied(p.epoch, p.holder, p.role, nowMs, open);
}

describe('master feed: the lease arbiter (docs/balancer.md "The lease")', () => {
  it('a new epoch is proposed through Raft first; the grant answers the request only once it is applied', () => {
    const f = feed();
    f.becameLeader(0, []);
    const out = f.request(req(P, { requestSeq: 7 }), 10);
    assert.deepEqual(kinds(out), ['propose'], 'nobody is told before the epoch is committed');
    assert.deepEqual(kinds(f.request(req(P, { requestSeq: 8 }), 11)), ['refuse'], 'a request while recording is refused (it asks again)');
    const applied = f.leaseApplied(1, P, 'primary', 20, []);
    assert.deepEqual(grantOf(applied), { kind: 'grant', to: P, epoch: 1, requestSeq: 7, leaseMs: LEASE });
    assert.equal(f.isCurrent(P, 1), true);
    assert.equal(f.isCurrent(P, 0), false);
    assert.equal(f.isCurrent(X, 1), false);
  });

  it('renewals are local (no Raft entry) and move the expiry; another balancer is refused until it passes', () => {
    const f = feed();
    f.becameLeader(0, []);
    grant(f, P, 0);
    assert.deepEqual(kinds(f.request(req(X), 0)), ['refuse']);
    const r = f.request(req(P, { epoch: 1, requestSeq: 2 }), 300);
    assert.deepEqual(kinds(r), ['grant']);
    assert.equal(grantOf(r)!.epoch, 1);
    assert.deepEqual(kinds(f.request(req(X), 699)), ['refuse'], 'held until 300 + 400');
    const taken = f.request(req(X), 700);
    assert.deepEqual(kinds(taken), ['propose']);
    assert.equal((taken[taken.length - 1] as { epoch: number }).epoch, 2);
  });

  it('renewal just before expiry keeps the lease; just after, nobody else having asked, it is renewed too', () => {
    const f = feed();
    f.becameLeader(0, []);
    grant(f, P, 0);
    assert.equal(grantOf(f.request(req(P, { epoch: 1 }), 399))!.epoch, 1, 'at 399 of 400');
    // late (e.g. a GC pause) but nobody took it: the same epoch continues
    const late = f.request(req(P, { epoch: 1 }), 399 + LEASE + 50);
    assert.equal(grantOf(late)!.epoch, 1);
    assert.ok(late.some((e) => e.kind === 'event' && e.event.type === 'lease:expired'), 'the expiry is noted for the log');
  });

  it('an auxiliary does not take a free lease while a primary asked within a lease period', () => {
    const f = feed();
    f.becameLeader(0, []);
    assert.deepEqual(kinds(f.request(req(X), 100)), ['refuse'], 'a new leader: a primary may be about to ask');
    grant(f, P, 450);
    // the primary stops renewing at 450; it asked last at 450; the auxiliary keeps asking
    for (const t of [500, 600, 700, 800, 849]) assert.deepEqual(kinds(f.request(req(X), t)), ['refuse']);
    assert.deepEqual(kinds(f.request(req(X), 850)), ['propose'], 'expired, and no primary asked for a lease period');
  });

  it('at start-up a primary that starts a moment after the auxiliary still goes first (auxiliaryStartWaitMs)', () => {
    const f = feed();
    f.becameLeader(0, []);
    assert.deepEqual(kinds(f.request(req(X), 5000)), ['refuse'], 'first ask of the auxiliary, long after the election');
    assert.deepEqual(kinds(f.request(req(X), 5200)), ['refuse']);
    assert.deepEqual(kinds(f.request(req(P), 5250)), ['propose'], 'the primary comes a moment later and gets it');
    const g = feed();
    g.becameLeader(0, []);
    g.request(req(X), 5000);
    assert.deepEqual(kinds(g.request(req(X), 5299)), ['refuse']);
    assert.deepEqual(kinds(g.request(req(X), 5300)), ['propose'], 'no primary at all: the auxiliary after asking auxiliaryStartWaitMs');
  });

  it('a holder that lost its state (asks with epoch 0 after a restart) gets a new epoch', () => {
    const f = feed();
    f.becameLeader(0, []);
    grant(f, P, 0);
    const out = f.request(req(P, { epoch: 0, requestSeq: 5 }), 100);
    assert.deepEqual(kinds(out), ['propose']);
    assert.equal(grantOf(f.leaseApplied(2, P, 'primary', 110, []))!.requestSeq, 5);
  });

  it('leader change while a lease is held: the new leader renews the holder at once, but waits leaseMs + newLeaderWaitMs before giving it to another', () => {
    const old = feed();
    old.becameLeader(0, []);
    grant(old, P, 0);
    old.lostLeadership();
    // a follower applied the same Raft entries: it knows epoch 1 and its holder, not the expiry
    const f = feed();
    f.restore(1, P, 'primary');
    f.becameLeader(1000, []);
    assert.deepEqual(kinds(f.request(req(X), 1000 + LEASE + WAIT - 1)), ['refuse'], 'the old leader may have renewed just before it lost leadership');
    assert.equal(grantOf(f.request(req(P, { epoch: 1 }), 1001))!.epoch, 1, 'the holder keeps its epoch across the leader change');
    const g = feed();
    g.restore(1, P, 'primary');
    g.becameLeader(1000, []);
    g.request(req(X), 1000);
    g.request(req(X), 1500);
    assert.deepEqual(kinds(g.request(req(X), 1000 + LEASE + WAIT)), ['propose'], 'after the wait, a silent holder is replaced');
  });

  it('a failed proposal lets the next request try again; an applied epoch is never applied twice', () => {
    const f = feed();
    f.becameLeader(0, []);
    f.request(req(P), 0);
    f.proposalFailed();
    assert.deepEqual(kinds(f.request(req(P, { requestSeq: 2 }), 10)), ['propose']);
    f.leaseApplied(1, P, 'primary', 20, []);
    assert.deepEqual(f.leaseApplied(1, P, 'primary', 30, []), [], 'a re-applied entry changes nothing');
  });
});

describe('master feed: credit (docs/balancer.md "The feed")', () => {
  it('sends at most creditLimit - sent, oldest first, in batches of feedBatchMax, and never a task twice in an epoch', () => {
    const f = feed(2);
    f.becameLeader(0, []);
    grant(f, P, 0, ['j/0', 'j/1', 'j/2', 'j/3', 'j/4', 'j/5', 'j/6']);
    const first = f.request(req(P, { epoch: 1, fed: 0, creditLimit: 5 }), 10);
    assert.deepEqual(sent(first), ['j/0', 'j/1', 'j/2', 'j/3', 'j/4']);
    assert.deepEqual(batches(first), [2, 2, 1]);
    assert.deepEqual(sent(f.request(req(P, { epoch: 1, fed: 5, creditLimit: 5 }), 20)), [], 'the same credit again: nothing more');
    assert.deepEqual(sent(f.request(req(P, { epoch: 1, fed: 3, creditLimit: 4 }), 21)), [], 'a lower (older) limit: nothing more');
    assert.deepEqual(sent(f.request(req(P, { epoch: 1, fed: 5, creditLimit: 9 }), 30)), ['j/5', 'j/6']);
    assert.deepEqual(sent(f.added(['k/0'])), ['k/0'], 'a new job is sent as credit allows');
  });

  it('settled and cancelled tasks are never sent; a new epoch starts over from every open task', () => {
    const f = feed();
    f.becameLeader(0, []);
    grant(f, P, 0, ['a/0', 'a/1', 'b/0', 'b/1']);
    f.settled(['a/1']);
    f.settledJob('b');
    assert.deepEqual(sent(f.request(req(P, { epoch: 1, creditLimit: 10 }), 10)), ['a/0']);
    f.request(req(X), 10); // asking since 10 (refused: P holds it)
    // P dies; X gets epoch 2 and the open tasks (running first, as the store orders them)
    const out = grant(f, X, 10 + LEASE + LEASE, ['a/0', 'c/0']);
    assert.equal(grantOf(out)!.epoch, 2);
    assert.deepEqual(sent(f.request(req(X, { epoch: 2, creditLimit: 10 }), 900)), ['a/0', 'c/0']);
    assert.deepEqual(sent(f.request(req(P, { epoch: 1, creditLimit: 100 }), 901)), [], 'the old holder gets nothing');
  });

  it('a new leader counts what the holder already received in this epoch against its credit', () => {
    const f = feed();
    f.restore(1, P, 'primary');
    f.becameLeader(0, ['a/0', 'a/1', 'a/2']);
    // the holder got 8 tasks from the old leader and may hold 10: room for 2
    assert.deepEqual(sent(f.request(req(P, { epoch: 1, fed: 8, creditLimit: 10 }), 1)), ['a/0', 'a/1']);
  });

  it('sends nothing while not leading, without a holder, or while a new epoch is being recorded', () => {
    const f = feed();
    assert.deepEqual(f.added(['a/0']), []);
    f.becameLeader(0, ['a/0']);
    assert.deepEqual(sent(f.pump()), [], 'no holder yet');
    f.request(req(P, { creditLimit: 10 }), 0); // proposal in flight
    assert.deepEqual(sent(f.pump()), []);
  });
});
