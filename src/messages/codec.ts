/**
 * Encode and decode of every message. The per-type functions are generated once, at module
 * load, from the schema table (layout.ts), so the hot path is straight-line code with no
 * per-field dispatch. A message is frames: frame 0 is the struct (exactly header_length
 * bytes); trailing frames carry variable-length data and are passed through without copy.
 *
 * decode() only ever throws DecodeError. It checks every length against the frame before
 * reading and every count against the frames present before allocating.
 */
import { Buffer, isUtf8 } from 'node:buffer';
import { DecodeError, EncodeError } from './errors';
import { GENERIC_HEADER_SIZE, LAYOUT_BY_ID, LAYOUTS, Layout, PlacedField } from './layout';
import { MAX_FRAMES, MAX_MESSAGE_BYTES, MessageName, TailDef } from './schema';
import { Message, MessageInput, MessageOf } from './types';
import { readUuid, writeUuid } from './uuid';

const TWO32 = 4294967296;

/**
 * Little-endian u32 by plain byte access. The generated code inlines the same expressions
 * instead of Buffer.readUInt32LE/writeUInt32LE, whose argument checks cost more than the read
 * (bench/codec.ts); every offset is a constant already checked against the frame's length.
 */
function u32At(b: Uint8Array, off: number): number {
  return (b[off]! | (b[off + 1]! << 8) | (b[off + 2]! << 16)) + b[off + 3]! * 16777216;
}

/** Source text reading the u32 at constant offset `off` of `b` (as u32At does). */
function u32Expr(off: number): string {
  return `((b[${off}] | (b[${off + 1}] << 8) | (b[${off + 2}] << 16)) + b[${off + 3}] * 16777216)`;
}

/** Source text storing the u32 (or i32) expression `v` at constant offset `off` of `b`. */
function put32(off: number, v: string): string {
  return `b[${off}] = ${v}; b[${off + 1}] = ${v} >>> 8; b[${off + 2}] = ${v} >>> 16; b[${off + 3}] = ${v} >>> 24;`;
}

// ---- helpers the generated code calls ---------------------------------------------------

const H = {
  badField(type: string, name: string, value: unknown, want: string): never {
    let shown: string;
    try {
      shown = typeof value === 'string' ? JSON.stringify(value) : Buffer.isBuffer(value) ? `<${value.length} bytes>` : String(value);
    } catch {
      shown = typeof value;
    }
    throw new EncodeError(value === undefined ? 'MISSING_FIELD' : 'BAD_FIELD', `${type}.${name} must be ${want}, got ${shown}`);
  },
  badUuid(type: string, name: string, v: unknown): never {
    return H.badField(type, name, v, 'a UUID like 123e4567-e89b-42d3-a456-426614174000');
  },
  putUuid(b: Buffer, off: number, v: unknown, type: string, name: string): void {
    if (!writeUuid(b, off, v as string)) H.badUuid(type, name, v);
  },
  /** cold path of the inline u64 read in generated decode code */
  tooBig(type: number, name: string): never {
    throw new DecodeError('VALUE_OUT_OF_RANGE', `${name} is above 2^53-1`, type);
  },
  /** cold path of the inline enum check in generated decode code */
  badEnum(v: number, allowed: readonly number[], type: number, name: string): never {
    throw new DecodeError('VALUE_OUT_OF_RANGE', `${name} = ${v} is not one of ${allowed.join(', ')}`, type);
  },
  nz(type: number, off: number): never {
    throw new DecodeError('NONZERO_PADDING', `padding byte at offset ${off} is not zero`, type);
  },
  utf8(fr: Buffer, max: number, type: number, name: string): string {
    if (fr.length > max) throw new DecodeError('TOO_LARGE', `${name} is ${fr.length} bytes, the limit is ${max}`, type);
    if (!isUtf8(fr)) throw new DecodeError('BAD_UTF8', `${name} is not valid UTF-8`, type);
    return fr.toString('utf8');
  },
  utf8Enc(s: unknown, max: number, type: string, name: string): Buffer {
    if (typeof s !== 'string') H.badField(type, name, s, 'a string');
    const b = Buffer.from(s as string, 'utf8');
    if (b.length > max) H.badField(type, name, `<${b.length} bytes>`, `at most ${max} bytes of UTF-8`);
    return b;
  },
  uuidList(fr: Buffer, n: number, type: number, name: string): string[] {
    if (fr.length !== n * 16) throw new DecodeError('LENGTH_MISMATCH', `${name} is ${fr.length} bytes, expected ${n} UUIDs (${n * 16} bytes)`, type);
    const out = new Array<string>(n);
    for (let i = 0; i < n; i++) out[i] = readUuid(fr, i * 16);
    return out;
  },
  uuidListEnc(v: unknown, type: string, name: string): Buffer {
    if (!Array.isArray(v)) H.badField(type, name, v, 'an array of UUIDs');
    const a = v as unknown[];
    const b = Buffer.allocUnsafe(a.length * 16);
    for (let i = 0; i < a.length; i++) H.putUuid(b, i * 16, a[i], type, `${name}[${i}]`);
    return b;
  },
};

