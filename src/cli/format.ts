/** How times are shown to a person: relative on a terminal ("3 min ago"), exact otherwise. */

/** "just now", "42 s ago", "3 min ago", "5 h ago", "2 days ago" (a future time: "in 3 s"). */
export function relativeTime(atMs: number, nowMs: number): string {
  const d = nowMs - atMs;
  const a = Math.abs(d);
  const s = Math.round(a / 1000);
  let text: string;
  if (s < 2) return 'just now';
  if (s < 60) text = `${s} s`;
  else if (s < 3600) text = `${Math.floor(s / 60)} min`;
  else if (s < 86_400 * 2) text = `${Math.floor(s / 3600)} h`;
  else text = `${Math.floor(s / 86_400)} days`;
  return d >= 0 ? `${text} ago` : `in ${text}`;
}

/** UTC "YYYY-MM-DD HH:MM:SS". */
export function exactTime(atMs: number): string {
  return new Date(atMs).toISOString().slice(0, 19).replace('T', ' ');
}

/** Relative on a terminal (a person reads it), exact when piped (a script reads it). */
export function shownTime(atMs: number, nowMs: number, tty: boolean): string {
  return tty ? relativeTime(atMs, nowMs) : exactTime(atMs);
}

/** "1.5 s", "2 min 5 s", "1 h 2 min". */
export function duration(ms: number): string {
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  const s = Math.round(ms / 1000);
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}
