// RaftMessage <-> codec round trip for every raft message type (docs/raft.md, "Wire").
import assert from 'node:assert/strict';
import { newUuid, encode, decode } from '../../src/messages';
import { RaftMessage, raftMessage, decodeRaft, encodeRaft, RaftWireError, ENTRY_HEADER_BYTES } from '../../src/master/raft';

const a = newUuid();
const b = newUuid();
const base = (p: Partial<RaftMessage> & Pick<RaftMessage, 'type'>): RaftMessage => raftMessage({ from: a, to: b, term: 7, ...p });

describe('raft wire', () => {
  const cases: RaftMessage[] = [
    base({ type: 'vote', index: 10, logTerm: 6, transfer: true }),
    base({ type: 'preVote', term: 8, index: 10, logTerm: 6 }),
    base({ type: 'voteResp', reject: true }),
    base({ type: 'preVoteResp' }),
    base({ type: 'app', index: 4, logTerm: 3, commit: 4, entries: [
      { index: 5, term: 7, type: 'noop', data: Buffer.alloc(0) },
      { index: 6, term: 7, type: 'normal', data: Buffer.from('hello') },
      { index: 7, term: 2 ** 40, type: 'normal', data: Buffer.from([0, 1, 2]) },
    ] }),
    base({ type: 'app', index: 9, logTerm: 7, commit: 9 }),
    base({ type: 'appResp', index: 12 }),
    base({ type: 'appResp', index: 12, reject: true, rejectHint: 8, logTerm: 5 }),
    base({ type: 'snap', snapshot: { index: 100, term: 6, data: Buffer.from('state') } }),
    base({ type: 'heartbeat', commit: 42, context: 'read-1' }),
    base({ type: 'heartbeatResp', context: 'read-1' }),
    base({ type: 'timeoutNow' }),
  ];
  for (const m of cases) {
    it(`round-trips ${m.type}${m.entries.length ? ` with ${m.entries.length} entries` : ''}`, () => {
      const back = decodeRaft(encodeRaft(m).map((f) => Buffer.from(f)));
      assert.deepEqual(back, m);
    });
  }

  it('rejects bad entry framing with a typed error', () => {
    const frames = encodeRaft(cases[4]!);
    const w = decode(frames) as { entry_headers: Buffer };
    w.entry_headers[13] = 1; // reserved byte
    assert.throws(() => decodeRaft(encode(w as never)), RaftWireError);
    const short = decode(encodeRaft(cases[4]!)) as { entry_data: Buffer; data_length?: number };
    short.entry_data = short.entry_data.subarray(1);
    delete short.data_length;
    assert.throws(() => decodeRaft(encode(short as never)), /runs past|no entry claims/);
    assert.equal(ENTRY_HEADER_BYTES, 16);
  });

  it('refuses a non-raft message', () => {
    assert.throws(() => decodeRaft(encode({ type: 'task_cancel', node_uuid: a, job_uuid: b, task_index: 0, attempt: 0, scope: 0 })), RaftWireError);
  });
});
