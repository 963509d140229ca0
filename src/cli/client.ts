/**
 * Client commands: submit, status, jobs, logs, cancel, results, init (and dev, codec).
 * They talk to the master with job_* requests (MasterClient) and to storage with
 * StorageClient; file data never goes through the master (docs/architecture.md).
 *
 * Output rules: stdout carries what scripts read (the job id, tables, --json), stderr
 * carries progress; an operating error is one line `grid: CODE: what (what to do)`, exit 1.
 * `submit --wait` and `results` exit 2 when the job did not succeed.
 */
import fs from 'node:fs';
import path from 'node:path';
import { Command } from 'commander';
import { GridError, Logger, TimeoutError, createLogger, ensureReachable } from '../common';
import { JobState, NIL_UUID, TaskOutcome, TaskState, isUuid, newUuid } from '../messages';
import * as masterRole from '../master';
import { checkNotifyUrl } from '../master';
import * as balancerRole from '../balancer';
import * as storageRole from '../storage';
import * as workerRole from '../worker';
import { StorageClient } from '../storage';
import { checkJobIdArg, checkReadableFile, intFlag, parseJobOptions, RawJobFlags } from './args';
import { duration, shownTime } from './format';
import { ClientConfig, loadClientConfig } from './config';
import { registerClusterCommand } from './cluster';
import { registerCodecCommands } from './codec';
import { registerCompletionCommand } from './completion';
import { registerDevCommand } from './dev';
import { resolveEndpoints, ResolvedEndpoints } from './endpoints';
import { JobStatus, MasterClient, TaskStatus } from './master-client';
import { outputWriteError, prepareOutDir } from './outdir';
import { outputPath } from './paths';
import { createProgress } from './progress';

/** Exit code of `submit --wait` and `results` when the job failed or was cancelled. */
export const EXIT_JOB_NOT_SUCCEEDED = 2;
/** Exit code of `results` when the job is still running (the outputs so far were written). */
export const EXIT_JOB_RUNNING = 3;

const nameOf = <T extends Record<string, number>>(e: T, v: number): string => Object.keys(e).find((k) => e[k] === v) ?? `unknown(${v})`;
export const jobStateName = (v: number): string => nameOf(JobState, v);
export const taskStateName = (v: number): string => nameOf(TaskState, v);
export const outcomeName = (v: number): string => nameOf(TaskOutcome, v);

interface EndpointFlags {
  master?: string;
  storage?: string;
  dataDir?: string;
  json?: boolean;
}

/** What every client command works with; opened lazily, closed once at the end. */
class Ctx {
  readonly cfg: ClientConfig;
  readonly ep: ResolvedEndpoints;
  readonly log: Logger;
  private m?: MasterClient;
  private s?: StorageClient;
  private storageReached?: Promise<void>;
  readonly nodeUuid = newUuid();

  constructor(readonly flags: EndpointFlags) {
    this.cfg = loadClientConfig();
    this.ep = resolveEndpoints({ master: flags.master, storage: flags.storage, dataDir: flags.dataDir, env: process.env });
    // the CLI is quiet unless asked (GRID_LOG_LEVEL=debug); errors reach the user as GridErrors
    this.log = createLogger({ role: 'cli', nodeId: this.nodeUuid, level: process.env.GRID_LOG_LEVEL ?? 'silent' });
  }

  get master(): MasterClient {
    this.m ??= new MasterClient({
      endpoint: this.ep.masters,
      endpointFrom: this.ep.masterFrom,
      log: this.log,
      masterRetryWindowMs: this.cfg.masterRetryWindowMs,
      masterRequestTimeoutMs: this.cfg.masterRequestTimeoutMs,
      masterLeaderWaitMs: this.cfg.masterLeaderWaitMs,
      connectTimeoutMs: this.cfg.connectTimeoutMs,
    });
    return this.m;
  }

  get storage(): StorageClient {
    this.s ??= new StorageClient({
      endpoint: this.ep.storage,
      nodeUuid: this.nodeUuid,
      log: this.log,
      requestTimeoutMs: this.cfg.storageRequestTimeoutMs,
      retries: this.cfg.storageRetries,
    });
    return this.s;
  }

