/**
 * 128-bit UUIDs on the wire: two little-endian u64 halves, `upper` (the UUID's most
 * significant 64 bits, i.e. its first 8 bytes in canonical order) then `lower`.
 * In TypeScript a UUID is its canonical lower-case string.
 */
import { createHash, randomUUID } from 'node:crypto';

export const NIL_UUID = '00000000-0000-0000-0000-000000000000';

/** char code of the high / low hex digit of each byte value */
const HEX_HI = new Uint8Array(256);
const HEX_LO = new Uint8Array(256);
for (let i = 0; i < 256; i++) {
  HEX_HI[i] = '0123456789abcdef'.charCodeAt(i >> 4);
  HEX_LO[i] = '0123456789abcdef'.charCodeAt(i & 15);
}
/**
 * Two ASCII char codes (a << 7 | b) -> the byte they spell in hex, or BAD_PAIR. One lookup per
 * byte instead of two nibble lookups and a shift: ~15% faster writeUuid (bench/codec.ts); 32 KiB.
 */
const BAD_PAIR = 0x100;
const HEX_PAIR = (() => {
  const t = new Uint16Array(1 << 14).fill(BAD_PAIR);
  const nib = (c: number): number => (c >= 48 && c <= 57 ? c - 48 : c >= 97 && c <= 102 ? c - 87 : c >= 65 && c <= 70 ? c - 55 : -1);
  for (let x = 0; x < 128; x++) for (let y = 0; y < 128; y++) if (nib(x) >= 0 && nib(y) >= 0) t[(x << 7) | y] = (nib(x) << 4) | nib(y);
  return t;
})();

const UUID_RE = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;

export function isUuid(s: unknown): s is string {
  return typeof s === 'string' && s.length === 36 && UUID_RE.test(s);
}

/**
 * Writes `s` at `off` as upper then lower u64, little-endian. Returns false (and writes
 * nothing useful) when `s` is not a canonical UUID, so the caller can raise its own error.
 * Straight-line code with one validity check at the end: this runs for every UUID field of
 * every message sent, and the unrolled form measured ~25% faster than a loop (bench/codec.ts).
 * Byte i of the UUID: bytes 0..7 are `upper`, stored LE, so UUID byte 0 lands at off + 7.
 * Its cost is the 36 charCodeAt calls (~1 ns each: V8 re-dispatches on the string's
 * representation per call); per-char nibble tables measured the same, and native copies
 * (latin1Write, TextEncoder.encodeInto) cost more than the whole function to cross into C++.
 */
export function writeUuid(buf: Uint8Array, off: number, s: string): boolean {
  if (typeof s !== 'string' || s.length !== 36 || s.charCodeAt(8) !== 45 || s.charCodeAt(13) !== 45 || s.charCodeAt(18) !== 45 || s.charCodeAt(23) !== 45) {
    return false;
  }
  const T = HEX_PAIR;
  let a: number, b: number, x: number;
  let bad = 0; // collects BAD_PAIR
  let wide = 0; // collects every char code: > 127 means non-ASCII (the table only sees 7 bits)
  a = s.charCodeAt(0); b = s.charCodeAt(1); wide |= a | b; x = T[(a << 7) | b]!; bad |= x; buf[off + 7] = x;
  a = s.charCodeAt(2); b = s.charCodeAt(3); wide |= a | b; x = T[(a << 7) | b]!; bad |= x; buf[off + 6] = x;
  a = s.charCodeAt(4); b = s.charCodeAt(5); wide |= a | b; x = T[(a << 7) | b]!; bad |= x; buf[off + 5] = x;
  a = s.charCodeAt(6); b = s.charCodeAt(7); wide |= a | b; x = T[(a << 7) | b]!; bad |= x; buf[off + 4] = x;
  a = s.charCodeAt(9); b = s.charCodeAt(10); wide |= a | b; x = T[(a << 7) | b]!; bad |= x; buf[off + 3] = x;
  a = s.charCodeAt(11); b = s.charCodeAt(12); wide |= a | b; x = T[(a << 7) | b]!; bad |= x; buf[off + 2] = x;
  a = s.charCodeAt(14); b = s.charCodeAt(15); wide |= a | b; x = T[(a << 7) | b]!; bad |= x; buf[off + 1] = x;
  a = s.charCodeAt(16); b = s.charCodeAt(17); wide |= a | b; x = T[(a << 7) | b]!; bad |= x; buf[off + 0] = x;
  a = s.charCodeAt(19); b = s.charCodeAt(20); wide |= a | b; x = T[(a << 7) | b]!; bad |= x; buf[off + 15] = x;
  a = s.charCodeAt(21); b = s.charCodeAt(22); wide |= a | b; x = T[(a << 7) | b]!; bad |= x; buf[off + 14] = x;
  a = s.charCodeAt(24); b = s.charCodeAt(25); wide |= a | b; x = T[(a << 7) | b]!; bad |= x; buf[off + 13] = x;
  a = s.charCodeAt(26); b = s.charCodeAt(27); wide |= a | b; x = T[(a << 7) | b]!; bad |= x; buf[off + 12] = x;
  a = s.charCodeAt(28); b = s.charCodeAt(29); wide |= a | b; x = T[(a << 7) | b]!; bad |= x; buf[off + 11] = x;
  a = s.charCodeAt(30); b = s.charCodeAt(31); wide |= a | b; x = T[(a << 7) | b]!; bad |= x; buf[off + 10] = x;
  a = s.charCodeAt(32); b = s.charCodeAt(33); wide |= a | b; x = T[(a << 7) | b]!; bad |= x; buf[off + 9] = x;
  a = s.charCodeAt(34); b = s.charCodeAt(35); wide |= a | b; x = T[(a << 7) | b]!; bad |= x; buf[off + 8] = x;
  return (bad & BAD_PAIR) === 0 && wide < 128;
}

