/**
 * Prometheus metrics shared by every role (prom-client): one registry per node, served by
 * the admin server at GET /metrics (docs/operations.md "Metrics").
 *
 * Most values are read on scrape from state the node already keeps (its /status snapshot),
 * through gauges and counters with a `read` callback, so no protocol core carries metrics
 * code; only events that leave no trace in state (a latency, a finished task) are observed
 * where they happen, into histograms. Every name starts with `grid_`; every sample carries
 * the labels `role` and `node_id` (the node's persistent id), so a query can tell nodes
 * apart even behind one Prometheus `instance`.
 */
import type { Histogram, Registry } from 'prom-client';
import { assert } from './errors';
import { SOFTWARE_VERSION } from './version';
import type { ServerStats } from './zmq';

export const METRIC_PREFIX = 'grid_';

/** Latency buckets, seconds: from a millisecond hop to a task that waited minutes for a slot. */
export const LATENCY_BUCKETS_S = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];
/** Task run-time buckets, seconds: from a trivial task to the one-hour default timeout. */
export const DURATION_BUCKETS_S = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600];

/** One sample of a labelled metric: its label values and its value. */
export type Sample = [labels: Record<string, string>, value: number];
/** What a read callback returns: one unlabelled value, or samples (absent label sets vanish). */
export type Reading = number | Sample[];

export interface MetricsOptions {
  role: string;
  nodeId: string;
}

/**
 * prom-client, loaded when the first node creates its metrics: every CLI command imports
 * the role modules, and none of them needs it (it measured hundreds of ms to load on a busy
 * machine).
 */
function promClient(): typeof import('prom-client') {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return require('prom-client') as typeof import('prom-client');
}

export class NodeMetrics {
  readonly registry: Registry;

  constructor(readonly o: MetricsOptions) {
    const { Registry, collectDefaultMetrics } = promClient();
    this.registry = new Registry();
    this.registry.setDefaultLabels({ role: o.role, node_id: o.nodeId });
    // process_cpu_seconds_total, process_resident_memory_bytes, nodejs_eventloop_lag_seconds, ... all prefixed
    collectDefaultMetrics({ register: this.registry, prefix: METRIC_PREFIX });
    this.gauge('grid_build_info', 'always 1; the labels say the software version of this node', ['version'], () => [[{ version: SOFTWARE_VERSION }, 1]]);
  }

  /** A gauge whose value is read on every scrape. */
  gauge(name: string, help: string, labelNames: string[], read: () => Reading): void {
    checkName(name);
    const { Gauge } = promClient();
    new Gauge({
      name,
      help,
      labelNames,
      registers: [this.registry],
      collect() {
        this.reset();
        const r = read();
        if (typeof r === 'number') this.set(r);
        else for (const [labels, v] of r) this.set(labels, v);
      },
    });
  }

  /**
   * A counter read on every scrape from a count the node keeps anyway (monotonic while the
   * process lives; a restart starts it at 0 again, which Prometheus' rate() expects).
   */
  counter(name: string, help: string, labelNames: string[], read: () => Reading): void {
    checkName(name);
    assert(name.endsWith('_total'), `counter ${name} ends in _total`);
    const { Counter } = promClient();
    new Counter({
      name,
      help,
      labelNames,
      registers: [this.registry],
      collect() {
        this.reset();
        const r = read();
        if (typeof r === 'number') this.inc(Math.max(0, r));
        else for (const [labels, v] of r) this.inc(labels, Math.max(0, v));
      },
    });
  }

  /** A histogram observed where the event happens (in seconds). */
  histogram<L extends string>(name: string, help: string, labelNames: L[], buckets: number[]): Histogram<L> {
    checkName(name);
    const { Histogram } = promClient();
    return new Histogram<L>({ name, help, labelNames, buckets, registers: [this.registry] });
  }

  /**
   * The counts of an RpcServer (master, balancer and storage each serve one):
   * messages received, undecodable messages, and error replies by stable error code.
   */
  rpcServer(stats: () => ServerStats | undefined): void {
    this.counter('grid_rpc_messages_received_total', 'ZeroMQ messages this node received on its serving socket', [], () => stats()?.received ?? 0);
    this.counter('grid_rpc_decode_errors_total', 'messages that did not decode (hostile or broken peers); each got a DECODE_ERROR reply', [], () => stats()?.decodeErrors ?? 0);
    this.counter('grid_errors_total', 'error replies this node sent, by stable error code (docs/protocol.md "Error codes")', ['code'], () =>
      Object.entries(stats()?.errorsByCode ?? {}).map(([code, n]): Sample => [{ code }, n]),
    );
  }

  /** The exposition text (Prometheus text format 0.0.4). */
  text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}

function checkName(name: string): void {
  assert(name.startsWith(METRIC_PREFIX) && /^[a-z_][a-z0-9_]*$/.test(name), `metric ${name} is grid_-prefixed snake case`);
}

/** Counts of an object of named counters as samples with one label (e.g. event="retries"). */
export function countsAsSamples(label: string, counts: Record<string, number> | undefined): Sample[] {
  return Object.entries(counts ?? {})
    .filter(([, v]) => typeof v === 'number')
    .map(([k, v]): Sample => [{ [label]: snake(k) }, v]);
}

/** camelCase -> snake_case, for label values taken from status field names. */
export function snake(s: string): string {
  return s.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toLowerCase();
}
