/**
 * Replicated masters (docs/architecture.md, "Replicated masters"): how a follower points a
 * client or balancer at the leader, and how they follow. A NOT_LEADER error_reply's message
 * starts with `leader=<endpoint>` (or `leader=unknown` during an election), then a sentence
 * for people.
 */
import { createHash } from 'node:crypto';
import { fileUuidFromSha256 } from '../messages';
import { GridError } from './errors';

/** The message of a NOT_LEADER answer. */
export function notLeader(leaderEndpoint: string | undefined): GridError {
  const where = leaderEndpoint ?? 'unknown';
  return new GridError(
    'NOT_LEADER',
    leaderEndpoint
      ? `leader=${where}; this master is a follower, the leader is ${leaderEndpoint}`
      : `leader=${where}; no master leads right now: an election is under way, or fewer than a majority of masters are up (no quorum)`,
    'clients and balancers follow this automatically',
  );
}

/** The leader endpoint named by a NOT_LEADER message, or undefined when unknown. */
export function leaderHint(message: string): string | undefined {
  const m = /^leader=(\S+?);/.exec(message);
  return m && m[1] !== 'unknown' ? m[1] : undefined;
}

/** A master's Raft id: a UUID derived from its endpoint, so a static peer list is all config. */
export function peerIdFromEndpoint(endpoint: string): string {
  return fileUuidFromSha256(createHash('sha256').update('grid-master:' + endpoint).digest());
}

/** Splits a comma list of endpoints (GRID_MASTER, --master, --peers). */
export function endpointList(s: string): string[] {
  return s
    .split(',')
    .map((x) => x.trim())
    .filter((x) => x !== '');
}

/**
 * Which master to talk to next: the leader a follower named, else the next one in the list
 * (round robin), so a dead leader is skipped after one timeout.
 */
export class MasterCursor {
  private i = 0;
  constructor(readonly endpoints: readonly string[]) {
    if (endpoints.length === 0) throw new GridError('CONFIG_INVALID', 'no master endpoint given', 'pass --master tcp://HOST:PORT[,tcp://HOST:PORT...]');
  }
  get current(): string {
    return this.endpoints[this.i % this.endpoints.length]!;
  }
  /** After NOT_LEADER: go to the named leader when known (even one not in the list), else the next. */
  redirect(hint: string | undefined): string {
    if (hint) {
      const k = this.endpoints.indexOf(hint);
      if (k >= 0) {
        this.i = k;
        return this.current;
      }
      return hint;
    }
    return this.next();
  }
  /** After a timeout: the next master in the list. */
  next(): string {
    this.i = (this.i + 1) % this.endpoints.length;
    return this.current;
  }
}
