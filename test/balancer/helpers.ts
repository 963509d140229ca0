// Shared helpers for the balancer's tests: a Dispatcher with small test settings, message
// builders, and filters over output batches. Every output message is round-tripped through
// the real codec, so a machine that produced an unencodable message fails the test.
import { Dispatcher, DispatchOutput, DispatchEvent } from '../../src/balancer';
import { DispatchOptions } from '../../src/balancer/dispatch';
import { Message, MessageInput, MessageOf, NIL_UUID, PROTOCOL_VERSION, TaskOutcome, decode, encode, newUuid } from '../../src/messages';

export const SOFTWARE = 'test-1.0';

export function makeDispatcher(o: Partial<DispatchOptions> = {}): Dispatcher {
  return new Dispatcher({
    nodeUuid: newUuid(),
    protocolVersion: PROTOCOL_VERSION,
    softwareVersion: SOFTWARE,
    heartbeatIntervalMs: 1000,
    livenessMissed: 3,
    retryBackoffBaseMs: 500,
    retryBackoffMaxMs: 10_000,
    // one interval between unanswered hellos, as before the backoff (master-link tests count on it)
    masterHelloRetryBaseMs: 1000,
    masterHelloRetryMaxMs: 1000,
    // the top of the jitter range: the delays are exactly min(max, base * 2^attempt)
    random: () => 1,
    resultResendMs: 2000,
    maxUnackedResults: 10_000,
    maxQueuedTasks: 100_000,
    maxWorkers: 1000,
    maxCachedFilesPerWorker: 10_000,
    taskDeadlineSlackMs: 30_000,
    queuedDeadlineMs: 600_000,
    defaultTaskTimeoutMs: 3_600_000,
    masterRedirectMinMs: 200,
    leaseRenewMs: 100,
    leaseSafetyMarginMs: 100,
    adoptWaitMs: 2000,
    adoptSpecWaitMs: 10_000,
    role: 'primary',
    masters: ['tcp://127.0.0.1:7700'],
    ...o,
  });
}

/** Encodes and decodes a message: what the peer would really see. */
export function wire<N extends Message['type']>(m: MessageInput): MessageOf<N> {
  return decode(encode(m)) as MessageOf<N>;
}

export function checkOutputs(out: DispatchOutput[]): DispatchOutput[] {
  for (const o of out) if (o.kind === 'toWorker' || o.kind === 'toMaster') wire(o.msg);
  return out;
}

export function toWorker<N extends Message['type']>(out: DispatchOutput[], workerId: string | undefined, type: N): MessageOf<N>[] {
  return out
    .filter((o) => o.kind === 'toWorker' && (workerId === undefined || o.workerId === workerId) && (o.msg as { type: string }).type === type)
    .map((o) => wire<N>((o as { msg: MessageInput }).msg));
}

/** Tasks dispatched to workers: the seed's worker_request (docs/protocol.md), through the codec. */
export function dispatchedTo(out: DispatchOutput[]): { workerId: string; m: MessageOf<'worker_request'> }[] {
  return out
    .filter((o) => o.kind === 'toWorker' && (o.msg as { type: string }).type === 'worker_request')
    .map((o) => ({ workerId: (o as { workerId: string }).workerId, m: wire<'worker_request'>((o as { msg: MessageInput }).msg) }));
}

export function toMaster<N extends Message['type']>(out: DispatchOutput[], type: N): MessageOf<N>[] {
  return out.filter((o) => o.kind === 'toMaster' && (o.msg as { type: string }).type === type).map((o) => wire<N>((o as { msg: MessageInput }).msg));
}

export function events<T extends DispatchEvent['type']>(out: DispatchOutput[], type: T): Extract<DispatchEvent, { type: T }>[] {
  return out.filter((o) => o.kind === 'event' && o.event.type === type).map((o) => (o as { event: DispatchEvent }).event) as Extract<DispatchEvent, { type: T }>[];
}

