/**
 * `grid storage`: runs one storage node until SIGINT/SIGTERM. Also runnable directly:
 * `node dist/src/storage/main.js --data-dir DIR --bind tcp://127.0.0.1:0 --admin-port 0`.
 */
import { Command, CommanderError } from 'commander';
import { setNodeUmask } from '../common/datadir';
import { GridError, SecurityFlags, announceReady, onShutdown, securityFlagValues, securityOptions, adminFlagValues, adminOptions } from '../common';
import { loadStorageConfig } from './config';
import { StorageNode } from './server';

interface StorageFlags extends SecurityFlags {
  dataDir?: string;
  bind?: string;
  adminPort?: string;
  quotaBytes?: string;
  config?: string;
}

export function registerCommands(program: Command): void {
  adminOptions(securityOptions(program
    .command('storage')
    .description('run a storage node: immutable, content-addressed files in SQLite')
    .option('--data-dir <dir>', 'folder for storage.db, node id and logs (default ./.grid/storage)')
    .option('--bind <endpoint>', 'ZeroMQ endpoint for clients and workers; port 0 = any free port (default tcp://127.0.0.1:7702)')
    .option('--admin-port <port>', 'admin HTTP port for /healthz and /status; 0 = any free port (default 7712)')
    .option('--quota-bytes <bytes>', 'most bytes stored (default 107374182400 = 100 GiB)')
    .option('--config <file>', 'JSON config file (see grid init --role storage); flags override it')))
    .action(async (o: StorageFlags) => {
      await runStorage(o);
    });
}

export async function runStorage(o: StorageFlags): Promise<StorageNode> {
  setNodeUmask(); // new files 0600, folders 0700 (docs/operations.md, "Containment")
  const cfg = loadStorageConfig({ dataDir: o.dataDir, bind: o.bind, adminPort: o.adminPort, quotaBytes: o.quotaBytes, ...securityFlagValues(o), ...adminFlagValues(o) }, o.config);
  const node = new StorageNode(cfg);
  const { endpoint, adminPort } = await node.start();
  onShutdown(() => node.stop());
  announceReady({ role: 'storage', nodeId: node.nodeId, endpoints: { clients: endpoint }, adminPort, dataDir: cfg.dataDir });
  return node;
}

if (require.main === module) {
  const program = new Command('grid').exitOverride();
  registerCommands(program);
  program.parseAsync(['node', 'grid', 'storage', ...process.argv.slice(2)]).catch((e: unknown) => {
    if (e instanceof CommanderError) process.exit(e.exitCode);
    if (e instanceof GridError) process.stderr.write(`grid storage: ${e.code}: ${e.describe()}\n`);
    else process.stderr.write(`grid storage: ${(e as Error).stack ?? e}\n`);
    process.exit(1);
  });
}
