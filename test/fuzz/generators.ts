/**
 * The fast-check generators and properties of the codec, shared by the mocha suite
 * (test/messages/fuzz.test.ts), the time-boxed fuzzer (test/fuzz/run.ts, `npm run fuzz`), the
 * vector generator and the C layout test, so all of them exercise the same inputs.
 *
 * The central property (checkDecodeSafety): for ANY frames, decode() either throws a
 * DecodeError, or returns a message whose re-encoding is byte-for-byte the input (the wire
 * form is canonical), and it behaves the same whether each frame sits alone or inside a larger
 * buffer full of garbage (so it never reads past a frame), and byte frames come back as views
 * of the input (never copied).
 */
import * as fc from 'fast-check';
import { DecodeError, LAYOUTS, Layout, Message, MessageInput, MessageName, MESSAGES, decode, encode } from '../../src/messages';

export const MESSAGE_NAMES = Object.keys(MESSAGES) as MessageName[];

/** Longest random tail lists / strings / byte frames: small, so 1000 runs per type stay fast. */
export const MAX_LIST_ITEMS = 4;
export const MAX_STRING_CHARS = 12;
export const MAX_BYTES_FRAME = 64;

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

/** Any 128-bit value as a canonical lower-case UUID (not only RFC versions: the wire takes all). */
export const arbUuid: fc.Arbitrary<string> = fc.uint8Array({ minLength: 16, maxLength: 16 }).map((b) => {
  const h = hex(b);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
});

/** Integers biased to the edges of a range, where codecs break. */
function edgy(min: number, max: number): fc.Arbitrary<number> {
  const edges = [...new Set([min, max, 0, 1, max - 1, Math.min(max, 255), Math.min(max, 256), Math.min(max, 2 ** 31 - 1), Math.min(max, 2 ** 32 - 1)])].filter((x) => x >= min && x <= max);
  return fc.oneof({ arbitrary: fc.integer({ min: Math.max(min, -(2 ** 31)), max: Math.min(max, 2 ** 31 - 1) }), weight: 3 }, { arbitrary: fc.constantFrom(...edges), weight: 1 }, { arbitrary: fc.double({ min, max, noNaN: true }).map(Math.floor), weight: 1 });
}

const KIND_ARB = {
  u8: edgy(0, 255),
  u16: edgy(0, 65535),
  u32: edgy(0, 2 ** 32 - 1),
  i32: edgy(-(2 ** 31), 2 ** 31 - 1),
  u64: edgy(0, Number.MAX_SAFE_INTEGER),
} as const;

const arbText = fc.string({ unit: 'binary', maxLength: MAX_STRING_CHARS });

/** A valid message of `name` with every field (length and count fields included) set. */
export function arbMessage(name: MessageName): fc.Arbitrary<MessageInput> {
  const l = LAYOUTS.get(name)!;
  const countFields = [...new Set(l.def.tail.map((t) => t.countField).filter((x): x is string => !!x))];
  const counts = fc.record(Object.fromEntries(countFields.map((c) => [c, fc.nat({ max: MAX_LIST_ITEMS })])) as Record<string, fc.Arbitrary<number>>);
  return counts.chain((cnt) => {
    const rec: Record<string, fc.Arbitrary<unknown>> = { node_uuid: arbUuid };
    for (const f of l.fields) {
      if (f.header) continue;
      if (countFields.includes(f.name)) continue;
      if (l.def.tail.some((t) => t.lengthField === f.name)) continue;
      if (f.enum) rec[f.name] = fc.constantFrom(...Object.values(f.enum));
      else if (f.kind === 'uuid') rec[f.name] = arbUuid;
      else if (f.kind === 'sha256') rec[f.name] = fc.uint8Array({ minLength: 32, maxLength: 32 }).map((b) => Buffer.from(b));
      else rec[f.name] = KIND_ARB[f.kind];
    }
    for (const t of l.def.tail) {
      if (t.kind === 'bytes') rec[t.name] = fc.uint8Array({ maxLength: MAX_BYTES_FRAME }).map((b) => Buffer.from(b));
      else if (t.kind === 'utf8') rec[t.name] = arbText;
      else if (t.kind === 'utf8list') rec[t.name] = fc.array(arbText, { minLength: cnt[t.countField!]!, maxLength: cnt[t.countField!]! });
      else rec[t.name] = fc.array(arbUuid, { minLength: cnt[t.countField!]!, maxLength: cnt[t.countField!]! });
    }
    return fc.record(rec).map((m) => {
      const out: Record<string, unknown> = { type: name, ...m, ...cnt };
      for (const t of l.def.tail) if (t.kind === 'bytes') out[t.lengthField!] = (m[t.name] as Buffer).length;
      return out as unknown as MessageInput;
    });
  });
}

export const arbAnyMessage: fc.Arbitrary<MessageInput> = fc.oneof(...MESSAGE_NAMES.map(arbMessage));

