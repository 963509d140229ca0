/**
 * `grid codec` in a child process (src/cli/codec.ts via test/messages/codec-cli-main.ts):
 * encode/decode agree with the committed vectors, `types` lists the registry, and every kind
 * of bad input ends in exit code 1 and exactly one `grid codec: CODE: ...` line.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { LAYOUTS, MessageName } from '../../src/messages';
import type { VectorCase } from '../vectors/gen';

const MAIN = path.join(__dirname, 'codec-cli-main.js');
const BIN = path.resolve(__dirname, '../../../bin/grid.js');
const VECTORS = path.resolve(__dirname, '../../../test/vectors');

function grid(args: string[], stdin: string | Buffer = ''): { code: number | null; out: Buffer; err: string } {
  const r = spawnSync(process.execPath, [MAIN, 'codec', ...args], { input: stdin, timeout: 30_000 });
  return { code: r.status, out: r.stdout, err: r.stderr.toString() };
}

function vector(name: MessageName): VectorCase {
  return (JSON.parse(readFileSync(path.join(VECTORS, `${name}.json`), 'utf8')) as { cases: VectorCase[] }).cases[0]!;
}

/** The vector's JSON without trailing frames, the form `codec encode` takes and `decode` prints. */
function structJson(name: MessageName, c: VectorCase): Record<string, unknown> {
  const tail = new Set(LAYOUTS.get(name)!.def.tail.map((t) => t.name));
  return Object.fromEntries(Object.entries(c.value).filter(([k]) => !tail.has(k)));
}

const SAMPLE_TYPES: MessageName[] = ['generic_message', 'worker_request', 'worker_status', 'file_request', 'file_response', 'file_stat_response', 'task_result'];

