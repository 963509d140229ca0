/**
 * Who a peer is (docs/operations.md, "Security").
 *
 * CURVE encrypts every connection and proves to the client that the server holds the key
 * the client expects (the `servers` file of the trust dir). The ZAP handler (src/common/zap.ts)
 * lets a client connect only when its public key is authorized for some role.
 *
 * libzmq does not tell a ROUTER which key a message came from (zeromq.js exposes no message
 * metadata), so each client names itself in its routing id, with a proof:
 *
 *     g1.<public key, base64url>.<nonce, base64url>.<tag, base64url>
 *     tag = HMAC-SHA256(X25519(client secret, server public), "grid-peer-v1" + nonce)[0..16]
 *
 * Only the holder of the client's secret key (or the server itself) can compute the tag, and
 * it is bound to this server's key, so a routing id seen by one server is worthless at
 * another. The routing id travels inside the CURVE handshake (encrypted). The server checks
 * the tag once per peer and then knows the key, hence the roles, of every message's sender.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Logger } from 'pino';
import { GridError, configError } from './errors';
import { KEY_ROLES, KeyPair, KeyRole, addServer, authorizeKey, keyFingerprint, loadOrCreateKeyPair, readAuthorized, readServers, serversFile, sharedSecret, z85Decode, z85Encode } from './keys';

export type SecurityMode = 'curve' | 'off';
export const SECURITY_MODES: readonly SecurityMode[] = ['curve', 'off'];

/** The settings rows every node role shares (spread into each role's table). */
export const SECURITY_SPEC = {
  security: {
    type: 'string',
    default: 'curve',
    flag: '--security',
    env: 'GRID_SECURITY',
    doc: '"curve": every ZeroMQ socket uses CurveZMQ and only authorized keys connect; "off": plain TCP, anyone who reaches the port is trusted (a trusted lab only; logged as a warning)',
  },
  trustDir: {
    type: 'path',
    default: '',
    allowEmpty: true,
    flag: '--trust-dir',
    env: 'GRID_TRUST_DIR',
    doc: 'folder with authorized/<role> (authorized public keys) and servers (endpoint -> public key) ("" = <dataDir>/trust)',
  },
  enroll: {
    type: 'bool',
    default: false,
    flag: '--enroll',
    env: 'GRID_ENROLL',
    doc: "at start, authorize this node's own key for its role in trustDir and record its endpoint there (grid dev does this; a one-user machine only)",
  },
} as const;

/** How long the authorized files are trusted before their mtime is looked at again. */
export const TRUST_RECHECK_MS = 1000;
/** Most peers whose routing-id proof is remembered (then the cache starts over). */
export const MAX_VERIFIED_PEERS = 100_000;

const PEER_PREFIX = 'g1.';
const PROOF_LABEL = Buffer.from('grid-peer-v1');

export interface SecurityOptions {
  mode: SecurityMode | string;
  /** folder of this node's key pair (`<keyName>.key`, `<keyName>.pub`) */
  keyDir: string;
  keyName?: string;
  /** '' = <keyDir>/trust */
  trustDir: string;
  /** the role this node's key is authorized as when it enrolls */
  role: KeyRole;
  enroll?: boolean;
  log: Logger;
}

export class Security {
  readonly mode: SecurityMode;
  readonly keys?: KeyPair;
  readonly trustDir: string;
  readonly role: KeyRole;
  private readonly log: Logger;
  private readonly enroll: boolean;
  private roles = new Map<string, Set<KeyRole>>();
  private names = new Map<string, string>();
  private checkedAt = -Infinity;
  private stamp = '';
  private readonly peers = new Map<string, string | null>();
  /** zapDomain of this node's server sockets */
  readonly domain = `grid-${crypto.randomBytes(6).toString('hex')}`;

