/**
 * The one schema table of the wire protocol. Every message type is one entry here; the
 * struct layout (offsets, padding, sizeof), the encoder, the decoder, the C header and the
 * docs all derive from it. See docs/protocol.md.
 *
 * Layout rule: exactly what a C compiler on x86-64 / AArch64 produces for the struct: each
 * field at the next offset that is a multiple of its alignment, the struct's size rounded up
 * to its largest alignment, little-endian, padding bytes zero. Every struct embeds the
 * generic header (struct generic_message) first.
 */

/** Kinds of fixed struct fields. */
export type FieldKind =
  | 'u8'
  | 'u16'
  | 'u32'
  | 'i32'
  /** uint64_t on the wire; a JS number in TypeScript, so values above 2^53-1 are refused. */
  | 'u64'
  /** A 128-bit UUID as two uint64_t: NAME_upper (most significant 64 bits) then NAME_lower. */
  | 'uuid'
  /** uint8_t NAME[32]: a SHA-256 digest. */
  | 'sha256';

/** Kinds of trailing frames (frames 1..n) that carry variable-length data. */
export type TailKind =
  /** One frame of raw bytes whose length equals the struct field `lengthField`. */
  | 'bytes'
  /** One frame of UTF-8 text, at most `maxBytes` long. */
  | 'utf8'
  /** `countField` frames, each one UTF-8 string of at most `maxBytes`. */
  | 'utf8list'
  /** One frame of `countField` packed UUIDs, each laid out as a uuid struct field. */
  | 'uuidlist';

export interface FieldDef {
  readonly name: string;
  readonly kind: FieldKind;
  /** For u8 fields that hold an enum: the allowed values. */
  readonly enum?: Readonly<Record<string, number>>;
  readonly doc?: string;
}

export interface TailDef {
  readonly name: string;
  readonly kind: TailKind;
  /** bytes: the struct field that holds this frame's length. */
  readonly lengthField?: string;
  /** utf8list, uuidlist: the struct field that holds the number of items. */
  readonly countField?: string;
  /** utf8, utf8list: the largest allowed string in bytes. */
  readonly maxBytes?: number;
  readonly doc?: string;
}

export interface MessageDef {
  readonly id: number;
  readonly family: 'seed' | 'core' | 'storage' | 'job' | 'dispatch' | 'raft';
  readonly doc: string;
  readonly fields: readonly FieldDef[];
  readonly tail: readonly TailDef[];
}

// ---- limits (named, documented in docs/protocol.md) -------------------------------------

/** Largest message (all frames together) a node accepts: 64 MiB. */
export const MAX_MESSAGE_BYTES = 64 * 1024 * 1024;
/** Most frames one message may have (frame 0 included). */
export const MAX_FRAMES = 100_001;
/** Largest name (file name, program name, argument) in bytes. */
export const MAX_NAME_BYTES = 4096;
/** Length of a job owner's key on the wire (job_list2_response.owner_keys): a Z85 CURVE public key. */
export const OWNER_KEY_BYTES = 40;
/** Largest free text (error message, log tail) in bytes. */
export const MAX_TEXT_BYTES = 64 * 1024;
/**
 * Protocol version every node announces; a mismatch is refused. 2: the dispatch lease
 * (balancer_hello asks for it, lease_grant, balancer_state, worker_holding) and the epoch
 * on task_dispatch, task_started and task_result (docs/balancer.md). 3: tasks reach workers as
 * the seed's worker_request (its seed fields first, the grid's after them); task_cancel can
 * name one attempt (scope).
 */
export const PROTOCOL_VERSION = 3;

// ---- enums -------------------------------------------------------------------------------

