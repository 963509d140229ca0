// Balancer configuration: the sample file loads to the defaults; bad values stop the start
// with CONFIG_INVALID naming the setting (docs/balancer.md, "Configuration").
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { BALANCER_DEFAULTS, loadBalancerConfig, masterEndpoints, sampleConfig } from '../../src/balancer';
import { GridError } from '../../src/common';

describe('balancer config', () => {
  let dir: string;
  beforeEach(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), 'grid-balancer-cfg-'))));
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('the sample config (with // comments) loads to exactly the defaults', () => {
    const file = path.join(dir, 'balancer.json');
    fs.writeFileSync(file, sampleConfig());
    const c = loadBalancerConfig({}, file);
    assert.deepEqual(c, { ...BALANCER_DEFAULTS, dataDir: path.resolve(BALANCER_DEFAULTS.dataDir) });
  });

  it('flags override the file; numbers given as strings are converted', () => {
    const file = path.join(dir, 'balancer.json');
    fs.writeFileSync(file, '{ "adminPort": 9000, "livenessMissed": 5 }');
    const c = loadBalancerConfig({ adminPort: '0' }, file);
    assert.equal(c.adminPort, 0);
    assert.equal(c.livenessMissed, 5);
  });

  it('takes one master or a comma list (spaces allowed), kept as the string given', () => {
    assert.equal(loadBalancerConfig({ master: 'tcp://10.0.0.1:7700' }).master, 'tcp://10.0.0.1:7700');
    const list = 'tcp://10.0.0.1:7700, tcp://10.0.0.2:7700,tcp://10.0.0.3:7700';
    assert.equal(loadBalancerConfig({ master: list }).master, list);
    assert.deepEqual(masterEndpoints(list), ['tcp://10.0.0.1:7700', 'tcp://10.0.0.2:7700', 'tcp://10.0.0.3:7700']);
  });

  const bad: [string, Record<string, unknown>, RegExp][] = [
    ['an unknown setting', { heartbeatMs: 5 }, /unknown setting "heartbeatMs"/],
    ['a bad endpoint', { master: 'localhost:7700' }, /setting master must be an endpoint/],
    ['a bad endpoint in a master list', { master: 'tcp://127.0.0.1:7700, tcp//b:7700' }, /setting master must be an endpoint like tcp:\/\/127\.0\.0\.1:7700, got "tcp\/\/b:7700"/],
    ['a master list of only commas', { master: ' , ,' }, /setting master names no endpoint/],
    ['a master listed twice', { master: 'tcp://a:7700,tcp://a:7700' }, /setting master lists tcp:\/\/a:7700 twice/],
    ['a negative task deadline slack', { taskDeadlineSlackMs: -1 }, /taskDeadlineSlackMs must be an integer from 0/],
    ['a zero default task timeout', { defaultTaskTimeoutMs: 0 }, /defaultTaskTimeoutMs must be an integer from 1/],
    ['a zero liveness', { livenessMissed: 0 }, /livenessMissed must be an integer from 2/],
    ['backoff max below base', { retryBackoffBaseMs: 2000, retryBackoffMaxMs: 1000 }, /retryBackoffMaxMs \(1000\) must be at least retryBackoffBaseMs/],
    ['a ticker slower than heartbeats', { tickMs: 1000, leaseRenewMs: 2000 }, /tickMs \(1000\) must be below heartbeatIntervalMs/],
    ['a ticker slower than lease renewals', { tickMs: 200 }, /tickMs \(200\) must not exceed leaseRenewMs \(50\)/],
    ['an unknown pair role', { role: 'secondary' }, /role must be "primary" or "auxiliary"/],
    ['a non-integer bound', { maxQueuedTasks: 1.5 }, /maxQueuedTasks must be an integer/],
  ];
  for (const [what, file, re] of bad) {
    it(`refuses ${what} with CONFIG_INVALID`, () => {
      const f = path.join(dir, 'c.json');
      fs.writeFileSync(f, JSON.stringify(file));
      assert.throws(
        () => loadBalancerConfig({}, f),
        (e: unknown) => e instanceof GridError && e.code === 'CONFIG_INVALID' && re.test(e.message),
      );
    });
  }
});
