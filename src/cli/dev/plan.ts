/**
 * The pure parts of `grid dev`: roles, the port plan (docs/architecture.md, "Endpoints and
 * ports"), node names, what to do when a node exits, and the checked options. No I/O here:
 * each is tested directly (test/cli/units.test.ts).
 */
import path from 'node:path';
import { GridError } from '../../common';
import { intFlag } from '../args';
import { DEV_MASTER_COUNTS, DevConfig } from '../config';
import { DEFAULT_DATA_DIR } from '../endpoints';

export const DEV_ROLES = ['master', 'balancer', 'storage', 'worker'] as const;
export type DevRole = (typeof DEV_ROLES)[number];

/**
 * Port offsets from --port-base (docs/architecture.md, "Endpoints and ports"). Master 0 is
 * at P; with --masters N the others at P+3 .. P+N+1 (admin P+13 ..), after balancer P+1 and
 * storage P+2, so a 1-master layout is unchanged.
 */
export const PORT_OFFSETS = { master: 0, balancer: 1, storage: 2, master1: 3, balancer1: 8, adminMaster: 10, adminBalancer: 11, adminStorage: 12, adminMaster1: 13, adminBalancer1: 18, adminWorker0: 20 } as const;

/** Most masters dev runs (a group of 5 tolerates 2 failures). */
export const MAX_DEV_MASTERS = 5;

export interface DevOptions {
  workers: number;
  /** masters in the group: 1, 3 or 5 (default 1) */
  masters?: number;
  /** balancers: 1, or 2 for a primary/auxiliary pair (default 1; docs/balancer.md) */
  balancers?: number;
  /** absolute */
  dataDir: string;
  /** 0 = every port ephemeral */
  portBase: number;
  slots?: number;
  prefetch?: number;
  /** roles restarted after a crash */
  restart: readonly DevRole[];
  /** workers download inputs instead of mounting FUSE (--staged, or FUSE missing here) */
  staged?: boolean;
}

/** How a child is started: by default `node bin/grid.js <role> ...args`. Tests swap it. */
export type Launcher = (role: DevRole, args: string[]) => { command: string; argv: string[] };

export const GRID_BIN = path.resolve(__dirname, '..', '..', '..', '..', 'bin', 'grid.js');
export const defaultLauncher: Launcher = (role, args) => ({ command: process.execPath, argv: [GRID_BIN, role, ...args] });

export function tcp(port: number): string {
  return `tcp://127.0.0.1:${port}`;
}

/** The name of a node in dev.json and its data dir: master (or master-<i> in a group), worker-<i>, ... */
export function nodeName(role: DevRole, index: number, masters = 1, balancers = 1): string {
  if (role === 'worker') return `worker-${index}`;
  if (role === 'master' && masters > 1) return `master-${index}`;
  if (role === 'balancer' && balancers > 1) return `balancer-${index}`;
  return role;
}

/** Bind endpoint and admin port of a node before its first start. */
export function plannedPorts(o: Pick<DevOptions, 'portBase'>, role: DevRole, index = 0): { bind?: string; adminPort: number } {
  const P = o.portBase;
  const at = (off: number): number => (P === 0 ? 0 : P + off);
  switch (role) {
    case 'master':
      if (index > 0) return { bind: tcp(at(PORT_OFFSETS.master1 + index - 1)), adminPort: at(PORT_OFFSETS.adminMaster1 + index - 1) };
      return { bind: tcp(at(PORT_OFFSETS.master)), adminPort: at(PORT_OFFSETS.adminMaster) };
    case 'balancer':
      if (index > 0) return { bind: tcp(at(PORT_OFFSETS.balancer1)), adminPort: at(PORT_OFFSETS.adminBalancer1) };
      return { bind: tcp(at(PORT_OFFSETS.balancer)), adminPort: at(PORT_OFFSETS.adminBalancer) };
    case 'storage':
      return { bind: tcp(at(PORT_OFFSETS.storage)), adminPort: at(PORT_OFFSETS.adminStorage) };
    case 'worker':
      return { adminPort: at(PORT_OFFSETS.adminWorker0 + index) };
  }
}

/** The main endpoint in a ready message (each role names its endpoints its own way). */
export function mainEndpoint(role: DevRole, endpoints: Record<string, string>): string | undefined {
  const prefer: Record<DevRole, string[]> = {
    master: ['clients', 'master'],
    balancer: ['workers', 'balancer'],
    storage: ['clients', 'storage'],
    worker: [],
  };
  for (const k of prefer[role]) if (endpoints[k]) return endpoints[k];
  return Object.values(endpoints)[0];
}

export type ExitDecision = { action: 'restart'; delayMs: number; message: string } | { action: 'leave-dead'; message: string };

