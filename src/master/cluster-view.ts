/**
 * The other nodes of the grid as the dashboard shows them: read from their admin GET
 * /status. Where they are comes from the master's settings: `dashboardNodes` (admin
 * HOST:PORT list, for a grid started by hand) and `dashboardNodesFile` (the dev.json of a
 * `grid dev`, re-read on use, so restarted nodes and their states are followed).
 *
 * A node that does not answer within `dashboardStatusTimeoutMs` is shown unreachable with
 * the reason; one round of asks is shared by every request that arrives while it runs.
 */
import fs from 'node:fs';
import http from 'node:http';
import { adminAuthHeader } from '../common';

/** Most bytes of one /status answer read (a worker's lists are bounded; this is a guard). */
export const MAX_STATUS_BYTES = 4 * 1024 * 1024;
/** Most nodes one round asks. */
export const MAX_DASHBOARD_NODES = 1024;
/** A round's answers are reused for this long, so many open dashboards cost one round, ms. */
export const NODES_CACHE_MS = 500;

export interface NodeRef {
  /** dev.json name (master, worker-0, ...) or HOST:PORT */
  name: string;
  /** from dev.json, else learned from the answer */
  role: string | null;
  /** HOST:PORT of its admin API */
  admin: string;
  /** dev.json says it is dead or restarting: then it is not asked */
  notAsked?: string;
}

export interface NodeAnswer extends NodeRef {
  reachable: boolean;
  error: string | null;
  status: Record<string, unknown> | null;
}

export interface ClusterViewOptions {
  nodes: string;
  nodesFile: string;
  timeoutMs: number;
  /** adminToken sent to the other nodes ('' = none): one grid, one token (docs/operations.md) */
  token?: string;
}

export class ClusterView {
  private round?: { atMs: number; answers: Promise<NodeAnswer[]> };

  constructor(private readonly o: ClusterViewOptions) {}

  get configured(): boolean {
    return this.o.nodes !== '' || this.o.nodesFile !== '';
  }

  /** Every configured node with its /status, or why not. */
  answers(nowMs: number): Promise<NodeAnswer[]> {
    if (this.round && nowMs - this.round.atMs < NODES_CACHE_MS) return this.round.answers;
    const answers = Promise.all(this.refs().map((r) => ask(r, this.o.timeoutMs, this.o.token ?? '')));
    this.round = { atMs: nowMs, answers };
    return answers;
  }

  /** The nodes to ask: the file's (when readable) then the list's, each admin address once. */
  refs(): NodeRef[] {
    const out: NodeRef[] = [];
    if (this.o.nodesFile) {
      try {
        const s = JSON.parse(fs.readFileSync(this.o.nodesFile, 'utf8')) as { nodes?: { name?: string; role?: string; adminPort?: number; state?: string }[] };
        for (const n of s.nodes ?? []) {
          if (typeof n.adminPort !== 'number') continue;
          const ref: NodeRef = { name: String(n.name ?? `127.0.0.1:${n.adminPort}`), role: n.role ?? null, admin: `127.0.0.1:${n.adminPort}` };
          if (n.state && n.state !== 'running') ref.notAsked = `grid dev says it is ${n.state}`;
          else if (n.adminPort === 0) ref.notAsked = 'not ready yet';
          out.push(ref);
        }
      } catch (e) {
        // a grid dev that is still starting has not written it yet: show what the list has
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') out.push({ name: this.o.nodesFile, role: null, admin: '', notAsked: `cannot read ${this.o.nodesFile}: ${(e as Error).message}` });
      }
    }
    for (const a of this.o.nodes.split(',').map((x) => x.trim()).filter(Boolean)) {
      if (!out.some((r) => r.admin === a)) out.push({ name: a, role: null, admin: a });
    }
    return out.slice(0, MAX_DASHBOARD_NODES);
  }
}

function ask(ref: NodeRef, timeoutMs: number, token: string): Promise<NodeAnswer> {
  if (ref.notAsked) return Promise.resolve({ ...ref, reachable: false, error: ref.notAsked, status: null });
  const i = ref.admin.lastIndexOf(':');
  return new Promise((resolve) => {
    let done = false;
    const finish = (a: Partial<NodeAnswer>): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      resolve({ ...ref, reachable: false, error: null, status: null, ...a });
    };
    const req = http.get({ host: ref.admin.slice(0, i), port: Number(ref.admin.slice(i + 1)), path: '/status', headers: adminAuthHeader(token) }, (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        size += c.length;
        if (size > MAX_STATUS_BYTES) {
          req.destroy();
          finish({ error: `its /status is over ${MAX_STATUS_BYTES} bytes` });
        } else chunks.push(c);
      });
      res.on('end', () => {
        if (res.statusCode !== 200) return finish({ error: `GET /status answered HTTP ${res.statusCode}` });
        try {
          const status = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>;
          finish({ reachable: true, status, role: ref.role ?? (typeof status.role === 'string' ? status.role : null) });
        } catch {
          finish({ error: 'its /status is not JSON' });
        }
      });
      res.on('error', (e) => finish({ error: e.message }));
    });
    req.on('error', (e) => finish({ error: `${(e as NodeJS.ErrnoException).code ?? e.message} from ${ref.admin}` }));
    const timer = setTimeout(() => {
      req.destroy();
      finish({ error: `no answer from ${ref.admin} within ${timeoutMs} ms` });
    }, timeoutMs);
  });
}