// ---- code generation -----------------------------------------------------------------------

function fieldRange(f: PlacedField): [number, number, string] {
  switch (f.kind) {
    case 'u8':
      return [0, 255, 'an integer 0..255'];
    case 'u16':
      return [0, 65535, 'an integer 0..65535'];
    case 'u32':
      return [0, TWO32 - 1, 'an integer 0..4294967295'];
    case 'i32':
      return [-(2 ** 31), 2 ** 31 - 1, 'an integer -2147483648..2147483647'];
    default:
      return [0, Number.MAX_SAFE_INTEGER, 'an integer 0..2^53-1'];
  }
}

function derivedFrom(l: Layout, field: string): TailDef | undefined {
  return l.def.tail.find((t) => t.lengthField === field || t.countField === field);
}

function genEncodeStruct(l: Layout): string {
  const T = JSON.stringify(l.name);
  const lines: string[] = [`const b = Buffer.allocUnsafe(${l.size});`];
  for (const [off, len] of l.padding) lines.push(len > 8 ? `b.fill(0, ${off}, ${off + len});` : Array.from({ length: len }, (_, i) => `b[${off + i}] = 0;`).join(' '));
  for (const f of l.fields) {
    const N = JSON.stringify(f.name);
    if (f.name === 'message_type') {
      lines.push(`b[${f.offset}] = ${l.def.id};`);
      continue;
    }
    if (f.name === 'header_length') {
      lines.push(`${put32(f.offset, String(l.size))} ${put32(f.offset + 4, '0')}`);
      continue;
    }
    const tail = derivedFrom(l, f.name);
    let get = `m[${N}]`;
    if (tail) get = `(m[${N}] === undefined && m[${JSON.stringify(tail.name)}] != null ? m[${JSON.stringify(tail.name)}].length : m[${N}])`;
    lines.push(`v = ${get};`);
    if (f.kind === 'uuid') {
      // writeUuid directly, not through H: one call level fewer per UUID field
      lines.push(`if (!writeUuid(b, ${f.offset}, v)) H.badUuid(${T}, ${N}, v);`);
      continue;
    }
    if (f.kind === 'sha256') {
      lines.push(`if (!(v instanceof Uint8Array) || v.length !== 32) H.badField(${T}, ${N}, v, '32 bytes (a SHA-256 digest)');`);
      lines.push(`b.set(v, ${f.offset});`);
      continue;
    }
    const [lo, hi, want] = fieldRange(f);
    lines.push(`if (typeof v !== 'number' || !(v >= ${lo} && v <= ${hi}) || Math.floor(v) !== v) H.badField(${T}, ${N}, v, ${JSON.stringify(want)});`);
    if (f.enum) {
      const vals = Object.values(f.enum);
      lines.push(`if (${vals.map((x) => `v !== ${x}`).join(' && ')}) H.badField(${T}, ${N}, v, ${JSON.stringify('one of ' + Object.entries(f.enum).map(([k, x]) => `${x} (${k})`).join(', '))});`);
    }
    switch (f.kind) {
      case 'u8':
        lines.push(`b[${f.offset}] = v;`);
        break;
      case 'u16':
        lines.push(`b[${f.offset}] = v & 255; b[${f.offset + 1}] = v >>> 8;`);
        break;
      case 'u32':
      case 'i32': // stores into a Uint8Array keep the low 8 bits, so negatives come out right
        lines.push(put32(f.offset, 'v'));
        break;
      case 'u64':
        lines.push(`lo = v >>> 0; ${put32(f.offset, 'lo')} lo = (v - lo) / ${TWO32}; ${put32(f.offset + 4, 'lo')}`);
        break;
    }
  }
  lines.push('return b;');
  return `return function encodeStruct_${l.name}(m) { let v, lo;\n${lines.join('\n')}\n};`;
}

