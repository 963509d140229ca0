/**
 * The client's side of the job_* requests (docs/architecture.md, "Submit" and "Replicated
 * masters"). Every request is re-sent with the SAME request_uuid (and a submit with the same
 * job_uuid) until a master that leads answers or `masterRetryWindowMs` has passed, so a
 * master that restarts, or a leader change, is applied once and the user never sees it.
 *
 * Which master is asked (MasterCursor, src/common/leader.ts):
 * - NOT_LEADER naming a leader: reconnect to it and re-send at once;
 * - NOT_LEADER `leader=unknown` (an election, or no quorum), or UNAVAILABLE (a master that is
 *   starting): pause, then ask the next master in the list (UNAVAILABLE: the same one). The
 *   pauses of one request back off: masterLeaderWaitMs doubled per pause up to
 *   masterLeaderWaitMaxMs, with equal jitter (src/common/backoff.ts), so the clients of a
 *   grid whose masters are electing do not all retry in step;
 * - a timeout (that master is dead or cut off): ask the next master in the list.
 */
import { Logger } from 'pino';
import { GridError, MasterCursor, RemoteError, RpcClient, Security, TimeoutError, backoffDelayMs, ensureReachable, leaderHint } from '../common';
import { Message, MessageInput, MessageName, MessageOf, newUuid } from '../messages';
import { CLIENT_DEFAULTS } from './config';

/** What a followable leader hint looks like (a master's client endpoint). */
const LEADER_HINT_RE = /^tcp:\/\/[^:/\s]+:\d{1,5}$/;

export interface MasterClientOptions {
  /** the master's endpoint, or every master of a replicated group (an array or a comma list) */
  endpoint: string | readonly string[];
  /** where the endpoint came from (flag, env, dev.json, default), for the error message */
  endpointFrom?: string;
  log: Logger;
  /** the client's key and trust dir (src/common/security.ts) */
  security: Security;
  masterRetryWindowMs: number;
  masterRequestTimeoutMs: number;
  /**
   * before the first request, some master must accept a TCP connection within this long,
   * else UNAVAILABLE names each endpoint tried (0 or absent = no check)
   */
  connectTimeoutMs?: number;
  /** how much of connectTimeoutMs is spent before the probe starts (the CLI: its start-up), ms */
  connectSpentMs?: () => number;
  /** first pause after NOT_LEADER with no known leader, or UNAVAILABLE; default CLIENT_DEFAULTS.masterLeaderWaitMs */
  masterLeaderWaitMs?: number;
  /** largest such pause (the backoff's cap); default CLIENT_DEFAULTS.masterLeaderWaitMaxMs */
  masterLeaderWaitMaxMs?: number;
  /** jitter source in [0, 1] (tests); Math.random by default */
  random?: () => number;
  /** injected clock (tests); Date.now by default */
  now?: () => number;
  /** injected sleep (tests); a real timer by default */
  sleep?: (ms: number) => Promise<void>;
}

/** job_status2_response: failed and cancelled tasks counted apart. */
export type JobStatus = MessageOf<'job_status2_response'>;
export type TaskStatus = MessageOf<'task_status_response'>;

/** The job fields a submit carries (request_uuid and node_uuid are added here). */
export type JobSpec = Omit<MessageInput<'job_submit_request'>, 'type' | 'node_uuid' | 'request_uuid'>;

/** Counts of how the client found its master, for tests and debug logs. */
export interface MasterClientStats {
  /** NOT_LEADER answers that named a leader (followed at once) */
  redirects: number;
  /** NOT_LEADER answers with no leader known (paused: masterLeaderWaitMs, backing off) */
  noLeader: number;
  /** attempts that timed out (moved on to the next master) */
  timeouts: number;
  /** new sockets opened after the first */
  reconnects: number;
}

export function masterList(endpoint: string | readonly string[]): string[] {
  return typeof endpoint === 'string'
    ? endpoint
        .split(',')
        .map((s) => s.trim())
        .filter((s) => s !== '')
    : [...endpoint];
}