const fcc = String.fromCharCode;

/**
 * The canonical lower-case string of the UUID at `off`. One String.fromCharCode call makes a
 * flat one-byte string: several times faster than joining 16 pieces, whose rope V8 must
 * flatten again when the string is first used (bench/codec.ts measured it). Also measured slower
 * on Node 20: a scratch Buffer + latin1Slice/toString('latin1') (~30 ns to cross into C++),
 * fromCharCode.apply on a scratch Uint16Array, a 256-entry byte-pair table, arithmetic hex
 * digits. The builtin's per-character cost (~0.65 ns) is now most of this function.
 */
export function readUuid(buf: Uint8Array, off: number): string {
  const H = HEX_HI;
  const L = HEX_LO;
  const a = buf[off + 7]!, b = buf[off + 6]!, c = buf[off + 5]!, d = buf[off + 4]!;
  const e = buf[off + 3]!, f = buf[off + 2]!, g = buf[off + 1]!, h = buf[off]!;
  const i = buf[off + 15]!, j = buf[off + 14]!, k = buf[off + 13]!, l = buf[off + 12]!;
  const m = buf[off + 11]!, n = buf[off + 10]!, o = buf[off + 9]!, p = buf[off + 8]!;
  return fcc(
    H[a]!, L[a]!, H[b]!, L[b]!, H[c]!, L[c]!, H[d]!, L[d]!, 45,
    H[e]!, L[e]!, H[f]!, L[f]!, 45,
    H[g]!, L[g]!, H[h]!, L[h]!, 45,
    H[i]!, L[i]!, H[j]!, L[j]!, 45,
    H[k]!, L[k]!, H[l]!, L[l]!, H[m]!, L[m]!, H[n]!, L[n]!, H[o]!, L[o]!, H[p]!, L[p]!,
  );
}

/** The UUID's two halves as unsigned 64-bit integers (for C peers, docs and tests). */
export function uuidHalves(s: string): { upper: bigint; lower: bigint } {
  const hex = s.replace(/-/g, '');
  return { upper: BigInt('0x' + hex.slice(0, 16)), lower: BigInt('0x' + hex.slice(16)) };
}

export function uuidFromHalves(upper: bigint, lower: bigint): string {
  const hex = upper.toString(16).padStart(16, '0') + lower.toString(16).padStart(16, '0');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

export function newUuid(): string {
  return randomUUID();
}

/**
 * The content address of a file: the first 128 bits of its SHA-256, with the UUID version
 * set to 8 ("custom", RFC 9562) and the RFC variant, so the same bytes always get the same id.
 */
export function fileUuidFromSha256(digest: Uint8Array): string {
  if (digest.length !== 32) throw new RangeError('a SHA-256 digest is 32 bytes');
  const b = Buffer.from(digest.subarray(0, 16));
  b[6] = (b[6]! & 0x0f) | 0x80;
  b[8] = (b[8]! & 0x3f) | 0x80;
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

export function sha256(data: Uint8Array): Buffer {
  return createHash('sha256').update(data).digest();
}
