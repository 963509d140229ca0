/**
 * The HTTP admin API every node serves (seed 001): GET /healthz (200 "ok" while the node
 * serves, 503 with a reason otherwise) and GET /status (JSON the operator and the CLI read).
 */
import { bindError } from './bind-errors';
import http from 'node:http';
import { AddressInfo } from 'node:net';

export interface AdminOptions {
  host: string;
  /** 0 for an ephemeral port */
  port: number;
  /** null when healthy, else why not */
  health: () => string | null;
  status: () => unknown;
}

export class AdminServer {
  private server?: http.Server;
  port = 0;

  constructor(private readonly o: AdminOptions) {}

  async start(): Promise<number> {
    const server = http.createServer((req, res) => {
      try {
        if (req.method !== 'GET') return this.reply(res, 405, { error: 'only GET is served' });
        const url = (req.url ?? '/').split('?')[0];
        if (url === '/healthz') {
          const why = this.o.health();
          res.writeHead(why ? 503 : 200, { 'content-type': 'text/plain' });
          return res.end(why ? `unhealthy: ${why}\n` : 'ok\n');
        }
        if (url === '/status') return this.reply(res, 200, this.o.status());
        return this.reply(res, 404, { error: `no such path ${url}; try /healthz or /status` });
      } catch (e) {
        return this.reply(res, 500, { error: (e as Error).message });
      }
    });
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', (e) => reject(bindError(e, 'the admin HTTP server', `${this.o.host}:${this.o.port}`, '--admin-port')));
      server.listen(this.o.port, this.o.host, () => resolve());
    });
    this.port = (server.address() as AddressInfo).port;
    return this.port;
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
