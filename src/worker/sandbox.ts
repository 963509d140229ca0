/**
 * The task sandbox (docs/operations.md, "Containment"). When the worker runs as root, each
 * task runs
 *  - as its own unprivileged uid/gid (taskUidBase + a free index; no account needed), with no
 *    supplementary groups, no capabilities and no_new_privs (a setuid binary gains nothing);
 *  - in its own PID namespace (util-linux `unshare --pid --fork --kill-child`): the task's
 *    program is PID 1 there, so when it ends the kernel kills every descendant, setsid or not;
 *  - in its own mount namespace, where the task sees
 *      /tmp            its private temp folder (<taskDir>/tmp; also over /var/tmp, /dev/shm,
 *                      /run/lock), counted toward the output limit, removed after the task
 *      /tmp/work       its working folder (<taskDir>/work): cwd and HOME, outputs
 *      /tmp/.grid/program  a copy of the program, read-only
 *      /tmp/.grid/inputs   its inputs (its own FUSE view, or its staged inputs), read-only
 *    and nothing of the worker's data dir (0700, another uid).
 *
 * The decisions and the command line are pure (tested alone); prepareJail() does the file
 * system work as root before the spawn. The mounts happen inside the new namespace, in a
 * short sh script run as root before setpriv drops to the task's uid.
 */
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';

export const UNSHARE = '/usr/bin/unshare';
export const SETPRIV = '/usr/bin/setpriv';
export const SH = '/bin/sh';
/** What the task sees (inside its mount namespace). */
export const VIEW_TMP = '/tmp';
export const VIEW_WORK = '/tmp/work';
export const VIEW_PROGRAM = '/tmp/.grid/program';
export const VIEW_INPUTS = '/tmp/.grid/inputs';
/** The exit code and log prefix of a sandbox set-up failure (before the program ran). */
export const SETUP_FAILED_EXIT = 125;
export const SETUP_FAILED_MARK = 'grid-sandbox:';
/** Other world-writable places the task's temp folder is mounted over (when they exist). */
export const SHARED_TMP_DIRS = ['/var/tmp', '/dev/shm', '/run/lock'];

/** A task's identity in the sandbox. */
export interface JailIds {
  uid: number;
  gid: number;
}

/** What one jailed task needs: its ids and the host folder of its inputs. */
export interface JailSpec extends JailIds {
  /** host folder holding the inputs (bound read-only at VIEW_INPUTS); '' = no inputs */
  inputsDir: string;
}

export interface SandboxFacts {
  /** the sandbox setting */
  enabled: boolean;
  /** the worker's effective uid */
  euid: number;
  /** tools that are not installed (unshare, setpriv) */
  missing: string[];
}

export type SandboxDecision = { jail: true } | { jail: false; warning: string | null };

/** Whether tasks are jailed on this worker, and the start-up warning when they are not. */
export function sandboxDecision(f: SandboxFacts): SandboxDecision {
  const weak =
    'tasks run as the worker user: they can read the worker data dir and signal its processes, a setsid child can outlive its task, and /tmp is shared (see docs/operations.md, "Containment")';
  if (!f.enabled) return { jail: false, warning: `task sandbox is off (setting sandbox = false): ${weak}` };
  if (f.euid !== 0) return { jail: false, warning: `worker is not root (uid ${f.euid}), so the task sandbox is off: ${weak}; run the worker as root to contain tasks` };
  if (f.missing.length > 0) return { jail: false, warning: `task sandbox needs ${f.missing.join(' and ')} (util-linux); it is off: ${weak}; install util-linux` };
  return { jail: true };
}

/** Which of the sandbox's tools are missing on this machine. */
export function missingTools(): string[] {
  return [UNSHARE, SETPRIV, '/usr/bin/mount'].filter((p) => !fs.existsSync(p));
}

/**
 * Hands out task uids: the lowest free index from taskUidBase, so two tasks that run at once
 * never share a uid (one task cannot signal or read another). Bounded by the running tasks.
 */
export class UidPool {
  private readonly used = new Set<number>();

  constructor(
    readonly base: number,
    readonly max: number,
  ) {}

  acquire(): JailIds {
    for (let i = 0; i < this.max; i++) {
      if (!this.used.has(i)) {
        this.used.add(i);
        return { uid: this.base + i, gid: this.base + i };
      }
    }
    throw new Error(`all ${this.max} task uids from ${this.base} are in use`);
  }

  release(ids: JailIds): void {
    this.used.delete(ids.uid - this.base);
  }

  get inUse(): number {
    return this.used.size;
  }
}

/**
 * The host paths of a task folder: work (cwd), tmp (private temp), program (a copy of the
 * program for a jailed task: the cached one stays 0600 in the 0700 data dir).
 */
export function taskPaths(taskDir: string): { work: string; tmp: string; program: string } {
  return { work: path.join(taskDir, 'work'), tmp: path.join(taskDir, 'tmp'), program: path.join(taskDir, 'program') };
}

/** Where a host path (under dir) appears in the task's view (under view). */
export function inView(hostPath: string, dir: string, view: string): string {
  const rel = path.relative(dir, hostPath);
  if (rel === '' || rel.startsWith('..') || path.isAbsolute(rel)) throw new Error(`${hostPath} is not inside ${dir}`);
  return path.posix.join(view, ...rel.split(path.sep));
}

