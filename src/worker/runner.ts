/**
 * Runs one task as a child process under limits: `node [--max-old-space-size=M] program
 * inputs...` in a fresh empty folder with a clean environment, its own process group (so a
 * kill reaches every process it started), a timeout, an RSS limit on the whole process
 * tree, an output size limit, and a capped log. The decisions live in limits.ts; this file
 * does the I/O. Nothing a task does can throw into the worker: every failure becomes a
 * RunResult.
 *
 * All file system access here is asynchronous: the worker's main thread also serves the
 * FUSE mount, and blocking it while a task reads the mount would stall that task.
 */
import { ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { Logger } from 'pino';
import {
  KillDecision,
  LogCapper,
  OutcomeName,
  checkMemory,
  checkOutput,
  classifyExit,
  parseProcStat,
  parseVmRss,
  tailText,
  timeoutDecision,
  treePids,
} from './limits';
import { JailSpec, VIEW_INPUTS, VIEW_PROGRAM, VIEW_TMP, VIEW_WORK, inView, jailCommand, prepareJail, setupFailure, taskPaths } from './sandbox';

export interface RunSpec {
  jobUuid: string;
  taskIndex: number;
  taskCount: number;
  args: string[];
  /** absolute path of the program (job.js) */
  programPath: string;
  /** absolute input paths handed to the program */
  inputPaths: string[];
  timeoutMs: number;
  memoryLimitMb: number;
  outputLimitBytes: number;
  /** task folder; the runner makes `work/` (the cwd), `tmp/` (TMPDIR) and `task.log` in it */
  taskDir: string;
  /**
   * Run in the sandbox (sandbox.ts) as this uid; the program must be the only file of its
   * folder's tree that matters, the inputs all under jail.inputsDir. Absent = no sandbox.
   */
  jail?: JailSpec;
}

export interface RunLimits {
  maxLogBytes: number;
  logTailBytes: number;
  memoryPollIntervalMs: number;
  outputPollIntervalMs: number;
  maxOutputFiles: number;
  /** the node binary; default: the one running the worker */
  nodePath?: string;
  /** prlimit for a hard per-file size cap; null = none */
  prlimitPath?: string | null;
}

export interface OutputFile {
  /** path relative to the working folder, '/'-separated */
  name: string;
  path: string;
  bytes: number;
}

export interface RunResult {
  outcome: OutcomeName;
  /** -1 when killed by a signal, or when the process never started */
  exitCode: number;
  durationMs: number;
  error: string;
  logTail: string;
  logPath: string;
  workDir: string;
  outputs: OutputFile[];
  peakRssBytes: number;
  pid: number;
}

export const DEFAULT_PRLIMIT = '/usr/bin/prlimit';
/** After the leader exits, how long its pipes may stay open (a daemonised grandchild) before we stop reading. */
const PIPE_DRAIN_MS = 1000;

interface ProcInfo {
  ppid: number;
  pgrp: number;
}

/** A snapshot of every process's parent and group, from /proc. */
export async function readProcTable(): Promise<Map<number, ProcInfo>> {
  const table = new Map<number, ProcInfo>();
  let names: string[];
  try {
    names = await fsp.readdir('/proc');
  } catch {
    return table;
  }
  await Promise.all(
    names.map(async (n) => {
      if (!/^\d+$/.test(n)) return;
      try {
        const p = parseProcStat(await fsp.readFile(`/proc/${n}/stat`, 'utf8'));
        if (p) table.set(Number(n), p);
      } catch {
        // the process ended meanwhile
      }
    }),
  );
  return table;
}

export async function treeRss(pids: number[]): Promise<number> {
  let sum = 0;
  await Promise.all(
    pids.map(async (pid) => {
      try {
        sum += parseVmRss(await fsp.readFile(`/proc/${pid}/status`, 'utf8'));
      } catch {
        // gone
      }
    }),
  );
  return sum;
}

/**
 * Regular files under dir (symlinks are not followed and not outputs), at most maxFiles + 1
 * of them so a task that makes millions of files cannot stall the walk.
 */
export async function walkFiles(dir: string, maxFiles: number): Promise<{ files: OutputFile[]; bytes: number; more: boolean }> {
  const files: OutputFile[] = [];
  let bytes = 0;
  const stack: string[] = [''];
  while (stack.length > 0) {
    const rel = stack.pop()!;
    let entries: fs.Dirent[];
    try {
      entries = await fsp.readdir(path.join(dir, rel), { withFileTypes: true });
    } catch {
      continue;
    }
    for (const e of entries) {
      const r = rel === '' ? e.name : `${rel}/${e.name}`;
      if (e.isDirectory()) stack.push(r);
      else if (e.isFile()) {
        try {
          const st = await fsp.lstat(path.join(dir, r));
          files.push({ name: r, path: path.join(dir, r), bytes: st.size });
          bytes += st.size;
        } catch {
          continue;
        }
        if (files.length > maxFiles) return { files, bytes, more: true };
      }
    }
  }
  files.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return { files, bytes, more: false };
}

/**
 * The clean environment of a task (nothing of the worker's leaks in but PATH and LANG).
 * workDir and tmpDir are paths as the task sees them.
 */
export function taskEnv(spec: RunSpec, workDir: string, tmpDir: string): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin',
    HOME: workDir,
    TMPDIR: tmpDir,
    TMP: tmpDir,
    TEMP: tmpDir,
    LANG: process.env.LANG ?? 'C.UTF-8',
    GRID_JOB_ID: spec.jobUuid,
    GRID_TASK_INDEX: String(spec.taskIndex),
    GRID_TASK_COUNT: String(spec.taskCount),
    GRID_ARGS: JSON.stringify(spec.args),
  };
}

