/**
 * CLI polish of issue 11, each on a real `grid` process: fast connection failures, and (in
 * the later describe blocks) pipes, --out checks, exit codes, listings and completion.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import { relativeTime, shownTime } from '../../src/cli/format';
import { oneLineError } from './oneline';
import { EXAMPLES, Grid, RunResult, freePort, makeTmpDir, runGrid, startGrid, waitFor } from '../helpers/grid';
import { skipBecause } from '../helpers/requires';

/**
 * Drives a real interactive zsh through zsh/zpty: compinit, the script under test, then a
 * line and TAB. compadd is wrapped to write each match it adds to OUT (calls that only filter,
 * with -O/-A/-D, pass through); the TAB widget writes zsh's own match count to OUT.done when
 * the completion has run. Usage: zsh -f complete.zsh SCRIPT OUT LINE
 */
const ZSH_HARNESS = `zmodload zsh/zpty || exit 3
script=$1 out=$2 line=$3
rm -f $out $out.done
zpty gridtest zsh -f -i
zpty -w gridtest "PS1='> '; autoload -U compinit; compinit -u -D"
zpty -w gridtest "compadd() { if (( \\\${@[(I)-[OAD]]} )); then builtin compadd \\"\\$@\\"; return; fi; local -a __grid_got; builtin compadd -O __grid_got \\"\\$@\\"; (( \\$#__grid_got )) && print -rl -- \\$__grid_got >> \${(q)out}; builtin compadd \\"\\$@\\"; }"
zpty -w gridtest "_grid_capture() { _main_complete; print -r -- \\$compstate[nmatches] > \${(q)out}.done; }; zle -C grid-capture complete-word _grid_capture; bindkey '^I' grid-capture"
zpty -w gridtest "source \${(q)script}"
zpty -w -n gridtest "$line"$'\\t'
# wait for the widget to have run (bounded: 10 s)
for i in {1..200}; do [[ -e $out.done ]] && break; sleep 0.05; done
zpty -d gridtest
[[ -e $out.done ]] || { print -u2 "zsh ran no completion for: $line"; exit 2; }
`;

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
    const r = await runGrid(['status', '--master', `${ep},tcp://no-such-host.invalid:7700`], { env: { ...slowWindow, GRID_DATA_DIR: tmp, GRID_CONNECT_TIMEOUT_MS: '5000' } });
    oneLineError(r, new RegExp(`cannot connect to the masters \\(from --master\\) within 5000 ms: tried ${ep}: connection refused.*; tcp://no-such-host\\.invalid:7700: unknown host`));
  });

  it('no storage: submit says so before any upload, naming the storage endpoint', async () => {
    const ep = `tcp://127.0.0.1:${await freePort()}`;
    const job = path.join(EXAMPLES, 'wordcount', 'job.js');
    const r = await runGrid(['submit', job, '--inputs', job], { env: { ...slowWindow, GRID_STORAGE: ep, GRID_MASTER: `tcp://127.0.0.1:${await freePort()}`, GRID_DATA_DIR: tmp } });
    oneLineError(r, new RegExp(`cannot connect to the storage node \\(from GRID_STORAGE\\) within 1500 ms: tried ${ep}: connection refused`));
  });

  it('a wrong --master port where something else listens is told apart at once (HTTP, a silent port)', async () => {
    const http = await import('node:http');
    const net = await import('node:net');
    const web = http.createServer((_q, r) => r.end('hi'));
    // a silent port: accepts and never answers; its sockets are destroyed at the end (a paused
    // socket never sees the client's FIN, so it would stay open and keep mocha alive)
    const accepted = new Set<import('node:net').Socket>();
    const silent = net.createServer((s) => void accepted.add(s));
    await new Promise<void>((r) => web.listen(0, '127.0.0.1', () => r()));
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', () => r()));
    try {
      const webEp = `tcp://127.0.0.1:${(web.address() as { port: number }).port}`;
      const silentEp = `tcp://127.0.0.1:${(silent.address() as { port: number }).port}`;
      const r = await runGrid(['jobs', '--master', webEp], { env: { ...slowWindow, GRID_DATA_DIR: tmp } });
      // node's HTTP server answers the odd bytes with a 400 or waits for more: either is said
      oneLineError(r, new RegExp(`tried ${webEp}: (speaks another protocol, not ZeroMQ \\(it said "HTTP/1\\.1 400|accepts TCP but does not speak ZeroMQ)`));
      const q = await runGrid(['jobs', '--master', silentEp], { env: { ...slowWindow, GRID_DATA_DIR: tmp } });
      oneLineError(q, new RegExp(`tried ${silentEp}: accepts TCP but does not speak ZeroMQ`));
    } finally {
      web.closeAllConnections();
      web.close();
      for (const s of accepted) s.destroy();
      silent.close();
    }
  });

  it('GRID_CONNECT_TIMEOUT_MS is checked like every setting', async () => {
    const r = await runGrid(['jobs'], { env: { GRID_CONNECT_TIMEOUT_MS: 'fast', GRID_DATA_DIR: tmp } });
    oneLineError(r, /GRID_CONNECT_TIMEOUT_MS must be an integer from 0 to 600000/);
  });
});

