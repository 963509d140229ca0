/**
 * Mocha root setup (loaded by .mocharc.json `require`): every test runs with security on,
 * as a user's grid does. One temp trust dir for the whole run (GRID_TRUST_DIR) that every
 * node started by a test enrolls into (GRID_ENROLL=true: its key authorized for its role,
 * its endpoint recorded), and that every client and `grid dev` of the run uses, so tests
 * need no key plumbing of their own. Removed when the run ends.
 *
 * testSecurity(role) gives a test's own raw peers (fake masters, balancers, intruders) a
 * key authorized as `role` in that trust dir; `unauthorizedSecurity()` a key authorized as
 * nothing, for the refusal tests.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as zmq from 'zeromq';
import { KeyRole, Security, authorizeKey, clientSocket, keyFingerprint, loadOrCreateKeyPair, silentLogger } from '../../src/common';

export const TEST_TRUST_DIR = process.env.GRID_TRUST_DIR && process.env.GRID_TEST_TRUST_OWNED !== undefined ? process.env.GRID_TRUST_DIR : makeTrust();

function makeTrust(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'grid-trust-'));
  process.env.GRID_TRUST_DIR = dir;
  process.env.GRID_ENROLL = 'true';
  process.env.GRID_TEST_TRUST_OWNED = '1';
  process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
  // the key every `grid` command of the run uses (<trust dir>/client.key), authorized as
  // `grid dev` would: tests whose master is a fake need it too
  const k = loadOrCreateKeyPair(dir, 'client');
  authorizeKey(dir, 'clients', k.publicKey, 'test-run-client');
  return dir;
}

/** Settings of a node a test builds in its own process (spawned ones read the variables). */
export const TEST_NODE_SECURITY = { trustDir: TEST_TRUST_DIR, enroll: true } as const;

const byRole = new Map<string, Security>();

/** A Security whose key is authorized as `role` in the run's trust dir (one per role, reused). */
export function testSecurity(role: KeyRole = 'clients'): Security {
  let s = byRole.get(role);
  if (!s) {
    s = new Security({ mode: 'curve', keyDir: path.join(TEST_TRUST_DIR, 'test-keys'), keyName: `test-${role}`, trustDir: TEST_TRUST_DIR, role, enroll: true, log: silentLogger() });
    byRole.set(role, s);
  }
  return s;
}

/**
 * A Security with a fresh key that no role authorizes (or only `roles`); with enroll, a
 * server socket bound with it records its endpoint (a test's fake server).
 */
export function freshSecurity(name: string, roles: KeyRole[] = [], enroll = false): Security {
  const dir = fs.mkdtempSync(path.join(TEST_TRUST_DIR, 'fresh-'));
  const s = new Security({ mode: 'curve', keyDir: dir, keyName: name, trustDir: TEST_TRUST_DIR, role: roles[0] ?? 'clients', enroll, log: silentLogger() });
  for (const r of roles) authorizeKey(TEST_TRUST_DIR, r, s.publicKey!, `${name}-${keyFingerprint(s.publicKey!)}`);
  return s;
}

/**
 * A client socket of `security` connected to `endpoint`, and the outcome of its first CURVE
 * handshake: 'handshake' when it completed, 'handshake:error:auth' when ZAP refused the key,
 * another 'handshake:error:*', or 'end' when the socket closed first. The observer starts
 * before the socket connects (libzmq tells only an observer that already exists, and a
 * handshake on loopback can finish before the line after connect runs). A fake peer that
 * sends before the handshake has its messages queued and flushed at once later, which a
 * test of timing-sensitive exchanges (lease renewals) must not see: it awaits `handshake`.
 */
export function watchedSocket(security: Security, endpoint: string, o: ConstructorParameters<typeof zmq.Dealer>[0] = {}): { sock: zmq.Dealer; handshake: Promise<string> } {
  let handshake!: Promise<string>;
  const sock = clientSocket(security, endpoint, o, (d) => {
    handshake = firstHandshake(d);
  });
  return { sock, handshake };
}

async function firstHandshake(d: zmq.Dealer): Promise<string> {
  try {
    for await (const ev of d.events) if (ev.type.startsWith('handshake') || ev.type === 'end') return ev.type;
  } catch {
    // socket closed
  }
  return 'end';
}
