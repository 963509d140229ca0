/**
 * `grid dev`: a whole grid on one machine. In parts: plan.ts (pure: roles, ports, names,
 * the crash policy, options), ports.ts (port probing), supervisor.ts (the child processes),
 * signals.ts (Ctrl-C), output.ts (what the user sees), command.ts (the command). Mount
 * parsing is shared with the worker in common/mounts.ts.
 */
export * from './plan';
export { probeFreePorts } from '../../common';
export { DevSupervisor, SupervisorIo } from './supervisor';
export { registerDevCommand } from './command';
export { mountsUnder, unmountAllUnder } from '../../common/mounts';
