/**
 * Checks of the user's arguments, before anything is sent: numbers in range, every file
 * present and readable. Each failure is one GridError naming the argument and what to do.
 */
import fs from 'node:fs';
import { GridError } from '../common';
import { isUuid } from '../messages';
import { JOB_BOUNDS, JOB_DEFAULTS } from './config';

/** The job settings of a submit, in the units of the wire (ms, bytes). */
export interface JobOptions {
  chunkSize: number;
  maxRetries: number;
  taskTimeoutMs: number;
  memoryLimitMb: number;
  outputLimitBytes: number;
  args: string[];
}

/** Raw flag values as commander hands them over (undefined = not given). */
export interface RawJobFlags {
  chunkSize?: string;
  retries?: string;
  taskTimeout?: string;
  memoryLimit?: string;
  outputLimit?: string;
  args?: string[];
}

function badArg(flag: string, want: string, got: string): GridError {
  return new GridError('BAD_REQUEST', `${flag} must be ${want}, got ${JSON.stringify(got)}`, `see grid submit --help`);
}

/** An integer flag in [min, max]; `undefined` gives the default. */
export function intFlag(raw: string | undefined, flag: string, min: number, max: number, dflt: number): number {
  if (raw === undefined) return dflt;
  const v = raw.trim() === '' ? NaN : Number(raw);
  if (!Number.isInteger(v) || v < min || v > max) throw badArg(flag, `an integer from ${min} to ${max}`, raw);
  return v;
}

/** A positive number flag (fractions allowed) in (0, max]. */
export function numberFlag(raw: string | undefined, flag: string, max: number, dflt: number): number {
  if (raw === undefined) return dflt;
  const v = raw.trim() === '' ? NaN : Number(raw);
  if (!Number.isFinite(v) || v <= 0 || v > max) throw badArg(flag, `a number above 0 and at most ${max}`, raw);
  return v;
}

export function parseJobOptions(f: RawJobFlags): JobOptions {
  const b = JOB_BOUNDS;
  const d = JOB_DEFAULTS;
  const taskTimeoutS = numberFlag(f.taskTimeout, '--task-timeout (seconds)', b.maxTaskTimeoutS, d.taskTimeoutS);
  return {
    chunkSize: intFlag(f.chunkSize, '--chunk-size', 1, b.maxChunkSize, d.chunkSize),
    maxRetries: intFlag(f.retries, '--retries', 0, b.maxRetries, d.maxRetries),
    taskTimeoutMs: Math.max(1, Math.round(taskTimeoutS * 1000)),
    memoryLimitMb: intFlag(f.memoryLimit, '--memory-limit (MiB)', 1, b.maxMemoryLimitMb, d.memoryLimitMb),
    outputLimitBytes: intFlag(f.outputLimit, '--output-limit (MiB)', 1, b.maxOutputLimitMb, d.outputLimitMb) * 1024 * 1024,
    args: f.args ?? [],
  };
}

/**
 * Checks that `file` is a regular file this process can read; the error names the file and
 * says why (missing, a directory, no permission).
 */
export function checkReadableFile(file: string, what: string): void {
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'it does not exist' : code === 'EACCES' ? 'permission denied' : (code ?? (e as Error).message);
    throw new GridError('INPUT_UNREADABLE', `cannot read ${what} ${file}: ${why}`, 'check the path and try again');
  }
  if (!st.isFile()) throw new GridError('INPUT_UNREADABLE', `${what} ${file} is not a regular file`, 'give files, not folders (a shell glob like dir/*.txt works)');
  try {
    fs.accessSync(file, fs.constants.R_OK);
  } catch {
    throw new GridError('INPUT_UNREADABLE', `cannot read ${what} ${file}: permission denied`, 'check the file permissions');
  }
}

/** Fewest characters of a job id prefix. */
export const MIN_JOB_ID_PREFIX = 4;

/** Checks a job id argument is a whole UUID or a prefix of one (hex digits and dashes). */
export function checkJobIdArg(arg: string): void {
  if (isUuid(arg)) return;
  const s: string = arg;
  if (!/^[0-9a-fA-F-]*$/.test(s) || s.length > 36) {
    throw new GridError('BAD_REQUEST', `${JSON.stringify(s)} is not a job id: a job id is hex digits (0-9, a-f) and dashes`, 'give the id `grid submit` printed, or a unique prefix of it (see `grid jobs`)');
  }
  if (s.replace(/-/g, '').length < MIN_JOB_ID_PREFIX) {
    throw new GridError(
      'BAD_REQUEST',
      `${JSON.stringify(s)} is too short for a job id prefix: give at least ${MIN_JOB_ID_PREFIX} hex digits of a recent job's id`,
      'or the whole id `grid submit` printed (see `grid jobs`)',
    );
  }
}
