/**
 * fuse-native, loaded only when a FUSE mount is about to be made (`grid worker` without
 * --staged). Its native binding needs the system's libfuse.so.2; loading it eagerly made
 * every grid command, even `grid --help` or a `submit` from a client host, die with a dlopen
 * stack trace on a machine without libfuse2. Now only the worker needs it, and without it
 * gets one line naming the packages to install.
 */

/** The system packages that provide FUSE 2 (libfuse.so.2 and fusermount) on Debian/Ubuntu. */
export const FUSE_PACKAGES = 'fuse libfuse2';
export const FUSE_INSTALL_COMMAND = `apt-get install ${FUSE_PACKAGES}`;

export interface FuseInstance {
  mount(cb: (err: Error | null) => void): void;
  unmount(cb: (err: Error | null) => void): void;
}

/** The parts of fuse-native grid uses (it ships no types). */
export interface FuseStatic {
  new (mnt: string, ops: Record<string, unknown>, opts: Record<string, unknown>): FuseInstance;
  unmount(mnt: string, cb: (err: Error | null) => void): void;
  ENOENT: number;
  EROFS: number;
  EIO: number;
  ENOTDIR: number;
  EISDIR: number;
  EINVAL: number;
}

let loaded: FuseStatic | undefined;

/** Why fuse-native cannot be loaded here, as one line with what to install; null when it loads. */
export function fuseLoadProblem(): string | null {
  try {
    fuseNative();
    return null;
  } catch (e) {
    return (e as Error).message;
  }
}

/**
 * The fuse-native module, loaded on first use. A failed load (libfuse.so.2 missing: the
 * dlopen error) becomes an Error whose message is one line naming the packages.
 */
export function fuseNative(): FuseStatic {
  if (loaded) return loaded;
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    loaded = require('fuse-native') as FuseStatic;
    return loaded;
  } catch (e) {
    const why = String((e as Error).message ?? e).split('\n')[0];
    throw new Error(`FUSE is not installed: the worker needs libfuse.so.2 (${why}); install it with \`${FUSE_INSTALL_COMMAND}\`, or run the worker with --staged`, { cause: e });
  }
}
