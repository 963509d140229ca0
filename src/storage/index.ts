/** Public surface of the storage role. */
export { StorageClient } from './client';
export type { StorageClientOptions, StatResult, PutResult } from './client';
export { registerCommands } from './main';
export { sampleConfig, STORAGE_DEFAULTS, STORAGE_CLIENT_DEFAULTS, loadStorageConfig } from './config';
export type { StorageConfig, StorageClientConfig } from './config';
