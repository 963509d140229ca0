/**
 * Where `grid results` may write a task's output. Output names come from the worker (and
 * so from the job program), so they are untrusted: a name may hold subdirectories
 * ("stats/a.json") but never escape DIR/<task index>/.
 */
import path from 'node:path';
import { GridError } from '../common';

/**
 * Why an output name is refused, or undefined when it is safe. Refused: empty names, NUL
 * bytes, absolute paths, backslashes (a Windows separator in disguise), and any `..`, `.`
 * or empty path segment.
 */
export function unsafeOutputName(name: string): string | undefined {
  if (name === '') return 'it is empty';
  if (name.includes('\0')) return 'it contains a NUL byte';
  if (name.includes('\\')) return 'it contains a backslash';
  if (path.posix.isAbsolute(name)) return 'it is an absolute path';
  for (const seg of name.split('/')) {
    if (seg === '..') return 'it contains a ".." segment';
    if (seg === '.' || seg === '') return 'it contains an empty or "." segment';
  }
  return undefined;
}

/**
 * The file an output of task `taskIndex` is written to: `<outDir>/<taskIndex>/<name>`.
 * Throws BAD_REQUEST naming the output when the name is unsafe.
 */
export function outputPath(outDir: string, taskIndex: number, name: string): string {
  const why = unsafeOutputName(name);
  if (why) throw new GridError('BAD_REQUEST', `task ${taskIndex} has an output named ${JSON.stringify(name)}, which is refused because ${why}`, 'outputs must be relative paths inside the task folder');
  const base = path.resolve(outDir, String(taskIndex));
  const p = path.resolve(base, name);
  // belt and braces: the checks above already guarantee this
  if (!p.startsWith(base + path.sep)) throw new GridError('BAD_REQUEST', `output ${JSON.stringify(name)} of task ${taskIndex} would leave ${base}`);
  return p;
}
