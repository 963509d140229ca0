/**
 * The grid command line. Each role registers its own `grid <role>` command from its
 * index.ts; the client commands live in this folder.
 */
import { Command, CommanderError } from 'commander';
import { GridError } from '../common';
import { SOFTWARE_VERSION } from '../common/version';
import { registerCommands as registerMaster } from '../master';
import { registerCommands as registerBalancer } from '../balancer';
import { registerCommands as registerStorage } from '../storage';
import { registerCommands as registerWorker } from '../worker';
import { registerClientCommands } from './client';

export function buildProgram(): Command {
  const program = new Command('grid')
    .description('a job-processing grid: run job.js over chunks of many inputs on a pool of workers')
    .version(SOFTWARE_VERSION, '-V, --version')
    .showHelpAfterError('(run with --help for usage)');
  registerClientCommands(program);
  registerMaster(program);
  registerBalancer(program);
  registerStorage(program);
  registerWorker(program);
  return program;
}

/** Runs the CLI. Operating errors print one line and exit 1; never a stack trace. */
export async function main(argv: string[]): Promise<void> {
  exitQuietlyOnClosedPipe();
  const program = buildProgram().exitOverride();
  try {
    await program.parseAsync(argv);
  } catch (e) {
    if (e instanceof CommanderError) process.exit(e.exitCode);
    if (e instanceof GridError) {
      process.stderr.write(`grid: ${e.code}: ${e.describe()}\n`);
      process.exit(1);
    }
    throw e;
  }
}

/**
 * `grid jobs | head -1`: once the reader is gone, a write fails with EPIPE; that is not an
 * error of grid's, so it stops quietly (exit 0, as `yes | head -1` does) instead of an
 * unhandled 'error' event's stack trace.
 */
export function exitQuietlyOnClosedPipe(): void {
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'EPIPE') process.exit(0);
      throw e;
    });
  }
}
