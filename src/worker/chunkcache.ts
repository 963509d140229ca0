/**
 * A bounded LRU cache of fixed-size, aligned file chunks in front of a ChunkSource (the
 * storage client). Concurrent reads of one chunk share one fetch (in-flight
 * de-duplication); a sequential reader gets the next chunks fetched ahead. Files are
 * immutable (content-addressed), so a cached chunk never goes stale.
 */
import { LRUCache } from 'lru-cache';
import { GridError } from '../common';

/** Where chunks come from; StorageClient implements it. May return short at end of file. */
export interface ChunkSource {
  read(fileUuid: string, offset: number, length: number): Promise<Buffer>;
}

export interface ChunkCacheOptions {
  /** chunk size, bytes; reads are aligned to it */
  chunkBytes: number;
  /** most bytes held, bytes (at least one chunk) */
  maxBytes: number;
}

export interface ChunkCacheStats {
  hits: number;
  misses: number;
  /** fetches that joined one already in flight */
  joined: number;
  prefetches: number;
  evictions: number;
  fetchErrors: number;
  bytes: number;
  chunks: number;
  inFlight: number;
}

/** Most round trips one chunk fetch may take when the source returns short reads. */
const MAX_SHORT_READS_PER_CHUNK = 64;

export class ChunkCache {
  /** bounded by bytes (lru-cache's maxSize with each chunk's length), least recently used out first */
  private readonly chunks: LRUCache<string, Buffer>;
  private readonly inFlight = new Map<string, Promise<Buffer>>();
  private readonly counts = { hits: 0, misses: 0, joined: 0, prefetches: 0, evictions: 0, fetchErrors: 0 };

  constructor(
    private readonly source: ChunkSource,
    readonly o: ChunkCacheOptions,
  ) {
    this.chunks = new LRUCache<string, Buffer>({
      maxSize: o.maxBytes,
      sizeCalculation: (b) => Math.max(1, b.length),
      dispose: (_b, _k, reason) => {
        if (reason === 'evict') this.counts.evictions++;
      },
    });
  }

  /** Expected length of chunk `index` of a file of `fileLength` bytes. */
  chunkLength(index: number, fileLength: number): number {
    return Math.max(0, Math.min(this.o.chunkBytes, fileLength - index * this.o.chunkBytes));
  }

  /** Chunk `index` of a file, from the cache or fetched once. */
  get(fileUuid: string, index: number, fileLength: number): Promise<Buffer> {
    const key = `${fileUuid}:${index}`;
    const hit = this.chunks.get(key); // a get makes it the most recently used
    if (hit) {
      this.counts.hits++;
      return Promise.resolve(hit);
    }
    const flying = this.inFlight.get(key);
    if (flying) {
      this.counts.joined++;
      return flying;
    }
    this.counts.misses++;
    const p = this.fetch(fileUuid, index, fileLength).then(
      (buf) => {
        this.inFlight.delete(key);
        this.insert(key, buf);
        return buf;
      },
      (e: unknown) => {
        this.inFlight.delete(key);
        this.counts.fetchErrors++;
        throw e;
      },
    );
    this.inFlight.set(key, p);
    return p;
  }

  /** Starts fetching a chunk that is neither cached nor in flight; errors are dropped (a real read will retry). */
  prefetch(fileUuid: string, index: number, fileLength: number): void {
    if (this.chunkLength(index, fileLength) === 0) return;
    const key = `${fileUuid}:${index}`;
    if (this.chunks.has(key) || this.inFlight.has(key)) return;
    this.counts.prefetches++;
    this.get(fileUuid, index, fileLength).catch(() => undefined);
    this.counts.misses--; // a prefetch is not a miss of a reader
  }

  private async fetch(fileUuid: string, index: number, fileLength: number): Promise<Buffer> {
    const want = this.chunkLength(index, fileLength);
    const start = index * this.o.chunkBytes;
    const parts: Buffer[] = [];
    let got = 0;
    for (let i = 0; got < want; i++) {
      if (i >= MAX_SHORT_READS_PER_CHUNK) throw new GridError('INTERNAL', `storage kept returning short reads for ${fileUuid} at ${start + got}`);
      const b = await this.source.read(fileUuid, start + got, want - got);
      if (b.length === 0) throw new GridError('NOT_FOUND', `file ${fileUuid} ended at ${start + got} bytes, expected ${fileLength}`);
      parts.push(b.length > want - got ? b.subarray(0, want - got) : b);
      got += Math.min(b.length, want - got);
    }
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
  }

  private insert(key: string, buf: Buffer): void {
    if (this.chunks.has(key)) return;
    this.chunks.set(key, buf);
  }

  /** File uuids with at least one cached chunk (announced in worker_ready). */
  cachedFiles(): string[] {
    const s = new Set<string>();
    for (const k of this.chunks.keys()) s.add(k.slice(0, 36));
    return [...s];
  }

  stats(): ChunkCacheStats {
    return { ...this.counts, bytes: this.chunks.calculatedSize, chunks: this.chunks.size, inFlight: this.inFlight.size };
  }
}
