// Many hosts on one machine (docs/operations.md, "Many hosts"): a grid spread over three
// network namespaces (storage + master, balancer, worker) joined by veth pairs on a bridge,
// real TCP between them, and a client in a fourth namespace that submits, waits and fetches
// results; the results equal the same program run locally. Binds are the hosts' own
// addresses, so the test also shows that nothing rides on a shared loopback.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { EXAMPLES, GRID_BIN, makeTmpDir } from '../helpers/grid';
import { assertResultsFolder, localOutputs } from '../helpers/exactly-once';
import { Host, HostProc, NetHarness, netnsProblem } from '../helpers/netns';
import { describeIf } from '../helpers/requires';

const WORDCOUNT = path.join(EXAMPLES, 'wordcount', 'job.js');
const DATA = path.join(EXAMPLES, 'wordcount', 'data');
const READY = /GRID_READY (\{.*\})\n/;

const problem = netnsProblem();

describeIf(problem, 'e2e: a grid over network namespaces (real TCP between hosts)', function () {
  this.timeout(180_000);
  let net: NetHarness | undefined;
  let tmp: string;
  let client: Host;
  let masterEp: string;
  let storageEp: string;
  const nodes: HostProc[] = [];

  /** Starts `grid <args>` on host h and waits for its GRID_READY line. */
  async function node(h: Host, args: string[]): Promise<Record<string, unknown>> {
    const p = net!.spawn(h, process.execPath, [GRID_BIN, ...args]);
    nodes.push(p);
    const m = await p.waitFor(READY, 30_000);
    return JSON.parse(m[1]!) as Record<string, unknown>;
  }
  /** The grid CLI on the client host, pointed at the grid by environment only. */
  const cli = (args: string[], env: NodeJS.ProcessEnv = {}) =>
    net!.run(client, process.execPath, [GRID_BIN, ...args], { PATH: process.env.PATH, HOME: tmp, GRID_MASTER: masterEp, GRID_STORAGE: storageEp, GRID_TRUST_DIR: process.env.GRID_TRUST_DIR, ...env });

  before(async () => {
    tmp = makeTmpDir('grid-multihost-');
    net = new NetHarness(4);
    const [a, b, w, c] = net.hosts as [Host, Host, Host, Host];
    client = c;
    masterEp = `tcp://${a.addr}:7700`;
    storageEp = `tcp://${a.addr}:7702`;
    await node(a, ['storage', '--data-dir', path.join(tmp, 'storage'), '--bind', storageEp, '--admin-port', '0']);
    await node(a, ['master', '--data-dir', path.join(tmp, 'master'), '--bind', masterEp, '--admin-port', '0']);
    await node(b, ['balancer', '--data-dir', path.join(tmp, 'balancer'), '--bind', `tcp://${b.addr}:7701`, '--master', masterEp, '--admin-port', '0']);
    await node(w, ['worker', '--data-dir', path.join(tmp, 'worker'), '--balancer', `tcp://${b.addr}:7701`, '--storage', storageEp, '--slots', '2', '--admin-port', '0']);
  });

  after(async () => {
    if (net) {
      const tag = net.tag;
      await net.destroy();
      const left = net.leftovers();
      assert.deepEqual(left, [], `namespaces of run ${tag} left behind`);
    }
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('each host has only its own address: the client cannot reach the master on its loopback', async () => {
    const r = await cli(['jobs'], { GRID_MASTER: 'tcp://127.0.0.1:7700', GRID_CONNECT_TIMEOUT_MS: '1000' });
    assert.notEqual(r.code, 0, r.stdout);
    assert.match(r.stderr, /127\.0\.0\.1:7700/);
  });

  it('a client on a fourth host submits wordcount, waits, and gets the results of a local run', async () => {
    const inputs = fs
      .readdirSync(DATA)
      .sort()
      .slice(0, 3)
      .map((f) => path.join(DATA, f));
    const sub = await cli(['submit', WORDCOUNT, '--inputs', ...inputs, '--wait']);
    assert.equal(sub.code, 0, sub.stdout + sub.stderr + nodes.map((n) => n.output()).join('\n'));
    const id = /([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})/.exec(sub.stdout + sub.stderr)![1]!;
    const out = path.join(tmp, 'results');
    const res = await cli(['results', id, '--out', out]);
    assert.equal(res.code, 0, res.stdout + res.stderr);
    assertResultsFolder(out, await localOutputs(WORDCOUNT, inputs, { jobId: id }));
    const jobs = await cli(['jobs']);
    assert.match(jobs.stdout, new RegExp(id.slice(0, 8)));
  });

  it('a client on the fourth host whose key is authorized for nothing is refused at once, by name', async () => {
    const keys = path.join(tmp, 'intruder-keys');
    const made = await cli(['keys', 'create', '--out', keys, '--name', 'intruder']);
    assert.equal(made.code, 0, made.stdout + made.stderr);
    const r = await cli(['jobs'], { GRID_CLIENT_KEY: path.join(keys, 'intruder.key') });
    assert.notEqual(r.code, 0, r.stdout);
    assert.match(r.stderr, /not authorized/i);
    assert.doesNotMatch(r.stderr, /timed out|timeout/i);
  });
});
