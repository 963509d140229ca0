/**
 * The HTTP admin API every node serves (seed 001): GET /healthz (200 "ok" while the node
 * serves, 503 with a reason otherwise), GET /status (JSON the operator and the CLI read) and
 * GET /metrics (Prometheus text format, docs/operations.md "Metrics"). A role may add its
 * own routes (the masters serve the dashboard this way).
 *
 * Access (issue 9, "Admin HTTP"; docs/operations.md "Admin HTTP: bind and token"): the
 * server binds `adminHost`, loopback by default. Any other address needs `adminToken`, and a
 * node configured with neither refuses to start; with a token every request must carry it
 * (`Authorization: Bearer TOKEN`, or HTTP Basic with the token as password, so a browser can
 * open the dashboard), else 401. The token is compared in constant time.
 */
import { bindError } from './bind-errors';
import { createHash, timingSafeEqual } from 'node:crypto';
import http from 'node:http';
import { AddressInfo, isIP } from 'node:net';
import { GridError, configError } from './errors';

/** Shortest adminToken accepted: 16 characters (128 bits if random hex: `openssl rand -hex 16`). */
export const MIN_ADMIN_TOKEN_CHARS = 16;
/** Environment variable that sets adminToken (a flag would show the token in `ps`). */
export const ADMIN_TOKEN_ENV = 'GRID_ADMIN_TOKEN';

/** The admin settings rows every node role shares (spread into each role's table after adminPort). */
export const ADMIN_SPEC = {
  adminHost: {
    type: 'string',
    default: '127.0.0.1',
    flag: '--admin-host',
    doc: 'address the admin HTTP server binds: 127.0.0.1 (or ::1, localhost) = this machine only; any other address (0.0.0.0, a host address) requires adminToken',
  },
  adminToken: {
    type: 'string',
    default: '',
    allowEmpty: true,
    env: ADMIN_TOKEN_ENV,
    doc: `token every admin HTTP request must carry (Authorization: Bearer TOKEN; 401 without it), at least ${MIN_ADMIN_TOKEN_CHARS} characters; "" = no token, allowed only on a loopback adminHost. Set it in the config file or ${ADMIN_TOKEN_ENV}, not on the command line`,
  },
} as const;

/** True for addresses only this machine can reach: 127.0.0.0/8, ::1, localhost. */
export function isLoopbackHost(host: string): boolean {
  const h = host.trim().toLowerCase().replace(/^\[(.*)\]$/, '$1');
  if (h === 'localhost') return true;
  if (isIP(h) === 4) return h.startsWith('127.');
  if (isIP(h) === 6) return h === '::1' || h === '0:0:0:0:0:0:0:1' || /^::ffff:127\./.test(h);
  return false;
}

/**
 * The admin settings' own rule, checked by every role's table at start (CONFIG_INVALID) and
 * again by AdminServer, so no node can serve its admin API off-host without a token.
 */
export function checkAdminSettings(c: { adminHost: string; adminToken: string }): void {
  if (c.adminHost.trim() === '' || /\s/.test(c.adminHost)) throw configError(`setting adminHost must be an address or host name, got ${JSON.stringify(c.adminHost)}`, 'e.g. 127.0.0.1 (default), or 0.0.0.0 with adminToken');
  if (c.adminToken !== '' && (c.adminToken.length < MIN_ADMIN_TOKEN_CHARS || /\s/.test(c.adminToken))) {
    throw configError(`setting adminToken must be at least ${MIN_ADMIN_TOKEN_CHARS} characters without spaces (got ${c.adminToken.length} characters)`, 'make one with `openssl rand -hex 16`');
  }
  if (c.adminToken === '' && !isLoopbackHost(c.adminHost)) {
    throw configError(
      `setting adminHost is ${c.adminHost}, not loopback, and setting adminToken is empty: the admin HTTP API (/status, /metrics, the dashboard) would be open to anyone who reaches the port`,
      `set adminToken (config file, or ${ADMIN_TOKEN_ENV}=$(openssl rand -hex 16)) and send it as "Authorization: Bearer TOKEN", or keep adminHost 127.0.0.1 (docs/operations.md, "Admin HTTP: bind and token")`,
    );
  }
}

/** The adminHost flag, and adminToken from GRID_ADMIN_TOKEN (undefined = not given: the file or the default decides). */
export function adminFlagValues(o: { adminHost?: string }, env: NodeJS.ProcessEnv = process.env): { adminHost?: string; adminToken?: string } {
  const t = env[ADMIN_TOKEN_ENV];
  return { adminHost: o.adminHost, adminToken: t === undefined || t === '' ? undefined : t };
}

/** Adds --admin-host to a node command (the token has no flag: see ADMIN_SPEC). */
export function adminOptions<C extends { option(flags: string, description: string): C }>(cmd: C): C {
  return cmd.option('--admin-host <address>', `address the admin HTTP server binds (default 127.0.0.1); anything but loopback needs adminToken (${ADMIN_TOKEN_ENV})`);
}

/** The Authorization header value that carries `token` (what AdminServer expects). */
export function adminAuthHeader(token: string): Record<string, string> {
  return token ? { authorization: `Bearer ${token}` } : {};
}

const digest = (s: string): Buffer => createHash('sha256').update(s, 'utf8').digest();