/** worker_status.state */
export const WorkerState = { idle: 0, busy: 1, draining: 2 } as const;
/** task_result.outcome, task_status_response.outcome */
export const TaskOutcome = {
  none: 0,
  ok: 1,
  exit_nonzero: 2,
  timeout: 3,
  memory_limit: 4,
  output_limit: 5,
  worker_error: 6,
  lost: 7,
  cancelled: 8,
} as const;
/** task_status_response.state */
export const TaskState = { pending: 0, running: 1, succeeded: 2, failed: 3, cancelled: 4 } as const;
/** job_status_response.state, job_status2_response.state */
export const JobState = { running: 0, succeeded: 1, failed: 2, cancelled: 3 } as const;
/** file_put_response.status */
export const PutStatus = { partial: 0, stored: 1, already_stored: 2 } as const;
/** balancer_hello.role: as configured (docs/balancer.md, "The pair") */
export const BalancerRole = { primary: 0, auxiliary: 1 } as const;
/** task_cancel.scope: the whole job, or one attempt of one task */
export const CancelScope = { job: 0, attempt: 1 } as const;
/** worker_holding entries: where the worker has the attempt */
export const HeldState = { queued: 0, running: 1, finished: 2 } as const;
/** Bytes of one worker_holding entry: u32 task_index, u32 attempt, u32 state (HeldState). */
export const HELD_ENTRY_BYTES = 12;
/** Most entries in one worker_holding (a worker holds at most slots + prefetch + unacked results). */
export const MAX_HELD_ENTRIES = 100_000;
/** 0 or 1 */
export const Bool = { false: 0, true: 1 } as const;

const f = <N extends string, K extends FieldKind>(name: N, kind: K, doc?: string, en?: Record<string, number>) => ({
  name,
  kind,
  doc,
  enum: en,
});

/** The generic header every message starts with (seed 004). */
export const GENERIC_HEADER: readonly FieldDef[] = [
  f('message_type', 'u8', 'the registry number of this message type'),
  f('node_uuid', 'uuid', 'the sending node'),
  f('header_length', 'u64', 'sizeof the whole struct, = length of frame 0'),
];

const nameList = <N extends string, C extends string>(name: N, countField: C, doc?: string) => ({
  name,
  kind: 'utf8list' as const,
  countField,
  maxBytes: MAX_NAME_BYTES,
  doc,
});
const uuidList = <N extends string, C extends string>(name: N, countField: C, doc?: string) => ({
  name,
  kind: 'uuidlist' as const,
  countField,
  doc,
});
const text = <N extends string>(name: N, doc?: string) => ({ name, kind: 'utf8' as const, maxBytes: MAX_TEXT_BYTES, doc });

/**
 * The registry. Numbers are stable forever: never reuse or renumber one (docs/protocol.md,
 * "Versioning"). Fields are listed after the generic header, in struct order.
 */
