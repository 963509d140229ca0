/**
 * `npm run bench [-- --only NAME] [-- --ms N]`: every benchmark section, one after another.
 * A section is a named async function that prints its own table; add one with
 *   import { mySection } from './mine';  section('mine', mySection);
 * below. measure() is the shared timer: ops/s of a function, median of several rounds.
 */
import { codecSection } from './codec';
import { failoverBench } from './failover';
import { gridBench } from './grid';
import { securityBench } from './security';
import { raftBench } from './raft';

export interface Measured {
  opsPerSec: number;
  nsPerOp: number;
}

/**
 * Length of one timed round unless --ms is given. The best of ROUNDS is reported: other
 * processes on the machine can only slow a round down, so the fastest is the least noisy.
 */
export const DEFAULT_ROUND_MS = 200;
export const ROUNDS = 5;

export const benchOptions = { roundMs: DEFAULT_ROUND_MS };

/** Calls fn in batches until the round's time is up; returns the best round's rate. */
export function measure(fn: () => void, roundMs: number = benchOptions.roundMs): Measured {
  for (let i = 0; i < 1000; i++) fn(); // warm up (JIT)
  const rates: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    let ops = 0;
    let batch = 16;
    const start = process.hrtime.bigint();
    const end = start + BigInt(roundMs) * 1_000_000n;
    let now = start;
    while (now < end) {
      for (let i = 0; i < batch; i++) fn();
      ops += batch;
      if (batch < 65536) batch *= 2;
      now = process.hrtime.bigint();
    }
    rates.push(ops / (Number(now - start) / 1e9));
  }
  const opsPerSec = Math.max(...rates);
  return { opsPerSec, nsPerOp: 1e9 / opsPerSec };
}

const SECTIONS: { name: string; run: () => Promise<void> }[] = [];

export function section(name: string, run: () => Promise<void>): void {
  SECTIONS.push({ name, run });
}

section('codec', codecSection);
section('grid', gridBench);
section('security', securityBench);
section('raft', raftBench);
section('failover', failoverBench);

async function main(argv: string[]): Promise<void> {
  let only: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--only' && argv[i + 1]) only = argv[++i];
    else if (argv[i] === '--ms' && /^\d+$/.test(argv[i + 1] ?? '')) benchOptions.roundMs = Number(argv[++i]);
    else {
      process.stderr.write(`bench: BAD_ARGUMENT: ${argv[i]}; usage: npm run bench -- [--only ${SECTIONS.map((s) => s.name).join('|')}] [--ms N]\n`);
      process.exit(2);
    }
  }
  for (const s of SECTIONS) {
    if (only && s.name !== only) continue;
    process.stdout.write(`\n== ${s.name} ==\n`);
    await s.run();
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).catch((e) => {
    process.stderr.write(`bench: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exitCode = 1;
  });
}
