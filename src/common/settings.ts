/**
 * Declarative settings tables: one table per role names every setting once, with its type,
 * default, allowed range, unit and meaning. From it come the TypeScript type of the config
 * (SettingsOf), validation with a CONFIG_INVALID error naming the setting, the defaults,
 * the commented sample config `grid init` writes, and the markdown table in docs/ (kept in
 * sync by `npm run gen:docs`, checked by test/cli/settings.test.ts).
 *
 * Before this, each setting was written four times (interface, defaults, validation,
 * sample) and the validated record was cast to the interface; now a setting is one row.
 */
import path from 'node:path';
import { configError } from './errors';
import { readConfigFile } from './config';

interface SpecBase {
  /** one line: what it does (sample comment and docs table) */
  doc: string;
  /** overriding environment variable (client and dev settings) */
  env?: string;
  /** command-line flag that sets it, for the docs (e.g. `--data-dir`) */
  flag?: string;
}

export type IntUnit = 'ms' | 'bytes' | 'MiB' | 's';

export interface IntSpec extends SpecBase {
  type: 'int';
  default: number;
  min: number;
  max: number;
  unit?: IntUnit;
}
export interface StringSpec extends SpecBase {
  type: 'string';
  default: string;
  /** '' is a valid value (default: not) */
  allowEmpty?: boolean;
}
/** A folder or file; resolved to an absolute path ('' kept as '' when allowEmpty). */
export interface PathSpec extends SpecBase {
  type: 'path';
  default: string;
  allowEmpty?: boolean;
}
/** A ZeroMQ TCP endpoint like tcp://127.0.0.1:7700 (port 0 = pick a free one). */
export interface EndpointSpec extends SpecBase {
  type: 'endpoint';
  default: string;
}
export interface BoolSpec extends SpecBase {
  type: 'bool';
  default: boolean;
}

export type SettingSpec = IntSpec | StringSpec | PathSpec | EndpointSpec | BoolSpec;
export type SettingsSpec = Record<string, SettingSpec>;

type ValueOf<S extends SettingSpec> = S extends IntSpec ? number : S extends BoolSpec ? boolean : string;

/** The config type a table describes: one property per row. */
export type SettingsOf<T extends SettingsSpec> = { -readonly [K in keyof T]: ValueOf<T[K]> };

const ENDPOINT_RE = /^tcp:\/\/[^:/\s]+:\d{1,5}$/;

/** How a value is named in an error: `setting NAME` in files and flags, the variable for env. */
type Namer = (key: string) => string;
const bySetting: Namer = (k) => `setting ${k}`;

function checkOne(key: string, s: SettingSpec, raw: unknown, name: Namer): unknown {
  switch (s.type) {
    case 'int': {
      const v = typeof raw === 'string' && raw.trim() !== '' ? Number(raw) : raw;
      if (typeof v !== 'number' || !Number.isInteger(v) || v < s.min || v > s.max) {
        throw configError(`${name(key)} must be an integer from ${s.min} to ${s.max}, got ${JSON.stringify(raw)}`, hint(key, s, name));
      }
      return v;
    }
    case 'bool':
      if (raw === 'true' || raw === 'false') return raw === 'true';
      if (typeof raw !== 'boolean') throw configError(`${name(key)} must be true or false, got ${JSON.stringify(raw)}`, hint(key, s, name));
      return raw;
    case 'string':
    case 'path':
      if (typeof raw !== 'string' || (raw === '' && !s.allowEmpty)) {
        throw configError(`${name(key)} must be a ${s.allowEmpty ? '' : 'non-empty '}string, got ${JSON.stringify(raw)}`, hint(key, s, name));
      }
      return s.type === 'path' && raw !== '' ? path.resolve(raw) : raw;
    case 'endpoint':
      if (typeof raw !== 'string' || !ENDPOINT_RE.test(raw)) {
        throw configError(`${name(key)} must be an endpoint like tcp://127.0.0.1:7700, got ${JSON.stringify(raw)}`, hint(key, s, name));
      }
      return raw;
  }
}

function hint(key: string, s: SettingSpec, name: Namer): string | undefined {
  return name !== bySetting && s.env ? `unset ${s.env} to use the default` : undefined;
}

export class SettingsTable<T extends SettingsSpec> {
  /**
   * @param role  the role the table belongs to (sample header, docs marker)
   * @param spec  one row per setting, in the order of the sample and the docs
   * @param finish  cross-setting checks and normalisation after every row is valid
   *   (e.g. "tickMs below heartbeatIntervalMs", "slots 0 = number of CPUs")
   */
  constructor(
    readonly role: string,
    readonly spec: T,
    private readonly finish: (c: SettingsOf<T>) => void = () => undefined,
  ) {}

  get keys(): (keyof T & string)[] {
    return Object.keys(this.spec);
  }

  /** The defaults, as written in the table (paths not yet resolved). */
  get defaults(): SettingsOf<T> {
    const d: Record<string, unknown> = {};
    for (const k of this.keys) d[k] = this.spec[k]!.default;
    return d as SettingsOf<T>;
  }

