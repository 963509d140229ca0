/**
 * The settings tables of docs/ generated from each role's SettingsTable: `npm run gen:docs`
 * rewrites the text between `<!-- settings:NAME -->` and `<!-- /settings:NAME -->` in each
 * file; test/cli/settings.test.ts fails when a doc is out of date.
 */
import fs from 'node:fs';
import path from 'node:path';
import { replaceDocsTable } from '../common';
import { BALANCER_SETTINGS } from '../balancer/config';
import { MASTER_SETTINGS } from '../master/config';
import { STORAGE_SETTINGS } from '../storage/config';
import { WORKER_SETTINGS } from '../worker/config';
import { CLIENT_SETTINGS, DEV_SETTINGS } from './config';

export const DOCS_DIR = path.resolve(__dirname, '..', '..', '..', 'docs');

/** Which table goes into which file. */
export const DOCS_TABLES: { file: string; name: string; table: () => string }[] = [
  { file: 'master.md', name: 'master', table: () => MASTER_SETTINGS.docsTable() },
  { file: 'balancer.md', name: 'balancer', table: () => BALANCER_SETTINGS.docsTable() },
  { file: 'worker.md', name: 'worker', table: () => WORKER_SETTINGS.docsTable() },
  { file: 'storage.md', name: 'storage', table: () => STORAGE_SETTINGS.docsTable() },
  { file: 'operations.md', name: 'dev', table: () => DEV_SETTINGS.docsTable() },
  { file: 'operations.md', name: 'client', table: () => CLIENT_SETTINGS.docsTable() },
];

/** Each doc file's text with its generated tables in place; throws when a marker is missing. */
export function generatedDocs(dir = DOCS_DIR): Map<string, { before: string; after: string }> {
  const out = new Map<string, { before: string; after: string }>();
  for (const t of DOCS_TABLES) {
    const file = path.join(dir, t.file);
    const cur = out.get(file) ?? { before: fs.readFileSync(file, 'utf8'), after: fs.readFileSync(file, 'utf8') };
    const next = replaceDocsTable(cur.after, t.name, t.table());
    if (next === undefined) throw new Error(`${file} has no <!-- settings:${t.name} --> ... <!-- /settings:${t.name} --> markers`);
    cur.after = next;
    out.set(file, cur);
  }
  return out;
}

if (require.main === module) {
  for (const [file, { before, after }] of generatedDocs()) {
    if (before !== after) {
      fs.writeFileSync(file, after);
      process.stdout.write(`updated ${path.relative(process.cwd(), file)}\n`);
    }
  }
}