  /** Fails within connectTimeoutMs, naming the endpoint, when no storage node listens. */
  reachStorage(): Promise<void> {
    this.storageReached ??= ensureReachable(
      'storage node',
      [this.ep.storage],
      this.ep.storageFrom,
      this.cfg.connectTimeoutMs,
      'is `grid dev` (or `grid storage`) running? start it, or point the client at it with --storage or GRID_STORAGE',
    );
    return this.storageReached;
  }

  close(): void {
    this.m?.close();
    this.s?.close();
  }

  /** Runs `f` and always closes the sockets, so the process can exit. */
  static async run(flags: EndpointFlags, f: (c: Ctx) => Promise<void>): Promise<void> {
    const c = new Ctx(flags);
    try {
      await f(c);
    } catch (e) {
      throw c.explain(e);
    } finally {
      c.close();
    }
  }

  /** A storage timeout says which endpoint and where it came from, like the master's does. */
  private explain(e: unknown): unknown {
    if (!(e instanceof TimeoutError) || !e.message.includes(this.ep.storage)) return e;
    return new GridError(
      'UNAVAILABLE',
      `no storage node answers at ${this.ep.storage} (from ${this.ep.storageFrom}); is \`grid dev\` (or \`grid storage\`) running?`,
      'start it, or point the client at it with --storage or GRID_STORAGE',
      { cause: e },
    );
  }

  /** A full job id from a full id or a unique prefix of a recent job's id. */
  async jobId(arg: string): Promise<string> {
    checkJobIdArg(arg);
    const a = arg.toLowerCase();
    if (isUuid(a)) return a;
    const ids = await this.master.listJobs(this.cfg.maxJobsListed);
    const hits = ids.filter((id) => id.startsWith(a));
    if (hits.length === 1) return hits[0]!;
    if (hits.length === 0) throw new GridError('NOT_FOUND', `no recent job id starts with ${arg}`, 'see `grid jobs`, or give the whole id');
    throw new GridError('BAD_REQUEST', `${hits.length} recent jobs start with ${arg}`, 'give more of the id');
  }
}

function out(line: string): void {
  process.stdout.write(line + '\n');
}
function note(line: string): void {
  process.stderr.write(line + '\n');
}

