// GET /metrics (docs/operations.md "Metrics"): the shared NodeMetrics helpers, then every
// node of a real `grid dev` after a real job, each exposition parsed by the Prometheus
// project's own text-format parser (prom-text.ts) and its values checked against the job.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { NodeMetrics, countsAsSamples, snake } from '../../src/common';
import { newUuid } from '../../src/messages';
import { EXAMPLES, Grid, startGrid, waitFor } from '../helpers/grid';
import { httpGet } from './http-get';
import { PromFamily, one, parsePrometheusText, samples, total } from './prom-text';

describe('metrics: NodeMetrics', () => {
  it('reads gauges and counters on scrape, drops label sets that vanished, and parses as text format', async () => {
    let jobs: [Record<string, string>, number][] = [
      [{ state: 'running' }, 2],
      [{ state: 'failed' }, 1],
    ];
    let events = 5;
    const m = new NodeMetrics({ role: 'test', nodeId: 'n1' });
    m.gauge('grid_test_jobs', 'jobs by state', ['state'], () => jobs);
    m.counter('grid_test_events_total', 'events', [], () => events);
    const h = m.histogram('grid_test_latency_seconds', 'latency', ['outcome'], [0.1, 1]);
    h.observe({ outcome: 'ok' }, 0.05);
    h.observe({ outcome: 'ok' }, 0.5);
    h.observe({ outcome: 'ok' }, 5);

    let f = parsePrometheusText(await m.text());
    assert.equal(one(f, 'grid_test_jobs', { state: 'running', role: 'test', node_id: 'n1' }), 2);
    assert.equal(one(f, 'grid_test_jobs', { state: 'failed' }), 1);
    assert.equal(one(f, 'grid_test_events_total'), 5);
    assert.equal(one(f, 'grid_test_latency_seconds_count', { outcome: 'ok' }), 3);
    assert.equal(one(f, 'grid_test_latency_seconds_bucket', { outcome: 'ok', le: '0.1' }), 1);
    assert.equal(one(f, 'grid_test_latency_seconds_bucket', { outcome: 'ok', le: '1' }), 2);
    assert.equal(one(f, 'grid_test_latency_seconds_sum', { outcome: 'ok' }), 5.55);
    assert.equal(one(f, 'grid_build_info'), 1);
    assert.ok(samples(f, 'grid_process_resident_memory_bytes').length === 1, 'default process metrics, prefixed');
    for (const fam of f) assert.match(fam.name, /^grid_/, `${fam.name} has the grid_ prefix`);

    jobs = [[{ state: 'running' }, 0]];
    events = 7;
    f = parsePrometheusText(await m.text());
    assert.equal(samples(f, 'grid_test_jobs', { state: 'failed' }).length, 0, 'a label set the read no longer returns is gone');
    assert.equal(one(f, 'grid_test_jobs', { state: 'running' }), 0);
    assert.equal(one(f, 'grid_test_events_total'), 7);
  });

  it('refuses names without the grid_ prefix and counters without _total', () => {
    const m = new NodeMetrics({ role: 'test', nodeId: 'n2' });
    assert.throws(() => m.gauge('jobs', 'x', [], () => 1), /grid_-prefixed/);
    assert.throws(() => m.counter('grid_events', 'x', [], () => 1), /_total/);
  });

  it('turns status counters into snake_case label values', () => {
    assert.equal(snake('settledOk'), 'settled_ok');
    assert.deepEqual(countsAsSamples('event', { tasksReceived: 3, note: 'x' as unknown as number }), [[{ event: 'tasks_received' }, 3]]);
  });

  it('the parser used here rejects text that is not exposition format (so the checks below can fail)', () => {
    assert.throws(() => parsePrometheusText('grid_x{state="a" 1\n'), /not valid Prometheus text format/);
  });
});