function killGroup(pid: number, extra: number[] = []): void {
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    // group already gone
  }
  for (const p of extra) {
    try {
      process.kill(p, 'SIGKILL');
    } catch {
      // gone
    }
  }
}

/**
 * One run of one task. start() resolves with the result once the process tree is dead and
 * the outputs are listed; it never rejects. cancel() kills it (outcome cancelled).
 */
export class TaskRun {
  private child?: ChildProcess;
  private killed: KillDecision | null = null;
  private lastTree: number[] = [];
  private timers: NodeJS.Timeout[] = [];
  private polling = { mem: false, out: false };
  private peakRss = 0;
  private startedResolve!: (pid: number) => void;
  /** Resolves with the pid once the process exists (then task_started may be sent). */
  readonly started: Promise<number> = new Promise((r) => (this.startedResolve = r));
  pid = 0;
  readonly workDir: string;
  /** the private temp folder (TMPDIR; /tmp in the sandbox): counts toward the output limit */
  readonly tmpDir: string;
  readonly logPath: string;

  constructor(
    readonly spec: RunSpec,
    readonly limits: RunLimits,
    readonly log: Logger,
  ) {
    const p = taskPaths(spec.taskDir);
    this.workDir = p.work;
    this.tmpDir = p.tmp;
    this.logPath = path.join(spec.taskDir, 'task.log');
  }

  /** Kills the task; the result reports `reason` (default cancelled). */
  cancel(reason: KillDecision = { reason: 'cancelled', error: 'task was cancelled' }): void {
    this.kill(reason);
  }

  private kill(d: KillDecision): void {
    if (!this.killed) this.killed = d;
    if (this.child?.pid) killGroup(this.child.pid, this.lastTree);
  }

  async start(): Promise<RunResult> {
    const t0 = performance.now();
    try {
      await fsp.mkdir(this.workDir, { recursive: true });
      await fsp.mkdir(this.tmpDir, { recursive: true });
      if (this.spec.jail) await prepareJail(this.spec.jail, this.spec.taskDir, this.spec.programPath);
      return await this.run(t0);
    } catch (e) {
      this.startedResolve(0);
      return this.failed(t0, `worker could not run the task: ${(e as Error).message}`);
    } finally {
      for (const t of this.timers) clearTimeout(t);
    }
  }

