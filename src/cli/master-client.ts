/**
 * The client's side of the job_* requests (docs/architecture.md, "Submit"). Every request
 * is re-sent with the SAME request_uuid (and a submit with the same job_uuid) until the
 * master answers or `masterRetryWindowMs` has passed, so a master that restarts meanwhile
 * applies it once and the user never sees the restart.
 */
import { Logger } from 'pino';
import { GridError, RemoteError, RpcClient, TimeoutError } from '../common';
import { Message, MessageInput, MessageName, MessageOf, newUuid } from '../messages';

/** Pause before re-sending a request the master refused with UNAVAILABLE (it is starting). */
const UNAVAILABLE_BACKOFF_MS = 200;

export interface MasterClientOptions {
  endpoint: string;
  /** where the endpoint came from (flag, env, dev.json, default), for the error message */
  endpointFrom?: string;
  log: Logger;
  masterRetryWindowMs: number;
  masterRequestTimeoutMs: number;
  /** injected clock (tests); Date.now by default */
  now?: () => number;
}

export type JobStatus = MessageOf<'job_status_response'>;
export type TaskStatus = MessageOf<'task_status_response'>;

/** The job fields a submit carries (request_uuid and node_uuid are added here). */
export type JobSpec = Omit<MessageInput<'job_submit_request'>, 'type' | 'node_uuid' | 'request_uuid'>;

export class MasterClient {
  readonly nodeUuid = newUuid();
  private readonly rpc: RpcClient;
  private readonly now: () => number;

  constructor(readonly o: MasterClientOptions) {
    this.rpc = new RpcClient({ endpoint: o.endpoint, nodeUuid: this.nodeUuid, log: o.log });
    this.now = o.now ?? Date.now;
  }

  /** Sends `m` until an answer of type `expect` arrives or the retry window closes. */
  async call<N extends MessageName>(m: MessageInput, expect: N): Promise<MessageOf<N>> {
    const deadline = this.now() + this.o.masterRetryWindowMs;
    for (;;) {
      const left = deadline - this.now();
      // at least one full attempt, even with a zero window
      const timeoutMs = left > 0 ? Math.min(this.o.masterRequestTimeoutMs, Math.max(left, 50)) : this.o.masterRequestTimeoutMs;
      let r: Message;
      try {
        r = await this.rpc.request(m, { timeoutMs, retries: 0 });
      } catch (e) {
        const starting = e instanceof RemoteError && e.code === 'UNAVAILABLE';
        if (!(e instanceof TimeoutError) && !starting) throw e;
        if (this.now() >= deadline) throw this.noMaster(e as GridError);
        if (starting) await sleep(Math.min(UNAVAILABLE_BACKOFF_MS, Math.max(0, deadline - this.now())));
        continue;
      }
      if (r.type !== expect) throw new GridError('UNEXPECTED', `the master answered ${m.type} with ${r.type}, expected ${expect}`, 'client and master may be different versions');
      return r as MessageOf<N>;
    }
  }

  private noMaster(last: GridError): GridError {
    const from = this.o.endpointFrom ? ` (from ${this.o.endpointFrom})` : '';
    return new GridError(
      'UNAVAILABLE',
      `no master answers at ${this.o.endpoint}${from} after ${this.o.masterRetryWindowMs} ms; is \`grid dev\` (or \`grid master\`) running?`,
      'start it, or point the client at it with --master or GRID_MASTER',
      { cause: last },
    );
  }

  private base(): { node_uuid: string; request_uuid: string } {
    return { node_uuid: this.nodeUuid, request_uuid: newUuid() };
  }

  submit(spec: JobSpec): Promise<MessageOf<'job_submit_response'>> {
    return this.call({ type: 'job_submit_request', ...this.base(), ...spec } as MessageInput<'job_submit_request'>, 'job_submit_response');
  }

  jobStatus(jobUuid: string): Promise<JobStatus> {
    return this.call({ type: 'job_status_request', ...this.base(), job_uuid: jobUuid }, 'job_status_response');
  }

  async listJobs(limit: number): Promise<string[]> {
    const r = await this.call({ type: 'job_list_request', ...this.base(), limit }, 'job_list_response');
    return r.job_uuids;
  }

  taskStatus(jobUuid: string, taskIndex: number): Promise<TaskStatus> {
    return this.call({ type: 'task_status_request', ...this.base(), job_uuid: jobUuid, task_index: taskIndex }, 'task_status_response');
  }

  async cancel(jobUuid: string): Promise<void> {
    await this.call({ type: 'job_cancel_request', ...this.base(), job_uuid: jobUuid }, 'ack_reply');
  }

  close(): void {
    this.rpc.close();
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
