/** Public surface of the worker role. */
import { Command } from 'commander';

/** Registers `grid worker` (filled in by the worker role). */
export function registerCommands(_program: Command): void {}