/** Runs `fn` over items with at most `limit` at once, keeping order of results. */
export async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (t: T, i: number) => Promise<R>): Promise<R[]> {
  const res = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      res[i] = await fn(items[i]!, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return res;
}

export function jobJson(s: JobStatus, split?: SplitCounts): Record<string, unknown> {
  return {
    jobId: s.job_uuid,
    state: jobStateName(s.state),
    program: s.program_name,
    taskCount: s.task_count,
    tasksPending: s.tasks_pending,
    tasksRunning: s.tasks_running,
    tasksSucceeded: s.tasks_succeeded,
    // without the split, tasksFailed includes cancelled tasks and tasksCancelled is null
    tasksFailed: split ? split.failed : s.tasks_failed,
    tasksCancelled: split ? split.cancelled : null,
    createdAtMs: s.created_at_ms,
    finishedAtMs: s.finished_at_ms || null,
    error: s.error || null,
  };
}

export function taskJson(t: TaskStatus): Record<string, unknown> {
  return {
    taskIndex: t.task_index,
    state: taskStateName(t.state),
    outcome: outcomeName(t.outcome),
    attempts: t.attempts,
    exitCode: t.exit_code,
    durationMs: t.duration_ms,
    worker: t.worker_uuid === NIL_UUID ? null : t.worker_uuid,
    logFileId: t.log_file_uuid === NIL_UUID ? null : t.log_file_uuid,
    inputs: t.input_names,
    outputs: t.output_names.map((name, i) => ({ name, fileId: t.output_file_uuids[i] })),
    error: t.error || null,
    logTail: t.log_tail || null,
  };
}

/** Failed and cancelled apart: the job counters fold cancelled tasks into tasks_failed. */
export interface SplitCounts {
  failed: number;
  cancelled: number;
}

function describeJob(s: JobStatus, split?: SplitCounts): string[] {
  const f = split ?? { failed: s.tasks_failed, cancelled: 0 };
  const lines = [
    `job ${s.job_uuid}  ${jobStateName(s.state)}  program ${s.program_name}`,
    `tasks: ${s.task_count} total, ${s.tasks_pending} pending, ${s.tasks_running} running, ${s.tasks_succeeded} succeeded, ${f.failed} failed${split ? `, ${f.cancelled} cancelled` : ''}`,
  ];
  const tty = !!process.stdout.isTTY;
  const created = shownTime(s.created_at_ms, Date.now(), tty);
  lines.push(s.finished_at_ms ? `created ${created}, finished after ${duration(s.finished_at_ms - s.created_at_ms)}` : `created ${created}`);
  if (s.error) lines.push(`error: ${s.error}`);
  return lines;
}

/**
 * Failed and cancelled counted apart, by asking each task's state; only done for a job that
 * has any (tasks_failed > 0), since the job's own counters cannot tell them apart.
 */
async function splitCounts(c: Ctx, s: JobStatus, tasks?: readonly TaskStatus[]): Promise<SplitCounts> {
  if (s.tasks_failed === 0) return { failed: 0, cancelled: 0 };
  const ts = tasks ?? (await mapLimit(range(s.task_count), c.cfg.taskStatusConcurrency, (i) => c.master.taskStatus(s.job_uuid, i)));
  const n = taskCounts(ts);
  return { failed: n.failed, cancelled: n.cancelled };
}

function tail(text: string, lines: number): string[] {
  const all = text.replace(/\n$/, '').split('\n');
  return lines <= 0 || text === '' ? [] : all.slice(-lines);
}

function describeFailedTask(t: TaskStatus, logTailLines: number): string[] {
  const lines = [
    `task ${t.task_index} ${taskStateName(t.state)} (${outcomeName(t.outcome)}, exit code ${t.exit_code}, ${t.attempts} attempt${t.attempts === 1 ? '' : 's'}) inputs: ${t.input_names.join(' ')}`,
  ];
  if (t.error) lines.push(`  reason: ${t.error}`);
  const lt = tail(t.log_tail, logTailLines);
  if (lt.length) lines.push('  log tail:', ...lt.map((l) => `    ${l}`));
  return lines;
}

/** The tasks of a job that failed, up to `max` of them (asked `concurrency` at a time). */
async function failedTasks(c: Ctx, s: JobStatus, max: number): Promise<TaskStatus[]> {
  const found: TaskStatus[] = [];
  const batch = c.cfg.taskStatusConcurrency;
  for (let i = 0; i < s.task_count && found.length < max; i += batch) {
    const idx = Array.from({ length: Math.min(batch, s.task_count - i) }, (_, k) => i + k);
    const ts = await mapLimit(idx, batch, (k) => c.master.taskStatus(s.job_uuid, k));
    for (const t of ts) if (t.state === TaskState.failed && found.length < max) found.push(t);
  }
  return found;
}

// ---- submit ----------------------------------------------------------------------------------

interface SubmitFlags extends EndpointFlags, RawJobFlags {
  inputs?: string[];
  wait?: boolean;
  notify?: string;
  notifyCmd?: string;
}

async function submit(program: string, f: SubmitFlags): Promise<void> {
  const job = parseJobOptions(f);
  const inputs = f.inputs ?? [];
  if (inputs.length === 0) throw new GridError('BAD_REQUEST', 'no input files given', 'add --inputs FILE... (e.g. --inputs data/*.txt)');
  // every file is checked before anything is uploaded, so a typo costs nothing
  checkReadableFile(program, 'program');
  for (const p of inputs) checkReadableFile(p, 'input file');
  if (f.notify !== undefined) {
    const bad = checkNotifyUrl(f.notify);
    if (bad) throw new GridError('BAD_REQUEST', `--notify ${bad}`, 'give an http:// or https:// URL that takes a POST');
  }
  if (f.notifyCmd !== undefined && !f.wait) throw new GridError('BAD_REQUEST', '--notify-cmd runs when `submit --wait` sees the job end', 'add --wait, or use --notify URL (the master posts the status even when no client waits)');

  await Ctx.run(f, async (c) => {
    const files = [program, ...inputs];
    const sizes = files.map((p) => fs.statSync(p).size);
    const total = sizes.reduce((a, b) => a + b, 0);
    const sent = new Array<number>(files.length).fill(0);
    const bar = process.stderr.isTTY ? createProgress('upload', 'bytes') : undefined;
    let uploaded = 0;
    let uploadedBytes = 0;
    await c.reachStorage();
    const ids = await mapLimit(files, c.cfg.transferConcurrency, async (p, i) => {
      const r = await c.storage.putFile(p, (n) => {
        sent[i] = n;
        bar?.update(sent.reduce((a, b) => a + b, 0), total, path.basename(p));
      });
      sent[i] = sizes[i]!;
      if (r.uploaded) {
        uploaded++;
        uploadedBytes += r.length;
      }
      return r.fileUuid;
    });
    bar?.update(total, total, 'done');
    bar?.stop();
    note(`uploaded ${uploaded} of ${files.length} files (${uploadedBytes} bytes); ${files.length - uploaded} already stored`);

    const jobUuid = newUuid();
    const r = await c.master.submit({
      job_uuid: jobUuid,
      program_file_uuid: ids[0]!,
      chunk_size: job.chunkSize,
      max_retries: job.maxRetries,
      task_timeout_ms: job.taskTimeoutMs,
      memory_limit_mb: job.memoryLimitMb,
      output_limit_bytes: job.outputLimitBytes,
      input_file_uuids: ids.slice(1),
      input_names: inputs.map((p) => path.basename(p)),
      args: job.args,
      program_name: path.basename(program),
    });
    // the master posts the final status to --notify when the job ends (even if it already has)
    if (f.notify !== undefined) await c.master.notify(r.job_uuid, f.notify);
    if (!f.wait) {
      if (f.json) out(JSON.stringify({ jobId: r.job_uuid, taskCount: r.task_count }));
      else out(r.job_uuid);
      note(`job ${r.job_uuid} accepted: ${r.task_count} task${r.task_count === 1 ? '' : 's'}; follow it with \`grid status ${r.job_uuid}\``);
      return;
    }
    if (!f.json) out(r.job_uuid);
    const s = await waitForJob(c, r.job_uuid);
    const summary = await report(c, s, !!f.json);
    if (f.notifyCmd !== undefined) await runNotifyCmd(f.notifyCmd, summary, c.cfg.notifyCmdTimeoutMs);
  });
}

/**
 * `--notify-cmd CMD`: once `--wait` sees the job end, CMD runs in a shell with GRID_JOB_ID,
 * GRID_JOB_STATE and the final status as JSON on its stdin; its output goes to stderr (stdout
 * is for scripts). Its failure is reported but does not change grid's exit code.
 */
export async function runNotifyCmd(cmd: string, status: Record<string, unknown>, timeoutMs: number): Promise<void> {
  const { spawn } = await import('node:child_process');
  const child = spawn(cmd, {
    shell: true,
    stdio: ['pipe', process.stderr, process.stderr],
    env: { ...process.env, GRID_JOB_ID: String(status.jobId), GRID_JOB_STATE: String(status.state) },
  });
  child.stdin!.on('error', () => undefined); // a command that does not read its stdin
  child.stdin!.end(JSON.stringify(status) + '\n');
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) => {
    child.once('error', () => resolve([127, null]));
    child.once('exit', (c, s) => resolve([c, s]));
  });
  clearTimeout(timer);
  if (signal) note(`grid: --notify-cmd was killed by ${signal}${signal === 'SIGKILL' ? ` (still running after ${timeoutMs} ms, GRID_NOTIFY_CMD_TIMEOUT_MS)` : ''}`);
  else if (code !== 0) note(`grid: --notify-cmd exited with code ${code}`);
}

