/** Port probing for `grid dev`: ports a group of masters can be given before they start. */
import net from 'node:net';

/**
 * `count` distinct TCP ports on 127.0.0.1 that were free a moment ago: each is listened on
 * with port 0 (the kernel picks), all held open together so they differ, then released.
 * Used for the masters of a group under --port-base 0, whose ports must be known before
 * they start. Another process could take one in between; the master then fails to bind and
 * dev says so (start again).
 */
export async function probeFreePorts(count: number): Promise<number[]> {
  const servers: net.Server[] = [];
  try {
    const ports: number[] = [];
    for (let i = 0; i < count; i++) {
      const srv = net.createServer();
      servers.push(srv);
      await new Promise<void>((resolve, reject) => {
        srv.once('error', reject);
        srv.listen(0, '127.0.0.1', () => resolve());
      });
      ports.push((srv.address() as net.AddressInfo).port);
    }
    return ports;
  } finally {
    await Promise.all(servers.map((srv) => new Promise<void>((r) => srv.close(() => r()))));
  }
}

