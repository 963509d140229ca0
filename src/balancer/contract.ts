/**
 * The balancer dispatch machine's contract with its shell (docs/balancer.md, "The state
 * machine"): options, the events it reports, the outputs it returns, its counters and status.
 * The machine itself is split by concern: dispatch.ts (the Dispatcher: tasks through their
 * attempts, lease and adoption), master-link.ts (hello, redirects, silence), workers.ts (the
 * worker registry and worker choice), tasks.ts (the task table), outbox.ts (results waiting
 * for the master's acknowledgement), pair.ts (the lease as this balancer sees it).
 */
import { MessageInput, MessageOf, NIL_UUID } from '../messages';
import { DispatchLimits } from './config';

export interface DispatchOptions extends DispatchLimits {
  /** this balancer's node id, stamped on every message it sends */
  nodeUuid: string;
  /** what workers must announce in worker_ready */
  protocolVersion: number;
  softwareVersion: string;
  /** the master endpoints, in order (one, or the replicated masters); the first is tried first */
  masters: readonly string[];
  /** as configured: a free lease goes to a live primary first */
  role: 'primary' | 'auxiliary';
  /**
   * jitter source in [0, 1] for the retry backoffs (src/common/backoff.ts): task retries and
   * unanswered master hellos. The shell passes Math.random; tests a constant or a seeded one.
   */
  random: () => number;
}

/** Events: what happened, for logs and tests. Namespaced, one shape per name. */
export type DispatchEvent =
  | { type: 'master:hello'; reason: HelloReason }
  /** the masters granted this balancer a new epoch: it is the active one now */
  | { type: 'lease:activated'; epoch: number; waitingFor: number }
  /** every registered worker reported what it holds (or adoptWaitMs passed): dispatch starts */
  | { type: 'lease:adopted'; epoch: number; adopted: number; timedOut: boolean }
  /** the lease ran out here (no renewal in time): dispatching stops until it is renewed */
  | { type: 'lease:expired'; epoch: number }
  /** the masters refused the lease: another balancer holds it; soft state dropped */
  | { type: 'lease:refused'; epoch: number; reason: string; dropped: number }
  | { type: 'task:adopted'; jobUuid: string; taskIndex: number; attempt: number; workerId: string }
  | { type: 'task:stale'; jobUuid: string; taskIndex: number; epoch: number }
  /** a late worker_holding: the reporter's copy (on workerId) is cancelled, the re-dispatched one kept */
  | { type: 'task:copy-cancelled'; jobUuid: string; taskIndex: number; attempt: number; workerId: string; keptOn: string; keptAttempt: number }
  /** the master link moves: a follower named the leader (or none), or the master fell silent */
  | { type: 'master:redirect'; from: string; to: string; why: RedirectWhy; hint: string | null }
  /** the master answered a hello (first message since the hello) */
  | { type: 'master:heard'; first: boolean }
  | { type: 'master:lost'; silentMs: number }
  | { type: 'master:error'; code: number; message: string }
  | { type: 'master:unexpected'; msgType: string }
  | { type: 'worker:joined'; workerId: string; slots: number; prefetch: number; cached: number; rejoined: boolean }
  | { type: 'worker:refused'; workerId: string; code: number; reason: string }
  | { type: 'worker:lost'; workerId: string; reason: LostReason; tasks: number }
  | { type: 'worker:unknown'; workerId: string; msgType: string }
  | { type: 'worker:unexpected'; workerId: string; msgType: string }
  | { type: 'worker:error'; workerId: string; code: number; message: string }
  | { type: 'task:queued'; jobUuid: string; taskIndex: number; attempt: number }
  | { type: 'task:duplicate'; jobUuid: string; taskIndex: number }
  | { type: 'task:refused'; jobUuid: string; taskIndex: number; reason: string }
  | { type: 'task:dispatched'; jobUuid: string; taskIndex: number; attempt: number; workerId: string; cacheHits: number }
  | { type: 'task:started'; jobUuid: string; taskIndex: number; attempt: number; workerId: string }
  | { type: 'task:retry'; jobUuid: string; taskIndex: number; attempt: number; outcome: number; delayMs: number; failedOn: string }
  /** an attempt passed its deadline without a result: settled lost (then retried or final) */
  | { type: 'task:deadline'; jobUuid: string; taskIndex: number; attempt: number; workerId: string; budgetMs: number; from: 'dispatch' | 'task_started' }
  | { type: 'task:settled'; jobUuid: string; taskIndex: number; attempt: number; outcome: number; workerId: string }
  | { type: 'task:cancelled'; jobUuid: string; dropped: number; running: number }
  | { type: 'result:ignored'; jobUuid: string; taskIndex: number; attempt: number; workerId: string; why: 'duplicate' | 'stale' }
  | { type: 'result:refused'; jobUuid: string; taskIndex: number; attempt: number; reason: string }
  | { type: 'result:acked'; jobUuid: string; taskIndex: number; attempt: number };