async function waitForJob(c: Ctx, jobUuid: string): Promise<JobStatus> {
  const bar = createProgress(`job ${jobUuid.slice(0, 8)}`, 'tasks');
  try {
    for (;;) {
      const s = await c.master.jobStatus(jobUuid);
      const settled = s.tasks_succeeded + s.tasks_failed;
      bar.update(settled, s.task_count, `${s.tasks_running} running, ${s.tasks_failed} failed, ${jobStateName(s.state)}`);
      if (s.state !== JobState.running) return s;
      await new Promise((res) => setTimeout(res, c.cfg.pollIntervalMs));
    }
  } finally {
    bar.stop();
  }
}

/** Prints how a finished job ended; sets exit code 2 unless it succeeded. Returns the status as JSON. */
async function report(c: Ctx, s: JobStatus, json: boolean): Promise<Record<string, unknown>> {
  const failed = s.state === JobState.succeeded ? [] : await failedTasks(c, s, c.cfg.maxFailedTasksShown);
  const split = s.state === JobState.succeeded ? undefined : await splitCounts(c, s);
  if (s.state !== JobState.succeeded) process.exitCode = EXIT_JOB_NOT_SUCCEEDED;
  const summary = { ...jobJson(s, split ?? { failed: 0, cancelled: 0 }), failedTasks: failed.map(taskJson) };
  if (json) {
    out(JSON.stringify(summary));
    return summary;
  }
  if (s.state === JobState.succeeded) {
    out(`job ${s.job_uuid} succeeded: ${s.task_count} task${s.task_count === 1 ? '' : 's'}; get the outputs with \`grid results ${s.job_uuid} --out DIR\``);
    return summary;
  }
  const lines = [...describeJob(s, split)];
  for (const t of failed) lines.push(...describeFailedTask(t, c.cfg.logTailLines));
  const nFailed = split?.failed ?? s.tasks_failed;
  if (nFailed > failed.length) lines.push(`(${nFailed - failed.length} more failed tasks not shown; see \`grid status ${s.job_uuid} --tasks\`)`);
  for (const l of lines) out(l);
  return summary;
}

