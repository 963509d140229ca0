/** A plain HTTP GET for tests of the admin API (/metrics, /dashboard). */
import http from 'node:http';

/** GET http://127.0.0.1:port/path; resolves with status, content-type and body. */
export function httpGet(port: number, p: string, timeoutMs = 5000, headers: Record<string, string> = {}): Promise<{ status: number; type: string; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: p, agent: false, timeout: timeoutMs, headers }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (b: Buffer) => parts.push(b));
      res.on('error', reject);
      res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type'] ?? ''), body: Buffer.concat(parts).toString('utf8') }));
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${p} on port ${port}: no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
  });
}
