/**
 * Node data dirs are private (docs/operations.md, "Containment"): the folder and every folder
 * in it 0700, every file 0600 (the owner's execute bit kept), owned by the node's user. A
 * sandboxed task runs as another uid, so it can read no database, WAL, key, log or dev.json.
 * New files get these modes from the umask every node sets at start (NODE_UMASK); existing
 * ones are fixed at start by secureDataDir, so a data dir made by an older version (or
 * copied in with a loose umask) is closed too.
 */
import fs from 'node:fs';
import path from 'node:path';
import { parseMountPoints } from './mounts';

export const DATA_DIR_MODE = 0o700;
export const DATA_FILE_MODE = 0o600;
/** the umask of every node process: new files 0600, new folders 0700 */
export const NODE_UMASK = 0o077;
/** most entries secureDataDir looks at (a bound on the start-up walk) */
export const MAX_SECURED_ENTRIES = 1_000_000;

/** Sets the node umask; returns the previous one. */
export function setNodeUmask(): number {
  return process.umask(NODE_UMASK);
}

/**
 * Makes dir (if missing) and closes it and everything in it to its owner: folders 0700,
 * files without group/other bits. Mount points inside (the worker's FUSE mount, live or
 * stale) are not entered: this runs in the process that serves that mount. Symlinks are
 * left alone. Returns how many modes it changed. Throws the fs error of dir itself.
 */
export function secureDataDir(dir: string): number {
  fs.mkdirSync(dir, { recursive: true, mode: DATA_DIR_MODE });
  let mounts: Set<string>;
  try {
    mounts = new Set(parseMountPoints(fs.readFileSync('/proc/mounts', 'utf8')));
  } catch {
    mounts = new Set();
  }
  let changed = 0;
  let seen = 0;
  const fix = (p: string, mode: number, want: number): void => {
    if ((mode & 0o777) === want) return;
    try {
      fs.chmodSync(p, want);
      changed++;
    } catch {
      // gone meanwhile, or not ours: the node reports its own errors on use
    }
  };
  const root = path.resolve(dir);
  fix(root, fs.statSync(root).mode, DATA_DIR_MODE);
  const stack = [root];
  while (stack.length > 0 && seen < MAX_SECURED_ENTRIES) {
    const d = stack.pop()!;
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(d, { withFileTypes: true });
    } catch {
      continue;
    }
    for (const e of entries) {
      if (++seen > MAX_SECURED_ENTRIES) break;
      const p = path.join(d, e.name);
      if (mounts.has(p)) continue;
      if (e.isDirectory()) {
        try {
          fix(p, fs.lstatSync(p).mode, DATA_DIR_MODE);
        } catch {
          continue;
        }
        stack.push(p);
      } else if (e.isFile()) {
        try {
          const m = fs.lstatSync(p).mode;
          fix(p, m, m & 0o700);
        } catch {
          continue;
        }
      }
    }
  }
  return changed;
}