/** A fixed, reproducible valid message of each type (vectors, C layout test). */
export function sampleMessage(name: MessageName, seed: number): MessageInput {
  return fc.sample(arbMessage(name), { seed, numRuns: 1 })[0]!;
}

// ---- hostile inputs ------------------------------------------------------------------------

/** One change to valid frames; indices are taken modulo what exists when applied. */
export type Mutation =
  | { op: 'bitflip'; frame: number; byte: number; bit: number }
  | { op: 'truncate'; frame: number; keep: number }
  | { op: 'extend'; frame: number; extra: Uint8Array }
  | { op: 'header_length'; value: bigint }
  | { op: 'field'; field: number; value: bigint }
  | { op: 'message_type'; value: number }
  | { op: 'drop_frame'; frame: number }
  | { op: 'add_frame'; frame: number; bytes: Uint8Array };

/** Values a lying length or count field likes to hold. */
const arbLie = fc.oneof(
  fc.constantFrom(0n, 1n, 2n, 15n, 16n, 17n, 0xffn, 0xffffn, 0x7fffffffn, 0xffffffffn, 0x100000000n, (1n << 53n) - 1n, 1n << 53n, (1n << 64n) - 1n),
  fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
  fc.bigInt({ min: 0n, max: 64n }),
);

export const arbMutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ op: fc.constant('bitflip' as const), frame: fc.nat(), byte: fc.nat(), bit: fc.nat({ max: 7 }) }),
  fc.record({ op: fc.constant('truncate' as const), frame: fc.nat(), keep: fc.nat() }),
  fc.record({ op: fc.constant('extend' as const), frame: fc.nat(), extra: fc.uint8Array({ minLength: 1, maxLength: 40 }) }),
  fc.record({ op: fc.constant('header_length' as const), value: arbLie }),
  fc.record({ op: fc.constant('field' as const), field: fc.nat(), value: arbLie }),
  fc.record({ op: fc.constant('message_type' as const), value: fc.nat({ max: 255 }) }),
  fc.record({ op: fc.constant('drop_frame' as const), frame: fc.nat() }),
  fc.record({ op: fc.constant('add_frame' as const), frame: fc.nat(), bytes: fc.uint8Array({ maxLength: 40 }) }),
);

function writeUint(b: Buffer, off: number, size: number, value: bigint): void {
  for (let i = 0; i < size && off + i < b.length; i++) b[off + i] = Number((value >> BigInt(8 * i)) & 0xffn);
}

/** Applies mutations to copies of the frames (the input is not changed). */
export function mutate(frames: readonly Buffer[], muts: readonly Mutation[]): Buffer[] {
  let out = frames.map((f) => Buffer.from(f));
  for (const m of muts) {
    const pick = (i: number) => (out.length ? i % out.length : -1);
    switch (m.op) {
      case 'bitflip': {
        const k = pick(m.frame);
        if (k >= 0 && out[k]!.length) out[k]![m.byte % out[k]!.length]! ^= 1 << m.bit;
        break;
      }
      case 'truncate': {
        const k = pick(m.frame);
        if (k >= 0) out[k] = out[k]!.subarray(0, m.keep % (out[k]!.length + 1));
        break;
      }
      case 'extend': {
        const k = pick(m.frame);
        if (k >= 0) out[k] = Buffer.concat([out[k]!, m.extra]);
        break;
      }
      case 'header_length':
        if (out[0] && out[0].length >= 32) writeUint(out[0], 24, 8, m.value);
        break;
      case 'message_type':
        if (out[0] && out[0].length >= 1) out[0][0] = m.value;
        break;
      case 'field': {
        const f0 = out[0];
        const l = f0 && f0.length ? layoutByIdSafe(f0[0]!) : undefined;
        const body = l?.fields.filter((f) => !f.header) ?? [];
        if (!l || !body.length) break;
        const f = body[m.field % body.length]!;
        writeUint(f0!, f.offset, f.kind === 'sha256' ? 8 : Math.min(f.size, 8), m.value);
        break;
      }
      case 'drop_frame': {
        const k = pick(m.frame);
        if (k >= 0) out = out.filter((_, i) => i !== k);
        break;
      }
      case 'add_frame':
        out.splice(m.frame % (out.length + 1), 0, Buffer.from(m.bytes));
        break;
    }
  }
  return out;
}

function layoutByIdSafe(id: number): Layout | undefined {
  for (const l of LAYOUTS.values()) if (l.def.id === id) return l;
  return undefined;
}

/** Valid frames of a random message, then 1..3 mutations. */
export const arbMutatedFrames: fc.Arbitrary<Buffer[]> = fc
  .tuple(arbAnyMessage, fc.array(arbMutation, { minLength: 1, maxLength: 3 }))
  .map(([m, muts]) => mutate(encode(m), muts));