export class MasterClient {
  readonly nodeUuid = newUuid();
  readonly stats: MasterClientStats = { redirects: 0, noLeader: 0, timeouts: 0, reconnects: 0 };
  private readonly cursor: MasterCursor;
  private rpc: RpcClient;
  /** the endpoint `rpc` is connected to (may be a leader outside the configured list) */
  private connected: string;
  private readonly now: () => number;
  private readonly sleep: (ms: number) => Promise<void>;
  private readonly pause: { baseMs: number; maxMs: number };
  private readonly random: () => number;
  /** the first request's reachability check, shared by requests sent in parallel */
  private reached?: Promise<void>;

  constructor(readonly o: MasterClientOptions) {
    this.cursor = new MasterCursor(masterList(o.endpoint));
    this.connected = this.cursor.current;
    this.rpc = this.connect(this.connected);
    this.now = o.now ?? Date.now;
    this.sleep = o.sleep ?? sleep;
    const baseMs = o.masterLeaderWaitMs ?? CLIENT_DEFAULTS.masterLeaderWaitMs;
    this.pause = { baseMs, maxMs: Math.max(baseMs, o.masterLeaderWaitMaxMs ?? CLIENT_DEFAULTS.masterLeaderWaitMaxMs) };
    this.random = o.random ?? Math.random;
  }

  /** The masters this client may ask, in order. */
  get endpoints(): readonly string[] {
    return this.cursor.endpoints;
  }

  /** The master the next request goes to. */
  get current(): string {
    return this.connected;
  }

  private connect(endpoint: string): RpcClient {
    return new RpcClient({ endpoint, nodeUuid: this.nodeUuid, log: this.o.log, security: this.o.security });
  }

  /**
   * Points the socket at `endpoint`. A DEALER connected to several masters would round-robin
   * between them, so a move closes the old socket and opens a new one.
   */
  private moveTo(endpoint: string): void {
    if (endpoint === this.connected) return;
    this.rpc.close();
    this.rpc = this.connect(endpoint);
    this.connected = endpoint;
    this.stats.reconnects++;
  }

  /** Sends `m` until an answer of type `expect` arrives or the retry window closes. */
  async call<N extends MessageName>(m: MessageInput, expect: N): Promise<MessageOf<N>> {
    this.reached ??= ensureReachable(
      this.cursor.endpoints.length === 1 ? 'master' : 'masters',
      this.cursor.endpoints,
      this.o.endpointFrom,
      this.o.connectTimeoutMs ?? 0,
      'is `grid dev` (or `grid master`) running? start it, or point the client at it with --master or GRID_MASTER',
      this.o.connectSpentMs?.() ?? 0,
    );
    await this.reached;
    const deadline = this.now() + this.o.masterRetryWindowMs;
    // redirects followed at once since the last pause; two followers naming each other (a
    // stale hint) must not spin, so after one round over the group the client waits too
    let hopsWithoutPause = 0;
    let lastNotLeader: RemoteError | undefined;
    // pauses taken by this request so far: the backoff's attempt number
    let pauses = 0;
    const pause = (left: number): Promise<void> => this.sleep(Math.min(backoffDelayMs(pauses++, this.pause, this.random), left));
    for (;;) {
      const left = deadline - this.now();
      // at least one full attempt, even with a zero window
      const timeoutMs = left > 0 ? Math.min(this.o.masterRequestTimeoutMs, Math.max(left, 50)) : this.o.masterRequestTimeoutMs;
      let r: Message;
      try {
        r = await this.rpc.request(m, { timeoutMs, retries: 0 });
      } catch (e) {
        const code = e instanceof RemoteError ? e.code : e instanceof TimeoutError ? 'TIMEOUT' : undefined;
        if (code !== 'NOT_LEADER' && code !== 'UNAVAILABLE' && code !== 'TIMEOUT') throw e;
        lastNotLeader = code === 'NOT_LEADER' ? (e as RemoteError) : code === 'TIMEOUT' ? lastNotLeader : undefined;
        if (this.now() >= deadline) throw this.noMaster(e as GridError, lastNotLeader);
        const waitLeft = (): number => Math.max(0, deadline - this.now());
        if (code === 'TIMEOUT') {
          this.stats.timeouts++;
          hopsWithoutPause = 0;
          this.moveTo(this.cursor.next());
        } else if (code === 'UNAVAILABLE') {
          await pause(waitLeft());
        } else {
          // a hint that is not a tcp:// endpoint is ignored: connecting to it would throw
          const raw = leaderHint((e as RemoteError).message);
          const hint = raw && LEADER_HINT_RE.test(raw) ? raw : undefined;
          if (hint && hint !== this.connected && hopsWithoutPause < this.cursor.endpoints.length) {
            this.stats.redirects++;
            hopsWithoutPause++;
            this.o.log.debug({ from: this.connected, to: hint, requestUuid: (m as { request_uuid?: string }).request_uuid }, 'master:redirect to the leader');
          } else {
            // no leader known (an election, or no quorum), or a hint we already followed
            this.stats.noLeader++;
            hopsWithoutPause = 0;
            await pause(waitLeft());
          }
          this.moveTo(hint && hint !== this.connected ? this.cursor.redirect(hint) : this.cursor.next());
        }
        continue;
      }
      if (r.type !== expect) throw new GridError('UNEXPECTED', `the master answered ${m.type} with ${r.type}, expected ${expect}`, 'client and master may be different versions');
      return r as MessageOf<N>;
    }
  }

