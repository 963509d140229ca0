/** Public surface of the worker role. */
export { registerCommands, runWorker } from './main';
export { sampleConfig, WORKER_DEFAULTS, loadWorkerConfig, validateWorkerConfig } from './config';
export type { WorkerConfig } from './config';
export { WorkerNode } from './node';
export type { WorkerNodeOptions } from './node';
export { TaskRun } from './runner';
export type { RunSpec, RunLimits, RunResult, OutputFile } from './runner';
export { GridFs, fuseProblem } from './fusefs';
export type { GridFsOptions } from './fusefs';
export { ChunkCache } from './chunkcache';
export type { ChunkSource, ChunkCacheOptions, ChunkCacheStats } from './chunkcache';
export { ExecutionJournal, readExecutions, MAX_EXECUTION_RECORDS, EXECUTIONS_FILE } from './journal';
export type { ExecutionRecord } from './journal';
export { FUSE_INSTALL_COMMAND, FUSE_PACKAGES, fuseLoadProblem } from './fuse-native';
