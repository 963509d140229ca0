/**
 * One backoff for every retry loop (issue 9, "One link, set up once"): exponential, capped,
 * with "equal jitter": half of the capped delay is fixed, the other half random, so peers
 * that failed together (a master restart seen by every balancer and client at once) do not
 * all retry in the same millisecond, while no retry comes sooner than half the plan.
 * Pure: the random source is passed in (the shells pass Math.random; tests a constant).
 */
export interface BackoffSettings {
  /** delay after the first failure, ms */
  baseMs: number;
  /** largest delay, ms */
  maxMs: number;
}

/** Delay before retry number `attempt` (0 = after the first failure). random() is in [0, 1]. */
export function backoffDelayMs(attempt: number, s: BackoffSettings, random: () => number): number {
  const cap = Math.min(s.maxMs, s.baseMs * 2 ** Math.max(0, Math.min(attempt, 52)));
  return Math.round(cap / 2 + random() * (cap / 2));
}
