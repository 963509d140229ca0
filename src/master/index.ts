/** Public surface of the master role. */
import { Command } from 'commander';

/** Registers `grid master` (filled in by the master role). */
export function registerCommands(_program: Command): void {}
