/**
 * Stable error codes carried by error_reply.error_code. Numbers never change meaning; a
 * new failure gets a new number (docs/protocol.md, "Error codes").
 */
export const ERROR_CODES = {
  BAD_REQUEST: 1, // the request decoded but makes no sense (wrong field values)
  DECODE_ERROR: 2, // the request could not be decoded at all
  NOT_FOUND: 3, // no such file / job / task
  CHECKSUM_MISMATCH: 4, // uploaded bytes do not match the SHA-256 they were sent with
  VERSION_MISMATCH: 5, // the peer speaks another protocol or software version
  TOO_LARGE: 6, // over a named size limit
  NOT_LEADER: 7, // this master does not lead; frame 1 starts `leader=<endpoint>;` or `leader=unknown;` (election, or no quorum)
  NO_QUORUM: 8, // reserved: a master cut off from a majority answers NOT_LEADER `leader=unknown;` instead
  UNAVAILABLE: 9, // the node is starting, stopping or overloaded; retry later
  QUOTA_EXCEEDED: 10, // the storage node's quota is full
  UNEXPECTED: 11, // this node does not take that message type
  INTERNAL: 12, // a bug or broken invariant on the server; see its log
  LEASE_HELD: 13, // another balancer holds the dispatch lease (or it may still); this one takes no task
  STALE_EPOCH: 14, // the message carries an older lease epoch than the receiver knows; its sender lost the lease
  NOT_AUTHORIZED: 15, // the sender's key is not authorized for that message (docs/operations.md, "Security"), or it is not the peer that may send it
} as const;

export type ErrorCodeName = keyof typeof ERROR_CODES;

const BY_NUMBER = new Map<number, ErrorCodeName>(
  (Object.entries(ERROR_CODES) as [ErrorCodeName, number][]).map(([k, v]) => [v, k]),
);

/** The name of a wire error code, or 'UNKNOWN_<n>' for a code this build does not know. */
export function errorCodeName(code: number): string {
  return BY_NUMBER.get(code) ?? `UNKNOWN_${code}`;
}