// ---- status, jobs, logs, cancel, results ----------------------------------------------------

interface ListFlags extends EndpointFlags {
  state?: string;
  limit?: string;
}

const JOB_STATES = Object.keys(JobState);

/** The newest jobs, optionally only those in one state, at most `limit` (default maxJobsListed). */
async function listJobs(c: Ctx, f: ListFlags): Promise<void> {
  const limit = intFlag(f.limit, '--limit', 1, 100_000, c.cfg.maxJobsListed);
  const state = f.state === undefined ? undefined : f.state.toLowerCase();
  if (state !== undefined && !JOB_STATES.includes(state)) {
    throw new GridError('BAD_REQUEST', `--state must be one of ${JOB_STATES.join(', ')}, got ${JSON.stringify(f.state)}`, 'e.g. grid jobs --state running');
  }
  // with --state the newest maxJobsScanned jobs are looked through, else just `limit`
  const ids = await c.master.listJobs(state === undefined ? limit : Math.max(limit, c.cfg.maxJobsScanned));
  const all = await mapLimit(ids, c.cfg.taskStatusConcurrency, (id) => c.master.jobStatus(id));
  const ss = (state === undefined ? all : all.filter((s) => jobStateName(s.state) === state)).slice(0, limit);
  if (f.json) {
    out(JSON.stringify(ss.map((s) => jobJson(s))));
    return;
  }
  if (ss.length === 0) {
    out(state ? `no ${state} jobs among the newest ${ids.length}` : 'no jobs yet; submit one with `grid submit job.js --inputs FILE...`');
    return;
  }
  const tty = !!process.stdout.isTTY;
  const now = Date.now();
  const when = ss.map((s) => shownTime(s.created_at_ms, now, tty));
  const w = Math.max(7, ...when.map((x) => x.length));
  out(['JOB'.padEnd(36), 'STATE'.padEnd(9), 'TASKS'.padStart(6), 'OK'.padStart(6), 'FAILED'.padStart(6), '  ' + 'CREATED'.padEnd(w), 'PROGRAM'].join(' '));
  ss.forEach((s, i) => {
    out(
      [
        s.job_uuid,
        jobStateName(s.state).padEnd(9),
        String(s.task_count).padStart(6),
        String(s.tasks_succeeded).padStart(6),
        String(s.tasks_failed).padStart(6),
        '  ' + when[i]!.padEnd(w),
        s.program_name,
      ].join(' '),
    );
  });
}

interface StatusFlags extends EndpointFlags {
  tasks?: boolean;
}

