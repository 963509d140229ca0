/**
 * RaftMessage <-> codec messages of the `raft` family (src/messages/schema.ts, ids 80..87).
 * Peer ids travel as UUIDs (node_uuid = sender, to_uuid = addressee), so on the wire every
 * master's Raft id must be its persistent node UUID. Entries of an append travel as one frame
 * of packed 16-byte headers plus one frame of concatenated data (see raft_append's doc).
 */
import { GridError } from '../../common/errors';
import { Message, MessageInput, MessageName, encode, decode } from '../../messages';
import { Entry, EntryType, RaftMessage, raftMessage } from './types';

export const ENTRY_HEADER_BYTES = 16;
const TYPE_CODE: Record<EntryType, number> = { normal: 0, noop: 1 };
const CODE_TYPE: EntryType[] = ['normal', 'noop'];

export type RaftWireName = Extract<MessageName, `raft_${string}`>;
export const RAFT_MESSAGE_NAMES: readonly RaftWireName[] = [
  'raft_vote_request',
  'raft_vote_response',
  'raft_append',
  'raft_append_response',
  'raft_snapshot',
  'raft_heartbeat',
  'raft_heartbeat_response',
  'raft_timeout_now',
];

export function isRaftWireMessage(m: Message): boolean {
  return (RAFT_MESSAGE_NAMES as readonly string[]).includes(m.type);
}

/** A raft message that decoded but breaks the raft framing rules (hostile or buggy peer). */
export class RaftWireError extends GridError {
  override name = 'RaftWireError';
  constructor(message: string) {
    super('BAD_REQUEST', `bad raft message: ${message}`, 'check that every master runs the same grid version');
  }
}

function packEntries(entries: Entry[]): { headers: Buffer; data: Buffer } {
  const headers = Buffer.alloc(entries.length * ENTRY_HEADER_BYTES); // zeroed: reserved bytes must be 0
  let total = 0;
  entries.forEach((e, i) => {
    const o = i * ENTRY_HEADER_BYTES;
    headers.writeUInt32LE(e.term % 4294967296, o);
    headers.writeUInt32LE(Math.floor(e.term / 4294967296), o + 4);
    headers.writeUInt32LE(e.data.length, o + 8);
    headers[o + 12] = TYPE_CODE[e.type];
    total += e.data.length;
  });
  return { headers, data: entries.length === 1 ? entries[0]!.data : Buffer.concat(entries.map((e) => e.data), total) };
}

function unpackEntries(prevIndex: number, n: number, headers: Buffer, data: Buffer): Entry[] {
  if (headers.length !== n * ENTRY_HEADER_BYTES) throw new RaftWireError(`entry_headers is ${headers.length} bytes, expected ${n} x ${ENTRY_HEADER_BYTES}`);
  const out: Entry[] = [];
  let off = 0;
  for (let i = 0; i < n; i++) {
    const o = i * ENTRY_HEADER_BYTES;
    const hi = headers.readUInt32LE(o + 4);
    if (hi > 0x1fffff) throw new RaftWireError(`entry ${i} term is above 2^53-1`);
    const term = hi * 4294967296 + headers.readUInt32LE(o);
    const len = headers.readUInt32LE(o + 8);
    const type = CODE_TYPE[headers[o + 12]!];
    if (!type) throw new RaftWireError(`entry ${i} has unknown type ${headers[o + 12]}`);
    if (headers[o + 13] || headers[o + 14] || headers[o + 15]) throw new RaftWireError(`entry ${i} has non-zero reserved bytes`);
    if (off + len > data.length) throw new RaftWireError(`entry ${i} data runs past entry_data (${data.length} bytes)`);
    out.push({ index: prevIndex + 1 + i, term, type, data: data.subarray(off, off + len) });
    off += len;
  }
  if (off !== data.length) throw new RaftWireError(`entry_data has ${data.length - off} bytes no entry claims`);
  return out;
}

