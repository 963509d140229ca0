/**
 * Config files shared by every role: JSON with `//` comment lines (so `grid init` can write
 * a commented sample), merged under command-line flags, validated by the role.
 */
import fs from 'node:fs';
import { configError } from './errors';
import { DATA_FILE_MODE, secureDataDir } from './datadir';

/** Strips whole-line and trailing `//` comments that are outside strings, then parses JSON. */
export function parseJsonc(text: string, source: string): Record<string, unknown> {
  const lines = text.split('\n').map((line) => {
    let inStr = false;
    for (let i = 0; i < line.length; i++) {
      const c = line[i];
      if (c === '\\' && inStr) {
        i++;
        continue;
      }
      if (c === '"') inStr = !inStr;
      if (!inStr && c === '/' && line[i + 1] === '/') return line.slice(0, i);
    }
    return line;
  });
  let v: unknown;
  try {
    v = JSON.parse(lines.join('\n'));
  } catch (e) {
    throw configError(`config file ${source} is not valid JSON: ${(e as Error).message}`, 'fix the file, or write a fresh sample with `grid init --role ROLE`');
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw configError(`config file ${source} must hold one JSON object`);
  return v as Record<string, unknown>;
}

export function readConfigFile(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = fs.readFileSync(path, 'utf8');
  } catch (e) {
    throw configError(`cannot read config file ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  return parseJsonc(text, path);
}

export function stringSetting(cfg: Record<string, unknown>, key: string): string {
  const v = cfg[key];
  if (typeof v !== 'string' || v === '') throw configError(`setting ${key} must be a non-empty string, got ${JSON.stringify(v)}`);
  return v;
}

/** A ZeroMQ TCP endpoint like tcp://127.0.0.1:7700 (port 0 = pick a free one). */
export function endpointSetting(cfg: Record<string, unknown>, key: string): string {
  const v = stringSetting(cfg, key);
  if (!/^tcp:\/\/[^:/\s]+:\d{1,5}$/.test(v)) throw configError(`setting ${key} must be an endpoint like tcp://127.0.0.1:7700, got ${JSON.stringify(v)}`);
  return v;
}

/**
 * A node's id, kept in its data dir so it is stable across restarts. Every node calls this
 * first, so it is also where the data dir is made private (0700, files 0600: datadir.ts).
 */
export function persistentNodeId(dataDir: string, newId: () => string): string {
  const file = `${dataDir}/node-id`;
  try {
    secureDataDir(dataDir);
  } catch (e) {
    throw unusableDataDir(dataDir, e);
  }
  try {
    const id = fs.readFileSync(file, 'utf8').trim();
    if (/^[0-9a-f-]{36}$/.test(id)) return id;
  } catch {
    // first start
  }
  const id = newId();
  try {
    fs.writeFileSync(file, id + '\n', { mode: DATA_FILE_MODE });
  } catch (e) {
    throw unusableDataDir(dataDir, e);
  }
  return id;
}

function unusableDataDir(dataDir: string, e: unknown): Error {
  const code = (e as NodeJS.ErrnoException).code ?? (e as Error).message;
  return configError(`cannot use data dir ${dataDir}: ${code}`, 'give --data-dir a folder this user can create and write');
}