async function status(jobArg: string | undefined, f: StatusFlags): Promise<void> {
  await Ctx.run(f, async (c) => {
    if (!jobArg) return listJobs(c, f);
    const s = await c.master.jobStatus(await c.jobId(jobArg));
    const tasks = f.tasks ? await mapLimit(range(s.task_count), c.cfg.taskStatusConcurrency, (i) => c.master.taskStatus(s.job_uuid, i)) : undefined;
    const split = await splitCounts(c, s, tasks);
    if (f.json) {
      out(JSON.stringify(tasks ? { ...jobJson(s, split), tasks: tasks.map(taskJson) } : jobJson(s, split)));
      return;
    }
    for (const l of describeJob(s, split)) out(l);
    for (const t of tasks ?? []) {
      out(`  task ${t.task_index}: ${taskStateName(t.state)}${t.outcome ? ` (${outcomeName(t.outcome)}, exit ${t.exit_code})` : ''}, ${t.attempts} attempt(s), ${t.output_names.length} output(s), inputs ${t.input_names.join(' ')}`);
      if (t.error) out(`    reason: ${t.error}`);
    }
  });
}

const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i);

/**
 * The stored log of each task. With --json: one JSON object per task and line (JSON Lines,
 * so a long log streams): taskIndex, state, attempts, inputs, source ("stored": the whole
 * log; "tail": only the tail the worker reported; "none": the task has not run), log.
 */
async function logs(jobArg: string, f: EndpointFlags & { task?: string }): Promise<void> {
  await Ctx.run(f, async (c) => {
    const jobUuid = await c.jobId(jobArg);
    const s = await c.master.jobStatus(jobUuid);
    let indexes = range(s.task_count);
    if (f.task !== undefined) {
      const i = Number(f.task);
      if (!Number.isInteger(i) || i < 0 || i >= s.task_count) {
        throw new GridError('BAD_REQUEST', `--task must be a task index from 0 to ${s.task_count - 1}, got ${JSON.stringify(f.task)}`, `job ${jobUuid} has ${s.task_count} tasks`);
      }
      indexes = [i];
    }
    for (const i of indexes) {
      const t = await c.master.taskStatus(jobUuid, i);
      const head = { jobId: jobUuid, taskIndex: i, state: taskStateName(t.state), attempts: t.attempts, inputs: t.input_names };
      if (!f.json && f.task === undefined) out(`==> task ${i} (${taskStateName(t.state)}, ${t.attempts} attempt(s), inputs ${t.input_names.join(' ')}) <==`);
      if (t.log_file_uuid === NIL_UUID) {
        const why = t.attempts === 0 ? 'the task has not run yet' : 'no log was stored for its last attempt';
        if (f.json) {
          out(JSON.stringify({ ...head, source: t.log_tail ? 'tail' : 'none', log: t.log_tail, note: why }));
          continue;
        }
        if (t.log_tail) out(t.log_tail.replace(/\n$/, ''));
        note(`(task ${i}: ${why}${t.log_tail ? '; shown is the log tail the worker reported' : ''})`);
        continue;
      }
      await c.reachStorage();
      const buf = await c.storage.readWhole(t.log_file_uuid);
      if (f.json) {
        out(JSON.stringify({ ...head, source: 'stored', log: buf.toString('utf8') }));
        continue;
      }
      process.stdout.write(buf);
      if (buf.length && buf[buf.length - 1] !== 10) out('');
    }
  });
}

async function cancel(jobArg: string, f: EndpointFlags): Promise<void> {
  await Ctx.run(f, async (c) => {
    const jobUuid = await c.jobId(jobArg);
    await c.master.cancel(jobUuid);
    const s = await c.master.jobStatus(jobUuid);
    if (f.json) out(JSON.stringify(jobJson(s)));
    else out(`job ${jobUuid} is ${jobStateName(s.state)}`);
  });
}

