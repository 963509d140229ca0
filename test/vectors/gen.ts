/**
 * Writes the codec's test vectors (checked by test/messages/vectors.test.ts):
 *   test/vectors/<type>.json  per message type: cases with the hex of every frame and the
 *                             decoded value in its JSON form (src/messages/json.ts)
 *   test/vectors/bad/<name>.json  hostile frames with the DecodeError code they must give
 * Values are fixed (derived from SHA-256 of the field's name, not from a random generator), so
 * running this again gives the same files. Run after adding a message type:
 *   npx tsc -p . && node dist/test/vectors/gen.js
 * Existing files are overwritten, except the fuzz-*.json that `npm run fuzz` saved.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { LAYOUTS, Layout, MessageInput, MessageName, NIL_UUID, decode, encode, messageToJson } from '../../src/messages';

export const VECTOR_DIR = path.resolve(__dirname, '../../../test/vectors');

const digest = (s: string): Buffer => createHash('sha256').update(s).digest();
const uuidOf = (s: string): string => {
  const h = digest(s).subarray(0, 16).toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
};
/** A fixed integer in [0, max] from a name. */
const intOf = (s: string, max: number): number => Number(digest(s).readBigUInt64LE(0) % BigInt(max + 1));

const TEXTS = ['input/part-0001.csv', 'données ✓ 日本語', 'a'];

/** "typical": every field a distinct non-trivial value, two items per list. */
function typical(l: Layout): MessageInput {
  const m: Record<string, unknown> = { type: l.name, node_uuid: uuidOf(`${l.name}.node_uuid`) };
  const counts = new Map<string, number>();
  for (const t of l.def.tail) if (t.countField) counts.set(t.countField, 2);
  for (const f of l.fields) {
    if (f.header) continue;
    const key = `${l.name}.${f.name}`;
    if (counts.has(f.name)) continue;
    if (f.enum) m[f.name] = Math.max(...Object.values(f.enum));
    else if (f.kind === 'uuid') m[f.name] = uuidOf(key);
    else if (f.kind === 'sha256') m[f.name] = digest(key);
    else if (f.kind === 'u8') m[f.name] = intOf(key, 255);
    else if (f.kind === 'u16') m[f.name] = intOf(key, 65535);
    else if (f.kind === 'u32') m[f.name] = intOf(key, 2 ** 32 - 1);
    else if (f.kind === 'i32') m[f.name] = intOf(key, 2 ** 32 - 1) - 2 ** 31;
    else m[f.name] = intOf(key, Number.MAX_SAFE_INTEGER);
  }
  for (const t of l.def.tail) {
    const key = `${l.name}.${t.name}`;
    if (t.kind === 'bytes') m[t.name] = t.name === 'program' ? Buffer.from("console.log('hi');\n") : digest(key).subarray(0, 5 + intOf(key, 20));
    else if (t.kind === 'utf8') m[t.name] = `${t.name}: ${TEXTS[1]}`;
    else if (t.kind === 'utf8list') m[t.name] = TEXTS.slice(0, 2).map((x, i) => `${x}#${i}`);
    else m[t.name] = [uuidOf(`${key}[0]`), uuidOf(`${key}[1]`)];
  }
  for (const [c, n] of counts) m[c] = n;
  for (const t of l.def.tail) if (t.lengthField) m[t.lengthField] = (m[t.name] as Buffer).length;
  return m as unknown as MessageInput;
}

