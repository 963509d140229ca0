// A test DEALER that plays a balancer toward a master (real sockets), shared by the master's
// node and Raft-group tests.
import * as zmq from 'zeromq';
import { Message, MessageInput, MessageOf, NIL_UUID, PROTOCOL_VERSION, TaskOutcome, decode, encode, newUuid } from '../../src/messages';
import { testSecurity, watchedSocket } from './security';

/**
 * A test DEALER that plays a balancer the way the real one talks: balancer_hello (lease
 * request, renewal and credit in one) every RENEW_MS while `renewing`, holding whatever
 * epoch the master granted it. Waits are for conditions, never for fixed times.
 */
export const RENEW_MS = 50;
export class FakeBalancer {
  /** its node id (a restarted balancer keeps it: it is in its data dir) */
  readonly id: string;
  sock: zmq.Dealer;
  readonly inbox: Message[] = [];
  epoch = 0;
  seq = 0;
  /** how many more tasks it asks for beyond those received */
  room = 1000;
  /** when set, the credit_limit it sends (a balancer that holds every task it got: its limit stays put) */
  limit?: number;
  renewing = false;
  /** the CURVE handshake with the current master is done */
  up = false;
  private lastHelloMs = 0;
  protocol = PROTOCOL_VERSION;
  private timer?: NodeJS.Timeout;
  private chain: Promise<void> = Promise.resolve();
  constructor(
    private endpoint: string,
    readonly role: 'primary' | 'auxiliary' = 'primary',
    id = newUuid(),
  ) {
    this.id = id;
    this.sock = this.open(endpoint);
  }
  /** A CURVE DEALER authorized as a balancer; hellos wait for its handshake (queued ones would arrive in a burst). */
  private open(endpoint: string): zmq.Dealer {
    const { sock, handshake } = watchedSocket(testSecurity('balancers'), endpoint);
    this.up = false;
    this.chain = this.chain.then(() => handshake).then(() => {
      this.up = true;
    });
    void (async () => {
      try {
        for await (const frames of sock) {
          const m = decode(frames as Buffer[]);
          this.inbox.push(m);
          if (m.type === 'lease_grant' && m.epoch > this.epoch) this.epoch = m.epoch;
        }
      } catch {
        /* closed */
      }
    })();
    return sock;
  }
  get fed(): number {
    return this.inbox.filter((m) => m.type === 'task_dispatch' && m.epoch === this.epoch).length;
  }
  hello(): Promise<void> {
    this.chain = this.chain.then(() => {
      this.lastHelloMs = Date.now(); // when it leaves, not when it was queued behind the handshake
    });
    return this.send({ type: 'balancer_hello', node_uuid: this.id, protocol_version: this.protocol, role: this.role === 'primary' ? 0 : 1, epoch: this.epoch, request_seq: ++this.seq, fed: this.fed, credit_limit: this.limit ?? this.fed + this.room });
  }
  /** Starts saying hello every RENEW_MS (as the real balancer renews its lease). */
  renew(): this {
    this.renewing = true;
    void this.hello();
    this.timer ??= setInterval(() => {
      // at most one hello per RENEW_MS, counting the first one sent when the handshake ended
      if (this.renewing && this.up && Date.now() - this.lastHelloMs >= RENEW_MS) void this.hello();
    }, RENEW_MS);
    return this;
  }
  /** Sends are chained: a ZeroMQ socket takes one send at a time. */
  send(m: Parameters<typeof encode>[0]): Promise<void> {
    const frames = encode(m);
    this.chain = this.chain.then(() => this.sock.send(frames)).catch(() => undefined);
    return this.chain;
  }
  of<T extends Message['type']>(type: T): MessageOf<T>[] {
    return this.inbox.filter((m) => m.type === type) as MessageOf<T>[];
  }
  async waitFor<T extends Message['type']>(type: T, count = 1, ms = 10_000, pred: (m: MessageOf<T>) => boolean = () => true): Promise<MessageOf<T>[]> {
    const t0 = Date.now();
    for (;;) {
      const got = this.of(type).filter(pred);
      if (got.length >= count) return got;
      if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${count} ${type}, have ${got.length}`);
      await new Promise((r) => setTimeout(r, 10));
    }
  }
  /** Follows another master with a new DEALER, as the real balancer does (its CURVE identity is bound to the server); the id and epoch stay. */
  moveTo(endpoint: string): void {
    if (endpoint === this.endpoint) return;
    const old = this.sock;
    this.sock = this.open(endpoint);
    this.chain = this.chain.then(() => {
      if (!old.closed) old.close();
    });
    this.endpoint = endpoint;
  }
  /** The successful, final result of a task it was fed, under its epoch. */
  okResult(d: MessageOf<'task_dispatch'>): MessageInput<'task_result'> {
    return {
      type: 'task_result', node_uuid: this.id, job_uuid: d.job_uuid, worker_uuid: newUuid(), log_file_uuid: NIL_UUID, task_index: d.task_index, attempt: d.attempt,
      exit_code: 0, duration_ms: 1, outcome: TaskOutcome.ok, final: 1, output_file_uuids: [newUuid()], output_names: ['out'], error: '', log_tail: '', epoch: this.epoch,
    };
  }
  close() {
    clearInterval(this.timer);
    if (!this.sock.closed) this.sock.close();
  }
}

