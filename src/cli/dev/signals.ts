/**
 * Signals of `grid dev`: SIGINT/SIGTERM stop every node once (workers first, see
 * DevSupervisor.stop) and then exit: 0 when the grid had started, 1 when start-up was
 * interrupted.
 */
import { DevConfig } from '../config';
import { DevSupervisor } from './supervisor';

export interface ShutdownControl {
  /** stops the grid once; later calls get the same promise */
  shutdown(why: string): Promise<void>;
  /** true once a shutdown began */
  readonly stopping: boolean;
  /** call when start-up succeeded: a later signal exits 0 */
  started(): void;
}

export function installShutdown(sup: DevSupervisor, cfg: DevConfig, say: (line: string) => void, exit: (code: number) => void = (c) => process.exit(c)): ShutdownControl {
  let stopped: Promise<void> | undefined;
  let startDone = false;
  const shutdown = (why: string): Promise<void> =>
    (stopped ??= (async () => {
      say(`grid dev: ${why}: stopping every node (SIGTERM, SIGKILL after ${cfg.stopGraceMs} ms)`);
      const r = await sup.stop();
      if (r.killed.length) say(`grid dev: had to SIGKILL ${r.killed.join(', ')}`);
      if (r.unmounted.length) say(`grid dev: unmounted leftover FUSE mounts: ${r.unmounted.join(', ')}`);
      if (r.failedUnmounts.length) say(`grid dev: COULD NOT UNMOUNT ${r.failedUnmounts.join(', ')}; run fusermount -uz on them`);
      say('grid dev: stopped');
    })());
  const onSignal = (sig: string): void => {
    void shutdown(`got ${sig}`).then(() => exit(startDone ? 0 : 1));
  };
  process.on('SIGINT', () => onSignal('SIGINT'));
  process.on('SIGTERM', () => onSignal('SIGTERM'));
  return {
    shutdown,
    get stopping() {
      return stopped !== undefined;
    },
    started: () => {
      startDone = true;
    },
  };
}
