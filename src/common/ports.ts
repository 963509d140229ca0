/**
 * Ports a group of nodes can be given before they start (grid dev's masters, the test
 * harness): each one must be named to every peer, so it cannot be bound with port 0.
 *
 * The ports are taken from below the kernel's ephemeral range
 * (/proc/sys/net/ipv4/ip_local_port_range), never from inside it: a port inside that range
 * that was free a moment ago can be handed by the kernel to any outgoing connection (a peer
 * connecting early, a client) or port-0 listener before its owner binds it, and the owner
 * then fails with "port already in use". Nothing takes a port below the range unless it asks
 * for that number. Each port is checked by listening on it; all are held together, so they
 * differ, then released. Where the range leaves too little room below it the kernel picks
 * (port 0), as before.
 */
import fs from 'node:fs';
import net from 'node:net';

/** Lowest port ever handed out below the ephemeral range. */
export const PORT_PROBE_MIN = 10_000;
/** Random ports tried per port wanted before falling back to a kernel-picked one. */
export const PORT_PROBE_TRIES = 50;

/** [low, high] of the kernel's ephemeral range; Linux's default when it cannot be read. */
export function ephemeralRange(): [number, number] {
  try {
    const [lo, hi] = fs.readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    if (Number.isInteger(lo) && Number.isInteger(hi) && lo! > 0 && hi! >= lo!) return [lo!, hi!];
  } catch {
    // not Linux, or /proc hidden: assume the default range
  }
  return [32768, 60999];
}

function listen(srv: net.Server, port: number): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const onError = (e: NodeJS.ErrnoException): void => {
      if (e.code === 'EADDRINUSE' || e.code === 'EACCES') resolve(false);
      else reject(e);
    };
    srv.once('error', onError);
    srv.listen(port, '127.0.0.1', () => {
      srv.off('error', onError);
      resolve(true);
    });
  });
}

/** Ports handed out by this process, not handed out again (their owners may not be up yet). */
const handedOut = new Set<number>();

/** `count` distinct TCP ports on 127.0.0.1 that were free a moment ago (see above). */
export async function probeFreePorts(count: number): Promise<number[]> {
  const [lo] = ephemeralRange();
  const room = lo - PORT_PROBE_MIN;
  const servers: net.Server[] = [];
  try {
    const ports: number[] = [];
    for (let i = 0; i < count; i++) {
      let port = 0;
      for (let t = 0; room > 1000 && t < PORT_PROBE_TRIES && port === 0; t++) {
        const p = PORT_PROBE_MIN + Math.floor(Math.random() * room);
        if (handedOut.has(p)) continue;
        const srv = net.createServer();
        if (await listen(srv, p)) {
          servers.push(srv);
          port = p;
        }
      }
      if (port === 0) {
        const srv = net.createServer();
        servers.push(srv);
        await listen(srv, 0);
        port = (srv.address() as net.AddressInfo).port;
      }
      handedOut.add(port);
      ports.push(port);
    }
    return ports;
  } finally {
    await Promise.all(servers.map((srv) => new Promise<void>((r) => srv.close(() => r()))));
  }
}