/** Frames of random bytes; frame 0 often starts with a plausible header so decoding goes deep. */
export const arbRandomFrames: fc.Arbitrary<Buffer[]> = fc.oneof(
  fc.array(fc.uint8Array({ maxLength: 120 }).map((b) => Buffer.from(b)), { maxLength: 5 }),
  // frame 0 at least as long as the generic header, so the type and length checks are reached
  fc.tuple(fc.uint8Array({ minLength: 32, maxLength: 200 }), fc.array(fc.uint8Array({ maxLength: 40 }), { maxLength: 3 })).map(([f0, t]) => [Buffer.from(f0), ...t.map((x) => Buffer.from(x))]),
  fc
    .tuple(fc.constantFrom(...LAYOUTS.values()), fc.uint8Array({ minLength: 160, maxLength: 160 }), fc.array(fc.uint8Array({ maxLength: 40 }), { maxLength: 5 }), fc.boolean())
    .map(([l, body, tail, zeroPadding]) => {
      const f0 = Buffer.from(body.subarray(0, l.size));
      f0[0] = l.def.id;
      writeUint(f0, 24, 8, BigInt(l.size));
      // half the time get past the padding check, so the field and frame checks are reached
      if (zeroPadding) for (const [off, len] of l.padding) f0.fill(0, off, off + len);
      return [f0, ...tail.map((t) => Buffer.from(t))];
    }),
);

// ---- the property ------------------------------------------------------------------------------

export class PropertyViolation extends Error {
  override readonly name = 'PropertyViolation';
}

type Outcome = { ok: true; msg: Message } | { ok: false; code: string };

function tryDecode(frames: Buffer[]): Outcome {
  try {
    return { ok: true, msg: decode(frames) };
  } catch (e) {
    if (e instanceof DecodeError) return { ok: false, code: e.code };
    throw new PropertyViolation(`decode threw ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)} instead of a DecodeError`);
  }
}

/** The same bytes, each frame placed in the middle of a larger buffer of garbage. */
function embedded(frames: readonly Buffer[]): Buffer[] {
  return frames.map((f, i) => {
    const pad = 8 + (i % 3);
    const big = Buffer.alloc(f.length + 2 * pad, 0xa5 ^ i);
    f.copy(big, pad);
    return big.subarray(pad, pad + f.length);
  });
}

function describe(o: Outcome): string {
  return o.ok ? `ok ${o.msg.type}` : `DecodeError ${o.code}`;
}

/**
 * Throws PropertyViolation unless decode(frames) is safe (see the file comment). Returns the
 * DecodeError code, or null when the frames decoded.
 */
export function checkDecodeSafety(frames: readonly Buffer[]): string | null {
  const exact = frames.map((f) => Buffer.from(f));
  const a = tryDecode(exact);
  const b = tryDecode(embedded(exact));
  if (a.ok !== b.ok || (!a.ok && !b.ok && a.code !== b.code)) {
    throw new PropertyViolation(`decode depends on bytes outside the frames: exact frames give ${describe(a)}, embedded give ${describe(b)}`);
  }
  if (!a.ok) return a.code;
  let again: Buffer[];
  try {
    again = encode(a.msg as unknown as MessageInput);
  } catch (e) {
    throw new PropertyViolation(`decode accepted a ${a.msg.type} that encode refuses: ${e instanceof Error ? e.message : String(e)}`);
  }
  const got = again.map(hex).join(' | ');
  const want = exact.map(hex).join(' | ');
  if (got !== want) throw new PropertyViolation(`decoded ${a.msg.type} does not re-encode to the same frames:\n in:  ${want}\n out: ${got}`);
  // byte frames are views of the input, never copies
  const l = LAYOUTS.get(a.msg.type)!;
  let k = 1;
  for (const t of l.def.tail) {
    if (t.kind === 'bytes') {
      const v = (a.msg as unknown as Record<string, Buffer>)[t.name]!;
      if (v.buffer !== exact[k]!.buffer || v.byteOffset !== exact[k]!.byteOffset) throw new PropertyViolation(`${a.msg.type}.${t.name} was copied on decode`);
    }
    k += t.kind === 'utf8list' ? (a.msg as unknown as Record<string, unknown[]>)[t.name]!.length : 1;
  }
  return null;
}

/** Deep equality of a decoded message with the input it was encoded from. */
export function sameMessage(decoded: Message, input: MessageInput): boolean {
  const norm = (v: unknown): unknown => (v instanceof Uint8Array ? 'hex:' + hex(v) : Array.isArray(v) ? v.map(norm) : v);
  const d = decoded as unknown as Record<string, unknown>;
  const i = input as unknown as Record<string, unknown>;
  const keys = new Set([...Object.keys(d), ...Object.keys(i)]);
  for (const k of keys) if (JSON.stringify(norm(d[k])) !== JSON.stringify(norm(i[k]))) return false;
  return true;
}
