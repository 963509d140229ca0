/**
 * Typed errors with stable codes. Operating errors (bad input, peer gone, timeout) are
 * GridErrors and reach the user as one clear sentence with what to do; broken invariants
 * go through assert() and crash loudly.
 */
import { ERROR_CODES, ErrorCodeName, errorCodeName } from '../messages';

export type GridErrorCode =
  | ErrorCodeName
  | 'CONFIG_INVALID'
  | 'TIMEOUT'
  | 'FUSE_UNAVAILABLE'
  | 'INPUT_UNREADABLE'
  | 'OUTPUT_UNWRITABLE'
  | 'JOB_FAILED'
  | 'REMOTE_ERROR';

export class GridError extends Error {
  override name = 'GridError';
  constructor(
    readonly code: GridErrorCode,
    message: string,
    /** What the user can do about it, when there is something. */
    readonly hint?: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }

  /** The wire code carried by error_reply when this error is the answer to a request. */
  get wireCode(): number {
    return (ERROR_CODES as Record<string, number>)[this.code] ?? ERROR_CODES.INTERNAL;
  }

  /** One line for a user: the message, then the hint. */
  describe(): string {
    return this.hint ? `${this.message} (${this.hint})` : this.message;
  }
}

/** A request timed out: the peer may be dead (seed 003: no answer in time = dead). */
export class TimeoutError extends GridError {
  override name = 'TimeoutError';
  constructor(what: string, endpoint: string, ms: number, why?: string) {
    super('TIMEOUT', `no answer from ${endpoint} to ${what} within ${ms} ms${why ? `: ${why}` : ''}`, 'check that the node is running and reachable');
  }
}

/** The peer answered with an error_reply. */
export class RemoteError extends GridError {
  override name = 'RemoteError';
  constructor(
    readonly remoteCode: number,
    message: string,
  ) {
    super((errorCodeName(remoteCode) in ERROR_CODES ? errorCodeName(remoteCode) : 'REMOTE_ERROR') as GridErrorCode, message);
  }
}

export function configError(message: string, hint?: string): GridError {
  return new GridError('CONFIG_INVALID', message, hint);
}

/** Broken invariant: a bug. Crashes loudly (TigerBeetle style); never used for bad input. */
export function assert(cond: unknown, what: string): asserts cond {
  if (!cond) throw new Error(`assertion failed: ${what}`);
}
