/** The `grid dev` command: options, the supervisor, signals and what the user sees. */
import fs from 'node:fs';
import path from 'node:path';
import { Command } from 'commander';
import { GridError, announceReady } from '../../common';
import { secureDataDir, setNodeUmask } from '../../common/datadir';
import { loadDevConfig } from '../config';
import { DEFAULT_DATA_DIR, DevState, readDevState } from '../endpoints';
import { fuseProblem } from '../../worker';
import { fuseWarning, makeSay, readyBanner, startingLine } from './output';
import { DevFlags, parseDevOptions } from './plan';
import { levelNumber, prettyLogLine } from './pretty';
import { installShutdown } from './signals';
import { DevSupervisor } from './supervisor';

async function runDev(f: DevFlags): Promise<void> {
  const cfg = loadDevConfig();
  const o = parseDevOptions(f, cfg);
  const running = readDevState(o.dataDir);
  if (running) throw new GridError('BAD_REQUEST', `a grid dev (pid ${running.pid}) already runs with data dir ${o.dataDir}`, 'stop it first, or use another --data-dir');
  // dev.json and the dev log are private like every node's data dir (docs/operations.md, "Containment")
  setNodeUmask();
  secureDataDir(o.dataDir);
  const devLog = path.join(o.dataDir, 'logs', 'dev.log');
  fs.mkdirSync(path.dirname(devLog), { recursive: true });
  const say = makeSay(devLog);
  const fuse = o.staged || o.workers === 0 ? null : fuseProblem();
  if (fuse) {
    o.staged = true;
    say(fuseWarning(fuse));
  }
  const minLevel = levelNumber(f.logLevel ?? 'info');
  if (minLevel === undefined) throw new GridError('BAD_REQUEST', `--log-level must be trace, debug, info, warn, error, fatal or silent, got ${JSON.stringify(f.logLevel)}`);
  const color = !!process.stdout.isTTY && !process.env.NO_COLOR;
  // every node's log lines, merged and readable; the files keep the JSON
  const nodeLine =
    minLevel === Infinity
      ? undefined
      : (name: string, line: string): void => {
          const p = prettyLogLine(name, line, { color, minLevel, width: 10 });
          if (p === undefined) process.stdout.write(`${name.padEnd(10)} | ${line}\n`);
          else if (p !== '') process.stdout.write(p + '\n');
        };
  const sup = new DevSupervisor(o, cfg, { say, nodeLine });
  const ctl = installShutdown(sup, cfg, say);
  say(startingLine(o));
  let s: DevState;
  try {
    s = await sup.start();
  } catch (e) {
    if (ctl.stopping) return; // a signal arrived during start-up; its handler exits
    throw e;
  }
  ctl.started();
  say(readyBanner(o, s, sup.statePath));
  const masters = s.masters ?? [s.master];
  announceReady({
    role: 'dev',
    nodeId: String(process.pid),
    endpoints: { master: masters.join(','), storage: s.storage, balancer: s.balancer },
    adminPort: 0,
    statePath: sup.statePath,
  });
  // keep running until a signal: the children's pipes keep the event loop alive
  await new Promise<void>(() => undefined);
}

export function registerDevCommand(program: Command): void {
  program
    .command('dev')
    .description('run a whole grid on this machine: storage, master(s), balancer and N workers')
    .option('--workers <n>', 'number of workers (default 2)')
    .option('--balancers <n>', 'balancers: 1, or 2 for a primary/auxiliary pair fenced by a lease from the masters (default 1); the second at P+8')
    .option('--masters <n>', 'masters in a replicated group: 1, 3 or 5 (default 1); with --port-base P they are at P, P+3, P+4, ...')
    .option('--data-dir <dir>', `folder for every node's data, logs and dev.json (default ${DEFAULT_DATA_DIR})`)
    .option('--port-base <port>', 'first port (default 7700; 0 = every port ephemeral)')
    .option('--slots <n>', 'tasks each worker runs at once (default: the worker\'s own)')
    .option('--prefetch <n>', 'tasks each worker queues beyond its slots (default: the worker\'s own)')
    .option('--log-level <level>', "nodes' log lines shown in this terminal, merged and readable: trace, debug, info, warn, error or silent (default info); the files keep JSON")
    .option('--staged', 'workers download inputs into each task folder instead of a FUSE mount (automatic when FUSE is missing)')
    .option('--restart <roles>', 'comma list of roles restarted after a crash, or none (default worker)')
    .action((f: DevFlags) => runDev(f));
}
