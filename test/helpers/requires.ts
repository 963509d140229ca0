/**
 * Tests that need something the machine may lack (root, network namespaces, an overlay
 * mount). Outside CI such a test is skipped with its reason in its title or on stderr; in CI
 * (CI=true, which runs as root with every package installed) a missing need is a failure
 * naming it, never a silent skip (.ci/run also counts pending tests as failures).
 */
import type { Context, Suite } from 'mocha';

const inCi = (): boolean => process.env.CI === 'true';

/** describe(title, fn) when `problem` is null; otherwise skipped (or, in CI, one failing test that names the problem). */
export function describeIf(problem: string | null, title: string, fn: (this: Suite) => void): void {
  if (!problem) {
    describe(title, fn);
    return;
  }
  if (inCi()) {
    describe(title, () => {
      it('has what it needs on this CI machine', () => {
        throw new Error(`cannot run here: ${problem}`);
      });
    });
    return;
  }
  describe.skip(`${title} (skipped: ${problem})`, fn);
}

/** Inside a test: skips it with `why` printed, or in CI fails naming `why`. */
export function skipBecause(ctx: Context, why: string): never {
  if (inCi()) throw new Error(`cannot run here: ${why}`);
  process.stderr.write(`      skipped: ${ctx.test?.title ?? 'test'}: ${why}\n`);
  ctx.skip();
}
