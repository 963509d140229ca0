/** The one binary codec every role shares. See docs/protocol.md. */
export * from './errors';
export * from './schema';
export * from './layout';
export * from './types';
export * from './codec';
export * from './uuid';
export * from './error-codes';
export * from './json';