function genEncodeTail(l: Layout): string {
  const T = JSON.stringify(l.name);
  const lines: string[] = ['const out = [b0]; let v;'];
  for (const t of l.def.tail) {
    const N = JSON.stringify(t.name);
    lines.push(`v = m[${N}];`);
    switch (t.kind) {
      case 'bytes': {
        const lf = l.fields.find((x) => x.name === t.lengthField)!;
        lines.push(`if (!(v instanceof Uint8Array)) H.badField(${T}, ${N}, v, 'bytes (a Buffer)');`);
        lines.push(`if (m[${JSON.stringify(lf.name)}] !== undefined && m[${JSON.stringify(lf.name)}] !== v.length) H.badField(${T}, ${JSON.stringify(lf.name)}, m[${JSON.stringify(lf.name)}], 'the length of ${t.name} (' + v.length + ')');`);
        lines.push(`out.push(Buffer.isBuffer(v) ? v : Buffer.from(v.buffer, v.byteOffset, v.byteLength));`);
        break;
      }
      case 'utf8':
        lines.push(`out.push(H.utf8Enc(v, ${t.maxBytes}, ${T}, ${N}));`);
        break;
      case 'utf8list': {
        const cf = JSON.stringify(t.countField);
        lines.push(`if (!Array.isArray(v)) H.badField(${T}, ${N}, v, 'an array of strings');`);
        lines.push(`if (m[${cf}] !== undefined && m[${cf}] !== v.length) H.badField(${T}, ${cf}, m[${cf}], 'the length of ${t.name} (' + v.length + ')');`);
        lines.push(`for (let i = 0; i < v.length; i++) out.push(H.utf8Enc(v[i], ${t.maxBytes}, ${T}, ${N} + '[' + i + ']'));`);
        break;
      }
      case 'uuidlist': {
        const cf = JSON.stringify(t.countField);
        lines.push(`if (Array.isArray(v) && m[${cf}] !== undefined && m[${cf}] !== v.length) H.badField(${T}, ${cf}, m[${cf}], 'the length of ${t.name} (' + v.length + ')');`);
        lines.push(`out.push(H.uuidListEnc(v, ${T}, ${N}));`);
        break;
      }
    }
  }
  lines.push('return out;');
  return `return function encodeTail_${l.name}(m, b0) {\n${lines.join('\n')}\n};`;
}