/** "edges": zeros, nil UUIDs and empty tails, but the largest u64 and the smallest i32. */
function edges(l: Layout): MessageInput {
  const m: Record<string, unknown> = { type: l.name, node_uuid: NIL_UUID };
  for (const f of l.fields) {
    if (f.header) continue;
    if (f.enum) m[f.name] = Math.min(...Object.values(f.enum));
    else if (f.kind === 'uuid') m[f.name] = 'ffffffff-ffff-ffff-ffff-ffffffffffff';
    else if (f.kind === 'sha256') m[f.name] = Buffer.alloc(32, 0xff);
    else if (f.kind === 'u64') m[f.name] = Number.MAX_SAFE_INTEGER;
    else if (f.kind === 'i32') m[f.name] = -(2 ** 31);
    else if (f.kind === 'u8') m[f.name] = 255;
    else if (f.kind === 'u16') m[f.name] = 65535;
    else m[f.name] = 2 ** 32 - 1;
  }
  for (const t of l.def.tail) {
    m[t.name] = t.kind === 'bytes' ? Buffer.alloc(0) : t.kind === 'utf8' ? '' : [];
    m[t.lengthField ?? t.countField!] = 0;
  }
  return m as unknown as MessageInput;
}

export interface VectorCase {
  name: string;
  frames: string[];
  value: Record<string, unknown>;
}

function vectorCase(name: string, m: MessageInput): VectorCase {
  const frames = encode(m);
  return { name, frames: frames.map((f) => f.toString('hex')), value: messageToJson(decode(frames), { header: true }) };
}

export interface BadVector {
  description: string;
  /** The DecodeError code; null for an input `npm run fuzz` saved, not yet classified. */
  code: string | null;
  found_by?: string;
  frames: string[];
}

