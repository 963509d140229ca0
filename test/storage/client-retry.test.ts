// The storage client's re-sends after a timeout pause with backoff and jitter
// (src/common/backoff.ts; docs/storage.md "Configuration", client settings), on a real socket
// to a storage endpoint that swallows every request.
import assert from 'node:assert/strict';
import { RpcServer, TimeoutError } from '../../src/common';
import { Message, newUuid } from '../../src/messages';
import { STORAGE_ACCESS } from '../../src/storage/server';
import { StorageClient } from '../../src/storage/client';
import { silentLogger } from '../../src/common/log';
import { freshSecurity, testSecurity } from '../helpers/security';

describe('storage client: re-sends after a timeout back off with jitter', function () {
  this.timeout(20_000);

  it('pauses retryBackoffBaseMs doubled up to retryBackoffMaxMs (equal jitter) before each re-send, same request_uuid, then TIMEOUT', async () => {
    const seen: Message[] = [];
    const server = new RpcServer({ security: freshSecurity('silent-storage', ['storage'], true), access: STORAGE_ACCESS, bind: 'tcp://127.0.0.1:0', nodeUuid: newUuid(), log: silentLogger(), handler: (m) => void seen.push(m) });
    const endpoint = await server.start();
    const slept: number[] = [];
    const c = new StorageClient({
      endpoint,
      nodeUuid: newUuid(),
      log: silentLogger(),
      security: testSecurity(),
      requestTimeoutMs: 100,
      retries: 4,
      retryBackoffBaseMs: 100,
      retryBackoffMaxMs: 300,
      random: () => 0,
      sleep: async (ms) => void slept.push(ms),
    });
    try {
      await assert.rejects(c.stat(newUuid()), (e: unknown) => e instanceof TimeoutError);
      assert.deepEqual(slept, [50, 100, 150, 150], 'random 0: half of 100, 200, 300 (capped), 300');
      assert.equal(c.retries, 4);
      assert.equal(seen.length, 5, 'the first send and 4 re-sends');
      assert.equal(new Set(seen.map((m) => (m as { request_uuid: string }).request_uuid)).size, 1, 'one request_uuid throughout');
    } finally {
      c.close();
      server.close();
    }
  });
});