describe('cli polish: argument checks that need no grid', function () {
  this.timeout(60_000);
  let tmp: string;
  before(() => {
    tmp = makeTmpDir();
  });
  after(() => {
    try {
      fs.chmodSync(path.join(tmp, 'ro'), 0o755);
    } catch {
      // not made
    }
    fs.rmSync(tmp, { recursive: true, force: true });
  });
  const id = '123e4567-e89b-42d3-a456-426614174000';

  it('a too-short id prefix states the rule', async () => {
    const r = await runGrid(['status', 'ab1'], { env: { GRID_DATA_DIR: tmp } });
    oneLineError(r, /"ab1" is too short for a job id prefix: give at least 4 hex digits/);
    oneLineError(await runGrid(['status', 'xyz!'], { env: { GRID_DATA_DIR: tmp } }), /is not a job id: a job id is hex digits/);
  });

  it('results --out: a file, a read-only folder, or /proc/x is a typed one-line error at once (no hang)', async () => {
    const file = path.join(tmp, 'afile');
    fs.writeFileSync(file, 'x');
    // nobody listens: a check that waited for the master would say UNAVAILABLE instead
    const env = { GRID_DATA_DIR: tmp, GRID_MASTER: `tcp://127.0.0.1:${await freePort()}` };
    oneLineError(await runGrid(['results', id, '--out', file], { env }), new RegExp(`^grid: OUTPUT_UNWRITABLE: cannot write results into ${file}: ${file} is a file, not a folder`));
    oneLineError(await runGrid(['results', id, '--out', path.join(file, 'sub')], { env }), new RegExp(`OUTPUT_UNWRITABLE: cannot write results into ${file}/sub: ${file} is a file, not a folder`));
    oneLineError(await runGrid(['results', id, '--out', '/proc/x'], { env, timeoutMs: 20_000 }), /OUTPUT_UNWRITABLE: cannot write results into \/proc\/x: \/proc is a kernel file system/);
    oneLineError(await runGrid(['results', id, '--out', '/sys/fs/x'], { env }), /OUTPUT_UNWRITABLE: .*\/sys\/fs is a kernel file system/);
  });

  it('results --out on a read-only file system (a read-only bind mount, which refuses even root)', async function () {
    if (process.getuid?.() !== 0) skipBecause(this, 'unshare and mount need root');
    const { execFile } = await import('node:child_process');
    const { GRID_BIN } = await import('../helpers/grid');
    const ro = path.join(tmp, 'ro');
    fs.mkdirSync(ro);
    const script = `mount --bind ${ro} ${ro} && mount -o remount,bind,ro ${ro} || exit 97; exec "$@"`;
    const env = { ...process.env, GRID_DATA_DIR: tmp, GRID_MASTER: `tcp://127.0.0.1:${await freePort()}` };
    const r = await new Promise<RunResult>((resolve) => {
      const p = execFile('unshare', ['-m', '--propagation', 'private', '--', 'sh', '-c', script, 'sh', process.execPath, GRID_BIN, 'results', id, '--out', path.join(ro, 'new')], { env, encoding: 'utf8' }, (_e, stdout, stderr) =>
        resolve({ code: p.exitCode, signal: p.signalCode, stdout, stderr }),
      );
    });
    if (r.code === 97) skipBecause(this, 'this kernel cannot make a read-only bind mount in a mount namespace');
    oneLineError(r, new RegExp(`OUTPUT_UNWRITABLE: cannot write results into ${ro}/new: ${ro}: read-only file system`));
  });

  it('jobs --state and --limit are checked', async () => {
    oneLineError(await runGrid(['jobs', '--state', 'done'], { env: { GRID_DATA_DIR: tmp } }), /--state must be one of running, succeeded, failed, cancelled, got "done"/);
    oneLineError(await runGrid(['jobs', '--limit', '0'], { env: { GRID_DATA_DIR: tmp } }), /--limit must be an integer from 1 to/);
  });

  it('a port clash names the port and the flag', async () => {
    const net = await import('node:net');
    const srv = net.createServer();
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
    const port = (srv.address() as { port: number }).port;
    try {
      const zmq = await runGrid(['storage', '--data-dir', path.join(tmp, 's1'), '--bind', `tcp://127.0.0.1:${port}`, '--admin-port', '0']);
      oneLineError(zmq, new RegExp(`CONFIG_INVALID: cannot listen for ZeroMQ peers on tcp://127\\.0\\.0\\.1:${port}: the port is already in use .*--bind`));
      const admin = await runGrid(['storage', '--data-dir', path.join(tmp, 's2'), '--bind', 'tcp://127.0.0.1:0', '--admin-port', String(port)]);
      oneLineError(admin, new RegExp(`CONFIG_INVALID: cannot listen for the admin HTTP server on 127\\.0\\.0\\.1:${port}: the port is already in use .*--admin-port`));
    } finally {
      srv.close();
    }
  });

  it('a closed stdout (grid ... | head -1) ends quietly: exit 0, no EPIPE stack', async () => {
    const { spawn } = await import('node:child_process');
    const { GRID_BIN } = await import('../helpers/grid');
    // the reader is gone before grid writes: its first write fails with EPIPE
    const child = spawn(process.execPath, [GRID_BIN, 'completion', 'bash'], { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.destroy();
    let err = '';
    child.stderr.on('data', (b: Buffer) => (err += b.toString()));
    const code = await new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
    assert.equal(err, '', 'nothing on stderr');
    assert.equal(code, 0);
  });

  it('completion: bash completes commands, options and option values from the real command tree', async () => {
    const { execFileSync } = await import('node:child_process');
    const script = (await runGrid(['completion', 'bash'])).stdout;
    const f = path.join(tmp, 'grid.bash');
    fs.writeFileSync(f, script);
    const complete = (words: string[]): string =>
      execFileSync('bash', ['-c', `source ${f}; COMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')}); COMP_CWORD=${words.length - 1}; _grid; echo "\${COMPREPLY[*]}"`], { encoding: 'utf8' }).trim();
    assert.equal(complete(['grid', 'sub']), 'submit');
    assert.deepEqual(complete(['grid', 'jobs', '--']).split(' ').sort(), ['--data-dir', '--help', '--json', '--limit', '--master', '--state', '--storage']);
    assert.equal(complete(['grid', 'jobs', '--state', 'ca']), 'cancelled');
    assert.equal(complete(['grid', 'codec', 'de']), 'decode');
    assert.equal(complete(['grid', 'completion', 'z']), '', 'completion takes bash or zsh (no options start with z)');
    oneLineError(await runGrid(['completion', 'fish']), /no completion for shell "fish".*bash or zsh/);
  });

  it('completion: zsh completes commands, options and option values in a real interactive zsh (compinit, TAB)', async () => {
    const { execFileSync } = await import('node:child_process');
    const script = path.join(tmp, '_grid');
    fs.writeFileSync(script, (await runGrid(['completion', 'zsh'])).stdout);
    const harness = path.join(tmp, 'complete.zsh');
    fs.writeFileSync(harness, ZSH_HARNESS);
    const out = path.join(tmp, 'zsh-matches');
    const complete = (line: string): string[] => {
      execFileSync('zsh', ['-f', harness, script, out, line], { encoding: 'utf8', timeout: 30_000 });
      const n = Number(fs.readFileSync(`${out}.done`, 'utf8'));
      const got = fs.existsSync(out) ? [...new Set(fs.readFileSync(out, 'utf8').split('\n').filter(Boolean))].sort() : [];
      assert.equal(got.length, n, `zsh counted ${n} matches for ${JSON.stringify(line)}, the harness saw ${got.join(' ')}`);
      return got;
    };
    assert.deepEqual(complete('grid sub'), ['submit']);
    assert.deepEqual(complete('grid '), ['balancer', 'cancel', 'cluster', 'codec', 'completion', 'dev', 'init', 'jobs', 'keys', 'logs', 'master', 'results', 'status', 'storage', 'submit', 'worker']);
    assert.deepEqual(complete('grid jobs --'), ['--data-dir', '--help', '--json', '--limit', '--master', '--state', '--storage']);
    assert.deepEqual(complete('grid jobs --state ca'), ['cancelled']);
    assert.deepEqual(complete('grid dev --restart '), ['balancer', 'master', 'none', 'storage', 'worker']);
    assert.deepEqual(complete('grid codec de'), ['decode']);
    fs.mkdirSync(path.join(tmp, 'outdir-x'));
    assert.deepEqual(complete(`grid results 1234 --out ${tmp}/outdir-`), ['outdir-x'], '--out completes folders');
    assert.deepEqual(complete('grid nosuchcommand --'), []);
  });
});

describe('cli polish on a real grid dev: results, cancelled counts, exit codes, logs --json, jobs --state/--limit', function () {
  this.timeout(180_000);
  let g: Grid;
  let tmp: string;
  const inputs = fs.readdirSync(path.join(EXAMPLES, 'wordcount', 'data')).map((f) => path.join(EXAMPLES, 'wordcount', 'data', f));
  let doneJob = '';
  let sleepJob = '';

  before(async () => {
    tmp = makeTmpDir();
    g = await startGrid({ workers: 2 });
    const r = await g.run(['submit', path.join(EXAMPLES, 'wordcount', 'job.js'), '--inputs', ...inputs, '--wait']);
    assert.equal(r.code, 0, r.stderr);
    doneJob = r.stdout.split('\n')[0]!.trim();
    const sleeper = path.join(tmp, 'sleeper.js');
    fs.writeFileSync(sleeper, "console.log('sleeping'); setTimeout(() => undefined, 600000);\n");
    const s = await g.run(['submit', sleeper, '--inputs', inputs[0]!, inputs[1]!]);
    assert.equal(s.code, 0, s.stderr);
    sleepJob = s.stdout.trim();
    await waitFor(async () => JSON.parse((await g.run(['status', sleepJob, '--json'])).stdout).tasksRunning === 2, 'both sleeper tasks running');
  });
  after(async () => {
    await g?.stop();
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('results: the byte total is the sum of the files written (no lost concurrent additions); exit 0', async () => {
    const out = path.join(tmp, 'res');
    const r = await g.run(['results', doneJob, '--out', out, '--json'], { env: { GRID_TRANSFER_CONCURRENCY: '4' } });
    assert.equal(r.code, 0, r.stderr);
    const j = JSON.parse(r.stdout);
    let sum = 0;
    for (const d of fs.readdirSync(out)) for (const f of fs.readdirSync(path.join(out, d))) sum += fs.statSync(path.join(out, d, f)).size;
    assert.ok(sum > 0);
    assert.equal(j.bytes, sum);
    assert.equal(j.files, inputs.length);
    assert.deepEqual([j.tasksFailed, j.tasksCancelled, j.tasksUnfinished], [0, 0, 0]);
  });

  it('results of a running job writes what is done, says so and exits 3 (2 is kept for failed jobs)', async () => {
    const r = await g.run(['results', sleepJob, '--out', path.join(tmp, 'partial')]);
    assert.equal(r.code, 3, r.stderr);
    assert.match(r.stderr, new RegExp(`job ${sleepJob} is still running \\(2 tasks to go\\)`));
  });

  it('logs --json: one JSON object per task and line', async () => {
    const r = await g.run(['logs', doneJob.slice(0, 8), '--json']);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l));
    assert.equal(lines.length, inputs.length);
    lines.forEach((l, i) => {
      assert.equal(l.taskIndex, i);
      assert.equal(l.jobId, doneJob);
      assert.equal(l.state, 'succeeded');
      assert.equal(l.source, 'stored');
      assert.match(l.log, /^counted /);
    });
  });

  it('jobs --state S --limit N', async () => {
    const running = JSON.parse((await g.run(['jobs', '--state', 'running', '--json'])).stdout);
    assert.deepEqual(running.map((j: { jobId: string }) => j.jobId), [sleepJob]);
    const ok = JSON.parse((await g.run(['jobs', '--state', 'succeeded', '--json'])).stdout);
    assert.deepEqual(ok.map((j: { jobId: string }) => j.jobId), [doneJob]);
    const newest = JSON.parse((await g.run(['jobs', '--limit', '1', '--json'])).stdout);
    assert.deepEqual(newest.map((j: { jobId: string }) => j.jobId), [sleepJob]);
    const table = await g.run(['jobs', '--state', 'failed']);
    assert.match(table.stdout, /^no failed jobs among the newest 2/);
  });

  it('a cancelled job: cancelled tasks are their own count, not failed; results exits 2', async () => {
    assert.equal((await g.run(['cancel', sleepJob])).code, 0);
    const s = JSON.parse((await g.run(['status', sleepJob, '--json'])).stdout);
    assert.equal(s.state, 'cancelled');
    assert.equal(s.tasksCancelled, 2);
    assert.equal(s.tasksFailed, 0);
    const text = await g.run(['status', sleepJob]);
    assert.match(text.stdout, /2 total, 0 pending, 0 running, 0 succeeded, 0 failed, 2 cancelled/);
    const r = await g.run(['results', sleepJob, '--out', path.join(tmp, 'cancelled')]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /is cancelled \(0 failed, 2 cancelled\)/);
    // the job list: counts from job_status2_response (docs/protocol.md), cancelled apart
    const list = JSON.parse((await g.run(['jobs', '--json'])).stdout) as { jobId: string; tasksFailed: number; tasksCancelled: number }[];
    const listed = list.find((j) => j.jobId === sleepJob)!;
    assert.deepEqual([listed.tasksFailed, listed.tasksCancelled], [0, 2]);
    assert.deepEqual(
      list.filter((j) => j.jobId === doneJob).map((j) => [j.tasksFailed, j.tasksCancelled]),
      [[0, 0]],
    );
    const table = (await g.run(['jobs'])).stdout.split('\n');
    assert.match(table[0]!, /^JOB +STATE +TASKS +OK +FAILED +CANCELLED +CREATED +OWNER +PROGRAM$/);
    assert.match(table.find((l) => l.startsWith(sleepJob))!, new RegExp(`^${sleepJob} cancelled +2 +0 +0 +2 `));
    // the owner column: the submitting key's fingerprint, as in --json
    const owner = list.find((j) => j.jobId === sleepJob) as unknown as { owner: string };
    assert.match(owner.owner, /\S/);
    assert.ok(table.find((l) => l.startsWith(sleepJob))!.includes(` ${owner.owner} `), 'the table shows the owner');
    // the dashboard's job list says the same
    const admin = g.masterNodes()[0]!.adminPort;
    const overview = await new Promise<{ jobs: { jobId: string; tasks: Record<string, number> }[] }>((res, rej) => {
      http.get(`http://127.0.0.1:${admin}/dashboard/api/overview`, (resp) => {
        let body = '';
        resp.on('data', (d: Buffer) => (body += d.toString()));
        resp.on('end', () => res(JSON.parse(body)));
      }).on('error', rej);
    });
    const dj = overview.jobs.find((j) => j.jobId === sleepJob)!;
    assert.deepEqual([dj.tasks.failed, dj.tasks.cancelled], [0, 2]);
  });
});

describe('cli polish: times for people', () => {
  it('relative on a terminal, exact when piped', () => {
    const now = Date.UTC(2026, 0, 2, 12, 0, 0);
    assert.equal(relativeTime(now - 500, now), 'just now');
    assert.equal(relativeTime(now - 42_000, now), '42 s ago');
    assert.equal(relativeTime(now - 3 * 60_000 - 5000, now), '3 min ago');
    assert.equal(relativeTime(now - 5 * 3_600_000, now), '5 h ago');
    assert.equal(relativeTime(now - 3 * 86_400_000, now), '3 days ago');
    assert.equal(relativeTime(now + 3000, now), 'in 3 s');
    assert.equal(shownTime(now - 42_000, now, true), '42 s ago');
    assert.equal(shownTime(now, now, false), '2026-01-02 12:00:00');
  });
});
