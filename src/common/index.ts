/** Infrastructure shared by every role (not a role's internals). */
export * from './errors';
export * from './log';
export * from './zmq';
export * from './admin';
export * from './process';
export * from './version';
export * from './config';
export * from './leader';
export * from './metrics';
export * from './settings';
export * from './reach';
export * from './bind-errors';
export * from './keys';
export * from './security';
export * from './zap';
export * from './backoff';
export * from './ports';
