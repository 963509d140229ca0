/**
 * A port clash, said so: binding a socket or the admin server to a port another process
 * holds used to print only "Address already in use" (ZeroMQ) or a raw EADDRINUSE, without
 * the port or what to do.
 */
import { GridError } from './errors';

/**
 * `e` as a CONFIG_INVALID naming the port and the setting when it is "address in use" (or
 * "cannot assign address"); other errors pass through unchanged.
 */
export function bindError(e: unknown, what: string, where: string, setting: string): unknown {
  const err = e as NodeJS.ErrnoException & { errno?: number };
  const msg = String(err?.message ?? e);
  if (err?.code === 'EADDRINUSE' || /address already in use/i.test(msg)) {
    return new GridError('CONFIG_INVALID', `cannot listen for ${what} on ${where}: the port is already in use (another grid node, or another program)`, `stop that process, or choose another port with ${setting} (0 = any free port)`, {
      cause: e,
    });
  }
  if (err?.code === 'EADDRNOTAVAIL' || /can't assign requested address|cannot assign requested address/i.test(msg)) {
    return new GridError('CONFIG_INVALID', `cannot listen for ${what} on ${where}: that address is not one of this machine's`, `use 127.0.0.1, 0.0.0.0 or an address of this host with ${setting}`, { cause: e });
  }
  return e;
}
