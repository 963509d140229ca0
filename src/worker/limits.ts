/**
 * Pure decisions of the task runner: which limit a task broke, how its end is classified,
 * and how its log is capped. No I/O and no clock here, so each rule is unit-tested alone.
 */
import { TaskOutcome } from '../messages';

export type OutcomeName = Exclude<keyof typeof TaskOutcome, 'none' | 'lost'>;

/** Why the runner killed a task (first reason wins). */
export type KillReason = 'timeout' | 'memory_limit' | 'output_limit' | 'cancelled' | 'worker_error';

export interface KillDecision {
  reason: KillReason;
  /** one sentence for the user: what happened and what to do */
  error: string;
}

const MiB = 1024 * 1024;

export function fmtBytes(n: number): string {
  if (n >= MiB) return `${Math.round((n / MiB) * 10) / 10} MiB`;
  if (n >= 1024) return `${Math.round((n / 1024) * 10) / 10} KiB`;
  return `${n} bytes`;
}

export function timeoutDecision(timeoutMs: number): KillDecision {
  return {
    reason: 'timeout',
    error: `task exceeded its timeout of ${timeoutMs} ms and was killed; raise it with grid submit --task-timeout SECONDS, or make the task faster`,
  };
}

/** The memory check on one RSS sample of the whole process tree. */
export function checkMemory(rssBytes: number, memoryLimitMb: number): KillDecision | null {
  if (rssBytes <= memoryLimitMb * MiB) return null;
  return {
    reason: 'memory_limit',
    error: `task exceeded its memory limit of ${memoryLimitMb} MiB (RSS ${Math.round(rssBytes / MiB)} MiB); raise --memory-limit or reduce memory use`,
  };
}

/** The output check on one size sample of the working folder. */
export function checkOutput(totalBytes: number, files: number, outputLimitBytes: number, maxOutputFiles: number): KillDecision | null {
  if (totalBytes > outputLimitBytes) {
    return {
      reason: 'output_limit',
      error: `task exceeded its output limit of ${fmtBytes(outputLimitBytes)} (wrote ${fmtBytes(totalBytes)} or more); raise --output-limit or write less`,
    };
  }
  if (files > maxOutputFiles) {
    return {
      reason: 'output_limit',
      error: `task left more than ${maxOutputFiles} output files (maxOutputFiles); write fewer, larger files`,
    };
  }
  return null;
}

export interface ExitFacts {
  /** exit code, null when killed by a signal */
  code: number | null;
  signal: string | null;
  /** set when the runner itself killed the task */
  killed: KillDecision | null;
  /** end of the task's log, to recognise V8's heap exhaustion */
  logTail: string;
  /** output size and file count after the exit */
  outputBytes: number;
  outputFiles: number;
  outputLimitBytes: number;
  maxOutputFiles: number;
  memoryLimitMb: number;
}

export interface Classified {
  outcome: OutcomeName;
  /** -1 when the process ended by a signal */
  exitCode: number;
  error: string;
}

const V8_OOM = /JavaScript heap out of memory|Reached heap limit/;

/** How a finished task is reported. The runner's own kill decision comes first. */
export function classifyExit(f: ExitFacts): Classified {
  const exitCode = f.code ?? -1;
  if (f.killed) return { outcome: f.killed.reason, exitCode, error: f.killed.error };
  if (f.code !== 0 && V8_OOM.test(f.logTail)) {
    return {
      outcome: 'memory_limit',
      exitCode,
      error: `task ran out of JavaScript heap under its memory limit of ${f.memoryLimitMb} MiB; raise --memory-limit or reduce memory use`,
    };
  }
  // A file that hit the hard per-file cap (prlimit --fsize = the output limit) fails with
  // EFBIG; the total then reaches the limit. A clean exit over the limit is refused too.
  const over = checkOutput(f.outputBytes, f.outputFiles, f.outputLimitBytes, f.maxOutputFiles);
  if (over) return { outcome: 'output_limit', exitCode, error: over.error };
  if (f.code !== 0 && f.outputBytes >= f.outputLimitBytes && f.outputLimitBytes > 0) {
    return {
      outcome: 'output_limit',
      exitCode,
      error: `task hit its output limit of ${fmtBytes(f.outputLimitBytes)} (a write failed with EFBIG); raise --output-limit or write less`,
    };
  }
  if (f.code === 0) return { outcome: 'ok', exitCode: 0, error: '' };
  if (f.signal) {
    return { outcome: 'exit_nonzero', exitCode, error: `task was killed by signal ${f.signal}; see its log` };
  }
  return { outcome: 'exit_nonzero', exitCode, error: `task exited with code ${f.code}; see its log tail` };
}

