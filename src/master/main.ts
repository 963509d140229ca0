/** `grid master`: runs one master node until SIGINT/SIGTERM. */
import { Command } from 'commander';
import { setNodeUmask } from '../common/datadir';
import { SecurityFlags, announceReady, onShutdown, securityFlagValues, securityOptions, adminFlagValues, adminOptions } from '../common';
import { loadMasterConfig } from './config';
import { MasterNode } from './node';

export function registerCommands(program: Command): void {
  adminOptions(securityOptions(program
    .command('master')
    .description('run a master node: jobs, tasks and results in SQLite; pushes tasks to the balancer')
    .option('--data-dir <dir>', 'folder for jobs.db, node id and logs (default ./.grid/master)')
    .option('--bind <endpoint>', 'ZeroMQ endpoint for clients and balancers (default tcp://127.0.0.1:7700)')
    .option('--admin-port <port>', 'admin HTTP port for /healthz and /status; 0 = any free port (default 7710)')
    .option('--peers <endpoints>', 'every master of the Raft group, comma separated, this one included (its --bind); omit for a single master')
    .option('--dashboard-nodes <admins>', 'admin HOST:PORT of other nodes the dashboard shows, comma separated')
    .option('--dashboard-nodes-file <file>', 'a grid dev state file (dev.json) the dashboard reads the nodes from')
    .option('--config <file>', 'JSON config file (see grid init --role master); flags override it')))
    .action(async (o: SecurityFlags & { dataDir?: string; bind?: string; adminPort?: string; peers?: string; dashboardNodes?: string; dashboardNodesFile?: string; config?: string }) => {
      setNodeUmask(); // new files 0600, folders 0700 (docs/operations.md, "Containment")
      const cfg = loadMasterConfig({ dataDir: o.dataDir, bind: o.bind, adminPort: o.adminPort, peers: o.peers, dashboardNodes: o.dashboardNodes, dashboardNodesFile: o.dashboardNodesFile, ...securityFlagValues(o), ...adminFlagValues(o) }, o.config);
      const node = new MasterNode(cfg);
      const { endpoint, adminPort } = await node.start();
      onShutdown(() => node.stop());
      announceReady({ role: 'master', nodeId: node.nodeId, endpoints: { clients: endpoint }, adminPort, dataDir: cfg.dataDir });
    });
}