function genDecode(l: Layout): string {
  const ID = l.def.id;
  const lines: string[] = [];
  // padding: one OR per run, checked before any field is read
  for (const [off, len] of l.padding) {
    const bytes = Array.from({ length: len }, (_, i) => `b[${off + i}]`).join(' | ');
    lines.push(`if (${bytes}) H.nz(${ID}, ${off});`);
  }
  const props: string[] = [`type: ${JSON.stringify(l.name)}`];
  for (const f of l.fields) {
    if (f.name === 'message_type' || f.name === 'header_length') continue;
    const N = JSON.stringify(f.name);
    let expr: string;
    switch (f.kind) {
      case 'u8':
        expr = `b[${f.offset}]`;
        break;
      case 'u16':
        expr = `(b[${f.offset}] | (b[${f.offset + 1}] << 8))`;
        break;
      case 'u32':
        expr = u32Expr(f.offset);
        break;
      case 'i32':
        expr = `(b[${f.offset}] | (b[${f.offset + 1}] << 8) | (b[${f.offset + 2}] << 16) | (b[${f.offset + 3}] << 24))`;
        break;
      case 'u64':
        // inline, like u32: the high word is checked here and the error built only when it fails
        lines.push(`const h_${f.name} = ${u32Expr(f.offset + 4)};`, `if (h_${f.name} > 0x1fffff) H.tooBig(${ID}, ${N});`);
        expr = `(h_${f.name} * ${TWO32} + ${u32Expr(f.offset)})`;
        break;
      case 'uuid':
        expr = `readUuid(b, ${f.offset})`;
        break;
      case 'sha256':
        expr = `Buffer.from(b.subarray(${f.offset}, ${f.offset + 32}))`;
        break;
    }
    lines.push(`const f_${f.name} = ${expr};`);
    if (f.enum) {
      // one comparison per allowed value instead of a Set lookup (enums have a handful of values)
      const vals = Object.values(f.enum);
      lines.push(`if (${vals.map((x) => `f_${f.name} !== ${x}`).join(' && ')}) H.badEnum(f_${f.name}, ${JSON.stringify(vals)}, ${ID}, ${N});`);
    }
    props.push(`${N}: f_${f.name}`);
  }
  // trailing frames: count them from the struct first, then check each against its field
  const fixed = l.def.tail.filter((t) => t.kind !== 'utf8list').length;
  const lists = l.def.tail.filter((t) => t.kind === 'utf8list').map((t) => `f_${t.countField}`);
  lines.push('if (frames === null) return {' + props.join(', ') + '};');
  lines.push(`const want = 1 + ${fixed}${lists.map((x) => ' + ' + x).join('')};`);
  lines.push(`if (frames.length !== want) throw new DecodeError('BAD_FRAME_COUNT', 'expected ' + want + ' frames, got ' + frames.length, ${ID});`);
  lines.push('let k = 1;');
  for (const t of l.def.tail) {
    const N = JSON.stringify(t.name);
    switch (t.kind) {
      case 'bytes':
        lines.push(`const t_${t.name} = frames[k++];`);
        lines.push(`if (t_${t.name}.length !== f_${t.lengthField}) throw new DecodeError('LENGTH_MISMATCH', ${N} + ' is ' + t_${t.name}.length + ' bytes but ${t.lengthField} says ' + f_${t.lengthField}, ${ID});`);
        break;
      case 'utf8':
        lines.push(`const t_${t.name} = H.utf8(frames[k++], ${t.maxBytes}, ${ID}, ${N});`);
        break;
      case 'utf8list':
        lines.push(`const t_${t.name} = new Array(f_${t.countField});`);
        lines.push(`for (let i = 0; i < f_${t.countField}; i++) t_${t.name}[i] = H.utf8(frames[k++], ${t.maxBytes}, ${ID}, ${N});`);
        break;
      case 'uuidlist':
        lines.push(`const t_${t.name} = H.uuidList(frames[k++], f_${t.countField}, ${ID}, ${N});`);
        break;
    }
    props.push(`${N}: t_${t.name}`);
  }
  lines.push('return {' + props.join(', ') + '};');
  return `return function decode_${l.name}(b, frames) {\n${lines.join('\n')}\n};`;
}

interface Compiled {
  readonly layout: Layout;
  readonly encodeStruct: (m: unknown) => Buffer;
  readonly encodeTail: (m: unknown, b0: Buffer) => Buffer[];
  readonly decode: (b: Buffer, frames: Buffer[] | null) => Message;
}

function compile(l: Layout): Compiled {
  // Buffer is passed in: the global `Buffer` is an accessor on globalThis, which optimized code
  // reads through a LoadGlobalIC call on every encode (seen in a perf profile of bench/codec.ts).
  const mk = (src: string) => new Function('H', 'DecodeError', 'readUuid', 'writeUuid', 'Buffer', src)(H, DecodeError, readUuid, writeUuid, Buffer);
  return {
    layout: l,
    encodeStruct: mk(genEncodeStruct(l)),
    encodeTail: mk(genEncodeTail(l)),
    decode: mk(genDecode(l)),
  };
}

