/**
 * CURVE key files and the trust dir (docs/operations.md, "Security").
 *
 * A key pair is two plain-text files holding the 40-character Z85 strings libzmq's
 * `zmq_curve_keypair` makes: `<name>.pub` (public) and `<name>.key` (secret, mode 0600),
 * so a C program can read them with fgets and pass them to zmq_setsockopt.
 *
 * A trust dir holds what a node believes about others:
 *   authorized/<role>   one public key per line, optionally followed by a name
 *                       (like ssh's authorized_keys); `#` starts a comment
 *   servers             `ENDPOINT PUBLIC-KEY` per line: the key the server at ENDPOINT must
 *                       prove it holds (like ssh's known_hosts)
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import * as zmq from 'zeromq';
import { GridError, configError } from './errors';

/** The roles a key can be authorized as. */
export const KEY_ROLES = ['masters', 'balancers', 'workers', 'storage', 'clients', 'admins'] as const;
export type KeyRole = (typeof KEY_ROLES)[number];

export interface KeyPair {
  /** Z85, 40 characters */
  publicKey: string;
  /** Z85, 40 characters */
  secretKey: string;
}

const Z85 = '0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#';
const Z85_INDEX = new Map([...Z85].map((c, i) => [c, i]));
const Z85_KEY_RE = /^[0-9a-zA-Z.\-:+=^!/*?&<>()[\]{}@%$#]{40}$/;

export function isZ85Key(s: string): boolean {
  return Z85_KEY_RE.test(s);
}

/** Z85 (ZeroMQ RFC 32) decoding of a string whose length is a multiple of 5. */
export function z85Decode(s: string): Buffer {
  if (s.length % 5 !== 0) throw new GridError('BAD_REQUEST', `Z85 text must be a multiple of 5 characters long, got ${s.length}`);
  const out = Buffer.alloc((s.length / 5) * 4);
  for (let i = 0, o = 0; i < s.length; i += 5, o += 4) {
    let v = 0;
    for (let j = 0; j < 5; j++) {
      const d = Z85_INDEX.get(s[i + j]!);
      if (d === undefined) throw new GridError('BAD_REQUEST', `not a Z85 character: ${JSON.stringify(s[i + j])}`);
      v = v * 85 + d;
    }
    if (v > 0xffffffff) throw new GridError('BAD_REQUEST', 'Z85 group out of range');
    out.writeUInt32BE(v, o);
  }
  return out;
}

export function z85Encode(b: Buffer): string {
  if (b.length % 4 !== 0) throw new GridError('BAD_REQUEST', 'Z85 encodes multiples of 4 bytes');
  let s = '';
  for (let i = 0; i < b.length; i += 4) {
    let v = b.readUInt32BE(i);
    const chunk: string[] = [];
    for (let j = 0; j < 5; j++) {
      chunk.unshift(Z85[v % 85]!);
      v = Math.floor(v / 85);
    }
    s += chunk.join('');
  }
  return s;
}

/** A short, stable name for a public key in logs and listings: the first 8 hex digits of its SHA-256. */
export function keyFingerprint(publicKey: string): string {
  return crypto.createHash('sha256').update(publicKey).digest('hex').slice(0, 8);
}

/** A fresh key pair (libzmq's zmq_curve_keypair). */
export function newKeyPair(): KeyPair {
  const k = zmq.curveKeyPair();
  return { publicKey: k.publicKey, secretKey: k.secretKey };
}

function readKeyFile(file: string): string {
  const k = fs.readFileSync(file, 'utf8').trim();
  if (!isZ85Key(k)) throw configError(`${file} does not hold a 40-character Z85 CURVE key`, 'remove it to have a new key pair made, or restore the right file');
  return k;
}

/** Writes a key pair as <dir>/<name>.pub and <dir>/<name>.key (0600); refuses to overwrite. */
export function writeKeyPair(dir: string, name: string, k: KeyPair): void {
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  fs.writeFileSync(path.join(dir, `${name}.key`), k.secretKey + '\n', { mode: 0o600, flag: 'wx' });
  fs.writeFileSync(path.join(dir, `${name}.pub`), k.publicKey + '\n', { mode: 0o644, flag: 'wx' });
}

export function readKeyPair(dir: string, name: string): KeyPair | undefined {
  const sec = path.join(dir, `${name}.key`);
  if (!fs.existsSync(sec)) return undefined;
  const secretKey = readKeyFile(sec);
  const publicKey = readKeyFile(path.join(dir, `${name}.pub`));
  // the public key must belong to the secret key (a swapped file would fail every handshake)
  const derived = z85Encode(publicFromSecret(z85Decode(secretKey)));
  if (derived !== publicKey) throw configError(`${path.join(dir, name)}.pub does not match ${name}.key`, 'restore the pair, or remove both to have a new one made');
  return { publicKey, secretKey };
}

/** The node's key pair in dir, made on first use. */
export function loadOrCreateKeyPair(dir: string, name: string): KeyPair {
  try {
    const k = readKeyPair(dir, name);
    if (k) return k;
    const fresh = newKeyPair();
    try {
      writeKeyPair(dir, name, fresh);
    } catch (e) {
      // another process made it first (two commands at once): use theirs
      if ((e as NodeJS.ErrnoException).code === 'EEXIST') return readKeyPair(dir, name)!;
      throw e;
    }
    return fresh;
  } catch (e) {
    if (e instanceof GridError) throw e;
    throw configError(`cannot use the key pair ${path.join(dir, name)}.key: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, 'give a data dir this user can write');
  }
}

/** DER prefix of a PKCS#8 X25519 private key (RFC 8410); the 32 key bytes follow. */
const X25519_PKCS8_PREFIX = Buffer.from('302e020100300506032b656e04220420', 'hex');

function x25519Private(secret: Buffer): crypto.KeyObject {
  return crypto.createPrivateKey({ key: Buffer.concat([X25519_PKCS8_PREFIX, secret]), format: 'der', type: 'pkcs8' });
}

/** The public key of a CURVE secret key (both raw 32 bytes). */
export function publicFromSecret(secret: Buffer): Buffer {
  const jwk = crypto.createPublicKey(x25519Private(secret)).export({ format: 'jwk' });
  return Buffer.from(jwk.x!, 'base64url');
}

/** X25519(secret, public): the secret CURVE itself derives its session keys from. */
export function sharedSecret(secretZ85: string, publicZ85: string): Buffer {
  const pub = crypto.createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x: z85Decode(publicZ85).toString('base64url') }, format: 'jwk' });
  return crypto.diffieHellman({ privateKey: x25519Private(z85Decode(secretZ85)), publicKey: pub });
}

// ---- trust dir ------------------------------------------------------------------------------

export function authorizedFile(trustDir: string, role: KeyRole): string {
  return path.join(trustDir, 'authorized', role);
}

export function serversFile(trustDir: string): string {
  return path.join(trustDir, 'servers');
}

export interface AuthorizedKey {
  key: string;
  role: KeyRole;
  name: string;
}

function lines(file: string): string[] {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw configError(`cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  // `#` starts a comment, but Z85 keys may hold (even start with) `#`: a line whose first
  // word is a key is never a comment, and a comment after a key needs whitespace before it
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && (!l.startsWith('#') || isZ85Key(l.split(/\s+/)[0]!)))
    .map((l) => l.replace(/\s+#.*$/, ''));
}

/** Every authorized key of every role; a malformed line is an error naming the file and line. */
export function readAuthorized(trustDir: string): AuthorizedKey[] {
  const out: AuthorizedKey[] = [];
  for (const role of KEY_ROLES) {
    const file = authorizedFile(trustDir, role);
    for (const l of lines(file)) {
      const [key, ...name] = l.split(/\s+/);
      if (!isZ85Key(key!)) throw configError(`${file}: ${JSON.stringify(l.slice(0, 60))} does not start with a 40-character Z85 public key`, 'fix the line, or use `grid keys authorize`');
      out.push({ key: key!, role, name: name.join(' ') });
    }
  }
  return out;
}

/** Adds a key to a role's file (no-op when it is already there). */
export function authorizeKey(trustDir: string, role: KeyRole, key: string, name = ''): boolean {
  if (!isZ85Key(key)) throw new GridError('BAD_REQUEST', `not a 40-character Z85 public key: ${JSON.stringify(key)}`, 'give the content of a .pub file');
  if (readAuthorized(trustDir).some((a) => a.role === role && a.key === key)) return false;
  fs.mkdirSync(path.join(trustDir, 'authorized'), { recursive: true, mode: 0o700 });
  fs.appendFileSync(authorizedFile(trustDir, role), `${key}${name ? ' ' + name.replace(/\s+/g, '_') : ''}\n`, { mode: 0o600 });
  return true;
}

/** Removes a key from one role (or every role); returns the roles it was removed from. */
export function revokeKey(trustDir: string, key: string, role?: KeyRole): KeyRole[] {
  const removed: KeyRole[] = [];
  for (const r of role ? [role] : KEY_ROLES) {
    const file = authorizedFile(trustDir, r);
    if (!fs.existsSync(file)) continue;
    const all = fs.readFileSync(file, 'utf8').split('\n');
    const kept = all.filter((l) => l.trim().split(/\s+/)[0] !== key);
    if (kept.length !== all.length) {
      const tmp = `${file}.tmp-${process.pid}`;
      fs.writeFileSync(tmp, kept.join('\n'), { mode: 0o600 });
      fs.renameSync(tmp, file);
      removed.push(r);
    }
  }
  return removed;
}

/** endpoint -> the server's public key. */
export function readServers(trustDir: string): Map<string, string> {
  const file = serversFile(trustDir);
  const m = new Map<string, string>();
  for (const l of lines(file)) {
    const [ep, key] = l.split(/\s+/);
    if (!ep || !key || !isZ85Key(key)) throw configError(`${file}: ${JSON.stringify(l.slice(0, 80))} is not "ENDPOINT PUBLIC-KEY"`, 'fix the line, or use `grid keys server`');
    m.set(ep, key); // a later line wins (a server that moved)
  }
  return m;
}

export function addServer(trustDir: string, endpoint: string, key: string): void {
  if (!isZ85Key(key)) throw new GridError('BAD_REQUEST', `not a 40-character Z85 public key: ${JSON.stringify(key)}`);
  if (readServers(trustDir).get(endpoint) === key) return;
  fs.mkdirSync(trustDir, { recursive: true, mode: 0o700 });
  fs.appendFileSync(serversFile(trustDir), `${endpoint} ${key}\n`, { mode: 0o600 });
}
