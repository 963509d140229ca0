/**
 * The C view of the wire (include/grid/messages.h, docs/protocol.md "Struct layouts") must be
 * the TypeScript view, byte for byte. One C program, compiled with the system `cc`, checks
 * every struct at once: sizeof and every offsetof, bytes C fills in decode in TypeScript to
 * the same values (and equal the TypeScript encoding), and bytes TypeScript encodes read back
 * in C as the same values. No compiler means this test FAILS: it never skips.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { LAYOUTS, Layout, MessageInput, decodeStruct, encodeStruct, uuidHalves } from '../../src/messages';
import { cMembers, generateHeader } from '../../src/messages/cheader';
import { sampleMessage } from '../fuzz/generators';

const ROOT = path.resolve(__dirname, '../../..');
const HEADER = path.join(ROOT, 'include/grid/messages.h');
/** Seeds of the fixed sample values: one set filled in by C, one encoded by TypeScript. */
const C_SEED = 101;
const TS_SEED = 202;

type Member = { name: string; cName: string; offset: number; value: (m: Record<string, unknown>) => string; kind: string };

/** Every C member of a struct with the expression giving its expected value as text. */
function members(l: Layout): Member[] {
  const out: Member[] = [];
  for (const f of l.fields) {
    const cName = (n: string) => (f.header && l.name !== 'generic_message' ? `header.${n}` : n);
    const fixed = f.name === 'message_type' ? String(l.def.id) : f.name === 'header_length' ? String(l.size) : undefined;
    if (f.kind === 'uuid') {
      out.push({ name: `${f.name}_upper`, cName: cName(`${f.name}_upper`), offset: f.offset, kind: 'u64', value: (m) => uuidHalves(m[f.name] as string).upper.toString() });
      out.push({ name: `${f.name}_lower`, cName: cName(`${f.name}_lower`), offset: f.offset + 8, kind: 'u64', value: (m) => uuidHalves(m[f.name] as string).lower.toString() });
    } else if (f.kind === 'sha256') {
      out.push({ name: f.name, cName: cName(f.name), offset: f.offset, kind: 'sha256', value: (m) => Buffer.from(m[f.name] as Uint8Array).toString('hex') });
    } else {
      out.push({ name: f.name, cName: cName(f.name), offset: f.offset, kind: f.kind, value: (m) => fixed ?? String(m[f.name]) });
    }
  }
  return out;
}

function cLiteral(kind: string, text: string): string {
  if (kind === 'sha256') return `"${text.replace(/(..)/g, '\\x$1')}"`;
  return kind === 'i32' ? `(int32_t)${text}` : `UINT64_C(${text})`;
}

function cProgram(): string {
  const o: string[] = ['#include <inttypes.h>', '#include <stdio.h>', '#include <string.h>', '#include "grid/messages.h"', ''];
  o.push('static void hex(const void *p, size_t n) { const unsigned char *b = p; for (size_t i = 0; i < n; i++) printf("%02x", b[i]); }');
  o.push('int main(void) {');
  for (const l of LAYOUTS.values()) {
    const S = `struct ${l.name}`;
    const cm = C_SEED_MSGS.get(l.name)! as unknown as Record<string, unknown>;
    const tm = TS_SEED_MSGS.get(l.name)! as unknown as Record<string, unknown>;
    o.push(`  { /* ${l.name} */`);
    o.push(`    printf("S ${l.name} %zu %d\\n", sizeof(${S}), (int)GRID_MSG_${l.name.toUpperCase()});`);
    for (const m of members(l)) o.push(`    printf("O ${l.name} ${m.name} %zu\\n", offsetof(${S}, ${m.cName}));`);
    // C fills a struct (padding zeroed by memset, as the protocol requires) and prints its bytes
    o.push(`    ${S} e; memset(&e, 0, sizeof e);`);
    for (const m of members(l)) {
      if (m.kind === 'sha256') o.push(`    memcpy(e.${m.cName}, ${cLiteral(m.kind, m.value(cm))}, 32);`);
      else if (m.name === 'header_length') o.push(`    e.${m.cName} = sizeof e;`);
      else if (m.name === 'message_type') o.push(`    e.${m.cName} = GRID_MSG_${l.name.toUpperCase()};`);
      else o.push(`    e.${m.cName} = ${cLiteral(m.kind, m.value(cm))};`);
    }
    o.push(`    printf("E ${l.name} "); hex(&e, sizeof e); printf("\\n");`);
    // C reads bytes TypeScript encoded and prints every member
    const bytes = [...encodeStruct(tm as unknown as MessageInput)].map((b) => `0x${b.toString(16)}`).join(',');
    o.push(`    static const unsigned char in[] = {${bytes}};`);
    o.push(`    ${S} d; memcpy(&d, in, sizeof d);`);
    o.push(`    if (sizeof in != sizeof d) printf("X ${l.name} TS encoded %zu bytes\\n", sizeof in);`);
    for (const m of members(l)) {
      if (m.kind === 'sha256') o.push(`    printf("D ${l.name} ${m.name} "); hex(d.${m.cName}, 32); printf("\\n");`);
      else if (m.kind === 'i32') o.push(`    printf("D ${l.name} ${m.name} %" PRId32 "\\n", d.${m.cName});`);
      else o.push(`    printf("D ${l.name} ${m.name} %" PRIu64 "\\n", (uint64_t)d.${m.cName});`);
    }
    o.push('  }');
  }
  o.push('  return 0;', '}');
  return o.join('\n') + '\n';
}