  constructor(o: SecurityOptions) {
    if (!(SECURITY_MODES as readonly string[]).includes(o.mode)) throw configError(`setting security must be "curve" or "off", got ${JSON.stringify(o.mode)}`);
    this.mode = o.mode as SecurityMode;
    this.trustDir = o.trustDir || path.join(o.keyDir, 'trust');
    this.role = o.role;
    this.log = o.log;
    this.enroll = o.enroll === true;
    if (this.mode === 'off') {
      this.log.warn({ security: 'off' }, 'security is OFF: connections are neither encrypted nor authenticated, and any peer that reaches a port is trusted (docs/operations.md, "Security")');
      return;
    }
    this.keys = loadOrCreateKeyPair(o.keyDir, o.keyName ?? 'curve');
    if (this.enroll) authorizeKey(this.trustDir, this.role, this.keys.publicKey, `${this.role}-${keyFingerprint(this.keys.publicKey)}`);
    this.reload(0);
  }

  get on(): boolean {
    return this.mode === 'curve';
  }

  get publicKey(): string | undefined {
    return this.keys?.publicKey;
  }

  /** After a server socket bound: with enroll, record `endpoint key` in the servers file. */
  bound(endpoint: string): void {
    if (this.on && this.enroll) addServer(this.trustDir, endpoint, this.keys!.publicKey);
  }

  /** The key the server at endpoint must hold; NOT_AUTHORIZED naming the servers file when unknown. */
  serverKey(endpoint: string): string {
    const k = readServers(this.trustDir).get(endpoint);
    if (!k) {
      throw new GridError(
        'NOT_AUTHORIZED',
        `not authorized: no public key is known for the server at ${endpoint} (${serversFile(this.trustDir)} has no line for it), so this node cannot check whom it talks to`,
        'add "ENDPOINT KEY" with `grid keys server ENDPOINT KEY`, or set security "off" on a trusted lab network',
      );
    }
    return k;
  }

  /** The routing id a client socket connecting to the server with serverKey uses. */
  routingId(serverKey: string): string {
    const pub = z85Decode(this.keys!.publicKey);
    const nonce = crypto.randomBytes(9);
    const tag = proofTag(sharedSecret(this.keys!.secretKey, serverKey), nonce);
    return `${PEER_PREFIX}${pub.toString('base64url')}.${nonce.toString('base64url')}.${tag.toString('base64url')}`;
  }

  /** The verified public key of a ROUTER peer, or undefined when its routing id proves none. */
  peerKey(peer: Buffer): string | undefined {
    if (!this.on) return undefined;
    const id = peer.toString('latin1');
    const hit = this.peers.get(id);
    if (hit !== undefined) return hit ?? undefined;
    const key = this.verify(id);
    if (this.peers.size >= MAX_VERIFIED_PEERS) this.peers.clear();
    this.peers.set(id, key ?? null);
    return key;
  }

  private verify(id: string): string | undefined {
    if (!id.startsWith(PEER_PREFIX)) return undefined;
    const parts = id.slice(PEER_PREFIX.length).split('.');
    if (parts.length !== 3) return undefined;
    const [p, n, t] = parts.map((x) => Buffer.from(x!, 'base64url'));
    if (p!.length !== 32 || n!.length !== 9 || t!.length !== 16) return undefined;
    const pub = z85Encode(p!);
    try {
      const want = proofTag(sharedSecret(this.keys!.secretKey, pub), n!);
      return crypto.timingSafeEqual(want, t!) ? pub : undefined;
    } catch {
      return undefined;
    }
  }

  /** Roles of a public key per the authorized files (re-read when they change). */
  rolesOfKey(key: string, nowMs = Date.now()): ReadonlySet<KeyRole> {
    this.reload(nowMs);
    let r = this.roles.get(key);
    // a key not known (yet): look at the files now rather than up to TRUST_RECHECK_MS later,
    // so a key authorized a moment ago is admitted (costs a stat per file, only on refusals)
    if (!r) {
      this.reload(nowMs, true);
      r = this.roles.get(key);
    }
    return r ?? EMPTY;
  }

  /** Roles of a ROUTER peer; with security off every role (a trusted lab). */
  peerRoles(peer: Buffer): ReadonlySet<KeyRole> {
    if (!this.on) return ALL_ROLES;
    const k = this.peerKey(peer);
    return k ? this.rolesOfKey(k) : EMPTY;
  }

  /** Name of a key for logs and listings: its authorized name, else its fingerprint. */
  nameOf(key: string): string {
    return this.names.get(key) || keyFingerprint(key);
  }

  /** Is the key authorized for any role? (the ZAP decision) */
  authorized(key: string): boolean {
    return this.rolesOfKey(key).size > 0;
  }

