// The task runner on real child processes: outcomes, limits, logs, outputs, environment
// (docs/worker.md, "The task contract" and "Limits").
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { silentLogger } from '../../src/common';
import { LogCapper, checkMemory, checkOutput, classifyExit, parseProcStat, treePids } from '../../src/worker/limits';
import { RunLimits, RunSpec, TaskRun } from '../../src/worker/runner';

/** A process that exists and is not a zombie (an unreaped zombie is dead for our purpose). */
function alive(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z /.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

const LIMITS: RunLimits = {
  maxLogBytes: 64 * 1024,
  logTailBytes: 4096,
  memoryPollIntervalMs: 50,
  outputPollIntervalMs: 50,
  maxOutputFiles: 100,
};

describe('worker runner', function () {
  this.timeout(30_000);
  let tmp: string;
  let n = 0;

  before(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'grid-runner-'));
  });
  after(() => {
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  function program(src: string): string {
    const p = path.join(tmp, `prog${n++}.js`);
    fs.writeFileSync(p, src);
    return p;
  }

  function spec(programPath: string, over: Partial<RunSpec> = {}): RunSpec {
    return {
      jobUuid: '11111111-2222-4333-8444-555555555555',
      taskIndex: 3,
      taskCount: 7,
      args: ['--alpha', 'b c'],
      programPath,
      inputPaths: [],
      timeoutMs: 20_000,
      memoryLimitMb: 256,
      outputLimitBytes: 10 * 1024 * 1024,
      taskDir: path.join(tmp, `task${n++}`),
      ...over,
    };
  }

  /** pids of every task process started here (each led its own process group) */
  const taskPids: number[] = [];
  const run = async (s: RunSpec, limits: RunLimits = LIMITS) => {
    const r = await new TaskRun(s, limits, silentLogger()).start();
    if (r.pid > 0) taskPids.push(r.pid);
    return r;
  };

  it('runs a program with its inputs, clean env and args, and lists its outputs', async () => {
    const in1 = path.join(tmp, 'in1.txt');
    const in2 = path.join(tmp, 'in 2.txt');
    fs.writeFileSync(in1, 'one\n');
    fs.writeFileSync(in2, 'two\n');
    process.env.GRID_SECRET_TEST = 'leak';
    const p = program(`
      const fs = require('fs');
      const inputs = process.argv.slice(2);
      fs.writeFileSync('env.json', JSON.stringify({ env: process.env, cwd: process.cwd(), inputs }));
      fs.mkdirSync('sub/deeper', { recursive: true });
      fs.writeFileSync('sub/deeper/cat.txt', inputs.map((f) => fs.readFileSync(f, 'utf8')).join(''));
      console.log('hello from task');
      console.error('a warning');
    `);
    const s = spec(p, { inputPaths: [in1, in2] });
    const r = await run(s);
    delete process.env.GRID_SECRET_TEST;
    assert.equal(r.outcome, 'ok', r.error + r.logTail);
    assert.equal(r.exitCode, 0);
    assert.deepEqual(r.outputs.map((o) => o.name), ['env.json', 'sub/deeper/cat.txt']);
    assert.equal(fs.readFileSync(path.join(r.workDir, 'sub/deeper/cat.txt'), 'utf8'), 'one\ntwo\n');
    const seen = JSON.parse(fs.readFileSync(path.join(r.workDir, 'env.json'), 'utf8'));
    assert.deepEqual(seen.inputs, [in1, in2]);
    assert.equal(fs.realpathSync(seen.cwd), fs.realpathSync(r.workDir));
    assert.equal(seen.env.GRID_JOB_ID, s.jobUuid);
    assert.equal(seen.env.GRID_TASK_INDEX, '3');
    assert.equal(seen.env.GRID_TASK_COUNT, '7');
    assert.deepEqual(JSON.parse(seen.env.GRID_ARGS), ['--alpha', 'b c']);
    assert.equal(seen.env.HOME, r.workDir);
    assert.equal(seen.env.GRID_SECRET_TEST, undefined, 'the worker environment must not leak');
    assert.equal(seen.env.NODE_OPTIONS, undefined);
    assert.match(r.logTail, /hello from task/);
    assert.match(fs.readFileSync(r.logPath, 'utf8'), /a warning/);
    assert.ok(r.pid > 0);
  });

  it('reports a non-zero exit with the log tail', async () => {
    const r = await run(spec(program(`console.log('about to fail'); process.exit(3);`)));
    assert.equal(r.outcome, 'exit_nonzero');
    assert.equal(r.exitCode, 3);
    assert.match(r.error, /exited with code 3/);
    assert.match(r.logTail, /about to fail/);
    assert.deepEqual(r.outputs, []);
  });

  it('reports a program that throws, with its stack in the log tail', async () => {
    const r = await run(spec(program(`function deep() { throw new Error('kaboom-42'); } deep();`)));
    assert.equal(r.outcome, 'exit_nonzero');
    assert.equal(r.exitCode, 1);
    assert.match(r.logTail, /kaboom-42/);
    assert.match(r.logTail, /deep/);
  });

  it('kills an infinite loop (and its children) at the timeout', async () => {
    const p = program(`
      const { spawn } = require('child_process');
      const c = spawn(process.execPath, ['-e', 'setInterval(()=>{}, 1000)'], { stdio: 'ignore' });
      require('fs').writeFileSync('child.pid', String(c.pid));
      for (;;) {}
    `);
    const r = await run(spec(p, { timeoutMs: 1500 }));
    assert.equal(r.outcome, 'timeout');
    assert.equal(r.exitCode, -1);
    assert.match(r.error, /timeout of 1500 ms/);
    const childPid = Number(fs.readFileSync(path.join(r.workDir, 'child.pid'), 'utf8'));
    assert.ok(childPid > 0);
    // SIGKILL is delivered asynchronously: give the kernel a moment to tear it down
    for (let i = 0; i < 100 && alive(childPid); i++) await new Promise((r) => setTimeout(r, 20));
    assert.equal(alive(childPid), false, 'the grandchild must be killed too');
  });

  it('kills a memory hog outside the V8 heap (RSS polling)', async () => {
    // Buffers live outside the V8 heap, so only the RSS check can catch this one.
    const p = program(`const keep = []; setInterval(() => { const b = Buffer.alloc(16 << 20, 1); keep.push(b); }, 5);`);
    const r = await run(spec(p, { memoryLimitMb: 128 }));
    assert.equal(r.outcome, 'memory_limit', r.error);
    assert.match(r.error, /memory limit of 128 MiB \(RSS \d+ MiB\)/);
    assert.ok(r.peakRssBytes > 128 * 1024 * 1024);
  });

  it('reports V8 heap exhaustion as memory_limit', async () => {
    const p = program(`const keep = []; for (;;) keep.push({ a: Math.random(), b: [1, 2, 3], c: 'x' + keep.length });`);
    const r = await run(spec(p, { memoryLimitMb: 64 }), { ...LIMITS, memoryPollIntervalMs: 60_000 });
    assert.equal(r.outcome, 'memory_limit', r.error + r.logTail);
  });

  it('kills an output hog (poll) and reports output_limit', async () => {
    const p = program(`
      const fs = require('fs'); const b = Buffer.alloc(256 * 1024, 7); let i = 0;
      setInterval(() => fs.writeFileSync('part' + (i++) + '.bin', b), 5);
    `);
    const r = await run(spec(p, { outputLimitBytes: 2 * 1024 * 1024 }));
    assert.equal(r.outcome, 'output_limit', r.error);
    assert.match(r.error, /output limit of 2 MiB/);
    assert.deepEqual(r.outputs, []);
  });

  it('stops one huge file at the hard per-file cap (prlimit --fsize)', async () => {
    const p = program(`
      const fs = require('fs'); const fd = fs.openSync('big.bin', 'w'); const b = Buffer.alloc(1 << 20);
      for (let i = 0; i < 64; i++) fs.writeSync(fd, b);
    `);
    const r = await run(spec(p, { outputLimitBytes: 3 * 1024 * 1024 }), { ...LIMITS, outputPollIntervalMs: 60_000 });
    assert.equal(r.outcome, 'output_limit', r.error + r.logTail);
    assert.ok(fs.statSync(path.join(r.workDir, 'big.bin')).size <= 3 * 1024 * 1024);
  });

  it('refuses too many output files', async () => {
    const p = program(`const fs = require('fs'); for (let i = 0; i < 150; i++) fs.writeFileSync('f' + i, 'x');`);
    const r = await run(spec(p), { ...LIMITS, outputPollIntervalMs: 60_000 });
    assert.equal(r.outcome, 'output_limit');
    assert.match(r.error, /more than 100 output files/);
  });

  it('caps a huge log, keeping its head and tail', async () => {
    const p = program(`
      for (let i = 0; i < 20000; i++) console.log('line ' + i + ' ' + 'x'.repeat(40));
      console.log('THE-END');
    `);
    const r = await run(spec(p));
    assert.equal(r.outcome, 'ok');
    const text = fs.readFileSync(r.logPath, 'utf8');
    assert.ok(text.length <= LIMITS.maxLogBytes + 200, `log is ${text.length} bytes`);
    assert.match(text, /^line 0 /);
    assert.match(text, /log truncated: \d+ bytes dropped/);
    assert.match(text, /THE-END\n$/);
    assert.match(r.logTail, /THE-END/);
    assert.ok(Buffer.byteLength(r.logTail) <= LIMITS.logTailBytes);
  });

  it('cancels a running task', async () => {
    const t = new TaskRun(spec(program(`setInterval(() => {}, 1000);`)), LIMITS, silentLogger());
    const done = t.start();
    const pid = await t.started;
    assert.ok(pid > 0);
    t.cancel();
    const r = await done;
    assert.equal(r.outcome, 'cancelled');
    assert.equal(r.exitCode, -1);
  });

  it('reports a missing program as a non-zero exit, and the worker survives everything above', async () => {
    const r = await run(spec(path.join(tmp, 'no-such.js')));
    assert.equal(r.outcome, 'exit_nonzero');
    assert.match(r.logTail, /Cannot find module/);
    // this very process ran every task above and is still here; no process of any task's
    // group (the hogs, the loop and the children it forked) is left alive
    assert.ok(taskPids.length >= 10, `pids recorded: ${taskPids.length}`);
    const groups = new Set(taskPids);
    const left: string[] = [];
    for (const d of fs.readdirSync('/proc').filter((x) => /^\d+$/.test(x))) {
      let stat: string;
      try {
        stat = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
      } catch {
        continue; // gone meanwhile
      }
      // fields after "(comm)": state ppid pgrp ...
      const [state, , pgrp] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (groups.has(Number(pgrp)) && state !== 'Z') left.push(`${d} (group ${pgrp}, state ${state})`);
    }
    assert.deepEqual(left, [], 'processes of finished tasks still alive');
  });
});

