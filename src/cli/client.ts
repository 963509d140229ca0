/** Client commands: submit, status, jobs, logs, cancel, results, dev, init, codec. */
import { Command } from 'commander';

export function registerClientCommands(_program: Command): void {}
