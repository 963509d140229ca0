/**
 * The merged, human-readable log stream `grid dev` shows in its terminal: every node's JSON
 * log line (copied to its stdout under GRID_LOG_STDOUT=1) becomes one line
 *
 *   18:04:05.123 INFO  worker-1   task finished  jobId=3f2a9c1e taskIndex=3 outcome=0
 *
 * colored by level and by node on a terminal. The files keep the JSON (logs/<name>.out and
 * each node's own log file). Written here rather than with pino-pretty: dev needs the node
 * name in front of each line and one shared column layout across all nodes, which is a
 * dozen lines of code, not a dependency.
 */

const LEVELS: Record<number, { name: string; color: string }> = {
  10: { name: 'TRACE', color: '\x1b[90m' },
  20: { name: 'DEBUG', color: '\x1b[36m' },
  30: { name: 'INFO', color: '\x1b[32m' },
  40: { name: 'WARN', color: '\x1b[33m' },
  50: { name: 'ERROR', color: '\x1b[31m' },
  60: { name: 'FATAL', color: '\x1b[41m' },
};
const LEVEL_NUMBER: Record<string, number> = { trace: 10, debug: 20, info: 30, warn: 40, error: 50, fatal: 60, silent: Infinity };
const NODE_COLORS = ['\x1b[34m', '\x1b[35m', '\x1b[36m', '\x1b[94m', '\x1b[95m', '\x1b[96m', '\x1b[33m'];
const RESET = '\x1b[0m';
const DIM = '\x1b[2m';
/** fields every line has, or that the prefix already shows */
const HIDDEN = new Set(['level', 'time', 'pid', 'hostname', 'role', 'nodeId', 'msg', 'v']);
/** ids shortened to their first 8 characters (enough to tell apart, and to use as a prefix) */
const SHORT_IDS = new Set(['jobId', 'workerId', 'fileId', 'balancerId']);

export function levelNumber(name: string): number | undefined {
  return LEVEL_NUMBER[name.toLowerCase()];
}

function colorOf(name: string): string {
  let h = 0;
  for (const c of name) h = (h * 31 + c.charCodeAt(0)) >>> 0;
  return NODE_COLORS[h % NODE_COLORS.length]!;
}

function value(k: string, v: unknown): string {
  if (typeof v === 'string') {
    const s = SHORT_IDS.has(k) && /^[0-9a-f-]{36}$/.test(v) ? v.slice(0, 8) : v;
    return /\s/.test(s) ? JSON.stringify(s) : s;
  }
  if (v && typeof v === 'object' && 'message' in (v as object)) return JSON.stringify((v as { message: unknown }).message);
  return JSON.stringify(v);
}

/**
 * One pretty line for a node's JSON log line, or undefined when `line` is not a pino line
 * (plain output is shown by the caller as it is) or is below `minLevel`.
 */
export function prettyLogLine(node: string, line: string, o: { color: boolean; minLevel: number; width?: number }): string | undefined {
  if (!line.startsWith('{')) return undefined;
  let j: Record<string, unknown>;
  try {
    j = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return undefined;
  }
  if (typeof j.level !== 'number' || typeof j.msg !== 'string') return undefined;
  if (j.level < o.minLevel) return '';
  const lv = LEVELS[j.level] ?? { name: String(j.level), color: '' };
  const t = typeof j.time === 'number' ? new Date(j.time).toISOString().slice(11, 23) : '';
  const fields = Object.entries(j)
    .filter(([k]) => !HIDDEN.has(k))
    .map(([k, v]) => `${k}=${value(k, v)}`)
    .join(' ');
  const name = node.padEnd(o.width ?? 10);
  const c = (code: string, s: string): string => (o.color ? `${code}${s}${RESET}` : s);
  return `${c(DIM, t)} ${c(lv.color, lv.name.padEnd(5))} ${c(colorOf(node), name)} ${j.msg}${fields ? `  ${c(DIM, fields)}` : ''}`;
}
