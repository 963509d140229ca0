/**
 * Storage configuration: every size, age, interval and bound named with its unit, validated
 * at start with GridError('CONFIG_INVALID'). Defaults are documented in docs/storage.md.
 * The client's defaults (STORAGE_CLIENT_DEFAULTS) live here too, so every bound of the
 * storage protocol is in one place.
 */
import path from 'node:path';
import { MAX_MESSAGE_BYTES } from '../messages';
import { configError, endpointSetting, intSetting, mergeConfig, readConfigFile, stringSetting } from '../common';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

export interface StorageConfig {
  /** folder for storage.db, the node id and logs */
  dataDir: string;
  /** ROUTER endpoint for clients and workers; port 0 = ephemeral */
  bind: string;
  /** admin HTTP port on 127.0.0.1; 0 = ephemeral */
  adminPort: number;
  /** most bytes stored, counting files and the declared length of open uploads, bytes */
  quotaBytes: number;
  /** largest stored chunk: a put larger than this is split into chunks of this size, bytes */
  chunkSizeBytes: number;
  /** largest data frame one file_put_request may carry, bytes */
  maxPutChunkBytes: number;
  /** largest file_read_request length and largest whole file served by file_request, bytes */
  maxReadBytes: number;
  /** most upload sessions open at once; more are refused with UNAVAILABLE */
  maxUploadSessions: number;
  /** an upload session idle for longer than this is discarded (also across restarts), ms */
  stagingMaxAgeMs: number;
  /** how often idle upload sessions are looked for, ms */
  stagingSweepIntervalMs: number;
  /** how often a full scrub (re-verify every chunk's SHA-256) starts; 0 = never, ms */
  scrubIntervalMs: number;
  /** most chunk bytes one scrub step verifies before yielding to requests, bytes */
  scrubBatchBytes: number;
  /** file_put answers remembered by request_uuid, so a re-sent chunk gets its first answer */
  putReplyCacheEntries: number;
  /** most corrupt chunks listed in /status (the counts keep going) */
  maxCorruptListed: number;
}

export const STORAGE_DEFAULTS: StorageConfig = {
  dataDir: './.grid/storage',
  bind: 'tcp://127.0.0.1:7702',
  adminPort: 7712,
  quotaBytes: 100 * GiB,
  chunkSizeBytes: 1 * MiB,
  maxPutChunkBytes: 8 * MiB,
  maxReadBytes: 4 * MiB,
  maxUploadSessions: 64,
  stagingMaxAgeMs: 60 * 60 * 1000,
  stagingSweepIntervalMs: 60 * 1000,
  scrubIntervalMs: 6 * 60 * 60 * 1000,
  scrubBatchBytes: 16 * MiB,
  putReplyCacheEntries: 4096,
  maxCorruptListed: 100,
};

/** Frame 0 plus routing overhead stays far below this; the data frame gets the rest. */
const MESSAGE_HEADROOM_BYTES = 64 * 1024;

/** Validates a merged config in place (numbers given as strings, e.g. flags, are converted). */
export function validateStorageConfig(c: Record<string, unknown>): StorageConfig {
  c.dataDir = path.resolve(stringSetting(c, 'dataDir'));
  endpointSetting(c, 'bind');
  intSetting(c, 'adminPort', 0, 65535);
  intSetting(c, 'quotaBytes', 0, Number.MAX_SAFE_INTEGER);
  const maxFrame = MAX_MESSAGE_BYTES - MESSAGE_HEADROOM_BYTES;
  intSetting(c, 'chunkSizeBytes', 1, maxFrame);
  intSetting(c, 'maxPutChunkBytes', 1, maxFrame);
  intSetting(c, 'maxReadBytes', 1, maxFrame);
  intSetting(c, 'maxUploadSessions', 1, 100_000);
  intSetting(c, 'stagingMaxAgeMs', 1_000, 365 * 24 * 3600 * 1000);
  intSetting(c, 'stagingSweepIntervalMs', 100, 24 * 3600 * 1000);
  intSetting(c, 'scrubIntervalMs', 0, 365 * 24 * 3600 * 1000);
  intSetting(c, 'scrubBatchBytes', 1, 1 * GiB);
  intSetting(c, 'putReplyCacheEntries', 0, 10_000_000);
  intSetting(c, 'maxCorruptListed', 0, 100_000);
  if ((c.chunkSizeBytes as number) > (c.maxReadBytes as number) * 16) {
    throw configError(`chunkSizeBytes (${c.chunkSizeBytes}) is more than 16 x maxReadBytes (${c.maxReadBytes}): every small read would load and hash a huge chunk`, 'use chunks of about 1 MiB');
  }
  return c as unknown as StorageConfig;
}

