/**
 * 128-bit UUIDs on the wire: two little-endian u64 halves, `upper` (the UUID's most
 * significant 64 bits, i.e. its first 8 bytes in canonical order) then `lower`.
 * In TypeScript a UUID is its canonical lower-case string.
 */
import { createHash, randomUUID } from 'node:crypto';

export const NIL_UUID = '00000000-0000-0000-0000-000000000000';

const HEX: string[] = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));
/** char code -> nibble value, or -1 */
const NIBBLE = new Int8Array(128).fill(-1);
for (let i = 0; i < 10; i++) NIBBLE[48 + i] = i;
for (let i = 0; i < 6; i++) {
  NIBBLE[65 + i] = 10 + i;
  NIBBLE[97 + i] = 10 + i;
}
/** positions of the 32 hex digits within the 36-character canonical form */
const DIGIT_POS = [0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34];

const UUID_RE = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;

export function isUuid(s: unknown): s is string {
  return typeof s === 'string' && s.length === 36 && UUID_RE.test(s);
}

/**
 * Writes `s` at `off` as upper then lower u64, little-endian. Returns false (and writes
 * nothing useful) when `s` is not a canonical UUID, so the caller can raise its own error.
 */
export function writeUuid(buf: Uint8Array, off: number, s: string): boolean {
  if (typeof s !== 'string' || s.length !== 36 || s.charCodeAt(8) !== 45 || s.charCodeAt(13) !== 45 || s.charCodeAt(18) !== 45 || s.charCodeAt(23) !== 45) {
    return false;
  }
  for (let i = 0; i < 16; i++) {
    const p = DIGIT_POS[i]!;
    const hi = NIBBLE[s.charCodeAt(p) & 127]!;
    const lo = NIBBLE[s.charCodeAt(p + 1) & 127]!;
    if (hi < 0 || lo < 0 || s.charCodeAt(p) > 127 || s.charCodeAt(p + 1) > 127) return false;
    // byte i of the UUID: bytes 0..7 are `upper`, stored LE, so byte 0 is the last of 8.
    buf[off + (i < 8 ? 7 - i : 23 - i)] = (hi << 4) | lo;
  }
  return true;
}

export function readUuid(buf: Uint8Array, off: number): string {
  const b = (i: number): string => HEX[buf[off + (i < 8 ? 7 - i : 23 - i)]!]!;
  return (
    b(0) + b(1) + b(2) + b(3) + '-' + b(4) + b(5) + '-' + b(6) + b(7) + '-' + b(8) + b(9) + '-' +
    b(10) + b(11) + b(12) + b(13) + b(14) + b(15)
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
