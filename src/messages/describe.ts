/**
 * Human-readable descriptions of the registry and the struct layouts, derived from the schema:
 * `grid codec types [--json|--markdown]` prints them, and docs/protocol.md embeds the markdown
 * between GENERATED markers (a test fails while the pasted copy is stale). Update the doc with
 *   npx tsc -p . && node dist/src/messages/describe.js --update docs/protocol.md
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { enumName, NAMED_ENUMS } from './cheader';
import { LAYOUTS, Layout } from './layout';
import { MAX_FRAMES, MAX_MESSAGE_BYTES, MAX_NAME_BYTES, MAX_TEXT_BYTES, PROTOCOL_VERSION, TailDef } from './schema';

export const GENERATED_BEGIN = '<!-- BEGIN GENERATED: node dist/src/messages/describe.js --update docs/protocol.md -->';
export const GENERATED_END = '<!-- END GENERATED -->';

export interface TypeInfo {
  id: number;
  name: string;
  family: string;
  size: number;
  doc: string;
  fields: { name: string; c: string[]; kind: string; offset: number; size: number; enum?: string }[];
  padding: [number, number][];
  tail: { name: string; kind: string; count?: string; length?: string; maxBytes?: number }[];
}

export function typeInfos(): TypeInfo[] {
  return [...LAYOUTS.values()].map((l) => ({
    id: l.def.id,
    name: l.name,
    family: l.def.family,
    size: l.size,
    doc: l.def.doc,
    fields: l.fields.map((f) => ({
      name: f.name,
      c: f.kind === 'uuid' ? [`${f.name}_upper`, `${f.name}_lower`] : [f.name],
      kind: f.kind,
      offset: f.offset,
      size: f.size,
      ...(f.enum ? { enum: enumName(f.enum) } : {}),
    })),
    padding: l.padding.map(([o, n]) => [o, n] as [number, number]),
    tail: l.def.tail.map((t) => ({ name: t.name, kind: t.kind, ...(t.countField ? { count: t.countField } : {}), ...(t.lengthField ? { length: t.lengthField } : {}), ...(t.maxBytes ? { maxBytes: t.maxBytes } : {}) })),
  }));
}

const C_TYPE: Record<string, string> = { u8: 'uint8_t', u16: 'uint16_t', u32: 'uint32_t', i32: 'int32_t', u64: 'uint64_t', uuid: '2 x uint64_t', sha256: 'uint8_t[32]' };

function tailText(t: TailDef): string {
  switch (t.kind) {
    case 'bytes':
      return `1 frame, exactly \`${t.lengthField}\` bytes`;
    case 'utf8':
      return `1 frame, UTF-8, <= ${t.maxBytes} bytes`;
    case 'utf8list':
      return `\`${t.countField}\` frames, each UTF-8 <= ${t.maxBytes} bytes`;
    case 'uuidlist':
      return `1 frame, \`${t.countField}\` x 16 bytes (UUIDs as upper, lower)`;
  }
}

function layoutTable(l: Layout): string[] {
  const rows: [number, string][] = [];
  for (const f of l.fields) {
    const where = f.header ? 'header.' : '';
    const note = [f.enum ? `enum ${enumName(f.enum)}` : '', f.doc ?? ''].filter(Boolean).join('; ');
    if (f.kind === 'uuid') {
      rows.push([f.offset, `| ${f.offset} | 8 | \`${where}${f.name}_upper\` | uint64_t | ${note || 'UUID, most significant half'} |`]);
      rows.push([f.offset + 8, `| ${f.offset + 8} | 8 | \`${where}${f.name}_lower\` | uint64_t | |`]);
    } else {
      rows.push([f.offset, `| ${f.offset} | ${f.size} | \`${where}${f.name}\` | ${C_TYPE[f.kind]} | ${note} |`]);
    }
  }
  for (const [o, n] of l.padding) rows.push([o, `| ${o} | ${n} | *padding* | | must be zero |`]);
  rows.sort((a, b) => a[0] - b[0]);
  const out = [`### ${l.name} (type ${l.def.id}, sizeof ${l.size})`, '', l.def.doc, '', '| offset | size | member | C type | notes |', '| ---: | ---: | --- | --- | --- |', ...rows.map((r) => r[1])];
  if (l.def.tail.length) {
    out.push('', 'Trailing frames, in order:', '');
    for (const t of l.def.tail) out.push(`- \`${t.name}\`: ${tailText(t)}${t.doc ? ` (${t.doc})` : ''}`);
  }
  return out;
}

/** The generated part of docs/protocol.md. */
export function protocolMarkdown(): string {
  const o: string[] = [];
  o.push('### Limits', '', '| name | value |', '| --- | ---: |');
  o.push(`| \`PROTOCOL_VERSION\` | ${PROTOCOL_VERSION} |`, `| \`MAX_MESSAGE_BYTES\` (all frames) | ${MAX_MESSAGE_BYTES} |`, `| \`MAX_FRAMES\` (frame 0 included) | ${MAX_FRAMES} |`, `| \`MAX_NAME_BYTES\` | ${MAX_NAME_BYTES} |`, `| \`MAX_TEXT_BYTES\` | ${MAX_TEXT_BYTES} |`);
  o.push('', '### Type registry', '', '| id | name | family | sizeof | trailing frames |', '| ---: | --- | --- | ---: | --- |');
  for (const l of LAYOUTS.values()) o.push(`| ${l.def.id} | [\`${l.name}\`](#${l.name}-type-${l.def.id}-sizeof-${l.size}) | ${l.def.family} | ${l.size} | ${l.def.tail.map((t) => `\`${t.name}\``).join(', ') || '-'} |`);
  o.push('', '### Enums', '', '| enum | name | value |', '| --- | --- | ---: |');
  for (const [name, e] of NAMED_ENUMS) for (const [k, v] of Object.entries(e)) o.push(`| ${name} | ${k} | ${v} |`);
  o.push('', '### Struct layouts');
  for (const l of LAYOUTS.values()) o.push('', ...layoutTable(l));
  return o.join('\n') + '\n';
}

/** Replaces the generated block of a markdown file; throws when the markers are missing. */
export function updateDoc(text: string): string {
  const a = text.indexOf(GENERATED_BEGIN);
  const b = text.indexOf(GENERATED_END);
  if (a < 0 || b < a) throw new Error(`the doc has no ${GENERATED_BEGIN} ... ${GENERATED_END} block`);
  return text.slice(0, a + GENERATED_BEGIN.length) + '\n\n' + protocolMarkdown() + '\n' + text.slice(b);
}

if (require.main === module) {
  const i = process.argv.indexOf('--update');
  if (i > 0 && process.argv[i + 1]) {
    const file = process.argv[i + 1]!;
    writeFileSync(file, updateDoc(readFileSync(file, 'utf8')));
  } else process.stdout.write(protocolMarkdown());
}