function bad(): Record<string, BadVector> {
  const L = (n: MessageName) => LAYOUTS.get(n)!;
  const t = (n: MessageName) => typical(L(n));
  const frames = (n: MessageName) => encode(t(n));
  const poke = (fr: Buffer[], i: number, fn: (b: Buffer) => void): Buffer[] => {
    const c = fr.map((x) => Buffer.from(x));
    fn(c[i]!);
    return c;
  };
  const off = (n: MessageName, field: string) => L(n).fields.find((f) => f.name === field)!.offset;
  const out: Record<string, [string, string, Buffer[]]> = {
    'no-frames': ['NO_FRAMES', 'a message with no frame at all', []],
    'short-header': ['TRUNCATED', 'frame 0 shorter than the 32-byte generic header', [frames('generic_message')[0]!.subarray(0, 31)]],
    'unknown-type-0': ['UNKNOWN_TYPE', 'message_type 0 is never assigned', poke(frames('generic_message'), 0, (b) => (b[0] = 0))],
    'unknown-type-255': ['UNKNOWN_TYPE', 'message_type 255 is not in the registry', poke(frames('generic_message'), 0, (b) => (b[0] = 255))],
    'header-length-small': ['BAD_HEADER_LENGTH', `header_length 48 on a worker_request (sizeof ${L('worker_request').size})`, poke(frames('worker_request'), 0, (b) => b.writeUInt32LE(48, 24))],
    'header-length-huge': ['BAD_HEADER_LENGTH', 'header_length 2^64-1', poke(frames('generic_message'), 0, (b) => b.fill(0xff, 24, 32))],
    'header-length-high-half': ['BAD_HEADER_LENGTH', 'header_length 2^32 + 32: only the low half is right', poke(frames('generic_message'), 0, (b) => b.writeUInt32LE(1, 28))],
    'frame0-truncated': ['TRUNCATED', 'worker_status frame 0 cut to 40 bytes while header_length says 56', [frames('worker_status')[0]!.subarray(0, 40)]],
    'trailing-bytes': ['TRAILING_BYTES', 'frame 0 one byte longer than header_length', [Buffer.concat([frames('file_request')[0]!, Buffer.from([0])])]],
    'padding-header': ['NONZERO_PADDING', 'a padding byte after message_type is not zero', poke(frames('generic_message'), 0, (b) => (b[1] = 1))],
    'padding-tail': ['NONZERO_PADDING', 'the padding after worker_status.state is not zero', poke(frames('worker_status'), 0, (b) => (b[55] = 0x80))],
    'u64-above-2^53': ['VALUE_OUT_OF_RANGE', 'file_response.file_length = 2^53 (above Number.MAX_SAFE_INTEGER)', poke(frames('file_response'), 0, (b) => (b.writeUInt32LE(0, off('file_response', 'file_length')), b.writeUInt32LE(0x200000, off('file_response', 'file_length') + 4)))],
    'enum-out-of-range': ['VALUE_OUT_OF_RANGE', 'worker_status.state = 3 (idle, busy, draining are 0..2)', poke(frames('worker_status'), 0, (b) => (b[off('worker_status', 'state')] = 3))],
    'bool-out-of-range': ['VALUE_OUT_OF_RANGE', 'file_stat_response.exists = 2', poke(frames('file_stat_response'), 0, (b) => (b[off('file_stat_response', 'exists')] = 2))],
    'count-2^32-1': ['BAD_FRAME_COUNT', 'worker_request.num_input_files = 2^32-1 with only frame 0: must fail before allocating', [poke(frames('worker_request'), 0, (b) => (b.writeUInt32LE(0xffffffff, off('worker_request', 'num_input_files')), b.writeUInt32LE(0, off('worker_request', 'num_input_files') + 4)))[0]!]],
    'missing-frame': ['BAD_FRAME_COUNT', 'file_response without its data frame', [frames('file_response')[0]!]],
    'extra-frame': ['BAD_FRAME_COUNT', 'file_request with a trailing frame it does not have', [frames('file_request')[0]!, Buffer.from('x')]],
    'bytes-length-lie': ['LENGTH_MISMATCH', 'file_response.file_length says one byte more than the data frame holds', poke(frames('file_response'), 0, (b) => b.writeUInt32LE(b.readUInt32LE(off('file_response', 'file_length')) + 1, off('file_response', 'file_length')))],
    'uuid-list-short': ['LENGTH_MISMATCH', 'job_list_response: num_jobs = 2 but the UUID frame is 31 bytes', ((fr) => [fr[0]!, fr[1]!.subarray(0, 31)])(frames('job_list_response'))],
    'uuid-list-count-2^32-1': ['LENGTH_MISMATCH', 'job_list_response: num_jobs = 2^32-1 with a 32-byte frame: must fail before allocating', poke(frames('job_list_response'), 0, (b) => b.writeUInt32LE(0xffffffff, off('job_list_response', 'num_jobs')))],
    'utf8-invalid': ['BAD_UTF8', 'error_reply.message is 0xff 0xfe', [frames('error_reply')[0]!, Buffer.from([0xff, 0xfe])]],
    'utf8-overlong': ['BAD_UTF8', "error_reply.message holds an overlong '/' (0xc0 0xaf)", [frames('error_reply')[0]!, Buffer.from([0xc0, 0xaf])]],
    'utf8-surrogate': ['BAD_UTF8', 'error_reply.message holds an encoded UTF-16 surrogate (0xed 0xa0 0x80)', [frames('error_reply')[0]!, Buffer.from([0xed, 0xa0, 0x80])]],
    'name-too-long': ['TOO_LARGE', 'a worker_request input path of 4097 bytes (MAX_NAME_BYTES is 4096)', frames('worker_request').map((x, i) => (i === 2 ? Buffer.alloc(4097, 0x61) : x))],
  };
  return Object.fromEntries(Object.entries(out).map(([k, [code, description, fr]]) => [k, { description, code, frames: fr.map((x) => x.toString('hex')) }]));
}

function main(): void {
  mkdirSync(path.join(VECTOR_DIR, 'bad'), { recursive: true });
  for (const l of LAYOUTS.values()) {
    const cases = [vectorCase('typical', typical(l)), vectorCase('edges', edges(l))];
    const file = { type: l.name, id: l.def.id, size: l.size, cases };
    writeFileSync(path.join(VECTOR_DIR, `${l.name}.json`), JSON.stringify(file, null, 2) + '\n');
  }
  for (const [name, v] of Object.entries(bad())) writeFileSync(path.join(VECTOR_DIR, 'bad', `${name}.json`), JSON.stringify(v, null, 2) + '\n');
  process.stdout.write(`wrote ${LAYOUTS.size} type vectors and ${Object.keys(bad()).length} bad vectors under ${VECTOR_DIR}\n`);
}

if (require.main === module) main();