describe('worker limits (pure)', () => {
  it('checks memory and output against their limits', () => {
    assert.equal(checkMemory(100 * 1024 * 1024, 100), null);
    assert.match(checkMemory(301 * 1024 * 1024, 256)!.error, /memory limit of 256 MiB \(RSS 301 MiB\); raise --memory-limit/);
    assert.equal(checkOutput(10, 1, 10, 5), null);
    assert.equal(checkOutput(11, 1, 10, 5)!.reason, 'output_limit');
    assert.equal(checkOutput(1, 6, 10, 5)!.reason, 'output_limit');
  });

  it('classifies exits, the runner\'s kill first', () => {
    const base = { code: 0, signal: null, killed: null, logTail: '', outputBytes: 0, outputFiles: 0, outputLimitBytes: 100, maxOutputFiles: 10, memoryLimitMb: 64 };
    assert.equal(classifyExit(base).outcome, 'ok');
    assert.equal(classifyExit({ ...base, code: 2 }).outcome, 'exit_nonzero');
    assert.equal(classifyExit({ ...base, code: null, signal: 'SIGSEGV' }).exitCode, -1);
    assert.equal(classifyExit({ ...base, code: null, signal: 'SIGKILL', killed: { reason: 'timeout', error: 't' } }).outcome, 'timeout');
    assert.equal(classifyExit({ ...base, code: null, signal: 'SIGABRT', logTail: 'FATAL ERROR: Reached heap limit' }).outcome, 'memory_limit');
    assert.equal(classifyExit({ ...base, code: 1, outputBytes: 100 }).outcome, 'output_limit');
    assert.equal(classifyExit({ ...base, code: 0, outputBytes: 101 }).outcome, 'output_limit');
    assert.equal(classifyExit({ ...base, code: 0, outputBytes: 100 }).outcome, 'ok');
  });

  it('caps logs at maxLogBytes in any chunking', () => {
    for (const chunk of [1, 7, 100, 5000]) {
      const c = new LogCapper(1000);
      const file: Buffer[] = [];
      const all = Buffer.from(Array.from({ length: 3000 }, (_, i) => String.fromCharCode(97 + (i % 26))).join(''));
      for (let i = 0; i < all.length; i += chunk) {
        const w = c.write(all.subarray(i, i + chunk));
        if (w) file.push(w);
      }
      const head = Buffer.concat(file);
      assert.deepEqual(head, all.subarray(0, 500));
      const rest = c.finish().toString();
      assert.ok(rest.endsWith(all.subarray(2500).toString()));
      assert.match(rest, /log truncated: 2000 bytes dropped/);
      assert.equal(c.lastBytes(10, head).toString(), all.subarray(2990).toString());
    }
  });

  it('parses /proc stat lines and finds a process tree', () => {
    assert.deepEqual(parseProcStat('42 (my (odd) name) S 7 42 42 0'), { ppid: 7, pgrp: 42 });
    const t = new Map([
      [10, { ppid: 1, pgrp: 10 }],
      [11, { ppid: 10, pgrp: 10 }],
      [12, { ppid: 11, pgrp: 12 }], // left the group with setsid
      [13, { ppid: 12, pgrp: 12 }],
      [20, { ppid: 1, pgrp: 20 }],
    ]);
    assert.deepEqual(treePids(t, 10).sort(), [10, 11, 12, 13]);
  });
});
