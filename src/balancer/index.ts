/** Public surface of the balancer role. */
export { registerCommands } from './main';
export { sampleConfig, BALANCER_DEFAULTS, loadBalancerConfig, masterEndpoints, validateDispatchLimits } from './config';
export type { BalancerConfig, DispatchLimits } from './config';
export { BalancerNode } from './node';
export type { BalancerStatus } from './node';
export { Dispatcher } from './dispatch';
export type { DispatchEvent, DispatchOutput, DispatchOptions, DispatchStatus, DispatchCounters, HelloReason, RedirectWhy } from './dispatch';