export type HelloReason = 'start' | 'unanswered' | 'silent' | 'room' | 'redirect' | 'renew';
/**
 * Why the master link moved: `not-leader` (an error_reply NOT_LEADER), `silent` (a connected
 * master said nothing for the liveness time), `unanswered` (hellos unanswered that long).
 */
export type RedirectWhy = 'not-leader' | 'silent' | 'unanswered';

/** Why a worker was declared lost. */
export type LostReason = 'silent' | 'disconnect' | 'rejoined' | 'reconnected';
export const LOST_WHY: Record<LostReason, (livenessMs: number) => string> = {
  silent: (ms) => `silent for more than ${ms} ms`,
  disconnect: () => 'it sent worker_disconnect',
  rejoined: () => 'it restarted (sent worker_ready again)',
  reconnected: () => 'it reconnected, so messages to it may have been lost',
};

export type DispatchOutput =
  | { kind: 'toWorker'; workerId: string; msg: MessageInput }
  | { kind: 'toMaster'; msg: MessageInput }
  /** close the master connection and open one to `endpoint`; later toMaster outputs go there */
  | { kind: 'masterLink'; endpoint: string }
  | { kind: 'event'; event: DispatchEvent };

export type TaskSpec = MessageOf<'task_dispatch'>;

/** An attempt a worker reported holding after a failover, waiting for its task from the master. */
export interface AdoptedRec {
  workerId: string;
  attempt: number;
  state: number;
  sinceMs: number;
}

export interface DispatchCounters {
  tasksReceived: number;
  tasksDuplicate: number;
  tasksRefused: number;
  dispatched: number;
  retries: number;
  settledOk: number;
  settledFailed: number;
  workersJoined: number;
  workersLost: number;
  workersRefused: number;
  resultsForwarded: number;
  resultsResent: number;
  resultsIgnored: number;
  resultsRefused: number;
  jobsCancelled: number;
  masterHellos: number;
  masterRedirects: number;
  deadlinesMissed: number;
  leaseActivations: number;
  leaseRefusals: number;
  tasksAdopted: number;
  staleTasks: number;
  /** re-dispatched copies cancelled because a late reporter held the task (balancer.md, "Failover") */
  copiesCancelled: number;
}

export interface DispatchStatus {
  /** as configured (the admin /status `role` field names the node kind, 'balancer') */
  pairRole: 'primary' | 'auxiliary';
  /** holds the lease now (dispatches) */
  active: boolean;
  /** the epoch held or last held, 0 = never */
  epoch: number;
  leaseLeftMs: number;
  adopting: boolean;
  master: { state: MasterState; lastHeardMsAgo: number | null; endpoint: string; endpoints: string[] };
  workers: {
    workerId: string;
    slots: number;
    prefetch: number;
    load: number;
    state: string;
    lastSeenMsAgo: number;
    joinedMsAgo: number;
    dispatched: number;
    results: number;
    cachedFiles: number;
  }[];
  tasksHeld: number;
  tasksQueued: number;
  tasksBackoff: number;
  tasksRunning: number;
  unackedResults: number;
  counters: DispatchCounters;
}

export type MasterState = 'hello-pending' | 'connected';

export const taskKey = (jobUuid: string, taskIndex: number): string => `${jobUuid}/${taskIndex}`;
export const resultKey = (jobUuid: string, taskIndex: number, attempt: number): string => `${jobUuid}/${taskIndex}/${attempt}`;

export function errorReply(nodeUuid: string, code: number, message: string): MessageInput<'error_reply'> {
  return { type: 'error_reply', node_uuid: nodeUuid, request_uuid: NIL_UUID, error_code: code, message: message.slice(0, 4000) };
}
