/**
 * The worker's read-only FUSE file system (fuse-native): `/<view>/<file_uuid>/<name>`, one
 * view per running task holding only that task's inputs. A view id is a fresh random UUID,
 * and the root lists nothing, so a task sees the files of its own job and no other (in the
 * sandbox only its own view is even bound into its mount namespace). Reads go through a ChunkCache to storage. Every write
 * operation answers EROFS; any failure answers EIO; nothing here may throw into fuse-native.
 *
 * Never read this mount from the worker process itself synchronously: the FUSE handlers run
 * on this process's event loop, so a blocking read from here would wait for itself forever.
 * Task processes (children) read it.
 */
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { Logger } from 'pino';
import { GridError } from '../common';
import { mountedPaths } from '../common/mounts';

// re-exported for the worker's tests, which check their mount through it
export { mountedPaths };
import { ChunkCache, ChunkSource } from './chunkcache';
import { FuseInstance, fuseLoadProblem, fuseNative } from './fuse-native';

export interface GridFsOptions {
  mount: string;
  source: ChunkSource;
  fuseChunkBytes: number;
  chunkCacheBytes: number;
  readAheadChunks: number;
  fuseOpTimeoutMs: number;
  log: Logger;
  /** let other uids (sandboxed tasks) read the mount (FUSE allow_other; the worker is root) */
  allowOther?: boolean;
}

interface FileEntry {
  length: number;
  /** views holding it (tasks using it) */
  refs: number;
}

/** One task's view: its input files, each under one or more names. */
type View = Map<string, Set<string>>;

const O_ACCMODE = 3;
const DIR_MODE = 0o040555;
const FILE_MODE = 0o100444;

/** A name is one path component: not empty, no '/', no NUL, not '.' or '..'. */
export function isSafeName(name: string): boolean {
  return name.length > 0 && name.length <= 255 && !name.includes('/') && !name.includes('\0') && name !== '.' && name !== '..';
}

/** Why FUSE cannot be used on this machine, with how to fix it; null when it looks usable. */
export function fuseProblem(): string | null {
  const lib = fuseLoadProblem();
  if (lib) return lib;
  if (!fs.existsSync('/dev/fuse')) {
    return 'FUSE is not available: /dev/fuse does not exist. Install FUSE (apt-get install fuse libfuse2), load the module (modprobe fuse), or in a container run with --device /dev/fuse --cap-add SYS_ADMIN; or start the worker with --staged to download inputs instead';
  }
  const hasFusermount = ['/bin/fusermount', '/usr/bin/fusermount', '/usr/local/bin/fusermount'].some((p) => fs.existsSync(p));
  if (!hasFusermount) {
    return 'FUSE is not available: fusermount is not installed. Install it (apt-get install fuse libfuse2), or start the worker with --staged to download inputs instead';
  }
  return null;
}

function run(cmd: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => execFile(cmd, args, (e) => (e ? reject(e) : resolve())));
}

export class GridFs {
  readonly mount: string;
  readonly cache: ChunkCache;
  private readonly files = new Map<string, FileEntry>();
  private readonly views = new Map<string, View>();
  /** per file: where the last read ended, to spot sequential readers for read-ahead */
  private readonly lastEnd = new Map<string, number>();
  private fuse?: FuseInstance;
  private mounted = false;
  private readonly counts = { reads: 0, readBytes: 0, readErrors: 0, writeRefused: 0 };
  private readonly log: Logger;

  constructor(private readonly o: GridFsOptions) {
    this.mount = path.resolve(o.mount);
    this.log = o.log;
    this.cache = new ChunkCache(o.source, { chunkBytes: o.fuseChunkBytes, maxBytes: o.chunkCacheBytes });
  }

  /** Opens an empty view for one task; returns its id (a fresh random UUID). */
  openView(): string {
    const id = randomUUID();
    this.views.set(id, new Map());
    return id;
  }

  /** The view's folder in the mount (bound into the task's sandbox). */
  viewPath(view: string): string {
    return path.join(this.mount, view);
  }

