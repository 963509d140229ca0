/**
 * A stand-alone `grid` with only the codec commands, so test/messages/codec-cli.test.ts runs
 * the real commands in a child process without depending on the other roles' registration.
 */
import { Command } from 'commander';
import { registerCodecCommands } from '../../src/cli/codec';

const program = new Command('grid').exitOverride();
registerCodecCommands(program);
program.parseAsync(process.argv).catch((e: { exitCode?: number }) => {
  process.exitCode = typeof e.exitCode === 'number' ? e.exitCode : 1;
});