describe('grid codec (child process)', function () {
  this.timeout(60_000);

  for (const name of SAMPLE_TYPES) {
    it(`${name}: encode gives the vector's frame 0 (binary and --hex), decode gives its values`, () => {
      const c = vector(name);
      const json = JSON.stringify(structJson(name, c));
      const hex = grid(['encode', name, '--hex'], json);
      assert.equal(hex.code, 0, hex.err);
      assert.equal(hex.out.toString(), c.frames[0] + '\n');
      const bin = grid(['encode', name], json);
      assert.equal(bin.code, 0, bin.err);
      assert.equal(bin.out.toString('hex'), c.frames[0]);
      const dec = grid(['decode'], bin.out);
      assert.equal(dec.code, 0, dec.err);
      assert.deepEqual(JSON.parse(dec.out.toString()), structJson(name, c));
      const decHex = grid(['decode', '--hex'], c.frames[0]!.replace(/(.{16})/g, '$1 ') + '\n');
      assert.deepEqual(JSON.parse(decHex.out.toString()), structJson(name, c));
    });
  }

  it('types lists every type with its number and size; --json and --markdown agree', () => {
    const r = grid(['types']);
    assert.equal(r.code, 0, r.err);
    const rows = r.out.toString().trim().split('\n').slice(1).map((x) => x.trim().split(/\s+/));
    assert.deepEqual(rows.map((x) => [Number(x[0]), x[1], Number(x[2])]), [...LAYOUTS.values()].map((l) => [l.def.id, l.name, l.size]));
    const j = JSON.parse(grid(['types', '--json']).out.toString()) as { id: number; name: string; size: number }[];
    assert.deepEqual(j.map((x) => [x.id, x.name, x.size]), [...LAYOUTS.values()].map((l) => [l.def.id, l.name, l.size]));
    const md = grid(['types', '--markdown']).out.toString();
    for (const l of LAYOUTS.values()) assert.ok(md.includes(`### ${l.name} (type ${l.def.id}, sizeof ${l.size})`), l.name);
  });

  it('works through the real bin/grid.js (the CLI registers the codec commands)', () => {
    const c = vector('file_request');
    const run = (args: string[], input: string) => spawnSync(process.execPath, [BIN, 'codec', ...args], { input, timeout: 30_000 });
    const enc = run(['encode', 'file_request', '--hex'], JSON.stringify(structJson('file_request', c)));
    assert.equal(enc.status, 0, enc.stderr.toString());
    assert.equal(enc.stdout.toString(), c.frames[0] + '\n');
    const dec = run(['decode', '--hex'], enc.stdout.toString());
    assert.deepEqual(JSON.parse(dec.stdout.toString()), structJson('file_request', c));
    const bad = run(['decode', '--hex'], '00');
    assert.equal(bad.status, 1);
    assert.equal(bad.stderr.toString(), 'grid codec: TRUNCATED: frame 0 is 1 bytes, shorter than the 32-byte generic header\n');
  });

  const NODE = '123e4567-e89b-42d3-a456-426614174000';
  const bad: [string, string[], string | Buffer, string, RegExp][] = [
    ['a bad UUID', ['encode', 'worker_status'], JSON.stringify({ node_uuid: 'nope', job_uuid: NODE, state: 0 }), 'BAD_FIELD', /worker_status\.node_uuid/],
    ['a missing field', ['encode', 'worker_status'], JSON.stringify({ node_uuid: NODE, state: 0 }), 'MISSING_FIELD', /job_uuid/],
    ['an unknown field', ['encode', 'file_request'], JSON.stringify({ node_uuid: NODE, file_uuid: NODE, size: 1 }), 'BAD_FIELD', /no field "size"/],
    ['a trailing-frame member', ['encode', 'file_response'], JSON.stringify({ node_uuid: NODE, file_uuid: NODE, file_length: 1, data: '00' }), 'BAD_FIELD', /trailing frame/],
    ['an out-of-range enum', ['encode', 'worker_status'], JSON.stringify({ node_uuid: NODE, job_uuid: NODE, state: 9 }), 'BAD_FIELD', /state/],
    ['a u64 above 2^53-1', ['encode', 'file_response'], '{"node_uuid":"' + NODE + '","file_uuid":"' + NODE + '","file_length":18446744073709551615}', 'BAD_FIELD', /file_length/],
    ['a wrong header_length', ['encode', 'file_request'], JSON.stringify({ node_uuid: NODE, file_uuid: NODE, header_length: 1 }), 'BAD_FIELD', /header_length/],
    ['a bad sha256', ['encode', 'file_stat_response'], JSON.stringify({ node_uuid: NODE, request_uuid: NODE, file_uuid: NODE, file_length: 0, exists: 0, sha256: 'abc' }), 'BAD_FIELD', /sha256/],
    ['an unknown type', ['encode', 'no_such_message'], '{}', 'UNKNOWN_TYPE', /no_such_message/],
    ['not JSON', ['encode', 'file_request'], '{"node_uuid":', 'BAD_JSON', /not JSON/],
    ['a JSON array', ['encode', 'file_request'], '[]', 'BAD_FIELD', /one JSON object/],
    ['empty stdin', ['encode', 'file_request'], '', 'NO_INPUT', /empty/],
    ['bytes that are not hex', ['decode', '--hex'], 'xyz', 'BAD_HEX', /not hex/],
    ['a truncated frame', ['decode'], Buffer.alloc(10), 'TRUNCATED', /32-byte/],
    ['an unknown message_type', ['decode'], Buffer.alloc(32), 'UNKNOWN_TYPE', /message_type 0/],
    ['a header_length lie', ['decode', '--hex'], '01' + '00'.repeat(23) + '21' + '00'.repeat(7), 'BAD_HEADER_LENGTH', /header_length is 33/],
  ];
  for (const [what, args, input, code, detail] of bad) {
    it(`${what}: exit 1 and one line naming ${code}`, () => {
      const r = grid(args, input);
      assert.equal(r.code, 1, `exit code (stderr: ${r.err})`);
      assert.equal(r.out.length, 0, 'nothing on stdout');
      const lines = r.err.split('\n').filter(Boolean);
      assert.equal(lines.length, 1, `one line on stderr, got:\n${r.err}`);
      assert.match(lines[0]!, new RegExp(`^grid codec: ${code}: `));
      assert.match(lines[0]!, detail);
    });
  }
});
