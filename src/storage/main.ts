/** `grid storage` (being filled in). */
import { Command } from 'commander';

export function registerCommands(_program: Command): void {}
