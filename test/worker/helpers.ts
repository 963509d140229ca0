// Test helpers of the worker tests: child processes that read the FUSE mount (never this
// process: it serves the mount) and a real storage node process.
import { ChildProcess, execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

export const DIST = path.resolve(__dirname, '../..');
export const BIN = path.resolve(DIST, '../bin/grid.js');

/** Runs a command in a child process; resolves with its output and code, never rejects. */
export function sh(cmd: string, args: string[], timeoutMs = 60_000): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024, encoding: 'utf8' }, (e, stdout, stderr) => {
      const code = e ? (typeof (e as { code?: unknown }).code === 'number' ? ((e as { code: number }).code) : -1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

export function fuseMounts(): string[] {
  return fs
    .readFileSync('/proc/mounts', 'utf8')
    .split('\n')
    .filter((l) => l.includes('fuse'))
    .map((l) => l.split(' ')[1]!);
}

export interface Proc {
  proc: ChildProcess;
  ready: Record<string, unknown>;
  stderr: () => string;
  stop(): Promise<void>;
}

/** Starts a role process (e.g. ['storage', ...]) and waits for its GRID_READY line. */
export function startGrid(args: string[], readyTimeoutMs = 20_000): Promise<Proc> {
  const proc = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  proc.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const stop = async () => {
    if (proc.exitCode !== null || proc.signalCode !== null) return;
    const gone = new Promise<void>((r) => proc.once('exit', () => r()));
    proc.kill('SIGTERM');
    const t = setTimeout(() => proc.kill('SIGKILL'), 8000);
    await gone;
    clearTimeout(t);
  };
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`${args[0]} not ready in ${readyTimeoutMs} ms: ${err}`));
    }, readyTimeoutMs);
    proc.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /GRID_READY (\{.*\})\n/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve({ proc, ready: JSON.parse(m[1]!), stderr: () => err, stop });
      }
    });
    proc.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${args[0]} exited ${code} before ready: ${err}`));
    });
  });
}
