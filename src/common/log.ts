/**
 * Structured logs (pino): every line carries role and nodeId; job and task ids are added
 * as child bindings where they apply. Nodes log to a file under their data dir.
 */
import fs from 'node:fs';
import path from 'node:path';
import pino, { Logger } from 'pino';

export type { Logger };

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
    dest = pino.destination({ dest: o.file, sync: true, mkdir: true });
  } else {
    dest = pino.destination(2);
  }
  return pino({ level, base: { role: o.role, nodeId: o.nodeId, pid: process.pid } }, dest);
}

/** A logger that drops everything (tests of pure modules). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
