/** Public surface of the storage role. */
import { Command } from 'commander';

/** Registers `grid storage` (filled in by the storage role). */
export function registerCommands(_program: Command): void {}
