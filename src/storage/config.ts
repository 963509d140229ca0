/**
 * Storage configuration: every size, age, interval and bound named with its unit, validated
 * at start with GridError('CONFIG_INVALID'). The tables below are the one place a
 * setting is written; docs/storage.md's table is generated from them (npm run gen:docs).
 * The client's defaults (STORAGE_CLIENT_DEFAULTS) live here too, so every bound of the
 * storage protocol is in one place.
 */
import { MAX_MESSAGE_BYTES } from '../messages';
import { SettingsOf, SettingsTable, configError, SECURITY_SPEC, ADMIN_SPEC, checkAdminSettings } from '../common';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

/** Frame 0 plus routing overhead stays far below this; the data frame gets the rest. */
const MESSAGE_HEADROOM_BYTES = 64 * 1024;
const MAX_FRAME = MAX_MESSAGE_BYTES - MESSAGE_HEADROOM_BYTES;
const DAY_MS = 24 * 3600 * 1000;

/** Every storage setting, once: type, default, range, unit, meaning (docs/storage.md is generated from it). */
export const STORAGE_SETTINGS = new SettingsTable(
  'storage',
  {
    dataDir: { type: 'path', default: './.grid/storage', flag: '--data-dir', doc: 'folder for the SQLite database (storage.db), the node id and logs' },
    ...SECURITY_SPEC,
    bind: { type: 'endpoint', default: 'tcp://127.0.0.1:7702', flag: '--bind', doc: 'ZeroMQ endpoint clients and workers connect to (port 0 = pick a free port)' },
    adminPort: { type: 'int', default: 7712, min: 0, max: 65535, flag: '--admin-port', doc: 'admin HTTP port on adminHost: GET /healthz, GET /status (0 = pick a free port)' },
    ...ADMIN_SPEC,
    quotaBytes: { type: 'int', default: 100 * GiB, min: 0, max: Number.MAX_SAFE_INTEGER, unit: 'bytes', flag: '--quota-bytes', doc: 'most bytes stored: files plus the declared length of open uploads' },
    chunkSizeBytes: { type: 'int', default: 1 * MiB, min: 1, max: MAX_FRAME, unit: 'bytes', doc: 'size of a stored chunk, each with its own SHA-256 (at most 16 x maxReadBytes)' },
    maxPutChunkBytes: { type: 'int', default: 8 * MiB, min: 1, max: MAX_FRAME, unit: 'bytes', doc: 'largest data frame one upload request (file_put_request) may carry' },
    maxReadBytes: { type: 'int', default: 4 * MiB, min: 1, max: MAX_FRAME, unit: 'bytes', doc: 'largest ranged read, and largest whole file served by file_request' },
    maxUploadSessions: { type: 'int', default: 64, min: 1, max: 100_000, doc: 'most uploads open at once; more are refused with UNAVAILABLE (retry later)' },
    maxUploadsPerClient: { type: 'int', default: 16, min: 1, max: 100_000, doc: 'most uploads one client key may hold open at once; more are refused with UNAVAILABLE' },
    maxReservedBytesPerClient: {
      type: 'int',
      default: 16 * GiB,
      min: 0,
      max: Number.MAX_SAFE_INTEGER,
      unit: 'bytes',
      doc: "most bytes one client key may reserve (declared length) in its open uploads; more is refused with QUOTA_EXCEEDED, so one client cannot take everyone's quota",
    },
    uploadIdleMs: { type: 'int', default: 60_000, min: 100, max: 365 * DAY_MS, unit: 'ms', doc: 'an upload that receives no chunk for this long is discarded, freeing its reservation (checked every stagingSweepIntervalMs or uploadIdleMs, whichever is shorter)' },
    stagingMaxAgeMs: { type: 'int', default: 3_600_000, min: 1_000, max: 365 * DAY_MS, unit: 'ms', doc: 'an upload idle this long is discarded (also across restarts)' },
    stagingSweepIntervalMs: { type: 'int', default: 60_000, min: 100, max: DAY_MS, unit: 'ms', doc: 'how often idle uploads are looked for' },
    scrubIntervalMs: { type: 'int', default: 6 * 3_600_000, min: 0, max: 365 * DAY_MS, unit: 'ms', doc: "how often a full scrub re-verifies every chunk's SHA-256 (0 = never)" },
    scrubBatchBytes: { type: 'int', default: 16 * MiB, min: 1, max: 1 * GiB, unit: 'bytes', doc: 'chunk bytes one scrub step verifies before it lets requests through' },
    putReplyCacheEntries: { type: 'int', default: 4096, min: 0, max: 10_000_000, doc: 'upload answers remembered by request_uuid, so a re-sent chunk gets its first answer' },
    maxCorruptListed: { type: 'int', default: 100, min: 0, max: 100_000, doc: 'most corrupt chunks listed by name in /status (the counts keep going)' },
  },
  (c) => {
    checkAdminSettings(c);
    if (c.chunkSizeBytes > c.maxReadBytes * 16) {
      throw configError(`chunkSizeBytes (${c.chunkSizeBytes}) is more than 16 x maxReadBytes (${c.maxReadBytes}): every small read would load and hash a huge chunk`, 'use chunks of about 1 MiB');
    }
  },
);

