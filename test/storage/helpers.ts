/** Shared set-up for storage tests: temp data dirs, in-process nodes, clients. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import http from 'node:http';
import { newUuid } from '../../src/messages';
import { silentLogger } from '../../src/common';
import { STORAGE_DEFAULTS, StorageConfig, validateStorageConfig } from '../../src/storage/config';
import { StorageNode } from '../../src/storage/server';
import { StorageClient, StorageClientOptions } from '../../src/storage/client';
import { TEST_TRUST_DIR, testSecurity } from '../helpers/security';

export const MiB = 1024 * 1024;

export function tempDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'grid-storage-test-'));
}

export function testConfig(dataDir: string, over: Partial<StorageConfig> = {}): StorageConfig {
  return validateStorageConfig({ ...STORAGE_DEFAULTS, dataDir, bind: 'tcp://127.0.0.1:0', adminPort: 0, scrubIntervalMs: 0, trustDir: TEST_TRUST_DIR, enroll: true, ...over } as unknown as Record<string, unknown>);
}

export async function startNode(dataDir: string, over: Partial<StorageConfig> = {}, now?: () => number): Promise<StorageNode> {
  const node = new StorageNode(testConfig(dataDir, over), { log: silentLogger(), now });
  await node.start();
  return node;
}

export function client(endpoint: string, over: Partial<StorageClientOptions> = {}): StorageClient {
  return new StorageClient({ security: testSecurity(), endpoint, nodeUuid: newUuid(), log: silentLogger(), requestTimeoutMs: 5_000, retries: 1, ...over });
}

/** Deterministic pseudo-random bytes (xorshift), so a failing case is reproducible. */
export function bytes(n: number, seed = 1): Buffer {
  const b = Buffer.allocUnsafe(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = x & 0xff;
  }
  return b;
}

export function httpGet(port: number, p: string): Promise<{ code: number; body: string }> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path: p }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (body += d));
        res.on('end', () => resolve({ code: res.statusCode ?? 0, body }));
      })
      .on('error', reject);
  });
}

/** Resolves with the error a promise rejects with; fails if it resolves. */
export async function rejection(p: Promise<unknown>): Promise<Error & { code?: string }> {
  try {
    await p;
  } catch (e) {
    return e as Error & { code?: string };
  }
  throw new Error('expected a rejection, got a result');
}
