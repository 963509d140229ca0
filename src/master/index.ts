/** Public surface of the master role. */
export { registerCommands } from './main';
export { sampleConfig, MASTER_DEFAULTS, loadMasterConfig } from './config';
export type { MasterConfig } from './config';
export { MasterNode } from './node';
export { checkNotifyUrl } from './notify';