/*
 * Runs as root inside the new mount namespace, then drops privileges: $1 = host tmp, $2 =
 * host work, $3 = host program dir, $4 = host inputs dir or '', $5.. = the command. Order
 * matters: the binds into the tmp folder come first, while host paths (which may be under
 * /tmp) still resolve; the recursive bind over /tmp comes last.
 */
const SETUP_SCRIPT = [
  `fail() { echo "${SETUP_FAILED_MARK} $*" >&2; exit ${SETUP_FAILED_EXIT}; }`,
  't=$1; w=$2; p=$3; i=$4; shift 4',
  'mount --bind "$w" "$t/work" || fail "cannot bind the working folder"',
  // one mount(8) each: util-linux does the read-only remount of a bind itself
  'mount --bind -o ro "$p" "$t/.grid/program" || fail "cannot bind the program folder"',
  'if [ -n "$i" ]; then mount --bind -o ro "$i" "$t/.grid/inputs" || fail "cannot bind the inputs"; fi',
  `for d in ${SHARED_TMP_DIRS.join(' ')}; do if [ -d "$d" ]; then mount --bind "$t" "$d" || fail "cannot hide $d"; fi; done`,
  `mount --rbind "$t" ${VIEW_TMP} || fail "cannot mount the private /tmp"`,
  `cd ${VIEW_WORK} || fail "cannot enter the working folder"`,
  'exec "$@"',
].join('\n');

/**
 * The command that runs `inner` (command and arguments, with paths of the task's view) in
 * the sandbox. The program is PID 1 of its namespace (exec), so its end kills everything it
 * started; the namespace dies with the worker too (pdeathsig + --kill-child).
 */
export function jailCommand(j: JailSpec, taskDir: string, inner: string[]): { cmd: string; argv: string[] } {
  const p = taskPaths(taskDir);
  return {
    // setpriv --pdeathsig: unshare (the worker's child) gets SIGKILL if the worker dies, and
    // its --kill-child then kills the namespace: no task outlives a crashed worker
    cmd: SETPRIV,
    argv: [
      '--pdeathsig',
      'KILL',
      '--',
      UNSHARE,
      '--pid',
      '--fork',
      '--kill-child',
      '--mount-proc',
      '--mount',
      '--propagation',
      'private',
      '--',
      SH,
      '-c',
      SETUP_SCRIPT,
      'grid-sandbox',
      p.tmp,
      p.work,
      p.program,
      j.inputsDir,
      SETPRIV,
      `--reuid=${j.uid}`,
      `--regid=${j.gid}`,
      '--clear-groups',
      '--no-new-privs',
      '--inh-caps=-all',
      '--bounding-set=-all',
      // after the uid change (which clears unshare's --kill-child): the program dies with unshare
      '--pdeathsig',
      'KILL',
      '--',
      ...inner,
    ],
  };
}

/**
 * Makes the task folder for a jailed task: work/ and tmp/ owned by the task's uid (0700), the
 * mount points inside tmp/ (root, 0755), a copy of the program (program/, 0755 and 0444) and
 * the staged inputs readable by the task. The task folder itself stays 0700 root: these are
 * reachable only through the task's read-only binds.
 */
export async function prepareJail(j: JailSpec, taskDir: string, programPath: string): Promise<void> {
  const p = taskPaths(taskDir);
  for (const d of [p.work, p.tmp]) {
    await fsp.mkdir(d, { recursive: true });
    await fsp.chown(d, j.uid, j.gid);
    await fsp.chmod(d, 0o700);
  }
  for (const d of ['work', '.grid', '.grid/program', '.grid/inputs']) {
    await fsp.mkdir(path.join(p.tmp, d), { recursive: true, mode: 0o755 });
    await fsp.chmod(path.join(p.tmp, d), 0o755);
  }
  await fsp.mkdir(p.program, { recursive: true });
  await fsp.chmod(p.program, 0o755);
  const copy = path.join(p.program, path.basename(programPath));
  await fsp.copyFile(programPath, copy, fs.constants.COPYFILE_FICLONE);
  await fsp.chmod(copy, 0o444);
  if (j.inputsDir !== '' && j.inputsDir.startsWith(taskDir + path.sep)) await readableTree(j.inputsDir);
}

/** Staged inputs: folders 0755, files 0644 (the task reads them through a read-only bind). */
async function readableTree(dir: string): Promise<void> {
  await fsp.chmod(dir, 0o755);
  for (const e of await fsp.readdir(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) await readableTree(p);
    else if (e.isFile()) await fsp.chmod(p, 0o644);
  }
}

/** A set-up failure of the sandbox, from the task's exit code and log; null when not one. */
export function setupFailure(exitCode: number | null, logTail: string): string | null {
  if (exitCode !== SETUP_FAILED_EXIT) return null;
  const line = logTail.split('\n').find((l) => l.startsWith(SETUP_FAILED_MARK));
  return line ? line.slice(SETUP_FAILED_MARK.length).trim() : null;
}
