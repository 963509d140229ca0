// The admin HTTP server every node runs (src/common/admin.ts; docs/operations.md "Health
// and status", "Metrics"): /healthz, /status, /metrics, a role's own routes, and clear
// answers to what it does not serve.
import assert from 'node:assert/strict';
import { AdminServer, GridError, NodeMetrics } from '../../src/common';
import { httpGet } from './http-get';
import { parsePrometheusText, one } from './prom-text';

describe('common AdminServer', () => {
  let admin: AdminServer | undefined;
  afterEach(async () => {
    await admin?.close();
    admin = undefined;
  });

  it('serves /healthz, /status, /metrics and routes; refuses the rest with what to try', async () => {
    let healthy: string | null = null;
    const m = new NodeMetrics({ role: 'test', nodeId: 'admin-test' });
    m.gauge('grid_test_value', 'a value', [], () => 42);
    admin = new AdminServer({
      host: '127.0.0.1',
      port: 0,
      health: () => healthy,
      status: () => ({ role: 'test' }),
      metrics: m,
      routes: [
        (p) => (p === '/hello' ? { status: 200, type: 'text/plain', body: 'hi\n' } : undefined),
        (p, q) => {
          if (p !== '/echo') return undefined;
          if (!q.get('n')) throw new GridError('BAD_REQUEST', '?n= is missing');
          return { status: 200, type: 'application/json', body: JSON.stringify({ n: q.get('n') }) };
        },
        (p) => {
          if (p === '/boom') throw new Error('route bug');
          return undefined;
        },
      ],
    });
    const port = await admin.start();

    assert.deepEqual(await httpGet(port, '/healthz'), { status: 200, type: 'text/plain', body: 'ok\n' });
    healthy = 'disk full';
    assert.equal((await httpGet(port, '/healthz')).status, 503);
    assert.equal(JSON.parse((await httpGet(port, '/status')).body).role, 'test');

    const metrics = await httpGet(port, '/metrics');
    assert.equal(metrics.status, 200);
    assert.match(metrics.type, /^text\/plain; version=0\.0\.4/);
    assert.equal(one(parsePrometheusText(metrics.body), 'grid_test_value', { role: 'test', node_id: 'admin-test' }), 42);

    assert.equal((await httpGet(port, '/hello')).body, 'hi\n');
    assert.equal(JSON.parse((await httpGet(port, '/echo?n=3')).body).n, '3');
    const bad = await httpGet(port, '/echo');
    assert.equal(bad.status, 400);
    assert.match(bad.body, /\?n= is missing/);
    const boom = await httpGet(port, '/boom');
    assert.equal(boom.status, 500);
    assert.match(boom.body, /route bug/);
    const none = await httpGet(port, '/nope');
    assert.equal(none.status, 404);
    assert.match(none.body, /no such path \/nope; try \/healthz, \/status, \/metrics/);
  });
});
