/**
 * What `grid dev` shows its user: the lines it says (terminal and logs/dev.log), the
 * ready banner, and the tail of a child's output kept for error reports.
 */
import fs from 'node:fs';
import { DevState } from '../endpoints';
import { FUSE_INSTALL_COMMAND } from '../../worker';
import { DevOptions } from './plan';


/** Keeps the last `max` lines written to a stream, for error reports. */
export class LineTail {
  private lines: string[] = [];
  private partial = '';
  constructor(private readonly max: number) {}
  push(chunk: Buffer): string[] {
    const parts = (this.partial + chunk.toString('utf8')).split('\n');
    this.partial = parts.pop() ?? '';
    for (const l of parts) this.lines.push(l);
    if (this.lines.length > this.max) this.lines.splice(0, this.lines.length - this.max);
    return parts;
  }
  get(): string[] {
    return this.partial ? [...this.lines, this.partial].slice(-this.max) : this.lines.slice();
  }
}

/** A `say` that writes each line to the terminal and, time-stamped, to `devLog`. */
export function makeSay(devLog: string, out: (s: string) => void = (s) => process.stdout.write(s)): (line: string) => void {
  return (line: string): void => {
    out(line + '\n');
    try {
      fs.appendFileSync(devLog, `${new Date().toISOString()} ${line}\n`);
    } catch {
      // the terminal has it
    }
  };
}

export function startingLine(o: DevOptions): string {
  const nm = o.masters ?? 1;
  return `grid dev: starting storage, ${nm === 1 ? 'master' : `${nm} masters`}, balancer and ${o.workers} worker(s) in ${o.dataDir}`;
}

/** The banner printed once every node is ready. */
export function readyBanner(o: DevOptions, s: DevState, statePath: string): string {
  const masters = s.masters ?? [s.master];
  const masterLines =
    masters.length === 1
      ? [`  master    ${s.master}    (clients find it through ${statePath}, or export GRID_MASTER=${s.master})`]
      : [
          ...masters.map((m, i) => `  master-${i}  ${m}`),
          `            (clients find them through ${statePath}, or export GRID_MASTER=${masters.join(',')}; \`grid cluster\` shows which leads)`,
        ];
  return [
    `grid dev: ready (${masters.length === 1 ? '' : `${masters.length} masters, `}${o.workers} worker${o.workers === 1 ? '' : 's'})`,
    ...masterLines,
    `  storage   ${s.storage}`,
    ...(o.balancers === 2 ? [`  balancers ${s.balancers?.join(' (primary), ')} (auxiliary)`] : [`  balancer  ${s.balancer}`]),
    `  dashboard http://127.0.0.1:${s.nodes.find((n) => n.role === 'master')?.adminPort}/dashboard  (metrics: GET /metrics on every node's admin port)`,
    `  logs      ${s.logDir}  (each node's stdout/stderr: <name>.out; its JSON log: ${o.dataDir}/<name>/logs/)`,
    `  state     ${statePath}`,
    `crashed nodes restarted: ${o.restart.length ? o.restart.join(', ') : 'none'}. Press Ctrl-C to stop.`,
  ].join('\n');
}

/** The loud warning of a dev whose workers cannot mount FUSE here and run staged instead. */
export function fuseWarning(problem: string): string {
  const bar = '!'.repeat(78);
  return [
    bar,
    `!!! grid dev: ${problem}`,
    `!!! The workers run STAGED: each task's inputs are downloaded into its folder instead of`,
    `!!! read through a FUSE mount. Jobs work, but install FUSE (${FUSE_INSTALL_COMMAND}) to test`,
    `!!! the grid as it runs in production.`,
    bar,
  ].join('\n');
}
