/**
 * What every client command works with (Ctx: settings, endpoints, the master and storage
 * clients, opened lazily and closed once) and the output helpers: stdout carries what
 * scripts read, stderr the rest.
 */
import { GridError, Logger, Security, TimeoutError, clientSecurity, createLogger, ensureReachable } from '../common';
import { isUuid, newUuid } from '../messages';
import { StorageClient } from '../storage';
import { checkJobIdArg } from './args';
import { ClientConfig, loadClientConfig } from './config';
import { DEFAULT_DATA_DIR, resolveEndpoints, ResolvedEndpoints } from './endpoints';
import { MasterClient } from './master-client';

export interface EndpointFlags {
  master?: string;
  storage?: string;
  dataDir?: string;
  json?: boolean;
}

/** What every client command works with; opened lazily, closed once at the end. */
export class Ctx {
  readonly cfg: ClientConfig;
  readonly ep: ResolvedEndpoints;
  readonly log: Logger;
  private m?: MasterClient;
  private s?: StorageClient;
  private storageReached?: Promise<void>;
  private sec?: Security;
  readonly nodeUuid = newUuid();
  /**
   * Node's start-up and module loading, ms since the process's time origin, taken when the
   * command begins: it comes out of connectTimeoutMs instead of adding to it. Only start-up:
   * work the command does before a probe (hashing inputs before the storage probe) does not
   * shorten that probe.
   */
  private readonly startupMs = performance.now();

  constructor(readonly flags: EndpointFlags) {
    this.cfg = loadClientConfig();
    this.ep = resolveEndpoints({ master: flags.master, storage: flags.storage, dataDir: flags.dataDir, env: process.env });
    // the CLI is quiet unless asked (GRID_LOG_LEVEL=debug); errors reach the user as GridErrors
    this.log = createLogger({ role: 'cli', nodeId: this.nodeUuid, level: process.env.GRID_LOG_LEVEL ?? 'silent' });
  }

  /** The client's key pair and trust dir: GRID_TRUST_DIR, else <data-dir>/trust (docs/operations.md, "Security"). */
  get security(): Security {
    this.sec ??= clientSecurity(this.flags.dataDir ?? process.env.GRID_DATA_DIR ?? DEFAULT_DATA_DIR, this.log);
    return this.sec;
  }

  get master(): MasterClient {
    this.m ??= new MasterClient({
      security: this.security,
      endpoint: this.ep.masters,
      endpointFrom: this.ep.masterFrom,
      log: this.log,
      masterRetryWindowMs: this.cfg.masterRetryWindowMs,
      masterRequestTimeoutMs: this.cfg.masterRequestTimeoutMs,
      masterLeaderWaitMs: this.cfg.masterLeaderWaitMs,
      masterLeaderWaitMaxMs: this.cfg.masterLeaderWaitMaxMs,
      connectTimeoutMs: this.cfg.connectTimeoutMs,
      connectSpentMs: () => this.startupMs,
    });
    return this.m;
  }

  get storage(): StorageClient {
    this.s ??= new StorageClient({
      security: this.security,
      endpoint: this.ep.storage,
      nodeUuid: this.nodeUuid,
      log: this.log,
      requestTimeoutMs: this.cfg.storageRequestTimeoutMs,
      retries: this.cfg.storageRetries,
    });
    return this.s;
  }

  /** Fails within connectTimeoutMs, naming the endpoint, when no storage node listens. */
  reachStorage(): Promise<void> {
    this.storageReached ??= ensureReachable(
      'storage node',
      [this.ep.storage],
      this.ep.storageFrom,
      this.cfg.connectTimeoutMs,
      'is `grid dev` (or `grid storage`) running? start it, or point the client at it with --storage or GRID_STORAGE',
      this.startupMs,
    );
    return this.storageReached;
  }

  close(): void {
    this.m?.close();
    this.s?.close();
  }

  /** Runs `f` and always closes the sockets, so the process can exit. */
  static async run(flags: EndpointFlags, f: (c: Ctx) => Promise<void>): Promise<void> {
    const c = new Ctx(flags);
    try {
      await f(c);
    } catch (e) {
      throw c.explain(e);
    } finally {
      c.close();
    }
  }

  /** A storage timeout says which endpoint and where it came from, like the master's does. */
  private explain(e: unknown): unknown {
    if (!(e instanceof TimeoutError) || !e.message.includes(this.ep.storage)) return e;
    return new GridError(
      'UNAVAILABLE',
      `no storage node answers at ${this.ep.storage} (from ${this.ep.storageFrom}); is \`grid dev\` (or \`grid storage\`) running?`,
      'start it, or point the client at it with --storage or GRID_STORAGE',
      { cause: e },
    );
  }

  /** A full job id from a full id or a unique prefix of a recent job's id. */
  async jobId(arg: string): Promise<string> {
    checkJobIdArg(arg);
    const a = arg.toLowerCase();
    if (isUuid(a)) return a;
    const ids = await this.master.listJobs(this.cfg.maxJobsListed);
    const hits = ids.filter((id) => id.startsWith(a));
    if (hits.length === 1) return hits[0]!;
    if (hits.length === 0) throw new GridError('NOT_FOUND', `no recent job id starts with ${arg}`, 'see `grid jobs`, or give the whole id');
    throw new GridError('BAD_REQUEST', `${hits.length} recent jobs start with ${arg}`, 'give more of the id');
  }
}

export function out(line: string): void {
  process.stdout.write(line + '\n');
}
export function note(line: string): void {
  process.stderr.write(line + '\n');
}

/** Runs `fn` over items with at most `limit` at once, keeping order of results. */
export async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (t: T, i: number) => Promise<R>): Promise<R[]> {
  const res = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      res[i] = await fn(items[i]!, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return res;
}

export const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i);