export function readyMsg(workerId: string, slots: number, prefetch: number, cached: string[] = [], o: { protocol?: number; software?: string } = {}): MessageOf<'worker_ready'> {
  return wire({
    type: 'worker_ready',
    node_uuid: workerId,
    protocol_version: o.protocol ?? PROTOCOL_VERSION,
    slots,
    prefetch,
    software_version: o.software ?? SOFTWARE,
    cached_file_uuids: cached,
  });
}

export function taskMsg(jobUuid: string, taskIndex: number, o: { inputs?: string[]; maxRetries?: number; attempt?: number; taskCount?: number; epoch?: number } = {}): MessageOf<'task_dispatch'> {
  const inputs = o.inputs ?? [newUuid()];
  return wire({
    type: 'task_dispatch',
    node_uuid: newUuid(),
    job_uuid: jobUuid,
    program_file_uuid: newUuid(),
    task_index: taskIndex,
    task_count: o.taskCount ?? 100,
    attempt: o.attempt ?? 0,
    max_retries: o.maxRetries ?? 2,
    timeout_ms: 10_000,
    memory_limit_mb: 256,
    output_limit_bytes: 1 << 20,
    epoch: o.epoch ?? 1,
    input_file_uuids: inputs,
    input_names: inputs.map((_, i) => `in${i}`),
    args: [],
    program_name: 'job.js',
  });
}

export function resultMsg(workerId: string, jobUuid: string, taskIndex: number, attempt: number, outcome: number = TaskOutcome.ok, epoch = 1): MessageOf<'task_result'> {
  return wire({
    type: 'task_result',
    node_uuid: workerId,
    job_uuid: jobUuid,
    worker_uuid: workerId,
    log_file_uuid: NIL_UUID,
    task_index: taskIndex,
    attempt,
    exit_code: outcome === TaskOutcome.ok ? 0 : 1,
    duration_ms: 5,
    outcome,
    final: 0,
    output_file_uuids: [],
    output_names: [],
    error: outcome === TaskOutcome.ok ? '' : 'boom',
    log_tail: '',
    epoch,
  });
}

export function statusMsg(workerId: string): MessageOf<'worker_status'> {
  return wire({ type: 'worker_status', node_uuid: workerId, job_uuid: NIL_UUID, state: 0 });
}

export function heartbeat(from: string): MessageOf<'generic_message'> {
  return wire({ type: 'generic_message', node_uuid: from });
}

export function ackMsg(jobUuid: string, taskIndex: number, attempt: number): MessageOf<'result_ack'> {
  return wire({ type: 'result_ack', node_uuid: newUuid(), job_uuid: jobUuid, task_index: taskIndex, attempt });
}

/** A lease_grant as the master leader sends it. */
export function grantMsg(epoch: number, requestSeq: number, leaseMs: number): MessageOf<'lease_grant'> {
  return wire({ type: 'lease_grant', node_uuid: newUuid(), epoch, request_seq: requestSeq, lease_ms: leaseMs });
}

/** A lease_grant long enough to outlast any test (epoch 1, answering the first hello). */
export const LONG_LEASE_MS = 2 ** 31;

/**
 * A started dispatcher whose master has answered (so it is 'connected') and granted it the
 * lease (epoch 1, for longer than any test runs), with adoptWaitMs 0 (no failover adoption wait).
 */
export function connected(o: Partial<DispatchOptions> = {}, nowMs = 0): Dispatcher {
  // no adoption wait: these scenarios are about dispatch, not failover (test/balancer/pair.test.ts)
  const d = makeDispatcher({ adoptWaitMs: 0, ...o });
  d.start(nowMs);
  d.onMaster(heartbeat(newUuid()), nowMs);
  d.onMaster(grantMsg(1, 1, LONG_LEASE_MS), nowMs);
  return d;
}

/** The master acknowledges every result it was sent in `out` (the worker ack follows from it). */
export function masterAcks(d: Dispatcher, out: DispatchOutput[], nowMs: number): DispatchOutput[] {
  const acks: DispatchOutput[] = [];
  for (const r of toMaster(out, 'task_result')) acks.push(...d.onMaster(ackMsg(r.job_uuid, r.task_index, r.attempt), nowMs));
  return acks;
}