  private failed(t0: number, error: string): RunResult {
    return {
      outcome: 'worker_error',
      exitCode: -1,
      durationMs: Math.round(performance.now() - t0),
      error,
      logTail: '',
      logPath: this.logPath,
      workDir: this.workDir,
      outputs: [],
      peakRssBytes: this.peakRss,
      pid: this.pid,
    };
  }

  private async run(t0: number): Promise<RunResult> {
    const s = this.spec;
    if (this.killed) return this.failed(t0, this.killed.error);
    const j = s.jail;
    // paths as the task sees them: in the sandbox, its own view (sandbox.ts)
    const program = j ? path.posix.join(VIEW_PROGRAM, path.basename(s.programPath)) : s.programPath;
    const inputs = j ? s.inputPaths.map((p) => inView(p, j.inputsDir, VIEW_INPUTS)) : s.inputPaths;
    const nodeArgs = [`--max-old-space-size=${s.memoryLimitMb}`, program, ...inputs];
    const node = this.limits.nodePath ?? process.execPath;
    const prlimit = this.limits.prlimitPath === undefined ? DEFAULT_PRLIMIT : this.limits.prlimitPath;
    const usePrlimit = prlimit !== null && s.outputLimitBytes > 0 && fs.existsSync(prlimit);
    const inner = usePrlimit ? [prlimit, `--fsize=${s.outputLimitBytes}`, node, ...nodeArgs] : [node, ...nodeArgs];
    const { cmd, argv } = j ? jailCommand(j, s.taskDir, inner) : { cmd: inner[0]!, argv: inner.slice(1) };

    const logFile = await fsp.open(this.logPath, 'w');
    const capper = new LogCapper(this.limits.maxLogBytes);
    const head: Buffer[] = [];
    let headBytes = 0;
    // Writes go through one promise chain, in order.
    let writing: Promise<unknown> = Promise.resolve();
    const onData = (chunk: Buffer) => {
      const now = capper.write(chunk);
      if (now && now.length > 0) {
        if (headBytes < this.limits.logTailBytes) {
          head.push(now);
          headBytes += now.length;
        }
        writing = writing.then(() => logFile.write(now)).catch(() => undefined);
      }
    };

    const child = spawn(cmd, argv, {
      cwd: this.workDir,
      env: j ? taskEnv(s, VIEW_WORK, VIEW_TMP) : taskEnv(s, this.workDir, this.tmpDir),
      detached: true, // own process group: kill(-pid) reaches every process it starts
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child = child;
    const exited = new Promise<{ code: number | null; signal: string | null; spawnError?: Error }>((resolve) => {
      child.once('error', (e) => resolve({ code: null, signal: null, spawnError: e }));
      child.once('exit', (code, signal) => resolve({ code, signal }));
    });
    const streamsClosed = Promise.all(
      [child.stdout!, child.stderr!].map((st) => {
        st.on('data', onData);
        return new Promise<void>((r) => {
          st.once('close', () => r());
          st.once('error', () => r());
        });
      }),
    );
    this.pid = child.pid ?? 0;
    if (this.pid) {
      this.startedResolve(this.pid);
      this.log.info({ pid: this.pid, program: s.programPath, inputs: s.inputPaths.length, uid: j?.uid ?? null }, 'task process started');
      if (this.killed) killGroup(this.pid); // cancelled while starting
      this.arm();
    }

    const ex = await exited;
    this.stopTimers();
    // Whatever the leader did, nothing of the task may outlive it.
    if (this.pid) killGroup(this.pid, this.lastTree);
    await Promise.race([streamsClosed, new Promise((r) => setTimeout(r, PIPE_DRAIN_MS))]);
    child.stdout?.destroy();
    child.stderr?.destroy();
    await writing;
    if (ex.spawnError) {
      await logFile.close().catch(() => undefined);
      this.startedResolve(0);
      return this.failed(t0, `worker could not start node for the task: ${ex.spawnError.message}`);
    }
    const rest = capper.finish();
    if (rest.length > 0) await logFile.write(rest).catch(() => undefined);
    await logFile.close().catch(() => undefined);
    const durationMs = Math.round(performance.now() - t0);

    const tail = tailText(capper.lastBytes(this.limits.logTailBytes, Buffer.concat(head)));
    const setup = j && !this.killed ? setupFailure(ex.code, tail) : null;
    if (setup) return this.failed(t0, `worker could not set up the task sandbox: ${setup}`);
    const walk = await walkFiles(this.workDir, this.limits.maxOutputFiles);
    const used = await this.usage(walk);
    const c = classifyExit({
      code: ex.code,
      signal: ex.signal,
      killed: this.killed,
      logTail: tail,
      outputBytes: used.bytes,
      outputFiles: used.files, // maxOutputFiles + 1 when a walk stopped early
      outputLimitBytes: s.outputLimitBytes,
      maxOutputFiles: this.limits.maxOutputFiles,
      memoryLimitMb: s.memoryLimitMb,
    });
    this.log.info({ outcome: c.outcome, exitCode: c.exitCode, signal: ex.signal, durationMs, outputs: walk.files.length, peakRssBytes: this.peakRss }, 'task process ended');
    return {
      outcome: c.outcome,
      exitCode: c.exitCode,
      durationMs,
      error: c.error,
      logTail: tail,
      logPath: this.logPath,
      workDir: this.workDir,
      outputs: c.outcome === 'ok' ? walk.files : [],
      peakRssBytes: this.peakRss,
      pid: this.pid,
    };
  }

  /** Disk use of the task: its working folder's walk plus its private temp folder. */
  private async usage(work: { files: OutputFile[]; bytes: number }): Promise<{ bytes: number; files: number }> {
    const t = await walkFiles(this.tmpDir, this.limits.maxOutputFiles);
    return { bytes: work.bytes + t.bytes, files: Math.min(work.files.length + t.files.length, this.limits.maxOutputFiles + 1) };
  }

  private arm(): void {
    const s = this.spec;
    this.timers.push(setTimeout(() => this.kill(timeoutDecision(s.timeoutMs)), s.timeoutMs));
    this.timers.push(setInterval(() => void this.pollMemory(), this.limits.memoryPollIntervalMs));
    this.timers.push(setInterval(() => void this.pollOutput(), this.limits.outputPollIntervalMs));
  }

  private stopTimers(): void {
    for (const t of this.timers) clearTimeout(t);
    this.timers = [];
  }

  private async pollMemory(): Promise<void> {
    if (this.polling.mem || this.killed) return;
    this.polling.mem = true;
    try {
      this.lastTree = treePids(await readProcTable(), this.pid);
      const rss = await treeRss(this.lastTree);
      if (rss > this.peakRss) this.peakRss = rss;
      const d = checkMemory(rss, this.spec.memoryLimitMb);
      if (d) {
        this.log.warn({ rssBytes: rss, limitMb: this.spec.memoryLimitMb }, 'task over its memory limit; killing it');
        this.kill(d);
      }
    } finally {
      this.polling.mem = false;
    }
  }

  private async pollOutput(): Promise<void> {
    if (this.polling.out || this.killed) return;
    this.polling.out = true;
    try {
      const w = await this.usage(await walkFiles(this.workDir, this.limits.maxOutputFiles));
      const d = checkOutput(w.bytes, w.files, this.spec.outputLimitBytes, this.limits.maxOutputFiles);
      if (d) {
        this.log.warn({ outputBytes: w.bytes, files: w.files }, 'task over its output limit; killing it');
        this.kill(d);
      }
    } finally {
      this.polling.out = false;
    }
  }
}
