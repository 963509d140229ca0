/** `grid balancer`: runs one balancer node until SIGINT/SIGTERM. */
import { Command } from 'commander';
import { setNodeUmask } from '../common/datadir';
import { SecurityFlags, announceReady, onShutdown, securityFlagValues, securityOptions, adminFlagValues, adminOptions } from '../common';
import { loadBalancerConfig } from './config';
import { BalancerNode } from './node';

export function registerCommands(program: Command): void {
  adminOptions(securityOptions(program
    .command('balancer')
    .description('run a balancer: takes tasks from the master and dispatches them to workers (Paranoid Pirate)')
    .option('--master <endpoints>', "the master's ZeroMQ endpoint, or a comma list of the replicated masters' endpoints (default tcp://127.0.0.1:7700)")
    .option('--bind <endpoint>', 'ZeroMQ endpoint workers connect to; port 0 = any free port (default tcp://127.0.0.1:7701)')
    .option('--admin-port <port>', 'admin HTTP port for /healthz and /status; 0 = any free port (default 7711)')
    .option('--data-dir <dir>', 'folder for the node id and logs (default ./.grid/balancer)')
    .option('--role <role>', 'primary or auxiliary: run one of each for a fault-tolerant pair (default primary)')
    .option('--config <file>', 'JSON config file (see grid init --role balancer); flags override it')))
    .action(async (o: SecurityFlags & { master?: string; bind?: string; adminPort?: string; dataDir?: string; config?: string; role?: string }) => {
      setNodeUmask(); // new files 0600, folders 0700 (docs/operations.md, "Containment")
      const cfg = loadBalancerConfig({ master: o.master, bind: o.bind, adminPort: o.adminPort, dataDir: o.dataDir, role: o.role, ...securityFlagValues(o), ...adminFlagValues(o) }, o.config);
      const node = new BalancerNode(cfg);
      const { endpoint, adminPort } = await node.start();
      onShutdown(() => node.stop());
      announceReady({ role: 'balancer', nodeId: node.nodeId, endpoints: { workers: endpoint }, adminPort, master: cfg.master, dataDir: cfg.dataDir, balancerRole: cfg.role });
    });
}
