/** Public surface of the balancer role. */
import { Command } from 'commander';

/** Registers `grid balancer` (filled in by the balancer role). */
export function registerCommands(_program: Command): void {}
