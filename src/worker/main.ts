/** `grid worker`: runs one worker node until SIGINT/SIGTERM. */
import { Command } from 'commander';
import { setNodeUmask } from '../common/datadir';
import { GridError, SecurityFlags, announceReady, onShutdown, securityFlagValues, securityOptions, adminFlagValues, adminOptions } from '../common';
import { fuseProblem } from './fusefs';
import { WorkerConfig, loadWorkerConfig } from './config';
import { WorkerNode } from './node';

interface WorkerFlags extends SecurityFlags {
  balancer?: string;
  storage?: string;
  dataDir?: string;
  mount?: string;
  slots?: string;
  prefetch?: string;
  adminPort?: string;
  staged?: boolean;
  config?: string;
}

export function registerCommands(program: Command): void {
  adminOptions(securityOptions(program
    .command('worker')
    .description('run a worker node: runs tasks from the balancer, inputs through a read-only FUSE mount')
    .option('--balancer <endpoint>', 'the balancer ZeroMQ endpoint (default tcp://127.0.0.1:7701)')
    .option('--storage <endpoint>', 'the storage ZeroMQ endpoint (default tcp://127.0.0.1:7702)')
    .option('--data-dir <dir>', 'folder for node id, logs, programs, task folders (default ./.grid/worker)')
    .option('--mount <dir>', 'FUSE mount point for inputs (default <data-dir>/mnt)')
    .option('--slots <n>', 'tasks run at once (default: number of CPUs)')
    .option('--prefetch <n>', 'tasks queued beyond the slots (default 1)')
    .option('--admin-port <port>', 'admin HTTP port for /healthz and /status; 0 = any free port (default 7720)')
    .option('--staged', 'no FUSE: download each task\'s inputs into its folder (explicit opt-in)')
    .option('--config <file>', 'JSON config file (see grid init --role worker); flags override it')))
    .action(async (o: WorkerFlags) => {
      await runWorker(o);
    });
}

export async function runWorker(o: WorkerFlags): Promise<WorkerNode> {
  const flags: Partial<Record<keyof WorkerConfig, unknown>> = {
    balancer: o.balancer,
    storage: o.storage,
    dataDir: o.dataDir,
    mount: o.mount,
    slots: o.slots,
    prefetch: o.prefetch,
    adminPort: o.adminPort,
    staged: o.staged ? true : undefined,
    ...securityFlagValues(o), ...adminFlagValues(o),
  };
  setNodeUmask(); // new files 0600, folders 0700 (docs/operations.md, "Containment")
  const cfg = loadWorkerConfig(flags, o.config);
  // before anything is created or logged: without FUSE the worker says what to install, in one line
  if (!cfg.staged) {
    const problem = fuseProblem();
    if (problem) throw new GridError('FUSE_UNAVAILABLE', problem);
  }
  const node = new WorkerNode(cfg);
  const { adminPort, mount } = await node.start();
  onShutdown(() => node.stop());
  announceReady({ role: 'worker', nodeId: node.nodeId, endpoints: {}, adminPort, mount, dataDir: cfg.dataDir, slots: cfg.slots });
  return node;
}
