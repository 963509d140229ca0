/**
 * How jobs and tasks are shown: state names, the --json shapes, the text reports, failed
 * and cancelled counted apart, `--wait`'s polling and final report, and the exit codes.
 */
import { JobState, NIL_UUID, TaskOutcome, TaskState } from '../messages';
import { duration, shownTime } from './format';
import { JobStatus, TaskStatus } from './master-client';
import { createProgress } from './progress';
import { Ctx, mapLimit, out } from './ctx';

/** Exit code of `submit --wait` and `results` when the job failed or was cancelled. */
export const EXIT_JOB_NOT_SUCCEEDED = 2;
/** Exit code of `results` when the job is still running (the outputs so far were written). */
export const EXIT_JOB_RUNNING = 3;

const nameOf = <T extends Record<string, number>>(e: T, v: number): string => Object.keys(e).find((k) => e[k] === v) ?? `unknown(${v})`;
export const jobStateName = (v: number): string => nameOf(JobState, v);
export const taskStateName = (v: number): string => nameOf(TaskState, v);
export const outcomeName = (v: number): string => nameOf(TaskOutcome, v);

export function jobJson(s: JobStatus): Record<string, unknown> {
  return {
    jobId: s.job_uuid,
    state: jobStateName(s.state),
    program: s.program_name,
    taskCount: s.task_count,
    tasksPending: s.tasks_pending,
    tasksRunning: s.tasks_running,
    tasksSucceeded: s.tasks_succeeded,
    tasksFailed: s.tasks_failed,
    tasksCancelled: s.tasks_cancelled,
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

export function describeJob(s: JobStatus): string[] {
  const lines = [
    `job ${s.job_uuid}  ${jobStateName(s.state)}  program ${s.program_name}`,
    `tasks: ${s.task_count} total, ${s.tasks_pending} pending, ${s.tasks_running} running, ${s.tasks_succeeded} succeeded, ${s.tasks_failed} failed, ${s.tasks_cancelled} cancelled`,
  ];
  const tty = !!process.stdout.isTTY;
  const created = shownTime(s.created_at_ms, Date.now(), tty);
  lines.push(s.finished_at_ms ? `created ${created}, finished after ${duration(s.finished_at_ms - s.created_at_ms)}` : `created ${created}`);
  if (s.error) lines.push(`error: ${s.error}`);
  return lines;
}

function tail(text: string, lines: number): string[] {
  const all = text.replace(/\n$/, '').split('\n');
  return lines <= 0 || text === '' ? [] : all.slice(-lines);
}

export function describeFailedTask(t: TaskStatus, logTailLines: number): string[] {
  const lines = [
    `task ${t.task_index} ${taskStateName(t.state)} (${outcomeName(t.outcome)}, exit code ${t.exit_code}, ${t.attempts} attempt${t.attempts === 1 ? '' : 's'}) inputs: ${t.input_names.join(' ')}`,
  ];
  if (t.error) lines.push(`  reason: ${t.error}`);
  const lt = tail(t.log_tail, logTailLines);
  if (lt.length) lines.push('  log tail:', ...lt.map((l) => `    ${l}`));
  return lines;
}

/** The tasks of a job that failed, up to `max` of them (asked `concurrency` at a time). */
export async function failedTasks(c: Ctx, s: JobStatus, max: number): Promise<TaskStatus[]> {
  const found: TaskStatus[] = [];
  const batch = c.cfg.taskStatusConcurrency;
  for (let i = 0; i < s.task_count && found.length < max; i += batch) {
    const idx = Array.from({ length: Math.min(batch, s.task_count - i) }, (_, k) => i + k);
    const ts = await mapLimit(idx, batch, (k) => c.master.taskStatus(s.job_uuid, k));
    for (const t of ts) if (t.state === TaskState.failed && found.length < max) found.push(t);
  }
  return found;
}

export async function waitForJob(c: Ctx, jobUuid: string): Promise<JobStatus> {
  const bar = createProgress(`job ${jobUuid.slice(0, 8)}`, 'tasks');
  try {
    for (;;) {
      const s = await c.master.jobStatus(jobUuid);
      const settled = s.tasks_succeeded + s.tasks_failed + s.tasks_cancelled;
      bar.update(settled, s.task_count, `${s.tasks_running} running, ${s.tasks_failed} failed, ${jobStateName(s.state)}`);
      if (s.state !== JobState.running) return s;
      await new Promise((res) => setTimeout(res, c.cfg.pollIntervalMs));
    }
  } finally {
    bar.stop();
  }
}

/** Prints how a finished job ended; sets exit code 2 unless it succeeded. Returns the status as JSON. */
export async function report(c: Ctx, s: JobStatus, json: boolean): Promise<Record<string, unknown>> {
  const failed = s.state === JobState.succeeded ? [] : await failedTasks(c, s, c.cfg.maxFailedTasksShown);
  if (s.state !== JobState.succeeded) process.exitCode = EXIT_JOB_NOT_SUCCEEDED;
  const summary = { ...jobJson(s), failedTasks: failed.map(taskJson) };
  if (json) {
    out(JSON.stringify(summary));
    return summary;
  }
  if (s.state === JobState.succeeded) {
    out(`job ${s.job_uuid} succeeded: ${s.task_count} task${s.task_count === 1 ? '' : 's'}; get the outputs with \`grid results ${s.job_uuid} --out DIR\``);
    return summary;
  }
  const lines = [...describeJob(s)];
  for (const t of failed) lines.push(...describeFailedTask(t, c.cfg.logTailLines));
  const nFailed = s.tasks_failed;
  if (nFailed > failed.length) lines.push(`(${nFailed - failed.length} more failed tasks not shown; see \`grid status ${s.job_uuid} --tasks\`)`);
  for (const l of lines) out(l);
  return summary;
}

/** Exit code of `results`: 0 succeeded, 2 failed or cancelled, 3 still running (partial outputs). */
export function resultsExitCode(state: number): number {
  if (state === JobState.succeeded) return 0;
  if (state === JobState.running) return EXIT_JOB_RUNNING;
  return EXIT_JOB_NOT_SUCCEEDED;
}

/** Tasks by state, counted from the tasks themselves; cancelled is its own count. */
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
