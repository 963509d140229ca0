/**
 * The worker's program cache: <root>/<file uuid>/<name>, one folder per program (job.js)
 * file. Files never change (a file id is a content address), so an entry never goes stale;
 * the only question is which to delete when there are too many (docs/worker.md).
 *
 * A task holds its program from preparing until its process has ended (`acquire` ...
 * `release`): a held program is PINNED and never evicted, however many other programs come
 * and go meanwhile. Unheld programs sit in an lru-cache of at most `maxIdle` entries; the
 * least recently used is deleted from disk when one more comes in. So the folder holds at
 * most maxIdle + (programs of tasks on this worker, at most slots + prefetch) programs.
 *
 * lru-cache replaces a hand-written Map-in-insertion-order LRU that scanned every task on
 * each eviction to find the running ones; the pin map makes "never evict a running task's
 * program" a property of the data structure instead of a scan.
 */
import fsp from 'node:fs/promises';
import path from 'node:path';
import { LRUCache } from 'lru-cache';

/** Fetches a program into `dir` (created by the callee) as `name` and returns the file's path. */
export type ProgramFetch = (fileUuid: string, dir: string, name: string) => Promise<string>;

export interface ProgramLease {
  /** the local path of the program, once fetched */
  readonly path: Promise<string>;
  /** The task is done with it (idempotent). The program becomes evictable when no task holds it. */
  release(): void;
}

interface Entry {
  readonly path: Promise<string>;
  /** tasks holding it; 0 while idle (in the lru) */
  refs: number;
  failed: boolean;
}

export interface ProgramCacheStats {
  /** programs on disk or being fetched */
  cached: number;
  /** of those, held by a task (never evicted) */
  pinned: number;
  hits: number;
  fetches: number;
  evictions: number;
}

export class ProgramCache {
  private readonly idle: LRUCache<string, Entry>;
  private readonly pinned = new Map<string, Entry>();
  /** folders being deleted: a new fetch of the same program waits for the delete first */
  private readonly removing = new Map<string, Promise<void>>();
  private readonly counts = { hits: 0, fetches: 0, evictions: 0 };

  constructor(
    private readonly root: string,
    maxIdle: number,
    private readonly fetch: ProgramFetch,
    private readonly onError: (e: Error, fileUuid: string) => void = () => undefined,
  ) {
    this.idle = new LRUCache<string, Entry>({
      max: maxIdle,
      // 'evict': pushed out by a newer one; 'delete' is a move to `pinned`, the files stay
      dispose: (_e, uuid, reason) => {
        if (reason === 'evict') this.removeDir(uuid);
      },
    });
  }

  /** Takes in the programs a previous life of the worker left in root (all idle). */
  adopt(fileUuid: string, file: string): void {
    this.idle.set(fileUuid, { path: Promise.resolve(file), refs: 0, failed: false });
  }

  /** The program of one task, pinned until `release`; `name` is used if it must be fetched. */
  acquire(fileUuid: string, name: string): ProgramLease {
    let e = this.pinned.get(fileUuid);
    if (e) this.counts.hits++;
    else {
      e = this.idle.get(fileUuid);
      if (e) {
        this.counts.hits++;
        this.idle.delete(fileUuid); // reason 'delete': files kept
      } else e = this.startFetch(fileUuid, name);
      this.pinned.set(fileUuid, e);
    }
    e.refs++;
    const entry = e;
    let released = false;
    return {
      path: entry.path,
      release: () => {
        if (released) return;
        released = true;
        this.unpin(fileUuid, entry);
      },
    };
  }

  stats(): ProgramCacheStats {
    return { cached: this.idle.size + this.pinned.size, pinned: this.pinned.size, ...this.counts };
  }

  /** Waits for pending folder deletes (tests; a clean stop). */
  async settled(): Promise<void> {
    while (this.removing.size) await Promise.all([...this.removing.values()]);
  }

  private startFetch(fileUuid: string, name: string): Entry {
    this.counts.fetches++;
    const dir = path.join(this.root, fileUuid);
    const e: Entry = {
      path: (async () => {
        await this.removing.get(fileUuid);
        return this.fetch(fileUuid, dir, name);
      })(),
      refs: 0,
      failed: false,
    };
    e.path.catch(() => {
      e.failed = true;
      // a failed fetch is not cached: the next task asks storage again
      if (this.pinned.get(fileUuid) === e) this.pinned.delete(fileUuid);
      if (this.idle.peek(fileUuid) === e) this.idle.delete(fileUuid);
    });
    return e;
  }

  private unpin(fileUuid: string, e: Entry): void {
    e.refs--;
    if (e.refs > 0 || this.pinned.get(fileUuid) !== e) return;
    this.pinned.delete(fileUuid);
    if (e.failed) return;
    // back among the idle ones, most recently used; may evict (and delete) the least recent
    this.idle.set(fileUuid, e);
  }

  private removeDir(fileUuid: string): void {
    this.counts.evictions++;
    const p = fsp
      .rm(path.join(this.root, fileUuid), { recursive: true, force: true })
      .catch((err: Error) => this.onError(err, fileUuid))
      .finally(() => {
        if (this.removing.get(fileUuid) === p) this.removing.delete(fileUuid);
      });
    this.removing.set(fileUuid, p);
  }
}
