/**
 * Plain data types of the Raft core (docs/raft.md). Shaped like etcd's raftpb: one flat
 * message struct whose fields mean different things per type, entries with index and term,
 * a hard state that must be durable before any message that depends on it leaves the node.
 */
import { GridError } from '../../common/errors';

/** Durable per-node state (Raft paper fig. 2 "persistent state"), plus the commit index. */
export interface HardState {
  term: number;
  /** who this node voted for in `term`; '' = nobody */
  vote: string;
  /** highest index known committed (persisting it is an optimisation, not needed for safety) */
  commit: number;
}

/** normal = a state machine command; noop = the empty entry a new leader appends (§8). */
export type EntryType = 'normal' | 'noop';

export interface Entry {
  index: number;
  term: number;
  type: EntryType;
  data: Buffer;
}

/** Where a snapshot sits in the log: it replaces every entry up to and including `index`. */
export interface SnapshotMeta {
  index: number;
  term: number;
}

/** A snapshot: the state machine's bytes as of `index`. */
export interface Snapshot extends SnapshotMeta {
  data: Buffer;
}

export type RaftMessageType =
  | 'vote' // RequestVote (§5.2)
  | 'voteResp'
  | 'preVote' // pre-vote (thesis §9.6): would you vote for me at term+1?
  | 'preVoteResp'
  | 'app' // AppendEntries with entries (§5.3)
  | 'appResp'
  | 'heartbeat' // AppendEntries without entries; carries commit and a ReadIndex context
  | 'heartbeatResp'
  | 'snap' // InstallSnapshot (§7)
  | 'timeoutNow'; // leader transfer (thesis §3.10): campaign now

/**
 * One Raft message. Like etcd's raftpb.Message, a flat struct; the meaning of `index`,
 * `logTerm`, `reject` and `rejectHint` depends on `type` (see the comments).
 */
export interface RaftMessage {
  type: RaftMessageType;
  from: string;
  to: string;
  term: number;
  /** app: index of the entry before `entries`; appResp: highest index matched (or the rejected index);
   *  vote/preVote: candidate's last log index */
  index: number;
  /** app: term of entry `index`; vote/preVote: candidate's last log term; appResp reject: term of `rejectHint` */
  logTerm: number;
  entries: Entry[];
  /** app/heartbeat: leader's commit index */
  commit: number;
  /** voteResp/preVoteResp/appResp: true = refused */
  reject: boolean;
  /** appResp reject: the follower's guess of the last index that may match (fast backtracking) */
  rejectHint: number;
  /** heartbeat/heartbeatResp: ReadIndex context ('' = none) */
  context: string;
  /** vote: true when the campaign follows a leader transfer (bypasses the leader lease) */
  transfer: boolean;
  /** snap: the snapshot to install */
  snapshot?: Snapshot;
}

/** A message with every field not given at its zero value. */
export function raftMessage(p: Partial<RaftMessage> & Pick<RaftMessage, 'type' | 'from' | 'to' | 'term'>): RaftMessage {
  return { index: 0, logTerm: 0, entries: [], commit: 0, reject: false, rejectHint: 0, context: '', transfer: false, ...p };
}

/** A linearizable read may be served once the state machine has applied `index` (§8). */
export interface ReadState {
  ctx: string;
  index: number;
}

/**
 * What the core hands the shell. ORDERING CONTRACT (asserted by the core, docs/raft.md):
 *  1. persist hardState, entries (appending; an entry at an index already stored replaces that
 *     index and every later one) and snapshot durably (fsync), in one transaction;
 *  2. only then send `messages`;
 *  3. install `snapshot` into the state machine (if any), then apply `committedEntries` in order;
 *  4. call advance(rd) with this same object. Do not call ready() again before advance().
 */
export interface Ready {
  hardState?: HardState;
  entries: Entry[];
  snapshot?: Snapshot;
  messages: RaftMessage[];
  committedEntries: Entry[];
  readStates: ReadState[];
}

export type Role = 'follower' | 'preCandidate' | 'candidate' | 'leader';

export interface ProgressStatus {
  match: number;
  next: number;
  state: 'probe' | 'replicate' | 'snapshot';
  inflight: number;
  recentActive: boolean;
}

export interface RaftStatus {
  id: string;
  role: Role;
  term: number;
  vote: string;
  /** '' when unknown */
  leader: string;
  commit: number;
  applied: number;
  firstIndex: number;
  lastIndex: number;
  snapshotIndex: number;
  /** '' when no transfer is under way */
  leadTransferee: string;
  /** leader only: replication state of every peer */
  progress?: Record<string, ProgressStatus>;
}

/**
 * A proposal or read reached a node that cannot serve it. `leaderId` names the leader when
 * this node knows it, so the caller can retry there; during a leader transfer it is unset.
 */
export class NotLeaderError extends GridError {
  override name = 'NotLeaderError';
  constructor(
    readonly leaderId: string | undefined,
    readonly reason: 'not_leader' | 'transferring' = 'not_leader',
  ) {
    super(
      'NOT_LEADER',
      reason === 'transferring' ? 'this master is handing leadership over and takes no proposals' : `this master is not the Raft leader${leaderId ? `; the leader is ${leaderId}` : ' and knows no leader yet'}`,
      leaderId ? `retry on ${leaderId}` : 'retry after a short wait (an election is probably under way)',
    );
  }
}

/** A storage or wire problem the shell can report (typed, with what to do). */
export class RaftStorageError extends GridError {
  override name = 'RaftStorageError';
  constructor(message: string, hint?: string, cause?: unknown) {
    super('INTERNAL', message, hint, { cause });
  }
}

export const NONE = '';