async function results(jobArg: string, f: EndpointFlags & { out?: string }): Promise<void> {
  if (!f.out) throw new GridError('BAD_REQUEST', 'no output folder given', 'add --out DIR');
  const outDir = path.resolve(f.out);
  // before the master is asked: a bad --out costs nothing
  prepareOutDir(outDir);
  await Ctx.run(f, async (c) => {
    const jobUuid = await c.jobId(jobArg);
    const s = await c.master.jobStatus(jobUuid);
    const tasks = await mapLimit(range(s.task_count), c.cfg.taskStatusConcurrency, (i) => c.master.taskStatus(jobUuid, i));
    const done = tasks.filter((t) => t.state === TaskState.succeeded);
    const counts = taskCounts(tasks);
    // every name is checked before the first byte is written
    const files = done.flatMap((t) => t.output_names.map((name, k) => ({ task: t.task_index, name, fileUuid: t.output_file_uuids[k]!, dest: outputPath(outDir, t.task_index, name) })));
    const bar = process.stderr.isTTY ? createProgress('download', 'tasks') : undefined;
    let n = 0;
    let bytes = 0;
    if (files.length) await c.reachStorage();
    await mapLimit(files, c.cfg.transferConcurrency, async (x) => {
      let got: number;
      try {
        fs.mkdirSync(path.dirname(x.dest), { recursive: true });
        got = await c.storage.downloadTo(x.fileUuid, x.dest);
      } catch (e) {
        throw outputWriteError(e, x.dest);
      }
      // add after the await: `bytes += await ...` reads bytes before the await and loses the
      // concurrent downloads' additions
      bytes += got;
      bar?.update(++n, files.length, x.name);
    });
    bar?.stop();
    const summary = {
      jobId: jobUuid,
      state: jobStateName(s.state),
      out: outDir,
      tasks: s.task_count,
      tasksWithOutputs: done.length,
      tasksFailed: counts.failed,
      tasksCancelled: counts.cancelled,
      tasksUnfinished: counts.pending + counts.running,
      files: files.length,
      bytes,
    };
    if (f.json) out(JSON.stringify(summary));
    else out(`wrote ${files.length} files (${bytes} bytes) of ${done.length}/${s.task_count} tasks to ${outDir}`);
    const code = resultsExitCode(s.state);
    if (code === EXIT_JOB_RUNNING) note(`job ${jobUuid} is still running (${counts.pending + counts.running} tasks to go): the outputs of its ${done.length} succeeded tasks so far were written; run results again when it is done`);
    else if (code === EXIT_JOB_NOT_SUCCEEDED) note(`job ${jobUuid} is ${jobStateName(s.state)} (${counts.failed} failed, ${counts.cancelled} cancelled): only the outputs of its ${done.length} succeeded tasks were written`);
    if (code) process.exitCode = code;
  });
}

/** Exit code of `results`: 0 succeeded, 2 failed or cancelled, 3 still running (partial outputs). */
export function resultsExitCode(state: number): number {
  if (state === JobState.succeeded) return 0;
  if (state === JobState.running) return EXIT_JOB_RUNNING;
  return EXIT_JOB_NOT_SUCCEEDED;
}

/** Tasks by state; cancelled is its own count (the job counters fold it into failed). */
export function taskCounts(tasks: readonly TaskStatus[]): { pending: number; running: number; succeeded: number; failed: number; cancelled: number } {
  const n = { pending: 0, running: 0, succeeded: 0, failed: 0, cancelled: 0 };
  for (const t of tasks) {
    if (t.state === TaskState.pending) n.pending++;
    else if (t.state === TaskState.running) n.running++;
    else if (t.state === TaskState.succeeded) n.succeeded++;
    else if (t.state === TaskState.cancelled) n.cancelled++;
    else n.failed++;
  }
  return n;
}

// ---- init ------------------------------------------------------------------------------------

const ROLE_MODULES: Record<string, unknown> = { master: masterRole, balancer: balancerRole, storage: storageRole, worker: workerRole };

/** The commented sample config of a role (each role exports sampleConfig() from index.ts). */
export function sampleConfigFor(role: string): string {
  const mod = ROLE_MODULES[role] as { sampleConfig?: () => string } | undefined;
  if (!mod) throw new GridError('BAD_REQUEST', `unknown role ${JSON.stringify(role)}`, `roles: ${Object.keys(ROLE_MODULES).join(', ')}`);
  if (typeof mod.sampleConfig !== 'function') throw new GridError('UNAVAILABLE', `the ${role} role has no sample config in this build`);
  return mod.sampleConfig();
}

