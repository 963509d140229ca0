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

// wakeAt is checked on its own (the failover tests below)
const kinds = (out: FeedEffect[]) => out.filter((e) => e.kind !== 'event' && e.kind !== 'wakeAt').map((e) => e.kind);
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
    assert.deepEqual(kinds(f.request(req(X, { requestSeq: 3 }), 11)), ['refuse'], 'another request while recording is refused (it asks again)');
    assert.deepEqual(kinds(f.request(req(P, { requestSeq: 8 }), 11)), [], 'the requester itself is answered by the grant');
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

  it('at a failover an auxiliary that has just restarted takes over when the primary\'s lease ends, not auxiliaryStartWaitMs after its first ask', () => {
    const f = feed();
    f.becameLeader(0, []);
    grant(f, P, 0);
    f.request(req(P, { epoch: 1, requestSeq: 2 }), 1000); // the primary's last renewal: its lease ends at 1400
    // the auxiliary was restarted a moment ago: its first ask is 50 ms before the lease ends
    const refused = f.request(req(X), 1350);
    assert.deepEqual(kinds(refused), ['refuse'], 'the lease is still held');
    const wakeAt = refused.find((e) => e.kind === 'wakeAt') as Extract<FeedEffect, { kind: 'wakeAt' }> | undefined;
    assert.equal(wakeAt?.atMs, 1400, 'decided again right when the lease ends');
    assert.deepEqual(kinds(f.wake(1400)), ['propose'], 'the primary is gone: no start-up wait (it would be until 1650)');
  });

  it('a holder that lost its state (asks with epoch 0 after a restart) gets a new epoch', () => {
    const f = feed();
    f.becameLeader(0, []);
    grant(f, P, 0);
    f.request(req(P, { epoch: 1, requestSeq: 5 }), 50);
    // a new process numbers its hellos from 1 again: below what the holder already sent
    const out = f.request(req(P, { epoch: 0, requestSeq: 1 }), 100);
    assert.deepEqual(kinds(out), ['propose']);
    assert.equal(grantOf(f.leaseApplied(2, P, 'primary', 110, []))!.requestSeq, 1);
  });

  it('a hello the holder sent before its grant arrived (a higher request_seq, epoch 0) is a renewal, not a restart', () => {
    const f = feed();
    f.becameLeader(0, []);
    grant(f, P, 0, [], { requestSeq: 7 });
    // hellos 8 and 9 left the balancer while the epoch was being recorded: they claim epoch 0
    const crossed = f.request(req(P, { epoch: 0, requestSeq: 8, fed: 3, creditLimit: 3 }), 10);
    assert.deepEqual(kinds(crossed), ['grant'], 'no new epoch: the same process, which is about to read its grant');
    assert.equal(grantOf(crossed)!.epoch, 1);
    assert.equal(grantOf(crossed)!.requestSeq, 8);
    assert.equal(f.status(10).epoch, 1);
    // a restart after that is still told apart: its numbers start again at 1
    assert.deepEqual(kinds(f.request(req(P, { epoch: 0, requestSeq: 1 }), 20)), ['propose']);
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

describe('master feed: failover at the moment the lease ends (docs/balancer.md "Failover timing")', () => {
  const wakeOf = (out: FeedEffect[]) => (out.find((e) => e.kind === 'wakeAt') as { atMs: number } | undefined)?.atMs;

  it('a standby refused while the lease is held is told when to be woken: the lease end', () => {
    const f = feed();
    f.becameLeader(0, []);
    grant(f, P, 0);
    assert.equal(wakeOf(f.request(req(X, { requestSeq: 3 }), 100)), LEASE, 'the lease granted at 0 ends at 400');
    f.request(req(P, { epoch: 1 }), 200); // renewed: ends at 600
    assert.equal(wakeOf(f.request(req(X, { requestSeq: 4 }), 250)), 200 + LEASE);
  });

  it('a dead holder is replaced when its lease ends, with the standby\'s last request, not on its next hello', () => {
    const f = feed();
    f.becameLeader(0, []);
    grant(f, P, 0);
    f.request(req(X, { requestSeq: 1 }), 0);
    f.request(req(X, { requestSeq: 9, creditLimit: 5 }), 350); // asked last at 350
    assert.deepEqual(kinds(f.wake(LEASE - 1)), [], 'not yet: the holder may still renew');
    const woke = f.wake(LEASE);
    assert.deepEqual(kinds(woke), ['propose'], 'the standby gets the new epoch without asking again');
    assert.equal((woke.find((e) => e.kind === 'propose') as { holder: string }).holder, X);
    const applied = f.leaseApplied(2, X, 'auxiliary', LEASE + 5, ['a/0', 'a/1', 'a/2', 'a/3', 'a/4', 'a/5', 'a/6']);
    const g = grantOf(applied)!;
    assert.equal(g.requestSeq, 9, 'the grant answers the request it was decided on: the standby measures from when it sent it');
    // the credit came with the request: the first tasks follow the grant at once, no round trip
    assert.deepEqual(kinds(applied), ['grant', 'send']);
    assert.deepEqual(sent(applied), ['a/0', 'a/1', 'a/2', 'a/3', 'a/4']);
  });

  it('wakes change nothing when the holder renewed, or when the standby fell silent', () => {
    const f = feed();
    f.becameLeader(0, []);
    grant(f, P, 0);
    f.request(req(X), 0);
    f.request(req(X), 350);
    f.request(req(P, { epoch: 1 }), 380); // renewed: held until 780
    const early = f.wake(LEASE);
    assert.deepEqual(kinds(early), [], 'renewed: nobody replaces it');
    assert.equal(wakeOf(early), 380 + LEASE, 'woken again when the renewal ends');
    // the standby said nothing since 350: at 780 it asked more than leaseMs ago (it may be dead)
    assert.deepEqual(kinds(f.wake(380 + LEASE + LEASE)), []);
    assert.equal(wakeOf(f.wake(380 + LEASE + LEASE)), undefined, 'nobody waits any more');
  });

  it('a primary waiting on standby is woken too when the auxiliary holding the lease dies', () => {
    const f = feed();
    f.becameLeader(0, []);
    f.request(req(X), 0);
    grant(f, X, LEASE); // no primary asked: the auxiliary holds it (and there is no fail-back)
    assert.equal(wakeOf(f.request(req(P, { requestSeq: 4 }), 700)), 2 * LEASE, 'a restarted primary waits on standby');
    const woke = f.wake(2 * LEASE);
    assert.deepEqual(kinds(woke), ['propose']);
    assert.equal((woke.find((e) => e.kind === 'propose') as { holder: string }).holder, P);
  });
});

describe('master feed: credit (docs/balancer.md "The feed")', () => {
  it('sends at most creditLimit - sent, oldest first, in batches of feedBatchMax, and never a task twice in an epoch', () => {
    const f = feed(2);
    f.becameLeader(0, []);
    grant(f, P, 0, ['j/0', 'j/1', 'j/2', 'j/3', 'j/4', 'j/5', 'j/6']);
    const first = f.request(req(P, { epoch: 1, fed: 0, creditLimit: 5 }), 10);
    assert.deepEqual(batches(first), [2], 'one batch per hello: a renewal answer never waits behind more');
    assert.deepEqual(sent(first), ['j/0', 'j/1']);
    assert.deepEqual(sent(f.request(req(P, { epoch: 1, fed: 1, creditLimit: 5 }), 11)), ['j/2', 'j/3'], 'the next hello: the next batch');
    assert.deepEqual(sent(f.request(req(P, { epoch: 1, fed: 4, creditLimit: 5 }), 12)), ['j/4'], 'up to the credit only');
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
