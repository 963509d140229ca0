/**
 * Runs simulation seeds: `npm run sim -- --seeds N [--start S]` or `--seed S --verbose`.
 * A failing seed prints a one-line replay command; add it to test/raft/regressions.json.
 */
import { runSeed } from './cluster';

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

function main(): void {
  const verbose = process.argv.includes('--verbose');
  const one = arg('--seed');
  const seeds: number[] = [];
  if (one !== undefined) seeds.push(Number(one));
  else {
    const n = Number(arg('--seeds') ?? '100');
    const start = Number(arg('--start') ?? String(Date.now() % 1_000_000_000));
    for (let i = 0; i < n; i++) seeds.push(start + i);
  }
  if (seeds.some((s) => !Number.isInteger(s) || s < 0)) {
    console.error('usage: npm run sim -- --seeds N [--start S] | --seed S [--verbose]  (seeds are non-negative integers)');
    process.exit(2);
  }
  const t0 = process.hrtime.bigint();
  let failed = 0;
  for (const seed of seeds) {
    const r = runSeed(seed, verbose);
    if (!r.ok) {
      failed++;
      console.log(`seed ${seed} FAILED at t=${r.at}: ${r.error}`);
      console.log(`  replay: npm run sim -- --seed ${seed} --verbose`);
    } else if (verbose || seeds.length === 1) console.log(`seed ${seed} ok ${JSON.stringify(r.stats)}`);
  }
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  console.log(`${seeds.length - failed}/${seeds.length} seeds passed (${seeds[0]}..${seeds[seeds.length - 1]}) in ${(ms / 1000).toFixed(1)} s`);
  process.exit(failed > 0 ? 1 : 0);
}

main();