/**
 * Caps a log at maxLogBytes: the first half goes to the file as it comes; after that only
 * the last half is kept (in memory) and written at the end behind a "log truncated" line.
 * write() returns what to append to the file now; finish() what to append at the end.
 */
export class LogCapper {
  private readonly headCap: number;
  private readonly tailCap: number;
  private headBytes = 0;
  private tail: Buffer[] = [];
  private tailBytes = 0;
  private dropped = 0;
  total = 0;

  constructor(readonly maxLogBytes: number) {
    this.headCap = Math.floor(maxLogBytes / 2);
    this.tailCap = maxLogBytes - this.headCap;
  }

  write(chunk: Buffer): Buffer | null {
    this.total += chunk.length;
    let toFile: Buffer | null = null;
    if (this.headBytes < this.headCap) {
      const n = Math.min(chunk.length, this.headCap - this.headBytes);
      toFile = chunk.subarray(0, n);
      this.headBytes += n;
      chunk = chunk.subarray(n);
    }
    if (chunk.length > 0) {
      this.tail.push(Buffer.from(chunk));
      this.tailBytes += chunk.length;
      while (this.tailBytes > this.tailCap) {
        const first = this.tail[0]!;
        const excess = this.tailBytes - this.tailCap;
        if (first.length <= excess) {
          this.tail.shift();
          this.tailBytes -= first.length;
          this.dropped += first.length;
        } else {
          this.tail[0] = first.subarray(excess);
          this.tailBytes -= excess;
          this.dropped += excess;
        }
      }
    }
    return toFile;
  }

  get truncated(): boolean {
    return this.dropped > 0;
  }

  /** The rest of the file: the kept tail, behind a marker line when bytes were dropped. */
  finish(): Buffer {
    const parts: Buffer[] = [];
    if (this.dropped > 0) parts.push(Buffer.from(`\n[grid: log truncated: ${this.dropped} bytes dropped (maxLogBytes = ${this.maxLogBytes})]\n`));
    parts.push(...this.tail);
    return Buffer.concat(parts);
  }

  /** The last n bytes of the log as it will be stored (for task_result.log_tail). */
  lastBytes(n: number, head: Buffer): Buffer {
    const whole = Buffer.concat([head, this.finish()]);
    return whole.subarray(Math.max(0, whole.length - n));
  }
}

/** Cuts a UTF-8 buffer to a valid string (a tail may start inside a multi-byte character). */
export function tailText(b: Buffer): string {
  let i = 0;
  while (i < b.length && i < 4 && (b[i]! & 0xc0) === 0x80) i++;
  return b.subarray(i).toString('utf8');
}

/** Parses /proc/<pid>/stat: ppid and process group (the command name may hold spaces). */
export function parseProcStat(text: string): { ppid: number; pgrp: number } | null {
  const close = text.lastIndexOf(')');
  if (close < 0) return null;
  const rest = text.slice(close + 2).split(' ');
  const ppid = Number(rest[1]);
  const pgrp = Number(rest[2]);
  if (!Number.isInteger(ppid) || !Number.isInteger(pgrp)) return null;
  return { ppid, pgrp };
}

/** VmRSS of /proc/<pid>/status in bytes (0 for kernel threads and zombies). */
export function parseVmRss(text: string): number {
  const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(text);
  return m ? Number(m[1]) * 1024 : 0;
}

/** The task's process tree: the group it leads, plus descendants that left the group. */
export function treePids(table: Map<number, { ppid: number; pgrp: number }>, root: number): number[] {
  const out = new Set<number>();
  for (const [pid, p] of table) if (p.pgrp === root || pid === root) out.add(pid);
  // descendants by parent links, for children that called setsid()
  let grew = true;
  for (let rounds = 0; grew && rounds < 64; rounds++) {
    grew = false;
    for (const [pid, p] of table) {
      if (!out.has(pid) && out.has(p.ppid)) {
        out.add(pid);
        grew = true;
      }
    }
  }
  return [...out];
}
