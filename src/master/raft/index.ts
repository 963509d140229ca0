/** Public surface of the Raft core (docs/raft.md). The master shell uses only these. */
export { RaftCore } from './core';
export type { Restored } from './core';
export { RAFT_DEFAULTS, resolveRaftConfig } from './config';
export type { RaftConfig, ResolvedRaftConfig } from './config';
export { NotLeaderError, RaftStorageError, NONE, raftMessage } from './types';
export type { Entry, EntryType, HardState, RaftMessage, RaftMessageType, RaftStatus, ProgressStatus, ReadState, Ready, Role, Snapshot, SnapshotMeta } from './types';
export { RaftStorage, GroupCommitter } from './storage';
export type { ReadyIo, GroupCommitterOptions } from './storage';
export { toWire, fromWire, encodeRaft, decodeRaft, isRaftWireMessage, RaftWireError, RAFT_MESSAGE_NAMES, ENTRY_HEADER_BYTES } from './wire';
