/**
 * Raft configuration: every bound named with its unit, validated before a core starts
 * (docs/raft.md, "Configuration"). Time is in ticks; the shell decides how long a tick is
 * (RAFT_DEFAULTS.tickMs, 50 ms by default).
 */
import { GridError } from '../../common/errors';

export interface RaftConfig {
  /** this node's id; must be one of `peers` */
  id: string;
  /** every voting member's id, this node included: 3 or 5 (static membership) */
  peers: string[];
  /** base election timeout in ticks; a follower campaigns after a random wait in [electionTicks, 2*electionTicks) */
  electionTicks: number;
  /** leader heartbeat interval in ticks; must be < electionTicks */
  heartbeatTicks: number;
  /** most entry bytes in one append message (at least one entry is always sent) */
  maxSizePerMsgBytes: number;
  /** most append messages in flight to one follower in the replicate state (pipelining window) */
  maxInflightMsgs: number;
  /** most entry bytes in flight to one follower in the replicate state */
  maxInflightBytes: number;
  /** ask "would you vote for me?" before raising the term (thesis §9.6) */
  preVote: boolean;
  /** a leader that has not heard from a majority within electionTicks steps down; followers
   *  that heard from a leader within electionTicks ignore vote requests (leader lease) */
  checkQuorum: boolean;
  /** seeded random source in [0, 1): the only randomness the core uses (election jitter) */
  random: () => number;
  /** most bytes of proposals appended but not yet committed on a leader; propose() refuses more */
  maxUncommittedBytes?: number;
  /** most bytes of committed entries handed over in one Ready (at least one entry) */
  maxCommittedSizePerReadyBytes?: number;
  /** ticks a leader waits for a follower to acknowledge a snapshot before sending it again */
  snapshotRetryTicks?: number;
}

/** Defaults for everything but id, peers and random. */
export const RAFT_DEFAULTS = {
  /** the shell's tick: 50 ms, so electionTicks 10 = 500 ms base election timeout */
  tickMs: 50,
  electionTicks: 10,
  heartbeatTicks: 1,
  maxSizePerMsgBytes: 1024 * 1024,
  maxInflightMsgs: 256,
  maxInflightBytes: 32 * 1024 * 1024,
  preVote: true,
  checkQuorum: true,
  maxUncommittedBytes: 64 * 1024 * 1024,
  maxCommittedSizePerReadyBytes: 8 * 1024 * 1024,
  snapshotRetryTicks: 20,
  /** GroupCommitter: how long proposals may wait to share one fsync (0 = next turn of the event loop) */
  groupCommitDelayMs: 0,
} as const;

export type ResolvedRaftConfig = Required<RaftConfig>;

function bad(what: string, hint: string): never {
  throw new GridError('CONFIG_INVALID', `raft config: ${what}`, hint);
}

function int(c: Record<string, unknown>, name: string, min: number, max: number): void {
  const v = c[name];
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) bad(`${name} is ${String(v)}`, `set ${name} to an integer in ${min}..${max}`);
}

/** Fills defaults and checks every value; throws GridError('CONFIG_INVALID') naming the field. */
export function resolveRaftConfig(cfg: RaftConfig): ResolvedRaftConfig {
  const c = {
    maxUncommittedBytes: RAFT_DEFAULTS.maxUncommittedBytes,
    maxCommittedSizePerReadyBytes: RAFT_DEFAULTS.maxCommittedSizePerReadyBytes,
    snapshotRetryTicks: RAFT_DEFAULTS.snapshotRetryTicks,
    ...cfg,
  } as ResolvedRaftConfig;
  const r = c as unknown as Record<string, unknown>;
  if (typeof c.id !== 'string' || c.id === '') bad('id is empty', 'give every master a non-empty node id');
  if (!Array.isArray(c.peers) || (c.peers.length !== 1 && c.peers.length !== 3 && c.peers.length !== 5)) bad(`peers has ${Array.isArray(c.peers) ? c.peers.length : 'no'} members`, 'list 1, 3 or 5 master ids (this one included)');
  if (new Set(c.peers).size !== c.peers.length || c.peers.some((p) => typeof p !== 'string' || p === '')) bad('peers has duplicate or empty ids', 'list each master id once');
  if (!c.peers.includes(c.id)) bad(`id ${c.id} is not among peers`, 'include this node in peers');
  int(r, 'electionTicks', 2, 1_000_000);
  int(r, 'heartbeatTicks', 1, 1_000_000);
  if (c.heartbeatTicks >= c.electionTicks) bad(`heartbeatTicks (${c.heartbeatTicks}) >= electionTicks (${c.electionTicks})`, 'make the heartbeat several times shorter than the election timeout');
  int(r, 'maxSizePerMsgBytes', 1, 64 * 1024 * 1024);
  int(r, 'maxInflightMsgs', 1, 1_000_000);
  int(r, 'maxInflightBytes', 1, 2 ** 40);
  int(r, 'maxUncommittedBytes', 1, 2 ** 40);
  int(r, 'maxCommittedSizePerReadyBytes', 1, 2 ** 40);
  int(r, 'snapshotRetryTicks', 1, 1_000_000);
  if (typeof c.preVote !== 'boolean') bad('preVote is not a boolean', 'set preVote to true or false');
  if (typeof c.checkQuorum !== 'boolean') bad('checkQuorum is not a boolean', 'set checkQuorum to true or false');
  if (typeof c.random !== 'function') bad('random is not a function', 'inject a seeded random source returning numbers in [0, 1)');
  return c;
}
