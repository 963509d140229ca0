/**
 * CLI polish of issue 11, each on a real `grid` process: fast connection failures, and (in
 * the later describe blocks) pipes, --out checks, exit codes, listings and completion.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { EXAMPLES, RunResult, freePort, makeTmpDir, runGrid } from '../helpers/grid';

export function oneLineError(r: RunResult, re: RegExp): void {
  assert.equal(r.code, 1, `exit 1 expected, got ${r.code}; stderr:\n${r.stderr}`);
  const lines = r.stderr.split('\n').filter((l) => l !== '');
  assert.equal(lines.length, 1, `one line on stderr, got:\n${r.stderr}`);
  assert.match(lines[0]!, re);
}

describe('cli polish: connection failures are reported at once, naming what was tried', function () {
  this.timeout(60_000);
  let tmp: string;
  // a retry window of 10 minutes: only the connect check can end these commands in time
  const slowWindow = { GRID_MASTER_RETRY_WINDOW_MS: '600000', GRID_STORAGE_REQUEST_TIMEOUT_MS: '600000' };
  before(() => {
    tmp = makeTmpDir();
  });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('no master: jobs names the endpoint, where it came from and why (connection refused)', async () => {
    const ep = `tcp://127.0.0.1:${await freePort()}`;
    const r = await runGrid(['jobs'], { env: { ...slowWindow, GRID_MASTER: ep, GRID_DATA_DIR: tmp } });
    oneLineError(r, new RegExp(`^grid: UNAVAILABLE: cannot connect to the master \\(from GRID_MASTER\\) within 1500 ms: tried ${ep}: connection refused .*is \`grid dev\``));
  });

  it('a wrong --master list: every endpoint is named with its own reason', async () => {
    const ep = `tcp://127.0.0.1:${await freePort()}`;
    const r = await runGrid(['status', '--master', `${ep},tcp://no-such-host.invalid:7700`], { env: { ...slowWindow, GRID_DATA_DIR: tmp, GRID_CONNECT_TIMEOUT_MS: '800' } });
    oneLineError(r, new RegExp(`cannot connect to the masters \\(from --master\\) within 800 ms: tried ${ep}: connection refused.*; tcp://no-such-host\\.invalid:7700: unknown host`));
  });

  it('no storage: submit says so before any upload, naming the storage endpoint', async () => {
    const ep = `tcp://127.0.0.1:${await freePort()}`;
    const job = path.join(EXAMPLES, 'wordcount', 'job.js');
    const r = await runGrid(['submit', job, '--inputs', job], { env: { ...slowWindow, GRID_STORAGE: ep, GRID_MASTER: `tcp://127.0.0.1:${await freePort()}`, GRID_DATA_DIR: tmp } });
    oneLineError(r, new RegExp(`cannot connect to the storage node \\(from GRID_STORAGE\\) within 1500 ms: tried ${ep}: connection refused`));
  });

  it('GRID_CONNECT_TIMEOUT_MS is checked like every setting', async () => {
    const r = await runGrid(['jobs'], { env: { GRID_CONNECT_TIMEOUT_MS: 'fast', GRID_DATA_DIR: tmp } });
    oneLineError(r, /GRID_CONNECT_TIMEOUT_MS must be an integer from 0 to 600000/);
  });
});
