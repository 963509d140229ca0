// The `grid` command as a user meets it, as real processes: bad arguments and missing files
// give one clear line and exit 1 (never a stack trace); no master gives a clear error after
// the (shortened) retry window; `grid init` writes a config the role accepts.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { parseJsonc } from '../../src/common';
import { loadMasterConfig } from '../../src/master';
import { EXAMPLES, RunResult, freePort, makeTmpDir, runGrid } from '../helpers/grid';

/** One line on stderr, exit 1, and no stack trace. */
function oneLineError(r: RunResult, re: RegExp): void {
  assert.equal(r.code, 1, `exit code; stderr: ${r.stderr}`);
  assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
  assert.match(r.stderr, re);
}

describe('cli: grid commands as processes (bad input)', function () {
  let tmp: string;
  let noMaster: NodeJS.ProcessEnv;
  before(async () => {
    tmp = makeTmpDir();
    // nobody listens on these ports, and no dev.json in the data dir
    // the retry-window path is what this file checks; the fast connect check (GRID_CONNECT_TIMEOUT_MS) is off here and tested in polish.test.ts
    noMaster = { GRID_MASTER: `tcp://127.0.0.1:${await freePort()}`, GRID_STORAGE: `tcp://127.0.0.1:${await freePort()}`, GRID_MASTER_RETRY_WINDOW_MS: '600', GRID_DATA_DIR: tmp, GRID_CONNECT_TIMEOUT_MS: '0' };
  });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  const job = path.join(EXAMPLES, 'wordcount', 'job.js');
  const data = path.join(EXAMPLES, 'wordcount', 'data', 'alice.txt');

  it('submit: a missing input file is named before anything is sent', async () => {
    const r = await runGrid(['submit', job, '--inputs', data, path.join(tmp, 'missing.txt')], { env: noMaster });
    oneLineError(r, /^grid: INPUT_UNREADABLE: cannot read input file .*missing\.txt: it does not exist/);
    assert.equal(r.stderr.trim().split('\n').length, 1);
  });

  it('submit: a missing program is named', async () => {
    oneLineError(await runGrid(['submit', path.join(tmp, 'job.js'), '--inputs', data], { env: noMaster }), /cannot read program .*job\.js/);
  });

  it('submit: a folder as input is refused', async () => {
    oneLineError(await runGrid(['submit', job, '--inputs', tmp], { env: noMaster }), /is not a regular file/);
  });

  it('submit: no inputs, and bad numbers, are refused', async () => {
    oneLineError(await runGrid(['submit', job], { env: noMaster }), /no input files given.*--inputs/);
    oneLineError(await runGrid(['submit', job, '--inputs', data, '--chunk-size', '0'], { env: noMaster }), /--chunk-size must be an integer from 1/);
    oneLineError(await runGrid(['submit', job, '--inputs', data, '--task-timeout', 'never'], { env: noMaster }), /--task-timeout/);
  });

  it('unknown commands and options exit 1 with usage help', async () => {
    const a = await runGrid(['frobnicate'], { env: noMaster });
    assert.equal(a.code, 1);
    assert.match(a.stderr, /unknown command 'frobnicate'/);
    const b = await runGrid(['status', '--bogus'], { env: noMaster });
    assert.equal(b.code, 1);
    assert.match(b.stderr, /unknown option '--bogus'/);
  });

  it('a malformed job id or endpoint is refused without waiting', async () => {
    oneLineError(await runGrid(['status', 'not-a-job!'], { env: noMaster }), /is not a job id/);
    oneLineError(await runGrid(['jobs', '--master', 'localhost'], { env: noMaster }), /--master must be an endpoint like tcp:\/\/127\.0\.0\.1:7700/);
    oneLineError(await runGrid(['jobs'], { env: { ...noMaster, GRID_MASTER_RETRY_WINDOW_MS: 'x' } }), /GRID_MASTER_RETRY_WINDOW_MS must be an integer/);
  });

  it('results: refuses to run without --out', async () => {
    oneLineError(await runGrid(['results', '123e4567-e89b-42d3-a456-426614174000'], { env: noMaster }), /no output folder given.*--out DIR/);
  });

  it('no master: status, jobs and cancel fail after the retry window with a clear line', async () => {
    for (const args of [['jobs'], ['status'], ['status', '123e4567-e89b-42d3-a456-426614174000'], ['cancel', '123e4567-e89b-42d3-a456-426614174000']]) {
      const r = await runGrid(args, { env: noMaster });
      oneLineError(r, new RegExp(`no master answers at ${noMaster.GRID_MASTER} \\(from GRID_MASTER\\) after 600 ms; is \`grid dev\` \\(or \`grid master\`\\) running\\?`));
    }
  });

  it('no storage: submit fails with a clear line naming the storage endpoint', async () => {
    const r = await runGrid(['submit', job, '--inputs', data], { env: { ...noMaster, GRID_STORAGE_REQUEST_TIMEOUT_MS: '200', GRID_STORAGE_RETRIES: '1' } });
    oneLineError(r, new RegExp(`no storage node answers at ${noMaster.GRID_STORAGE} \\(from GRID_STORAGE\\); is \`grid dev\` \\(or \`grid storage\`\\) running\\?`));
  });

  it('init: writes a commented sample config the role accepts, and will not overwrite it', async () => {
    const out = path.join(tmp, 'conf', 'master.json');
    const r = await runGrid(['init', '--role', 'master', '--out', out]);
    assert.equal(r.code, 0, r.stderr);
    const text = fs.readFileSync(out, 'utf8');
    assert.match(text, /^\/\/ /m, 'has comments');
    const cfg = loadMasterConfig({}, out);
    assert.equal(cfg.bind, 'tcp://127.0.0.1:7700');
    assert.deepEqual(Object.keys(parseJsonc(text, out)).sort(), Object.keys(cfg).sort());
    oneLineError(await runGrid(['init', '--role', 'master', '--out', out]), /already exists.*--force/);
    assert.equal((await runGrid(['init', '--role', 'master', '--out', out, '--force'])).code, 0);
  });

  it('init: prints to stdout without --out; an unknown role is named', async () => {
    const r = await runGrid(['init', '--role', 'master']);
    assert.equal(r.code, 0);
    assert.match(r.stdout, /"bind": "tcp:\/\/127\.0\.0\.1:7700"/);
    oneLineError(await runGrid(['init', '--role', 'wizard']), /unknown role "wizard".*master, balancer, storage, worker/);
    oneLineError(await runGrid(['init']), /no role given/);
  });
});