export const MESSAGES = {
  // ---- the seed's five structs: exactly the seed's fields, in the seed's order ----------
  generic_message: {
    id: 1,
    family: 'seed',
    doc: 'A bare header. Used as a heartbeat (balancer to worker, master to balancer).',
    fields: [],
    tail: [],
  },
  worker_request: {
    id: 2,
    family: 'seed',
    doc:
      "Seed request to run a program over input paths: the balancer's dispatch of one task attempt to a worker. Frame 1: program bytes (empty: the program is the stored file program_file_uuid); then one frame per input path (the task's input names). The seed's fields come first, exactly as in the seed; the grid's fields follow them inside header_length, and its frames follow the seed's, so a peer that knows only the seed's struct reads it correctly.",
    fields: [
      f('job_uuid', 'uuid'),
      f('program_length', 'u64', '0: the program is the stored file program_file_uuid'),
      f('num_input_files', 'u64'),
      // ---- after the seed's fields (a seed-only peer stops reading here) ----
      f('program_file_uuid', 'uuid'),
      f('task_index', 'u32'),
      f('task_count', 'u32'),
      f('attempt', 'u32', '0 for the first run'),
      f('max_retries', 'u32'),
      f('timeout_ms', 'u32'),
      f('memory_limit_mb', 'u32'),
      f('num_args', 'u32'),
      f('output_limit_bytes', 'u64'),
      f('epoch', 'u64', 'the lease epoch it is sent under; a worker refuses one older than it follows (STALE_EPOCH)'),
    ],
    tail: [
      { name: 'program', kind: 'bytes', lengthField: 'program_length' },
      nameList('input_files', 'num_input_files', 'the name each input has in the task folder'),
      // ---- after the seed's frames ----
      uuidList('input_file_uuids', 'num_input_files', 'the stored file of each input, in the order of input_files'),
      nameList('args', 'num_args'),
      { name: 'program_name', kind: 'utf8', maxBytes: MAX_NAME_BYTES },
    ],
  },
  worker_status: {
    id: 3,
    family: 'seed',
    doc: 'Worker heartbeat with its state; job_uuid is the job of a running task, or nil when idle.',
    fields: [f('job_uuid', 'uuid'), f('state', 'u8', 'WorkerState', WorkerState)],
    tail: [],
  },
  file_request: {
    id: 4,
    family: 'seed',
    doc: 'Ask a storage node for a whole (small) file. Answered by file_response or error_reply.',
    fields: [f('file_uuid', 'uuid')],
    tail: [],
  },
  file_response: {
    id: 5,
    family: 'seed',
    doc: 'A whole file. Frame 1: the file bytes (file_length of them).',
    fields: [f('file_uuid', 'uuid'), f('file_length', 'u64')],
    tail: [{ name: 'data', kind: 'bytes', lengthField: 'file_length' }],
  },

  // ---- core --------------------------------------------------------------------------------
  error_reply: {
    id: 6,
    family: 'core',
    doc: 'A request failed. error_code is a stable number (docs/protocol.md, "Error codes"); frame 1 says what went wrong and what to do.',
    fields: [f('request_uuid', 'uuid'), f('error_code', 'u16')],
    tail: [text('message')],
  },
  ack_reply: {
    id: 7,
    family: 'core',
    doc: 'A request that returns nothing succeeded.',
    fields: [f('request_uuid', 'uuid')],
    tail: [],
  },

  // ---- storage -----------------------------------------------------------------------------
  file_stat_request: {
    id: 20,
    family: 'storage',
    doc: 'Does the storage node hold this file, and how long is it?',
    fields: [f('request_uuid', 'uuid'), f('file_uuid', 'uuid')],
    tail: [],
  },
  file_stat_response: {
    id: 21,
    family: 'storage',
    doc: 'Answer to file_stat_request; sha256 is all zero when exists = 0.',
    fields: [
      f('request_uuid', 'uuid'),
      f('file_uuid', 'uuid'),
      f('file_length', 'u64'),
      f('exists', 'u8', '0 or 1', Bool),
      f('sha256', 'sha256'),
    ],
    tail: [],
  },
  file_put_request: {
    id: 22,
    family: 'storage',
    doc: 'Upload one chunk of a file at offset; the chunk with final = 1 commits the file after its SHA-256 is verified. file_uuid is derived from sha256 (content addressing). Frame 1: the chunk.',
    fields: [
      f('request_uuid', 'uuid'),
      f('file_uuid', 'uuid'),
      f('file_length', 'u64'),
      f('offset', 'u64'),
      f('chunk_length', 'u32'),
      f('final', 'u8', '1 on the last chunk', Bool),
      f('sha256', 'sha256', 'SHA-256 of the whole file'),
    ],
    tail: [{ name: 'data', kind: 'bytes', lengthField: 'chunk_length' }],
  },
  file_put_response: {
    id: 23,
    family: 'storage',
    doc: 'Answer to file_put_request.',
    fields: [
      f('request_uuid', 'uuid'),
      f('file_uuid', 'uuid'),
      f('received', 'u64', 'bytes of the file held so far'),
      f('status', 'u8', 'PutStatus', PutStatus),
    ],
    tail: [],
  },
  file_read_request: {
    id: 24,
    family: 'storage',
    doc: 'Read length bytes of a file from offset.',
    fields: [f('request_uuid', 'uuid'), f('file_uuid', 'uuid'), f('offset', 'u64'), f('length', 'u32')],
    tail: [],
  },
  file_read_response: {
    id: 25,
    family: 'storage',
    doc: 'Answer to file_read_request; length may be short at the end of the file. Frame 1: the bytes.',
    fields: [
      f('request_uuid', 'uuid'),
      f('file_uuid', 'uuid'),
      f('offset', 'u64'),
      f('file_length', 'u64'),
      f('length', 'u32'),
    ],
    tail: [{ name: 'data', kind: 'bytes', lengthField: 'length' }],
  },

  // ---- jobs (client <-> master) -------------------------------------------------------------
  job_submit_request: {
    id: 40,
    family: 'job',
    doc: 'Submit a job. job_uuid is chosen by the client, so a retried submit is applied once.',
    fields: [
      f('request_uuid', 'uuid'),
      f('job_uuid', 'uuid'),
      f('program_file_uuid', 'uuid'),
      f('num_inputs', 'u32'),
      f('chunk_size', 'u32', 'inputs per task'),
      f('max_retries', 'u32', 'retries of a failed task'),
      f('task_timeout_ms', 'u32'),
      f('memory_limit_mb', 'u32'),
      f('num_args', 'u32'),
      f('output_limit_bytes', 'u64'),
    ],
    tail: [
      uuidList('input_file_uuids', 'num_inputs'),
      nameList('input_names', 'num_inputs', 'the base name of each input'),
      nameList('args', 'num_args', 'arguments passed as GRID_ARGS'),
      { name: 'program_name', kind: 'utf8', maxBytes: MAX_NAME_BYTES },
    ],
  },
  job_submit_response: {
    id: 41,
    family: 'job',
    doc: 'The job is durably stored (accepted).',
    fields: [
      f('request_uuid', 'uuid'),
      f('job_uuid', 'uuid'),
      f('task_count', 'u32'),
      f('created', 'u8', '0 when the job already existed (a retried submit)', Bool),
    ],
    tail: [],
  },
  job_status_request: {
    id: 42,
    family: 'job',
    doc: 'State and counts of one job.',
    fields: [f('request_uuid', 'uuid'), f('job_uuid', 'uuid')],
    tail: [],
  },
  job_status_response: {
    id: 43,
    family: 'job',
    doc: 'Answer to job_status_request.',
    fields: [
      f('request_uuid', 'uuid'),
      f('job_uuid', 'uuid'),
      f('state', 'u8', 'JobState', JobState),
      f('task_count', 'u32'),
      f('tasks_pending', 'u32'),
      f('tasks_running', 'u32'),
      f('tasks_succeeded', 'u32'),
      f('tasks_failed', 'u32'),
      f('created_at_ms', 'u64'),
      f('finished_at_ms', 'u64', '0 while running'),
    ],
    tail: [{ name: 'program_name', kind: 'utf8', maxBytes: MAX_NAME_BYTES }, text('error')],
  },
  job_list_request: {
    id: 44,
    family: 'job',
    doc: 'The newest jobs, at most limit of them.',
    fields: [f('request_uuid', 'uuid'), f('limit', 'u32')],
    tail: [],
  },
  job_list_response: {
    id: 45,
    family: 'job',
    doc: 'Answer to job_list_request, newest first.',
    fields: [f('request_uuid', 'uuid'), f('num_jobs', 'u32')],
    tail: [uuidList('job_uuids', 'num_jobs')],
  },
  task_status_request: {
    id: 46,
    family: 'job',
    doc: 'Everything about one task of a job.',
    fields: [f('request_uuid', 'uuid'), f('job_uuid', 'uuid'), f('task_index', 'u32')],
    tail: [],
  },
  task_status_response: {
    id: 47,
    family: 'job',
    doc: 'Answer to task_status_request.',
    fields: [
      f('request_uuid', 'uuid'),
      f('job_uuid', 'uuid'),
      f('worker_uuid', 'uuid', 'worker of the last attempt, nil if none'),
      f('log_file_uuid', 'uuid', 'stored stdout+stderr of the last attempt, nil if none'),
      f('task_index', 'u32'),
      f('attempts', 'u32'),
      f('exit_code', 'i32'),
      f('duration_ms', 'u32'),
      f('num_outputs', 'u32'),
      f('num_inputs', 'u32'),
      f('state', 'u8', 'TaskState', TaskState),
      f('outcome', 'u8', 'TaskOutcome of the last attempt', TaskOutcome),
    ],
    tail: [
      uuidList('output_file_uuids', 'num_outputs'),
      nameList('output_names', 'num_outputs'),
      nameList('input_names', 'num_inputs'),
      text('error'),
      text('log_tail'),
    ],
  },
  job_cancel_request: {
    id: 48,
    family: 'job',
    doc: 'Cancel a running job. Answered by ack_reply.',
    fields: [f('request_uuid', 'uuid'), f('job_uuid', 'uuid')],
    tail: [],
  },
  job_notify_request: {
    id: 49,
    family: 'job',
    doc: 'When the job ends, the master leader HTTP-POSTs its final status as JSON to url (grid submit --notify; docs/operations.md). Answered by ack_reply.',
    fields: [f('request_uuid', 'uuid'), f('job_uuid', 'uuid')],
    tail: [{ name: 'url', kind: 'utf8', maxBytes: MAX_NAME_BYTES }],
  },

  job_status2_request: {
    id: 50,
    family: 'job',
    doc: 'State and counts of one job, failed and cancelled tasks counted apart. Answered by job_status2_response. Replaces job_status_request (42), which a master still answers for older clients (docs/protocol.md, "Versioning").',
    fields: [f('request_uuid', 'uuid'), f('job_uuid', 'uuid')],
    tail: [],
  },
  job_status2_response: {
    id: 51,
    family: 'job',
    doc: 'Answer to job_status2_request: job_status_response plus tasks_cancelled; here tasks_failed does not include the cancelled tasks (in job_status_response it does).',
    fields: [
      f('request_uuid', 'uuid'),
      f('job_uuid', 'uuid'),
      f('state', 'u8', 'JobState', JobState),
      f('task_count', 'u32'),
      f('tasks_pending', 'u32'),
      f('tasks_running', 'u32'),
      f('tasks_succeeded', 'u32'),
      f('tasks_failed', 'u32', 'failed tasks, cancelled ones not included'),
      f('tasks_cancelled', 'u32'),
      f('created_at_ms', 'u64'),
      f('finished_at_ms', 'u64', '0 while running'),
    ],
    tail: [{ name: 'program_name', kind: 'utf8', maxBytes: MAX_NAME_BYTES }, text('error')],
  },
  job_list2_request: {
    id: 52,
    family: 'job',
    doc: 'The newest jobs with their owners, at most limit of them. Answered by job_list2_response. Replaces job_list_request (44), which a master still answers for older clients (docs/protocol.md, "Versioning").',
    fields: [f('request_uuid', 'uuid'), f('limit', 'u32')],
    tail: [],
  },
  job_list2_response: {
    id: 53,
    family: 'job',
    doc: "Answer to job_list2_request, newest first: job_list_response plus each job's owner, the Z85 public key of the client that submitted it ('' when none was recorded: security off, or a job from before owners).",
    fields: [f('request_uuid', 'uuid'), f('num_jobs', 'u32')],
    tail: [
      uuidList('job_uuids', 'num_jobs'),
      { name: 'owner_keys', kind: 'utf8list' as const, countField: 'num_jobs', maxBytes: OWNER_KEY_BYTES, doc: "one frame per job, in job_uuids' order: the owner's 40-character Z85 CURVE public key, or empty" },
    ],
  },

  // ---- dispatch (master <-> balancer <-> worker) ----------------------------------------
  balancer_hello: {
    id: 60,
    family: 'dispatch',
    doc: 'A balancer asks the master leader for the dispatch lease (or renews it) and for tasks (credit). Sent every leaseRenewMs. Answered by lease_grant, or error_reply LEASE_HELD / NOT_LEADER.',
    fields: [
      f('protocol_version', 'u16'),
      f('role', 'u8', 'BalancerRole, as configured', BalancerRole),
      f('epoch', 'u64', 'the epoch this balancer holds, 0 = none'),
      f('request_seq', 'u64', 'echoed by lease_grant: the balancer measures the lease from when it sent this'),
      f('fed', 'u64', 'task_dispatch messages received in this epoch'),
      f('credit_limit', 'u64', 'the master may send tasks up to this count in this epoch (fed + room)'),
    ],
    tail: [],
  },
  lease_grant: {
    id: 68,
    family: 'dispatch',
    doc: 'The master leader grants (or renews) the dispatch lease: valid for lease_ms from when the balancer sent request_seq.',
    fields: [f('epoch', 'u64', 'recorded through Raft; never reused'), f('request_seq', 'u64'), f('lease_ms', 'u32')],
    tail: [],
  },
  balancer_state: {
    id: 69,
    family: 'dispatch',
    doc: "A balancer's heartbeat to workers: whether it holds the dispatch lease, and its epoch (workers follow the highest active epoch).",
    fields: [f('epoch', 'u64', '0 = never held'), f('active', 'u8', '1 = holds the lease and dispatches', Bool)],
    tail: [],
  },
  worker_holding: {
    id: 70,
    family: 'dispatch',
    doc: 'A worker tells a newly active balancer every attempt it holds (queued, running, or finished with the result not yet acknowledged), so running work is adopted, not re-run.',
    fields: [f('epoch', 'u64', 'the epoch it answers'), f('num_tasks', 'u32'), f('entries_length', 'u32', '12 * num_tasks')],
    tail: [
      uuidList('job_uuids', 'num_tasks'),
      { name: 'entries', kind: 'bytes', lengthField: 'entries_length', doc: 'num_tasks packed entries: u32 task_index, u32 attempt, u32 state (HeldState), little-endian' },
    ],
  },
  worker_ready: {
    id: 61,
    family: 'dispatch',
    doc: 'A worker joins a balancer with its slots, prefetch depth, versions and the files it has cached.',
    fields: [
      f('protocol_version', 'u16'),
      f('slots', 'u16', 'tasks it runs at once'),
      f('prefetch', 'u16', 'tasks it queues beyond its slots'),
      f('num_cached', 'u32'),
    ],
    tail: [
      { name: 'software_version', kind: 'utf8', maxBytes: MAX_NAME_BYTES },
      uuidList('cached_file_uuids', 'num_cached'),
    ],
  },
  worker_disconnect: {
    id: 62,
    family: 'dispatch',
    doc: 'A worker leaves on purpose; its unfinished tasks are re-dispatched at once.',
    fields: [],
    tail: [],
  },
  task_dispatch: {
    id: 63,
    family: 'dispatch',
    doc: 'Run one task: the feed from the master to the balancer (the balancer hands it to a worker as worker_request). Tasks never change once created.',
    fields: [
      f('job_uuid', 'uuid'),
      f('program_file_uuid', 'uuid'),
      f('task_index', 'u32'),
      f('task_count', 'u32'),
      f('attempt', 'u32', '0 for the first run'),
      f('max_retries', 'u32'),
      f('timeout_ms', 'u32'),
      f('memory_limit_mb', 'u32'),
      f('num_inputs', 'u32'),
      f('num_args', 'u32'),
      f('output_limit_bytes', 'u64'),
      f('epoch', 'u64', 'the lease epoch it is sent under; a stale one is refused'),
    ],
    tail: [
      uuidList('input_file_uuids', 'num_inputs'),
      nameList('input_names', 'num_inputs'),
      nameList('args', 'num_args'),
      { name: 'program_name', kind: 'utf8', maxBytes: MAX_NAME_BYTES },
    ],
  },
  task_started: {
    id: 64,
    family: 'dispatch',
    doc: 'A worker started an attempt of a task (worker to balancer, balancer to master).',
    fields: [f('job_uuid', 'uuid'), f('worker_uuid', 'uuid'), f('task_index', 'u32'), f('attempt', 'u32'), f('epoch', 'u64', 'the epoch of the sender')],
    tail: [],
  },
  task_result: {
    id: 65,
    family: 'dispatch',
    doc: 'How an attempt ended (worker to balancer; balancer to master with final = 1 when no retry follows). Sent until acknowledged by result_ack.',
    fields: [
      f('job_uuid', 'uuid'),
      f('worker_uuid', 'uuid'),
      f('log_file_uuid', 'uuid', 'nil when the log could not be stored'),
      f('task_index', 'u32'),
      f('attempt', 'u32'),
      f('exit_code', 'i32', '-1 when killed by a signal'),
      f('duration_ms', 'u32'),
      f('num_outputs', 'u32'),
      f('outcome', 'u8', 'TaskOutcome', TaskOutcome),
      f('final', 'u8', '1 when this settles the task', Bool),
      f('epoch', 'u64', 'worker: the epoch of the dispatch it ran; balancer: its own epoch (the master refuses a stale one)'),
    ],
    tail: [
      uuidList('output_file_uuids', 'num_outputs'),
      nameList('output_names', 'num_outputs'),
      text('error'),
      text('log_tail'),
    ],
  },
  result_ack: {
    id: 66,
    family: 'dispatch',
    doc: 'The receiver recorded a task_result; the sender may forget it.',
    fields: [f('job_uuid', 'uuid'), f('task_index', 'u32'), f('attempt', 'u32')],
    tail: [],
  },
  task_cancel: {
    id: 67,
    family: 'dispatch',
    doc: 'Stop every task of a job (scope job: master to balancer, balancer to worker), or one attempt of one task (scope attempt: balancer to worker, a copy that must not run twice).',
    fields: [
      f('job_uuid', 'uuid'),
      f('task_index', 'u32', 'scope attempt: the task (0 for scope job)'),
      f('attempt', 'u32', 'scope attempt: the attempt (0 for scope job)'),
      f('scope', 'u8', 'CancelScope', CancelScope),
    ],
    tail: [],
  },
  // ---- raft (80..99): between replicated masters; see docs/raft.md. node_uuid is the sender,
  // to_uuid the addressee; every message carries the sender's term. -------------------------
  raft_vote_request: {
    id: 80,
    family: 'raft',
    doc: 'RequestVote (Raft §5.2), or a pre-vote (thesis §9.6) when pre_vote = 1: "would you vote for me at term?"',
    fields: [
      f('to_uuid', 'uuid'),
      f('term', 'u64', 'the term campaigned for'),
      f('last_log_index', 'u64'),
      f('last_log_term', 'u64'),
      f('pre_vote', 'u8', '1 = pre-vote, changes no state', Bool),
      f('transfer', 'u8', '1 = campaign after a leader transfer: voters ignore their leader lease', Bool),
    ],
    tail: [],
  },
  raft_vote_response: {
    id: 81,
    family: 'raft',
    doc: 'Answer to raft_vote_request.',
    fields: [f('to_uuid', 'uuid'), f('term', 'u64'), f('pre_vote', 'u8', '', Bool), f('reject', 'u8', '1 = vote refused', Bool)],
    tail: [],
  },
  raft_append: {
    id: 82,
    family: 'raft',
    doc: 'AppendEntries (§5.3). Frame 1: num_entries packed 16-byte entry headers (u64 term, u32 data length, u8 type 0 normal / 1 noop, 3 zero bytes); frame 2: the entry data, concatenated. Entry i has index prev_log_index + 1 + i.',
    fields: [
      f('to_uuid', 'uuid'),
      f('term', 'u64'),
      f('prev_log_index', 'u64'),
      f('prev_log_term', 'u64'),
      f('commit', 'u64', "the leader's commit index"),
      f('num_entries', 'u32'),
      f('headers_length', 'u32', '16 * num_entries'),
      f('data_length', 'u32', 'sum of the entries\' data lengths'),
    ],
    tail: [
      { name: 'entry_headers', kind: 'bytes', lengthField: 'headers_length' },
      { name: 'entry_data', kind: 'bytes', lengthField: 'data_length' },
    ],
  },
  raft_append_response: {
    id: 83,
    family: 'raft',
    doc: 'Answer to raft_append or raft_snapshot: the highest index matched, or a rejection with a backtracking hint.',
    fields: [
      f('to_uuid', 'uuid'),
      f('term', 'u64'),
      f('index', 'u64', 'accepted: last index matched; rejected: the prev_log_index refused'),
      f('hint_index', 'u64', 'rejected: last index that may match'),
      f('hint_term', 'u64', 'rejected: term of hint_index on the follower'),
      f('reject', 'u8', '', Bool),
    ],
    tail: [],
  },
  raft_snapshot: {
    id: 84,
    family: 'raft',
    doc: 'InstallSnapshot (§7). Frame 1: the state machine snapshot as of snapshot_index.',
    fields: [f('to_uuid', 'uuid'), f('term', 'u64'), f('snapshot_index', 'u64'), f('snapshot_term', 'u64'), f('data_length', 'u64')],
    tail: [{ name: 'data', kind: 'bytes', lengthField: 'data_length' }],
  },
  raft_heartbeat: {
    id: 85,
    family: 'raft',
    doc: 'Leader heartbeat with a commit index; frame 1: ReadIndex context (thesis §6.4), empty for none.',
    fields: [f('to_uuid', 'uuid'), f('term', 'u64'), f('commit', 'u64')],
    tail: [{ name: 'context', kind: 'utf8', maxBytes: MAX_NAME_BYTES }],
  },
  raft_heartbeat_response: {
    id: 86,
    family: 'raft',
    doc: 'Answer to raft_heartbeat; frame 1: the context echoed.',
    fields: [f('to_uuid', 'uuid'), f('term', 'u64')],
    tail: [{ name: 'context', kind: 'utf8', maxBytes: MAX_NAME_BYTES }],
  },
  raft_timeout_now: {
    id: 87,
    family: 'raft',
    doc: 'Leader transfer (thesis §3.10): the addressee campaigns at once.',
    fields: [f('to_uuid', 'uuid'), f('term', 'u64')],
    tail: [],
  },
} as const satisfies Record<string, MessageDef>;

export type MessageName = keyof typeof MESSAGES;