const COMPILED = new Map<MessageName, Compiled>([...LAYOUTS].map(([n, l]) => [n, compile(l)]));
const COMPILED_BY_ID: (Compiled | undefined)[] = LAYOUT_BY_ID.map((l) => (l ? COMPILED.get(l.name) : undefined));

function compiledFor(type: unknown): Compiled {
  const c = typeof type === 'string' ? COMPILED.get(type as MessageName) : undefined;
  if (!c) throw new EncodeError('UNKNOWN_TYPE', `no message type named ${JSON.stringify(type)} (see 'grid codec types')`);
  return c;
}

// ---- public API --------------------------------------------------------------------------------

/** Encodes a message into its frames: [struct, ...trailing frames]. Throws EncodeError. */
export function encode<N extends MessageName>(m: MessageInput<N>): Buffer[] {
  const c = compiledFor((m as unknown as { type: unknown }).type);
  const frames = c.encodeTail(m, c.encodeStruct(m));
  if (frames.length > MAX_FRAMES) throw new EncodeError('TOO_LARGE', `${c.layout.name} would have ${frames.length} frames; the limit is ${MAX_FRAMES}`);
  let total = 0;
  for (const fr of frames) total += fr.length;
  if (total > MAX_MESSAGE_BYTES) throw new EncodeError('TOO_LARGE', `${c.layout.name} would be ${total} bytes; the limit is ${MAX_MESSAGE_BYTES}`);
  return frames;
}

/** Encodes frame 0 only (the struct). Length and count fields must be given. */
export function encodeStruct<N extends MessageName>(m: MessageInput<N>): Buffer {
  return compiledFor((m as unknown as { type: unknown }).type).encodeStruct(m);
}

function checkHeader(f0: Buffer | undefined): Compiled {
  if (!f0) throw new DecodeError('NO_FRAMES', 'the message has no frames');
  if (f0.length < GENERIC_HEADER_SIZE) throw new DecodeError('TRUNCATED', `frame 0 is ${f0.length} bytes, shorter than the ${GENERIC_HEADER_SIZE}-byte generic header`);
  const type = f0[0]!;
  const c = COMPILED_BY_ID[type];
  if (!c) throw new DecodeError('UNKNOWN_TYPE', `message_type ${type} is not a known message type`, type);
  const lo = u32At(f0, 24);
  const hi = u32At(f0, 28);
  const size = c.layout.size;
  if (hi !== 0 || lo !== size) throw new DecodeError('BAD_HEADER_LENGTH', `header_length is ${hi * TWO32 + lo}, but sizeof(${c.layout.name}) is ${size}`, type);
  if (f0.length < size) throw new DecodeError('TRUNCATED', `frame 0 is ${f0.length} bytes, header_length says ${size}`, type);
  if (f0.length > size) throw new DecodeError('TRAILING_BYTES', `frame 0 is ${f0.length} bytes, ${f0.length - size} more than header_length (${size})`, type);
  return c;
}

/**
 * Decodes a whole message. Trailing frames are returned as given (no copy). Throws only
 * DecodeError, whatever the bytes.
 */
export function decode(frames: Buffer[]): Message {
  if (frames.length > MAX_FRAMES) throw new DecodeError('TOO_LARGE', `the message has ${frames.length} frames; the limit is ${MAX_FRAMES}`);
  let total = 0;
  for (const fr of frames) total += fr.length;
  if (total > MAX_MESSAGE_BYTES) throw new DecodeError('TOO_LARGE', `the message is ${total} bytes; the limit is ${MAX_MESSAGE_BYTES}`);
  const c = checkHeader(frames[0]);
  return c.decode(frames[0]!, frames);
}

/** Decodes frame 0 only: the struct's fields, without trailing frames. Throws only DecodeError. */
export function decodeStruct(f0: Buffer): Message {
  const c = checkHeader(f0);
  return c.decode(f0, null);
}

/** Narrows a decoded message to one type, or undefined. */
export function as<N extends MessageName>(m: Message, type: N): MessageOf<N> | undefined {
  return m.type === type ? (m as MessageOf<N>) : undefined;
}