  private reload(nowMs: number, force = false): void {
    if (!force && nowMs - this.checkedAt < TRUST_RECHECK_MS) return;
    this.checkedAt = nowMs;
    const stamp = KEY_ROLES.map((r) => mtimeOf(path.join(this.trustDir, 'authorized', r))).join(',');
    if (stamp === this.stamp) return;
    const roles = new Map<string, Set<KeyRole>>();
    const names = new Map<string, string>();
    try {
      for (const a of readAuthorized(this.trustDir)) {
        let s = roles.get(a.key);
        if (!s) roles.set(a.key, (s = new Set()));
        s.add(a.role);
        if (a.name && !names.has(a.key)) names.set(a.key, a.name);
      }
    } catch (e) {
      // keep the last good set: a half-edited file must not lock everyone out
      this.log.error({ err: (e as Error).message }, 'authorized keys unreadable; keeping the previous set');
      return;
    }
    this.stamp = stamp;
    this.roles = roles;
    this.names = names;
  }

}

const EMPTY: ReadonlySet<KeyRole> = new Set();
const ALL_ROLES: ReadonlySet<KeyRole> = new Set(KEY_ROLES);

function proofTag(shared: Buffer, nonce: Buffer): Buffer {
  return crypto.createHmac('sha256', shared).update(PROOF_LABEL).update(nonce).digest().subarray(0, 16);
}

function mtimeOf(file: string): string {
  try {
    const st = fs.statSync(file);
    return `${st.mtimeMs}:${st.size}:${st.ino}`;
  } catch {
    return '-';
  }
}

/** The trust dir a client or dev uses: GRID_TRUST_DIR, else <dataDir>/trust. */
export function clientTrustDir(dataDir: string, env: NodeJS.ProcessEnv = process.env): string {
  return path.resolve(env.GRID_TRUST_DIR || path.join(dataDir, 'trust'));
}

/**
 * The Security of a client process (CLI, tests): key pair GRID_CLIENT_KEY (a .key file, its
 * .pub beside it) or <trustDir>/client.key, made on first use.
 */
export function clientSecurity(dataDir: string, log: Logger, env: NodeJS.ProcessEnv = process.env): Security {
  const trustDir = clientTrustDir(dataDir, env);
  const keyFile = env.GRID_CLIENT_KEY ? path.resolve(env.GRID_CLIENT_KEY) : path.join(trustDir, 'client.key');
  return new Security({
    mode: env.GRID_SECURITY || 'curve',
    keyDir: path.dirname(keyFile),
    keyName: path.basename(keyFile).replace(/\.key$/, ''),
    trustDir,
    role: 'clients',
    log,
  });
}

/** The security flags every node command takes (rows of SECURITY_SPEC). */
export interface SecurityFlags {
  security?: string;
  trustDir?: string;
  enroll?: boolean;
  /** --admin-host (src/common/admin.ts, adminOptions) */
  adminHost?: string;
}

/** Adds --security, --trust-dir and --enroll to a node command. */
export function securityOptions<C extends { option(flags: string, description: string): C }>(cmd: C): C {
  return cmd
    .option('--security <mode>', 'curve (default: CurveZMQ + ZAP on every socket) or off (a trusted lab; logged as a warning)')
    .option('--trust-dir <dir>', 'folder with authorized/<role> and servers (default <data-dir>/trust)')
    .option('--enroll', "authorize this node's own key for its role in the trust dir and record its endpoint (one-user machines; grid dev does it)");
}

/**
 * The settings the flags set, else their environment variables (GRID_SECURITY,
 * GRID_TRUST_DIR, GRID_ENROLL), else undefined (the config file or the default decides).
 */
export function securityFlagValues(o: SecurityFlags, env: NodeJS.ProcessEnv = process.env): { security?: string; trustDir?: string; enroll?: boolean | string } {
  const v = (x: string | undefined): string | undefined => (x === undefined || x === '' ? undefined : x);
  return { security: o.security ?? v(env.GRID_SECURITY), trustDir: o.trustDir ?? v(env.GRID_TRUST_DIR), enroll: o.enroll ? true : v(env.GRID_ENROLL) };
}