export type StorageConfig = SettingsOf<typeof STORAGE_SETTINGS.spec>;
export const STORAGE_DEFAULTS: StorageConfig = STORAGE_SETTINGS.defaults;

/** Validates a merged config (numbers given as strings, e.g. flags, are converted). */
export function validateStorageConfig(c: Record<string, unknown>): StorageConfig {
  return STORAGE_SETTINGS.validate(c);
}

export function loadStorageConfig(flags: Partial<Record<keyof StorageConfig, unknown>>, configFile?: string): StorageConfig {
  return STORAGE_SETTINGS.load(flags, configFile);
}

// ---- client ---------------------------------------------------------------------------------

/** The storage client's bounds (used by workers and the CLI); not read from a file. */
export const STORAGE_CLIENT_SETTINGS = new SettingsTable('storage client', {
  requestTimeoutMs: { type: 'int', default: 10_000, min: 1, max: DAY_MS, unit: 'ms', doc: 'time one request waits for its answer before it is re-sent (same request_uuid)' },
  retries: { type: 'int', default: 2, min: 0, max: 1000, doc: 're-sends of a request after a timeout before the call fails with TIMEOUT' },
  retryBackoffBaseMs: {
    type: 'int',
    default: 100,
    min: 0,
    max: DAY_MS,
    unit: 'ms',
    doc: 'pause before the first re-send after a timeout; doubled per re-send up to retryBackoffMaxMs, with equal jitter (src/common/backoff.ts), so the workers of a storage node that stalled do not all re-send at once',
  },
  retryBackoffMaxMs: { type: 'int', default: 2000, min: 0, max: DAY_MS, unit: 'ms', doc: 'largest pause before a re-send (at least retryBackoffBaseMs is used)' },
  putChunkBytes: { type: 'int', default: 1 * MiB, min: 1, max: MAX_FRAME, unit: 'bytes', doc: 'bytes per file_put_request' },
  readChunkBytes: { type: 'int', default: 1 * MiB, min: 1, max: MAX_FRAME, unit: 'bytes', doc: "bytes per file_read_request of read()/downloadTo(); at most the server's maxReadBytes" },
  putWindowChunks: { type: 'int', default: 4, min: 1, max: 1024, doc: 'upload chunks in flight at once (pipelining window)' },
  readWindowChunks: { type: 'int', default: 4, min: 1, max: 1024, doc: 'download reads in flight at once (pipelining window)' },
  maxUploadRewinds: { type: 'int', default: 8, min: 0, max: 1000, doc: "times an upload may restart from the server's received offset before it gives up" },
  maxWholeReadBytes: { type: 'int', default: 64 * MiB, min: 0, max: 2 ** 31 - 1, unit: 'bytes', doc: 'largest file readWhole() returns (read with ranged reads when over maxReadBytes)' },
});

export type StorageClientConfig = SettingsOf<typeof STORAGE_CLIENT_SETTINGS.spec>;
export const STORAGE_CLIENT_DEFAULTS: StorageClientConfig = STORAGE_CLIENT_SETTINGS.defaults;

export function validateClientConfig(c: Record<string, unknown>): StorageClientConfig {
  return STORAGE_CLIENT_SETTINGS.validate(c);
}

export function sampleConfig(): string {
  return STORAGE_SETTINGS.sample();
}