function init(f: { role?: string; out?: string; force?: boolean }): void {
  if (!f.role) throw new GridError('BAD_REQUEST', 'no role given', `add --role ROLE (one of ${Object.keys(ROLE_MODULES).join(', ')})`);
  const text = sampleConfigFor(f.role);
  if (!f.out) {
    process.stdout.write(text);
    return;
  }
  if (fs.existsSync(f.out) && !f.force) throw new GridError('BAD_REQUEST', `${f.out} already exists`, 'choose another --out, or add --force to overwrite it');
  try {
    fs.mkdirSync(path.dirname(path.resolve(f.out)), { recursive: true });
    fs.writeFileSync(f.out, text);
  } catch (e) {
    throw new GridError('BAD_REQUEST', `cannot write ${f.out}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  note(`wrote the ${f.role} sample config to ${f.out}; start with: grid ${f.role} --config ${f.out}`);
}

// ---- registration ----------------------------------------------------------------------------

function endpointOptions(cmd: Command, json = true): Command {
  cmd
    .option('--master <endpoints>', 'master endpoint, or a comma list of a replicated group (default: $GRID_MASTER, the running `grid dev`, or tcp://127.0.0.1:7700)')
    .option('--storage <endpoint>', 'storage endpoint (default: $GRID_STORAGE, the running `grid dev`, or tcp://127.0.0.1:7702)')
    .option('--data-dir <dir>', 'where `grid dev` keeps dev.json (default ./.grid)');
  if (json) cmd.option('--json', 'machine-readable output on stdout');
  return cmd;
}

export function registerClientCommands(program: Command): void {
  endpointOptions(
    program
      .command('submit')
      .description('upload job.js and its inputs, submit a job, print its id')
      .argument('<program>', 'the job program (run as `node job.js <input paths>` on workers)')
      .option('--inputs <files...>', 'input files; task i gets inputs [i*chunk, (i+1)*chunk)')
      .option('--chunk-size <n>', 'inputs per task (default 1)')
      .option('--args <args...>', 'arguments for every task, passed as GRID_ARGS (JSON array)')
      .option('--retries <n>', 'retries of a failed task on another worker (default 2)')
      .option('--task-timeout <seconds>', 'kill a task running longer (default 600)')
      .option('--memory-limit <MiB>', 'memory a task may use (default 1024)')
      .option('--output-limit <MiB>', 'total size of a task\'s outputs (default 1024)')
      .option('--wait', 'show progress until the job ends; exit 2 unless every task succeeded')
      .option('--notify <url>', 'when the job ends, the master POSTs its final status as JSON to this http(s) URL (retried with backoff)')
      .option('--notify-cmd <cmd>', 'with --wait: run CMD in a shell when the job ends (GRID_JOB_ID, GRID_JOB_STATE; the status as JSON on stdin)'),
  ).action((p: string, f: SubmitFlags) => submit(p, f));

  endpointOptions(
    program
      .command('status')
      .description('state of one job, or a list of recent jobs')
      .argument('[job]', 'job id (or a unique prefix); none lists recent jobs')
      .option('--tasks', 'also show every task'),
  ).action((j: string | undefined, f: StatusFlags) => status(j, f));

  endpointOptions(
    program
      .command('jobs')
      .description('list recent jobs, newest first')
      .option('--state <state>', `only jobs in this state: ${JOB_STATES.join(', ')}`)
      .option('--limit <n>', 'most jobs listed (default 50, GRID_MAX_JOBS_LISTED)'),
  ).action((f: ListFlags) => Ctx.run(f, (c) => listJobs(c, f)));

  endpointOptions(
    program
      .command('logs')
      .description("print the stored log (stdout+stderr) of a job's tasks")
      .argument('<job>', 'job id (or a unique prefix)')
      .option('--task <index>', 'only this task'),
  ).action((j: string, f: EndpointFlags & { task?: string }) => logs(j, f));

  endpointOptions(program.command('cancel').description('cancel a running job').argument('<job>', 'job id (or a unique prefix)')).action(
    (j: string, f: EndpointFlags) => cancel(j, f),
  );

  endpointOptions(
    program
      .command('results')
      .description('download the outputs of a job: task i lands in DIR/<i>/<name>')
      .argument('<job>', 'job id (or a unique prefix)')
      .option('--out <dir>', 'folder to write into (created if missing)'),
  ).action((j: string, f: EndpointFlags & { out?: string }) => results(j, f));

  program
    .command('init')
    .description("write a role's commented sample config file")
    .option('--role <role>', 'master, balancer, storage or worker')
    .option('--out <file>', 'file to write (default: print to stdout)')
    .option('--force', 'overwrite an existing file')
    .action((f: { role?: string; out?: string; force?: boolean }) => init(f));

  registerDevCommand(program);
  registerClusterCommand(program);
  registerCodecCommands(program);
  registerCompletionCommand(program);
}
