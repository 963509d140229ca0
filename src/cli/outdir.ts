/**
 * Checks of `grid results --out DIR` before anything is asked or written: DIR is a folder
 * (or can be made one) this user can write. A file, a read-only place or a path under
 * /proc gives one typed OUTPUT_UNWRITABLE line; before, a file gave a raw EEXIST, a
 * read-only folder a raw EACCES, and `/proc/x` hung (Node's recursive mkdir loops forever
 * when mkdir says ENOENT under a parent that exists).
 */
import fs from 'node:fs';
import path from 'node:path';
import { GridError } from '../common';

function unwritable(dir: string, why: string, hint = 'give --out a folder you can write (it is created if missing)'): GridError {
  return new GridError('OUTPUT_UNWRITABLE', `cannot write results into ${dir}: ${why}`, hint);
}

function errnoWhy(e: unknown): string {
  const code = (e as NodeJS.ErrnoException).code;
  switch (code) {
    case 'EACCES':
    case 'EPERM':
      return 'permission denied';
    case 'EROFS':
      return 'read-only file system';
    case 'ENOSPC':
      return 'no space left on the device';
    case 'ENOTDIR':
      return 'a part of the path is a file, not a folder';
    default:
      return code ?? (e as Error).message;
  }
}

/**
 * Makes `dir` (absolute) a folder this process can write, creating missing parents one by
 * one (never fs.mkdirSync recursive, which loops on /proc). Throws OUTPUT_UNWRITABLE.
 */
export function prepareOutDir(dir: string): void {
  // the missing tail of the path, deepest last
  const missing: string[] = [];
  let p = dir;
  for (;;) {
    let st: fs.Stats | undefined;
    try {
      st = fs.statSync(p);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOTDIR') throw unwritable(dir, `${nearestFile(p)} is a file, not a folder`);
      if (code !== 'ENOENT') throw unwritable(dir, errnoWhy(e));
    }
    if (st) {
      if (!st.isDirectory()) throw unwritable(dir, `${p} is ${p === dir ? 'a file' : 'a file in the path'}, not a folder`, p === dir ? 'give --out a folder (or a new name: it is created)' : undefined);
      break;
    }
    missing.unshift(p);
    const up = path.dirname(p);
    if (up === p) break;
    p = up;
  }
  const real = fs.realpathSync(p);
  if (real === '/proc' || real.startsWith('/proc/') || real === '/sys' || real.startsWith('/sys/')) throw unwritable(dir, `${real} is a kernel file system, not a place for files`);
  try {
    fs.accessSync(p, fs.constants.W_OK | fs.constants.X_OK);
  } catch (e) {
    throw unwritable(dir, `${p}: ${errnoWhy(e)}`);
  }
  for (const m of missing) {
    try {
      fs.mkdirSync(m);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw unwritable(dir, `cannot create ${m}: ${errnoWhy(e)}`);
    }
  }
  // access() says yes to root on a read-only mount: a real write settles it
  const probe = path.join(dir, `.grid-write-test-${process.pid}`);
  try {
    fs.writeFileSync(probe, '');
    fs.rmSync(probe, { force: true });
  } catch (e) {
    throw unwritable(dir, errnoWhy(e));
  }
}

function nearestFile(p: string): string {
  let q = p;
  while (path.dirname(q) !== q) {
    q = path.dirname(q);
    try {
      if (fs.statSync(q).isFile()) return q;
    } catch {
      // keep going up
    }
  }
  return p;
}

/** Writes one output: a typed error naming the file instead of a raw errno. */
export function outputWriteError(e: unknown, file: string): unknown {
  if (e instanceof GridError) return e;
  const code = (e as NodeJS.ErrnoException).code;
  if (!code) return e;
  return new GridError('OUTPUT_UNWRITABLE', `cannot write ${file}: ${errnoWhy(e)}`, code === 'ENOSPC' ? 'free some space, or give --out another folder' : 'check the folder given to --out');
}
