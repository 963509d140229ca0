/**
 * The HTTP admin API every node serves (seed 001): GET /healthz (200 "ok" while the node
 * serves, 503 with a reason otherwise), GET /status (JSON the operator and the CLI read) and
 * GET /metrics (Prometheus text format, docs/operations.md "Metrics"). A role may add its
 * own routes (the masters serve the dashboard this way).
 */
import { bindError } from './bind-errors';
import http from 'node:http';
import { AddressInfo } from 'node:net';
import { GridError } from './errors';

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
  host: string;
  /** 0 for an ephemeral port */
  port: number;
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

  constructor(private readonly o: AdminOptions) {}

  async start(): Promise<number> {
    const server = http.createServer((req, res) => void this.serve(req, res));
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', (e) => reject(bindError(e, 'the admin HTTP server', `${this.o.host}:${this.o.port}`, '--admin-port')));
      server.listen(this.o.port, this.o.host, () => resolve());
    });
    this.port = (server.address() as AddressInfo).port;
    return this.port;
  }

  private async serve(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    try {
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
