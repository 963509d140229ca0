// The nodes the dashboard shows (src/master/cluster-view.ts; docs/operations.md
// "Dashboard"): asked over real HTTP, from a dev.json and an address list; a node that is
// down, silent or dead per dev.json is shown with the reason, and one round is shared.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import { AddressInfo } from 'node:net';
import path from 'node:path';
import { ClusterView, NODES_CACHE_MS } from '../../src/master/cluster-view';
import { freePort, makeTmpDir } from '../helpers/grid';

function serve(handler: http.RequestListener): Promise<{ port: number; server: http.Server }> {
  const server = http.createServer(handler);
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ port: (server.address() as AddressInfo).port, server })));
}

describe('master ClusterView', () => {
  const servers: http.Server[] = [];
  let tmp: string;
  let asks = 0;
  before(() => (tmp = makeTmpDir('grid-cluster-view-')));
  after(async () => {
    for (const s of servers) {
      s.closeAllConnections();
      await new Promise((r) => s.close(r));
    }
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('asks each node once per round and says why a node is missing', async () => {
    const ok = await serve((_req, res) => {
      asks++;
      res.end(JSON.stringify({ role: 'worker', nodeId: 'w1', slots: 2 }));
    });
    const silent = await serve(() => undefined); // never answers
    const broken = await serve((_req, res) => res.end('not json'));
    servers.push(ok.server, silent.server, broken.server);
    const closed = await freePort();
    const file = path.join(tmp, 'dev.json');
    fs.writeFileSync(
      file,
      JSON.stringify({
        nodes: [
          { name: 'worker-0', role: 'worker', adminPort: ok.port, state: 'running' },
          { name: 'worker-1', role: 'worker', adminPort: silent.port, state: 'running' },
          { name: 'balancer', role: 'balancer', adminPort: 9, state: 'dead' },
        ],
      }),
    );
    const v = new ClusterView({ nodes: `127.0.0.1:${broken.port},127.0.0.1:${closed},127.0.0.1:${ok.port}`, nodesFile: file, timeoutMs: 300 });
    const a = await v.answers(1_000_000);
    const by = (name: string) => a.find((x) => x.name === name)!;
    assert.deepEqual(a.map((x) => x.name), ['worker-0', 'worker-1', 'balancer', `127.0.0.1:${broken.port}`, `127.0.0.1:${closed}`], 'the file first, then the list, each address once');
    assert.equal(by('worker-0').reachable, true);
    assert.equal(by('worker-0').status?.slots, 2);
    assert.match(by('worker-1').error!, /no answer from 127\.0\.0\.1:\d+ within 300 ms/);
    assert.match(by('balancer').error!, /grid dev says it is dead/);
    assert.match(by(`127.0.0.1:${broken.port}`).error!, /not JSON/);
    assert.match(by(`127.0.0.1:${closed}`).error!, /ECONNREFUSED/);
    assert.equal(asks, 1);
    await v.answers(1_000_000 + NODES_CACHE_MS - 1);
    assert.equal(asks, 1, 'a second request within the cache time shares the round');
    await v.answers(1_000_000 + NODES_CACHE_MS);
    assert.equal(asks, 2);
  });

  it('a dev.json not written yet is no error; no settings means not configured', async () => {
    const v = new ClusterView({ nodes: '', nodesFile: path.join(tmp, 'missing.json'), timeoutMs: 300 });
    assert.deepEqual(await v.answers(0), []);
    assert.equal(new ClusterView({ nodes: '', nodesFile: '', timeoutMs: 300 }).configured, false);
  });
});
