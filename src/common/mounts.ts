/**
 * Mount points from /proc/mounts: the one parser of its format (octal escapes like \040
 * for a space), used by the worker's FUSE code (is my mount there?) and by `grid dev` and
 * the test helpers (unmount whatever is left under a data dir).
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';

/** The mount points listed in /proc/mounts text, escapes decoded, in file order. */
export function parseMountPoints(procMounts: string): string[] {
  const out: string[] = [];
  for (const line of procMounts.split('\n')) {
    const mp = line.split(' ')[1];
    if (mp) out.push(mp.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))));
  }
  return out;
}

/** Paths that are mounted now (FUSE or not); empty when /proc/mounts cannot be read. */
export async function mountedPaths(): Promise<Set<string>> {
  try {
    return new Set(parseMountPoints(await fsp.readFile('/proc/mounts', 'utf8')));
  } catch {
    return new Set();
  }
}

/** Mount points under `dir` (or `dir` itself) listed in /proc/mounts text, deepest first. */
export function mountsUnder(procMounts: string, dir: string): string[] {
  const root = dir.endsWith('/') ? dir : dir + '/';
  const out = parseMountPoints(procMounts).filter((p) => p === dir || p.startsWith(root));
  // deepest first, so nested mounts go before their parents
  return out.sort((a, b) => b.length - a.length);
}

/** Lazily unmounts every mount under `dir`; returns those it could not unmount. */
export function unmountAllUnder(dir: string): { unmounted: string[]; failed: string[] } {
  let text = '';
  try {
    text = fs.readFileSync('/proc/mounts', 'utf8');
  } catch {
    return { unmounted: [], failed: [] };
  }
  let real = dir;
  try {
    real = fs.realpathSync(dir);
  } catch {
    // dir is gone: nothing of ours can be mounted there by path, but check the given path anyway
  }
  const unmounted: string[] = [];
  const failed: string[] = [];
  for (const mp of new Set([...mountsUnder(text, real), ...mountsUnder(text, dir)])) {
    const ok = ['fusermount', 'fusermount3'].some((cmd) => spawnSync(cmd, ['-uz', mp], { stdio: 'ignore' }).status === 0) || spawnSync('umount', ['-l', mp], { stdio: 'ignore' }).status === 0;
    (ok ? unmounted : failed).push(mp);
  }
  return { unmounted, failed };
}