  /**
   * Checks every setting of a complete record (numbers and booleans given as strings, as
   * flags are, are converted), then the cross checks. Throws CONFIG_INVALID naming the first
   * bad setting. Keys the table does not know are refused.
   */
  validate(raw: Record<string, unknown>, name: Namer = bySetting): SettingsOf<T> {
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(raw)) if (!(k in this.spec)) throw configError(`unknown setting "${k}"`, `known settings: ${this.keys.join(', ')}`);
    for (const k of this.keys) out[k] = checkOne(k, this.spec[k]!, k in raw ? raw[k] : this.spec[k]!.default, name);
    const c = out as SettingsOf<T>;
    this.finish(c);
    return c;
  }

  /**
   * Defaults, then the config file, then the flags that were given (undefined = not given),
   * validated. A key of the file the table does not know is an error naming the file, so a
   * typo is not a silent default.
   */
  load(flags: Partial<Record<keyof T, unknown>>, configFile?: string): SettingsOf<T> {
    const file = configFile ? readConfigFile(configFile) : {};
    const merged: Record<string, unknown> = { ...this.defaults };
    for (const [k, v] of Object.entries(file)) {
      if (!(k in this.spec)) throw configError(`unknown setting "${k}" in ${configFile}`, `known settings: ${this.keys.join(', ')}`);
      merged[k] = v;
    }
    for (const [k, v] of Object.entries(flags)) if (v !== undefined) merged[k] = v;
    return this.validate(merged);
  }

  /** Defaults overridden by the environment variables of the rows that have one. */
  loadEnv(env: NodeJS.ProcessEnv = process.env): SettingsOf<T> {
    const merged: Record<string, unknown> = { ...this.defaults };
    const varOf: Record<string, string> = {};
    for (const k of this.keys) {
      const e = this.spec[k]!.env;
      if (!e) continue;
      varOf[k] = e;
      const v = env[e];
      if (v !== undefined && v !== '') merged[k] = v;
    }
    return this.validate(merged, (k) => varOf[k] ?? `setting ${k}`);
  }

  /** The commented sample config (JSON with // comment lines) `grid init` writes. */
  sample(): string {
    const lines = [
      `// grid ${this.role} configuration (JSON; lines starting with // are comments).`,
      `// Start with: grid ${this.role} --config ${this.role}.json   (flags override these values)`,
      '{',
    ];
    const keys = this.keys;
    keys.forEach((k, i) => {
      const s = this.spec[k]!;
      lines.push(`  // ${s.doc}${rangeNote(s)}`);
      lines.push(`  ${JSON.stringify(k)}: ${JSON.stringify(s.default)}${i < keys.length - 1 ? ',' : ''}`);
    });
    lines.push('}', '');
    return lines.join('\n');
  }

  /** The markdown table of docs/ (between `<!-- settings:ROLE -->` markers). */
  docsTable(): string {
    const env = this.keys.some((k) => this.spec[k]!.env);
    const head = env ? ['| setting | variable | default | range | meaning |', '| --- | --- | --- | --- | --- |'] : ['| setting | default | range | meaning |', '| --- | --- | --- | --- |'];
    const rows = this.keys.map((k) => {
      const s = this.spec[k]!;
      const name = `\`${k}\`${s.flag ? ` (\`${s.flag}\`)` : ''}`;
      const cells = [name, ...(env ? [s.env ? `\`${s.env}\`` : ''] : []), showDefault(s), rangeCell(s), s.doc.replace(/\|/g, '\\|')];
      return `| ${cells.join(' | ')} |`;
    });
    return [...head, ...rows].join('\n');
  }
}

function human(n: number, unit: IntUnit | undefined): string {
  if (unit === 'bytes') {
    for (const [u, f] of [['GiB', 2 ** 30], ['MiB', 2 ** 20], ['KiB', 1024]] as const) if (n >= f && n % f === 0) return `${n / f} ${u}`;
    return `${n} bytes`;
  }
  if (unit === 'ms') {
    for (const [u, f] of [['h', 3_600_000], ['min', 60_000], ['s', 1000]] as const) if (n >= f && n % f === 0) return `${n / f} ${u}`;
    return `${n} ms`;
  }
  return unit ? `${n} ${unit}` : String(n);
}

function showDefault(s: SettingSpec): string {
  if (s.type === 'int') {
    const h = human(s.default, s.unit);
    return h === String(s.default) || h === `${s.default} ${s.unit}` ? String(s.default) : `${s.default} (${h})`;
  }
  return `\`${JSON.stringify(s.default)}\``;
}

function rangeCell(s: SettingSpec): string {
  switch (s.type) {
    case 'int':
      return `${s.min}..${s.max === Number.MAX_SAFE_INTEGER ? 'any' : s.max}${s.unit ? ` ${s.unit}` : ''}`;
    case 'bool':
      return 'true, false';
    case 'endpoint':
      return 'tcp://HOST:PORT';
    case 'path':
      return 'a path';
    case 'string':
      return s.allowEmpty ? 'text, may be empty' : 'text';
  }
}

function rangeNote(s: SettingSpec): string {
  if (s.type !== 'int') return '';
  const h = human(s.default, s.unit);
  const unit = s.unit ? `, ${s.unit}` : '';
  const plain = h === String(s.default) || h === `${s.default} ${s.unit}`;
  return ` (${s.min}..${s.max === Number.MAX_SAFE_INTEGER ? 'any' : s.max}${unit}${plain ? '' : `; default ${h}`})`;
}

/** Replaces the table between `<!-- settings:ROLE -->` and `<!-- /settings:ROLE -->` in markdown text. */
export function replaceDocsTable(markdown: string, role: string, table: string): string | undefined {
  const open = `<!-- settings:${role} -->`;
  const close = `<!-- /settings:${role} -->`;
  const a = markdown.indexOf(open);
  const b = markdown.indexOf(close);
  if (a < 0 || b < a) return undefined;
  return `${markdown.slice(0, a + open.length)}\n${table}\n${markdown.slice(b)}`;
}