  /** Makes `<mount>/<view>/<fileUuid>/<name>` (length bytes) readable. Returns its path. */
  register(view: string, fileUuid: string, name: string, length: number): string {
    const v = this.views.get(view);
    if (!v) throw new GridError('BAD_REQUEST', `no open view ${JSON.stringify(view)}`);
    if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(fileUuid)) throw new GridError('BAD_REQUEST', `not a file uuid: ${JSON.stringify(fileUuid)}`);
    if (!isSafeName(name)) throw new GridError('BAD_REQUEST', `input name ${JSON.stringify(name)} is not a plain file name; use a base name without '/'`);
    if (!Number.isSafeInteger(length) || length < 0) throw new GridError('BAD_REQUEST', `bad length ${length} for ${fileUuid}`);
    let names = v.get(fileUuid);
    if (!names) {
      names = new Set();
      v.set(fileUuid, names);
      const e = this.files.get(fileUuid);
      if (e) e.refs++;
      else this.files.set(fileUuid, { length, refs: 1 });
    }
    names.add(name);
    return this.pathOf(view, fileUuid, name);
  }

  /**
   * Closes a view; a file no view holds any more leaves the mount (its cached chunks stay),
   * so the table stays as small as the set of running tasks' inputs.
   */
  closeView(view: string): void {
    const v = this.views.get(view);
    if (!v) return;
    this.views.delete(view);
    for (const uuid of v.keys()) {
      const e = this.files.get(uuid);
      if (e && --e.refs <= 0) {
        this.files.delete(uuid);
        this.lastEnd.delete(uuid);
      }
    }
  }

  pathOf(view: string, fileUuid: string, name: string): string {
    return path.join(this.mount, view, fileUuid, name);
  }

  registeredCount(): number {
    return this.files.size;
  }

  /** Mounts, first removing a stale mount left at the path. Throws FUSE_UNAVAILABLE with a fix. */
  async start(): Promise<void> {
    const problem = fuseProblem();
    if (problem) throw new GridError('FUSE_UNAVAILABLE', problem);
    if ((await mountedPaths()).has(this.mount)) {
      this.log.warn({ mount: this.mount }, 'stale mount found; unmounting it first');
      await run('fusermount', ['-uz', this.mount]).catch((e: Error) => this.log.warn({ err: e.message }, 'fusermount -uz failed'));
    }
    await fsp.mkdir(this.mount, { recursive: true }).catch((e: NodeJS.ErrnoException) => {
      throw new GridError('FUSE_UNAVAILABLE', `mount point ${this.mount} is not a usable folder (${e.code ?? e.message})`, 'pass --mount with an empty folder you can write, or leave it out for <data-dir>/mnt');
    });
    const fuse = new (fuseNative())(this.mount, this.ops(), { force: true, mkdir: true, timeout: this.o.fuseOpTimeoutMs, fsname: 'grid', subtype: 'grid', allowOther: this.o.allowOther === true });
    await new Promise<void>((resolve, reject) =>
      fuse.mount((err) => {
        if (err) {
          reject(
            new GridError(
              'FUSE_UNAVAILABLE',
              `cannot mount FUSE at ${this.mount}: ${err.message}`,
              'check that /dev/fuse is usable (apt-get install fuse libfuse2; in a container run with --device /dev/fuse --cap-add SYS_ADMIN), that the mount point is not in use, or start with --staged',
            ),
          );
        } else resolve();
      }),
    );
    this.fuse = fuse;
    this.mounted = true;
    this.log.info({ mount: this.mount }, 'FUSE mounted');
  }

  /** Unmounts; safe to call twice and when never mounted. */
  async stop(): Promise<void> {
    const fuse = this.fuse;
    this.fuse = undefined;
    if (!fuse || !this.mounted) return;
    this.mounted = false;
    await new Promise<void>((resolve) =>
      fuse.unmount((err) => {
        if (err) this.log.warn({ err: err.message }, 'FUSE unmount failed; trying fusermount -uz');
        resolve();
      }),
    );
    if ((await mountedPaths()).has(this.mount)) await run('fusermount', ['-uz', this.mount]).catch(() => undefined);
    this.log.info({ mount: this.mount }, 'FUSE unmounted');
  }

  /** Null while the mount is in /proc/mounts, else why not (for /healthz). */
  async health(): Promise<string | null> {
    if (!this.mounted) return 'FUSE is not mounted';
    return (await mountedPaths()).has(this.mount) ? null : `FUSE mount ${this.mount} is gone`;
  }

  stats(): Record<string, unknown> {
    return { mount: this.mount, mounted: this.mounted, files: this.files.size, views: this.views.size, ...this.counts, cache: this.cache.stats() };
  }

  /** Splits a mount path into view, file uuid and name; absent parts undefined. */
  private parse(p: string): { view?: string; uuid?: string; name?: string; extra: boolean } {
    const parts = p.split('/').filter((s) => s !== '');
    return { view: parts[0], uuid: parts[1], name: parts[2], extra: parts.length > 3 };
  }

  private attr(mode: number, size: number): Record<string, unknown> {
    const t = new Date(0);
    return {
      mtime: t,
      atime: t,
      ctime: t,
      nlink: mode === DIR_MODE ? 2 : 1,
      size,
      blocks: Math.ceil(size / 512),
      blksize: this.o.fuseChunkBytes,
      mode,
      uid: process.getuid?.() ?? 0,
      gid: process.getgid?.() ?? 0,
    };
  }

  /** What a path names: a folder (root, view, file folder), a file, or nothing (null). */
  private lookup(p: string): { dir: true; names?: string[] } | { dir: false; uuid: string; entry: FileEntry } | null {
    const { view, uuid, name, extra } = this.parse(p);
    if (extra) return null;
    if (!view) return { dir: true, names: [] }; // the root lists no view: no task learns of another
    const v = this.views.get(view);
    if (!v) return null;
    if (!uuid) return { dir: true, names: [...v.keys()] };
    const names = v.get(uuid);
    const e = this.files.get(uuid);
    if (!names || !e) return null;
    if (name === undefined) return { dir: true, names: [...names] };
    return names.has(name) ? { dir: false, uuid, entry: e } : null;
  }

  private ops(): Record<string, unknown> {
    const erofs = (...args: unknown[]) => {
      this.counts.writeRefused++;
      (args[args.length - 1] as (e: number) => void)(fuseNative().EROFS);
    };
    const safe =
      (name: string, fn: (...a: never[]) => void) =>
      (...args: unknown[]) => {
        const cb = args[args.length - 1] as (e: number, ...r: unknown[]) => void;
        try {
          (fn as (...a: unknown[]) => void)(...args);
        } catch (e) {
          this.log.error({ op: name, err: (e as Error).message }, 'FUSE operation failed');
          cb(fuseNative().EIO);
        }
      };
    return {
      readdir: safe('readdir', (p: string, cb: (e: number, names?: string[]) => void) => {
        const l = this.lookup(p);
        if (!l || !l.dir) return cb(fuseNative().ENOENT);
        cb(0, l.names ?? []);
      }),
      getattr: safe('getattr', (p: string, cb: (e: number, st?: unknown) => void) => {
        const l = this.lookup(p);
        if (!l) return cb(fuseNative().ENOENT);
        cb(0, l.dir ? this.attr(DIR_MODE, 4096) : this.attr(FILE_MODE, l.entry.length));
      }),
      open: safe('open', (p: string, flags: number, cb: (e: number, fd?: number) => void) => {
        const l = this.lookup(p);
        if (!l) return cb(fuseNative().ENOENT);
        if ((flags & O_ACCMODE) !== 0) {
          this.counts.writeRefused++;
          return cb(fuseNative().EROFS);
        }
        cb(0, 0);
      }),
      release: (_p: string, _fd: number, cb: (e: number) => void) => cb(0),
      read: safe('read', (p: string, _fd: number, buf: Buffer, len: number, pos: number, cb: (n: number) => void) => {
        const l = this.lookup(p);
        if (!l || l.dir) return cb(fuseNative().ENOENT);
        this.readInto(l.uuid, l.entry.length, buf, len, pos).then(
          (n) => cb(n),
          (e: Error) => {
            this.counts.readErrors++;
            this.log.warn({ fileId: l.uuid, pos, len, err: e.message }, 'FUSE read failed; answering EIO');
            cb(fuseNative().EIO);
          },
        );
      }),
      statfs: (_p: string, cb: (e: number, s?: unknown) => void) =>
        cb(0, { bsize: 4096, frsize: 4096, blocks: 0, bfree: 0, bavail: 0, files: this.files.size, ffree: 0, favail: 0, fsid: 0, flag: 1, namemax: 255 }),
      // every write operation: read-only file system
      create: erofs,
      write: erofs,
      truncate: erofs,
      ftruncate: erofs,
      mkdir: erofs,
      rmdir: erofs,
      unlink: erofs,
      rename: erofs,
      link: erofs,
      symlink: erofs,
      mknod: erofs,
      chmod: erofs,
      chown: erofs,
      utimens: erofs,
      setxattr: erofs,
      removexattr: erofs,
    };
  }

  /** Copies [pos, pos+len) of a file into buf via the chunk cache; returns bytes copied. */
  private async readInto(uuid: string, length: number, buf: Buffer, len: number, pos: number): Promise<number> {
    const end = Math.min(length, pos + len);
    if (pos >= end) return 0;
    const cb = this.o.fuseChunkBytes;
    const first = Math.floor(pos / cb);
    const last = Math.floor((end - 1) / cb);
    const sequential = this.lastEnd.get(uuid) === pos || pos === 0;
    this.lastEnd.set(uuid, end);
    if (sequential) for (let i = 1; i <= this.o.readAheadChunks; i++) this.cache.prefetch(uuid, last + i, length);
    const chunks = await Promise.all(Array.from({ length: last - first + 1 }, (_, i) => this.cache.get(uuid, first + i, length)));
    let copied = 0;
    for (let i = 0; i < chunks.length; i++) {
      const chunkStart = (first + i) * cb;
      const from = Math.max(pos, chunkStart) - chunkStart;
      const to = Math.min(end, chunkStart + cb) - chunkStart;
      copied += chunks[i]!.copy(buf, copied, from, to);
    }
    this.counts.reads++;
    this.counts.readBytes += copied;
    return copied;
  }
}