/**
 * The token a request carries: `Bearer TOKEN`, or `Basic base64(user:TOKEN)` (any user; what a
 * browser sends after the 401's Basic challenge). undefined when it carries none.
 */
function presentedToken(header: string | undefined): string | undefined {
  if (!header) return undefined;
  const m = /^(\S+)\s+(.*)$/.exec(header.trim());
  if (!m) return undefined;
  const scheme = m[1]!.toLowerCase();
  if (scheme === 'bearer') return m[2]!.trim();
  if (scheme !== 'basic') return undefined;
  const plain = Buffer.from(m[2]!.trim(), 'base64').toString('utf8');
  const i = plain.indexOf(':');
  return i < 0 ? undefined : plain.slice(i + 1);
}

/** What a route answers. */
export interface AdminResponse {
  status: number;
  /** content-type */
  type: string;
  body: string | Buffer;
  headers?: Record<string, string>;
}

/** A role's own GET route: answers the paths it owns, undefined for the rest. */
export type AdminRoute = (path: string, query: URLSearchParams) => AdminResponse | undefined | Promise<AdminResponse | undefined>;

export interface AdminOptions {
  /** adminHost: the address to bind */
  host: string;
  /** 0 for an ephemeral port */
  port: number;
  /** adminToken: every request must carry it ('' = none; only on a loopback host) */
  token?: string;
  /** null when healthy, else why not */
  health: () => string | null;
  status: () => unknown;
  /** the Prometheus exposition of this node (GET /metrics) */
  metrics?: { text: () => Promise<string>; contentType: string };
  /** further GET routes, tried in order before the 404 */
  routes?: AdminRoute[];
  /** paths of those routes a 404 suggests (e.g. /dashboard) */
  routePaths?: string[];
}

export class AdminServer {
  private server?: http.Server;
  port = 0;

  /** SHA-256 of the token: both sides of the comparison have the same length (timingSafeEqual needs it) */
  private readonly tokenDigest?: Buffer;

  constructor(private readonly o: AdminOptions) {
    checkAdminSettings({ adminHost: o.host, adminToken: o.token ?? '' });
    if (o.token) this.tokenDigest = digest(o.token);
  }

  /** Whether a request's Authorization header carries the token, compared in constant time. */
  private authorized(header: string | undefined): boolean {
    if (!this.tokenDigest) return true;
    const t = presentedToken(header);
    // a missing token is compared too, so the answer takes the same time either way
    return timingSafeEqual(digest(t ?? ''), this.tokenDigest) && t !== undefined;
  }

  async start(): Promise<number> {
    const server = http.createServer((req, res) => void this.serve(req, res));
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', (e) => reject(bindError(e, 'the admin HTTP server', `${this.o.host}:${this.o.port}`, '--admin-port (or --admin-host)')));
      server.listen(this.o.port, this.o.host, () => resolve());
    });
    this.port = (server.address() as AddressInfo).port;
    return this.port;
  }

  private async serve(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    try {
      if (!this.authorized(req.headers.authorization)) {
        res.writeHead(401, { 'content-type': 'application/json', 'www-authenticate': 'Basic realm="grid admin", Bearer realm="grid admin"' });
        const why = req.headers.authorization ? 'the token it carries is wrong' : 'it carries no token';
        return void res.end(JSON.stringify({ error: `not authorized: this admin server requires adminToken and ${why}; send "Authorization: Bearer TOKEN" (curl -H "Authorization: Bearer $GRID_ADMIN_TOKEN")` }, null, 2) + '\n');
      }
      if (req.method !== 'GET' && req.method !== 'HEAD') return this.reply(res, 405, { error: 'only GET is served' });
      const url = new URL(req.url ?? '/', 'http://admin');
      const path = url.pathname;
      if (path === '/healthz') {
        const why = this.o.health();
        res.writeHead(why ? 503 : 200, { 'content-type': 'text/plain' });
        return void res.end(why ? `unhealthy: ${why}\n` : 'ok\n');
      }
      if (path === '/status') return this.reply(res, 200, this.o.status());
      if (path === '/metrics' && this.o.metrics) {
        const text = await this.o.metrics.text();
        res.writeHead(200, { 'content-type': this.o.metrics.contentType });
        return void res.end(text);
      }
      for (const route of this.o.routes ?? []) {
        const r = await route(path, url.searchParams);
        if (!r) continue;
        res.writeHead(r.status, { 'content-type': r.type, 'cache-control': 'no-store', ...r.headers });
        return void res.end(r.body);
      }
      const known = ['/healthz', '/status', ...(this.o.metrics ? ['/metrics'] : []), ...(this.o.routePaths ?? [])];
      return this.reply(res, 404, { error: `no such path ${path}; try ${known.join(', ')}` });
    } catch (e) {
      const bad = e instanceof GridError && e.code === 'BAD_REQUEST';
      if (!res.headersSent) return this.reply(res, bad ? 400 : 500, { error: bad ? (e as GridError).describe() : (e as Error).message });
      res.destroy();
    }
  }

  private reply(res: http.ServerResponse, code: number, body: unknown): void {
    res.writeHead(code, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body, null, 2) + '\n');
  }

  async close(): Promise<void> {
    const s = this.server;
    if (!s) return;
    s.closeAllConnections?.();
    await new Promise<void>((resolve) => s.close(() => resolve()));
  }
}
