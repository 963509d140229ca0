/**
 * Structured logs (pino): every line carries role and nodeId; job and task ids are added
 * as child bindings where they apply. Nodes log to a file under their data dir.
 *
 * One field vocabulary across roles (docs/operations.md "Logs"): role, nodeId, pid on every
 * line; jobId, taskIndex, attempt, workerId, fileId, balancerId where they apply; err for an
 * error's message; event for a balancer event's name.
 *
 * With GRID_LOG_STDOUT=1 (set by `grid dev` for its children) each line also goes to stdout,
 * where dev merges every node's lines into one human-readable stream; the file keeps JSON.
 */
import fs from 'node:fs';
import path from 'node:path';
import pino, { Logger } from 'pino';

export type { Logger };

/** Set to 1 to copy a node's log lines to stdout too (grid dev does, for its merged view). */
export const LOG_STDOUT_ENV = 'GRID_LOG_STDOUT';

export interface LogOptions {
  role: string;
  nodeId: string;
  /** File to append JSON lines to; stderr when absent. */
  file?: string;
  level?: string;
}

export function createLogger(o: LogOptions): Logger {
  const level = o.level ?? process.env.GRID_LOG_LEVEL ?? 'info';
  let dest: pino.DestinationStream;
  if (o.file) {
    fs.mkdirSync(path.dirname(o.file), { recursive: true });
    const file = pino.destination({ dest: o.file, sync: true, mkdir: true });
    dest = process.env[LOG_STDOUT_ENV] === '1' ? pino.multistream([{ stream: file, level: level as pino.Level }, { stream: stdoutCopy, level: level as pino.Level }]) : file;
  } else {
    dest = pino.destination(2);
  }
  return pino({ level, base: { role: o.role, nodeId: o.nodeId, pid: process.pid } }, dest);
}

/**
 * The stdout copy of the log lines: best effort. When dev is gone (killed), its end of the
 * pipe is closed and a write fails with EPIPE; the node must still log to its file and stop
 * cleanly (unmounting FUSE), so a failed write here is dropped, never thrown.
 */
const stdoutCopy = {
  write(line: string): void {
    const buf = Buffer.from(line);
    let off = 0;
    // a pipe may take part of a line; a full pipe (EAGAIN) or a closed one (EPIPE) drops the rest
    try {
      for (let i = 0; off < buf.length && i < 100; i++) off += fs.writeSync(1, buf, off);
    } catch {
      // nobody reads stdout any more, or it is full: the file has the line
    }
  },
};

/** A logger that drops everything (tests of pure modules). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