export function loadStorageConfig(flags: Partial<Record<keyof StorageConfig, unknown>>, configFile?: string): StorageConfig {
  const file = configFile ? readConfigFile(configFile) : {};
  const c = mergeConfig(STORAGE_DEFAULTS, file, flags, configFile ?? 'flags') as unknown as Record<string, unknown>;
  return validateStorageConfig(c);
}

// ---- client ---------------------------------------------------------------------------------

export interface StorageClientConfig {
  /** time one request waits for its answer before it is re-sent (same request_uuid), ms */
  requestTimeoutMs: number;
  /** re-sends of a request after a timeout before the call fails with TIMEOUT */
  retries: number;
  /** bytes per file_put_request (the architecture's 1 MiB upload chunk), bytes */
  putChunkBytes: number;
  /** bytes per file_read_request issued by read()/downloadTo(); must not exceed the server's maxReadBytes, bytes */
  readChunkBytes: number;
  /** upload chunks in flight at once (pipelining window) */
  putWindowChunks: number;
  /** download reads in flight at once (pipelining window) */
  readWindowChunks: number;
  /** times an upload may restart from the server's `received` offset before it gives up */
  maxUploadRewinds: number;
  /**
   * largest file readWhole() returns: a file the node refuses for file_request (over its
   * maxReadBytes) is read with ranged reads up to this size, bytes
   */
  maxWholeReadBytes: number;
}

export const STORAGE_CLIENT_DEFAULTS: StorageClientConfig = {
  requestTimeoutMs: 10_000,
  retries: 2,
  putChunkBytes: 1 * MiB,
  readChunkBytes: 1 * MiB,
  putWindowChunks: 4,
  readWindowChunks: 4,
  maxUploadRewinds: 8,
  maxWholeReadBytes: 64 * MiB,
};

export function validateClientConfig(c: Record<string, unknown>): StorageClientConfig {
  const maxFrame = MAX_MESSAGE_BYTES - MESSAGE_HEADROOM_BYTES;
  intSetting(c, 'requestTimeoutMs', 1, 24 * 3600 * 1000);
  intSetting(c, 'retries', 0, 1000);
  intSetting(c, 'putChunkBytes', 1, maxFrame);
  intSetting(c, 'readChunkBytes', 1, maxFrame);
  intSetting(c, 'putWindowChunks', 1, 1024);
  intSetting(c, 'readWindowChunks', 1, 1024);
  intSetting(c, 'maxUploadRewinds', 0, 1000);
  intSetting(c, 'maxWholeReadBytes', 0, 2 ** 31 - 1);
  return c as unknown as StorageClientConfig;
}

export function sampleConfig(): string {
  const d = STORAGE_DEFAULTS;
  return `// grid storage configuration (JSON; lines starting with // are comments).
// Start with: grid storage --config storage.json   (flags override these values)
{
  // folder for the SQLite database (storage.db), the node id and logs
  "dataDir": "${d.dataDir}",
  // ZeroMQ endpoint clients and workers connect to (port 0 = pick a free port)
  "bind": "${d.bind}",
  // admin HTTP port: GET /healthz, GET /status (0 = pick a free port)
  "adminPort": ${d.adminPort},
  // most bytes stored (files plus the declared length of open uploads), in bytes (100 GiB)
  "quotaBytes": ${d.quotaBytes},
  // size of a stored chunk, each with its own SHA-256, in bytes (1 MiB)
  "chunkSizeBytes": ${d.chunkSizeBytes},
  // largest data frame one upload request may carry, in bytes (8 MiB)
  "maxPutChunkBytes": ${d.maxPutChunkBytes},
  // largest ranged read, and largest whole file served by file_request, in bytes (4 MiB)
  "maxReadBytes": ${d.maxReadBytes},
  // most uploads open at once; more are refused with UNAVAILABLE (retry later)
  "maxUploadSessions": ${d.maxUploadSessions},
  // an upload idle this long is discarded, in milliseconds (1 hour)
  "stagingMaxAgeMs": ${d.stagingMaxAgeMs},
  // how often idle uploads are looked for, in milliseconds
  "stagingSweepIntervalMs": ${d.stagingSweepIntervalMs},
  // how often a full scrub re-verifies every chunk's SHA-256, in milliseconds (0 = never; 6 hours)
  "scrubIntervalMs": ${d.scrubIntervalMs},
  // chunk bytes one scrub step verifies before it lets requests through, in bytes (16 MiB)
  "scrubBatchBytes": ${d.scrubBatchBytes},
  // upload answers remembered so a re-sent chunk gets its first answer (entries)
  "putReplyCacheEntries": ${d.putReplyCacheEntries},
  // most corrupt chunks listed by name in /status
  "maxCorruptListed": ${d.maxCorruptListed}
}
`;
}