const C_SEED_MSGS = new Map([...LAYOUTS.keys()].map((n) => [n, sampleMessage(n, C_SEED)]));
const TS_SEED_MSGS = new Map([...LAYOUTS.keys()].map((n) => [n, sampleMessage(n, TS_SEED)]));

describe('C layout (include/grid/messages.h vs the TypeScript codec)', function () {
  this.timeout(60_000);
  let dir = '';
  let lines: string[] = [];

  before(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'grid-c-layout-'));
    writeFileSync(path.join(dir, 'layout.c'), cProgram());
    try {
      execFileSync('cc', ['-std=c11', '-O0', '-Wall', '-Wextra', '-Werror', '-I', path.join(ROOT, 'include'), '-o', path.join(dir, 'layout'), path.join(dir, 'layout.c')], { stdio: ['ignore', 'pipe', 'pipe'] });
    } catch (e) {
      const err = e as NodeJS.ErrnoException & { stderr?: Buffer };
      if (err.code === 'ENOENT') assert.fail('the C compiler `cc` was not found on PATH; this test needs it (e.g. apt-get install gcc) and does not skip');
      assert.fail(`cc could not compile the layout program (${dir}/layout.c):\n${err.stderr?.toString() ?? String(e)}`);
    }
    lines = execFileSync(path.join(dir, 'layout'), { encoding: 'utf8' }).trim().split('\n');
  });

  after(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const rows = (tag: string, name: string) => lines.filter((x) => x.startsWith(`${tag} ${name} `)).map((x) => x.split(' ').slice(2));

  it('the committed header is what the schema generates (regenerate: npx tsc -p . && npm run gen:header)', () => {
    assert.equal(readFileSync(HEADER, 'utf8'), generateHeader(), 'include/grid/messages.h is stale: run `npx tsc -p . && npm run gen:header` and commit it');
  });

  it('the C compiler agrees on sizeof and type number of every struct', () => {
    assert.ok(lines.length > 0);
    for (const l of LAYOUTS.values()) assert.deepEqual(rows('S', l.name), [[String(l.size), String(l.def.id)]], `struct ${l.name}`);
  });

  it('the C compiler agrees on the offset of every member', () => {
    for (const l of LAYOUTS.values()) {
      const got = rows('O', l.name);
      const want = members(l).map((m) => [m.name, String(m.offset)]);
      assert.deepEqual(got, want, `struct ${l.name}`);
      // the generator's own member list (the header's text) names the same members
      const fromHeader = [...(l.name === 'generic_message' ? [] : cMembers(l, true)), ...cMembers(l, l.name === 'generic_message')].map((m) => m.name);
      assert.deepEqual(fromHeader, want.map((w) => w[0]));
    }
  });

  it('bytes filled in by C decode in TypeScript to the same values and equal the TypeScript encoding', () => {
    assert.ok(lines.every((x) => !x.startsWith('X ')), lines.filter((x) => x.startsWith('X ')).join('\n'));
    for (const l of LAYOUTS.values()) {
      const [[hexBytes]] = rows('E', l.name) as [[string]];
      const cBytes = Buffer.from(hexBytes, 'hex');
      const want = C_SEED_MSGS.get(l.name)!;
      const got = decodeStruct(cBytes) as unknown as Record<string, unknown>;
      assert.equal(got.type, l.name);
      for (const f of l.fields) {
        if (f.header && f.name !== 'node_uuid') continue;
        const w = (want as unknown as Record<string, unknown>)[f.name];
        assert.deepEqual(f.kind === 'sha256' ? Buffer.from(got[f.name] as Buffer).toString('hex') : got[f.name], f.kind === 'sha256' ? Buffer.from(w as Buffer).toString('hex') : w, `${l.name}.${f.name}`);
      }
      assert.equal(cBytes.toString('hex'), encodeStruct(want).toString('hex'), `${l.name}: C and TypeScript bytes differ`);
    }
  });

  it('bytes encoded by TypeScript read in C as the same values', () => {
    for (const l of LAYOUTS.values()) {
      const m = TS_SEED_MSGS.get(l.name)! as unknown as Record<string, unknown>;
      assert.deepEqual(rows('D', l.name), members(l).map((x) => [x.name, x.value(m)]), `struct ${l.name}`);
    }
  });
});