  private noMaster(last: GridError, notLeader: RemoteError | undefined): GridError {
    const from = this.o.endpointFrom ? ` (from ${this.o.endpointFrom})` : '';
    const all = this.cursor.endpoints;
    if (notLeader) {
      const known = leaderHint(notLeader.message);
      return new GridError(
        'UNAVAILABLE',
        `no master leads: asked ${all.join(', ')}${from} for ${this.o.masterRetryWindowMs} ms and ${
          known ? `the masters kept pointing elsewhere (last: leader=${known})` : 'every master that answered knows no leader'
        }; no quorum? (a majority of the masters must be running and reach each other)`,
        'start the stopped masters (see `grid cluster`), or wait for the election to finish and try again',
        { cause: notLeader },
      );
    }
    const where = all.length === 1 ? `at ${all[0]}` : `at any of ${all.join(', ')}`;
    return new GridError(
      'UNAVAILABLE',
      `no master answers ${where}${from} after ${this.o.masterRetryWindowMs} ms; is \`grid dev\` (or \`grid master\`) running?`,
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
    return this.call({ type: 'job_status2_request', ...this.base(), job_uuid: jobUuid }, 'job_status2_response');
  }

  async listJobs(limit: number): Promise<string[]> {
    return (await this.listJobsWithOwners(limit)).map((j) => j.jobUuid);
  }

  /** The newest jobs with each one's owner key ('' = none recorded), asked with job_list2_request. */
  async listJobsWithOwners(limit: number): Promise<{ jobUuid: string; ownerKey: string }[]> {
    const r = await this.call({ type: 'job_list2_request', ...this.base(), limit }, 'job_list2_response');
    return r.job_uuids.map((jobUuid, i) => ({ jobUuid, ownerKey: r.owner_keys[i] ?? '' }));
  }

  taskStatus(jobUuid: string, taskIndex: number): Promise<TaskStatus> {
    return this.call({ type: 'task_status_request', ...this.base(), job_uuid: jobUuid, task_index: taskIndex }, 'task_status_response');
  }

  /** Asks the master leader to POST the job's final status to `url` when it ends. */
  async notify(jobUuid: string, url: string): Promise<void> {
    await this.call({ type: 'job_notify_request', ...this.base(), job_uuid: jobUuid, url }, 'ack_reply');
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
