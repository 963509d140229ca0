/**
 * Time-boxed fuzzer: `npm run fuzz -- --seconds N [--seed S]`. Runs the generators of the mocha
 * suite (generators.ts) in batches until the time is up; every input that breaks a property is
 * shrunk by fast-check and saved as test/vectors/bad/fuzz-<hash>.json with "code": null, which
 * the vector test (test/messages/vectors.test.ts) then checks on every `npm test` until fixed.
 * Exit code: 0 when nothing was found, 1 when inputs were saved, 2 on bad arguments.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync, existsSync } from 'node:fs';
import * as path from 'node:path';
import * as fc from 'fast-check';
import { encode } from '../../src/messages';
import { arbAnyMessage, arbMutatedFrames, arbRandomFrames, checkDecodeSafety } from './generators';

/** Runs per fast-check batch: small enough to check the clock often. */
const RUNS_PER_BATCH = 2000;
/** Default length of a run when --seconds is not given. */
const DEFAULT_SECONDS = 10;
/**
 * One bug breaks the property for many inputs: only the first (shrunk) input of each distinct
 * failure message is saved, and the run stops after this many distinct failures.
 */
const MAX_DISTINCT_FAILURES = 5;

export const BAD_VECTOR_DIR = path.resolve(__dirname, '../../../test/vectors/bad');

function parseArgs(argv: string[]): { seconds: number; seed: number; out: string } {
  let seconds = DEFAULT_SECONDS;
  let seed = Date.now() % 2 ** 31;
  let out = BAD_VECTOR_DIR;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const v = argv[i + 1];
    if (a === '--seconds' && v !== undefined && /^\d+(\.\d+)?$/.test(v)) (seconds = Number(v)), i++;
    else if (a === '--seed' && v !== undefined && /^\d+$/.test(v)) (seed = Number(v)), i++;
    else if (a === '--out' && v !== undefined) (out = path.resolve(v)), i++;
    else {
      process.stderr.write(`fuzz: BAD_ARGUMENT: ${JSON.stringify(a)}; usage: npm run fuzz -- --seconds N [--seed S] [--out DIR]\n`);
      process.exit(2);
    }
  }
  return { seconds, seed, out };
}

/** Saves one failing input; returns its file name (the same input always gets the same name). */
export function saveBadVector(dir: string, frames: readonly Buffer[], description: string, foundBy: string): string {
  const hexFrames = frames.map((f) => f.toString('hex'));
  const id = createHash('sha256').update(hexFrames.join(',')).digest('hex').slice(0, 16);
  const file = path.join(dir, `fuzz-${id}.json`);
  if (!existsSync(file)) {
    mkdirSync(dir, { recursive: true });
    writeFileSync(file, JSON.stringify({ description, code: null, found_by: foundBy, frames: hexFrames }, null, 2) + '\n');
  }
  return file;
}

function main(): void {
  const { seconds, seed, out } = parseArgs(process.argv.slice(2));
  const deadline = Date.now() + seconds * 1000;
  const props: [string, fc.Arbitrary<Buffer[]>][] = [
    ['round-trip', arbAnyMessage.map((m) => encode(m))],
    ['mutated', arbMutatedFrames],
    ['random', arbRandomFrames],
  ];
  let runs = 0;
  let batch = 0;
  const saved = new Set<string>();
  const kinds = new Set<string>();
  while (Date.now() < deadline && kinds.size < MAX_DISTINCT_FAILURES) {
    const [name, arb] = props[batch % props.length]!;
    const batchSeed = (seed + batch) % 2 ** 31;
    const r = fc.check(fc.property(arb, (frames) => void checkDecodeSafety(frames)), { numRuns: RUNS_PER_BATCH, seed: batchSeed });
    runs += r.numRuns;
    if (r.failed && r.counterexample) {
      const frames = r.counterexample[0];
      const why = r.errorInstance instanceof Error ? r.errorInstance.message : String(r.errorInstance);
      const kind = why.split('\n')[0]!;
      batch++;
      if (kinds.has(kind)) continue;
      kinds.add(kind);
      const file = saveBadVector(out, frames, `${name}: ${why}`, `npm run fuzz, seed ${batchSeed}`);
      if (!saved.has(file)) process.stdout.write(`fuzz: ${name} broke a property (seed ${batchSeed}): ${why.split('\n')[0]}\n  saved ${path.relative(process.cwd(), file)}\n`);
      saved.add(file);
      continue;
    }
    batch++;
  }
  process.stdout.write(`fuzz: ${runs} inputs in ${seconds} s (seed ${seed}); ${saved.size} new failing input(s)\n`);
  process.exitCode = saved.size ? 1 : 0;
}

if (require.main === module) main();