describe('metrics: /metrics on every node of a real grid dev', function () {
  this.timeout(180_000);
  const WORDCOUNT = path.join(EXAMPLES, 'wordcount');
  const DATA = path.join(WORDCOUNT, 'data');
  const inputs = (): string[] => fs.readdirSync(DATA).sort().map((f) => path.join(DATA, f));
  let g: Grid | undefined;
  after(async () => {
    await g?.stop();
  });

  async function scrape(name: string): Promise<PromFamily[]> {
    const r = await httpGet(g!.node(name).adminPort, '/metrics');
    assert.equal(r.status, 200, `${name} /metrics: ${r.body}`);
    assert.match(r.type, /^text\/plain; version=0\.0\.4/);
    const fams = parsePrometheusText(r.body);
    for (const f of fams) assert.match(f.name, /^grid_/, `${name}: ${f.name} has the grid_ prefix`);
    return fams;
  }

  it('counts the job, its tasks, latencies, slots, FUSE bytes, storage and errors by code', async () => {
    g = await startGrid({ workers: 2, slots: 2 });
    const files = inputs();
    const inputBytes = files.reduce((a, f) => a + fs.statSync(f).size, 0);
    const r = await g.run(['submit', path.join(WORDCOUNT, 'job.js'), '--inputs', ...files, '--wait']);
    assert.equal(r.code, 0, r.stderr);
    const taskCount = files.length; // chunk size 1
    // a request for a job that does not exist: one NOT_FOUND error reply from the master
    const missing = await g.run(['status', newUuid()]);
    assert.notEqual(missing.code, 0);

    // the results are committed before --wait returns; the counts are read on scrape
    let m: PromFamily[] = [];
    await waitFor(async () => {
      m = await scrape('master');
      return one(m, 'grid_raft_apply_lag') === 0 && total(m, 'grid_master_task_latency_seconds_count') === taskCount;
    }, 'the master to have applied every result');
    assert.equal(one(m, 'grid_tasks', { state: 'succeeded', role: 'master' }), taskCount, 'tasks succeeded == the job\'s task count');
    assert.equal(one(m, 'grid_tasks', { state: 'failed' }), 0);
    assert.equal(one(m, 'grid_tasks', { state: 'pending' }) + one(m, 'grid_tasks', { state: 'running' }), 0);
    assert.equal(one(m, 'grid_jobs', { state: 'succeeded' }), 1);
    assert.equal(one(m, 'grid_jobs', { state: 'running' }), 0);
    assert.equal(one(m, 'grid_raft_is_leader'), 1);
    assert.ok(one(m, 'grid_raft_term') >= 1);
    assert.equal(one(m, 'grid_raft_commit_index'), one(m, 'grid_raft_applied_index'));
    assert.equal(one(m, 'grid_master_balancer_connected'), 1);
    assert.equal(one(m, 'grid_master_dispatch_latency_seconds_count'), taskCount, 'one dispatch latency per started task');
    assert.equal(one(m, 'grid_master_task_latency_seconds_count', { outcome: 'ok' }), taskCount);
    assert.equal(one(m, 'grid_master_task_latency_seconds_bucket', { outcome: 'ok', le: '+Inf' }), taskCount);
    assert.equal(one(m, 'grid_master_events_total', { event: 'submitted' }), 1);
    assert.equal(one(m, 'grid_errors_total', { code: 'NOT_FOUND' }), 1, 'the unknown job was refused once with NOT_FOUND');
    assert.ok(one(m, 'grid_rpc_messages_received_total') > taskCount);

    const workers = await Promise.all(['worker-0', 'worker-1'].map(scrape));
    const sum = (name: string, match: Record<string, string> = {}): number => workers.reduce((a, w) => a + total(w, name, match), 0);
    assert.equal(sum('grid_worker_events_total', { event: 'ok' }), taskCount, 'every task ran once, on some worker');
    assert.equal(sum('grid_worker_task_duration_seconds_count', { outcome: 'ok' }), taskCount);
    assert.ok(sum('grid_fuse_read_bytes_total') >= inputBytes, `the programs read their ${inputBytes} input bytes through FUSE (read ${sum('grid_fuse_read_bytes_total')})`);
    assert.equal(sum('grid_fuse_read_errors_total'), 0);
    for (const w of workers) {
      assert.equal(one(w, 'grid_worker_slots', { kind: 'run' }), 2);
      assert.equal(one(w, 'grid_worker_tasks', { state: 'running' }), 0);
    }

    const b = await scrape('balancer');
    assert.equal(one(b, 'grid_balancer_master_connected'), 1);
    assert.equal(one(b, 'grid_balancer_worker_slots', { kind: 'total' }), 4);
    assert.equal(one(b, 'grid_balancer_worker_slots', { kind: 'busy' }), 0);
    assert.equal(total(b, 'grid_balancer_workers'), 2);
    assert.equal(one(b, 'grid_balancer_events_total', { event: 'settled_ok' }), taskCount);
    assert.equal(one(b, 'grid_balancer_tasks', { state: 'queued' }), 0);

    const s = await scrape('storage');
    assert.ok(one(s, 'grid_storage_files') >= files.length + 1, 'the inputs and the program are stored');
    assert.ok(one(s, 'grid_storage_bytes', { kind: 'stored' }) >= inputBytes);
    assert.ok(one(s, 'grid_storage_bytes', { kind: 'quota' }) > 0);
    assert.equal(one(s, 'grid_storage_corrupt_chunks'), 0);
    assert.ok(one(s, 'grid_storage_requests_total', { type: 'file_put_request' }) >= 1);
  });
});