/**
 * What dev does when a node that was serving exits on its own. Pure: tested directly.
 * `masters` is the size of the master group: with more than one, a dead master is not fatal.
 */
export function decideOnExit(
  n: { name: string; role: DevRole; pid: number; restarts: number; outputFile: string },
  how: { code: number | null; signal: NodeJS.Signals | null },
  restartRoles: readonly DevRole[],
  cfg: Pick<DevConfig, 'maxRestarts' | 'restartDelayMs'>,
  masters = 1,
  balancers = 1,
): ExitDecision {
  const why = how.signal ? `killed by ${how.signal}` : `exited with code ${how.code}`;
  const base = `${n.name} (pid ${n.pid}) ${why}; its output is in ${n.outputFile}`;
  if (restartRoles.includes(n.role) && n.restarts < cfg.maxRestarts) {
    return { action: 'restart', delayMs: cfg.restartDelayMs, message: `${base}; restarting it in ${cfg.restartDelayMs} ms (restart ${n.restarts + 1} of at most ${cfg.maxRestarts})` };
  }
  const impact: Record<DevRole, string> = {
    master: 'NO JOBS CAN BE SUBMITTED OR FINISHED until the grid is restarted',
    storage: 'NO FILES CAN BE UPLOADED OR READ until the grid is restarted',
    balancer: 'NO TASKS WILL BE DISPATCHED until the grid is restarted',
    worker: 'the other workers carry on',
  };
  const tooMany = restartRoles.includes(n.role) ? ` after ${n.restarts} restarts` : '';
  if (n.role === 'balancer' && balancers > 1) {
    return { action: 'leave-dead', message: `!! ${base}${tooMany}; it stays down: the other balancer takes the dispatch lease (see \`grid cluster\`); if it dies too, NO TASKS WILL BE DISPATCHED` };
  }
  if (n.role === 'master' && masters > 1) {
    const majority = Math.floor(masters / 2) + 1;
    return {
      action: 'leave-dead',
      message: `!! ${base}${tooMany}; it stays down: the other masters keep serving while ${majority} of ${masters} run (see \`grid cluster\`)${
        restartRoles.includes('master') ? '' : '; `grid dev --restart worker,master` restarts dead masters'
      }`,
    };
  }
  return { action: 'leave-dead', message: `${n.role === 'worker' ? '' : '!!! '}${base}${tooMany}; it stays down: ${impact[n.role]}` };
}

export interface DevFlags {
  workers?: string;
  masters?: string;
  dataDir?: string;
  portBase?: string;
  slots?: string;
  prefetch?: string;
  restart?: string;
  balancers?: string;
  staged?: boolean;
  logLevel?: string;
}

export function parseDevOptions(f: DevFlags, cfg: DevConfig): DevOptions {
  const restart = (f.restart ?? 'worker')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '' && s !== 'none');
  for (const r of restart) {
    if (!(DEV_ROLES as readonly string[]).includes(r)) throw new GridError('BAD_REQUEST', `--restart names unknown role ${JSON.stringify(r)}`, `use a comma list of ${DEV_ROLES.join(', ')}, or none`);
  }
  const portBase = intFlag(f.portBase, '--port-base', 0, 65535 - 100, 7700);
  if (portBase !== 0 && portBase < 1024) throw new GridError('BAD_REQUEST', `--port-base must be 0 (ephemeral) or at least 1024, got ${portBase}`);
  const workers = intFlag(f.workers, '--workers', 0, cfg.maxWorkers, 2);
  const masters = intFlag(f.masters, '--masters', 1, MAX_DEV_MASTERS, 1);
  if (!(DEV_MASTER_COUNTS as readonly number[]).includes(masters)) {
    throw new GridError('BAD_REQUEST', `--masters must be ${DEV_MASTER_COUNTS.join(', ')}, got ${masters}`, 'a Raft group needs an odd count: 3 survive one dead master, 5 survive two');
  }
  const balancers = intFlag(f.balancers, '--balancers', 1, 2, 1);
  if (portBase !== 0 && portBase + PORT_OFFSETS.adminWorker0 + workers > 65535) throw new GridError('BAD_REQUEST', `--port-base ${portBase} leaves no room for ${workers} worker admin ports`);
  return {
    workers,
    masters,
    balancers,
    dataDir: path.resolve(f.dataDir ?? DEFAULT_DATA_DIR),
    portBase,
    slots: f.slots === undefined ? undefined : intFlag(f.slots, '--slots', 1, 1024, 1),
    prefetch: f.prefetch === undefined ? undefined : intFlag(f.prefetch, '--prefetch', 0, 1024, 0),
    restart: restart as DevRole[],
    staged: f.staged === true,
  };
}