/** The codec message for a RaftMessage (node_uuid = m.from, to_uuid = m.to). */
export function toWire(m: RaftMessage): MessageInput {
  const base = { node_uuid: m.from, to_uuid: m.to, term: m.term };
  const b = (x: boolean): number => (x ? 1 : 0);
  switch (m.type) {
    case 'vote':
    case 'preVote':
      return { type: 'raft_vote_request', ...base, last_log_index: m.index, last_log_term: m.logTerm, pre_vote: b(m.type === 'preVote'), transfer: b(m.transfer) };
    case 'voteResp':
    case 'preVoteResp':
      return { type: 'raft_vote_response', ...base, pre_vote: b(m.type === 'preVoteResp'), reject: b(m.reject) };
    case 'app': {
      const { headers, data } = packEntries(m.entries);
      return { type: 'raft_append', ...base, prev_log_index: m.index, prev_log_term: m.logTerm, commit: m.commit, num_entries: m.entries.length, entry_headers: headers, entry_data: data };
    }
    case 'appResp':
      return { type: 'raft_append_response', ...base, index: m.index, hint_index: m.rejectHint, hint_term: m.reject ? m.logTerm : 0, reject: b(m.reject) };
    case 'snap': {
      const s = m.snapshot!;
      return { type: 'raft_snapshot', ...base, snapshot_index: s.index, snapshot_term: s.term, data: s.data };
    }
    case 'heartbeat':
      return { type: 'raft_heartbeat', ...base, commit: m.commit, context: m.context };
    case 'heartbeatResp':
      return { type: 'raft_heartbeat_response', ...base, context: m.context };
    case 'timeoutNow':
      return { type: 'raft_timeout_now', ...base };
  }
}

/** Frames ready to send. */
export function encodeRaft(m: RaftMessage): Buffer[] {
  return encode(toWire(m));
}

const blank = (from: string, to: string, term: number): RaftMessage => raftMessage({ type: 'heartbeat', from, to, term });

/** The RaftMessage in a decoded codec message. Throws RaftWireError for a non-raft type or bad framing. */
export function fromWire(w: Message): RaftMessage {
  switch (w.type) {
    case 'raft_vote_request':
      return { ...blank(w.node_uuid, w.to_uuid, w.term), type: w.pre_vote ? 'preVote' : 'vote', index: w.last_log_index, logTerm: w.last_log_term, transfer: w.transfer === 1 };
    case 'raft_vote_response':
      return { ...blank(w.node_uuid, w.to_uuid, w.term), type: w.pre_vote ? 'preVoteResp' : 'voteResp', reject: w.reject === 1 };
    case 'raft_append':
      return {
        ...blank(w.node_uuid, w.to_uuid, w.term),
        type: 'app',
        index: w.prev_log_index,
        logTerm: w.prev_log_term,
        commit: w.commit,
        entries: unpackEntries(w.prev_log_index, w.num_entries, w.entry_headers, w.entry_data),
      };
    case 'raft_append_response':
      return { ...blank(w.node_uuid, w.to_uuid, w.term), type: 'appResp', index: w.index, reject: w.reject === 1, rejectHint: w.hint_index, logTerm: w.hint_term };
    case 'raft_snapshot':
      return { ...blank(w.node_uuid, w.to_uuid, w.term), type: 'snap', snapshot: { index: w.snapshot_index, term: w.snapshot_term, data: w.data } };
    case 'raft_heartbeat':
      return { ...blank(w.node_uuid, w.to_uuid, w.term), type: 'heartbeat', commit: w.commit, context: w.context };
    case 'raft_heartbeat_response':
      return { ...blank(w.node_uuid, w.to_uuid, w.term), type: 'heartbeatResp', context: w.context };
    case 'raft_timeout_now':
      return { ...blank(w.node_uuid, w.to_uuid, w.term), type: 'timeoutNow' };
    default:
      throw new RaftWireError(`${w.type} is not a raft message`);
  }
}

/** Decodes frames into a RaftMessage. Throws DecodeError (codec) or RaftWireError. */
export function decodeRaft(frames: Buffer[]): RaftMessage {
  return fromWire(decode(frames));
}
