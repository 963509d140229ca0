/**
 * The JSON form of a message, for people and tools (`grid codec`, test vectors): the seed's
 * field names, each UUID pair as one canonical UUID string, sha256 and raw byte frames as
 * lower-case hex, plus `"type"`. message_type and header_length may be present; they follow
 * from the type, so on the way in they are checked, never trusted.
 */
import { EncodeError } from './errors';
import { layoutOf } from './layout';
import { MESSAGES, MessageName } from './schema';
import { Message, MessageInput } from './types';

const HEX_RE = /^(?:[0-9a-fA-F]{2})*$/;

function isName(t: unknown): t is MessageName {
  return typeof t === 'string' && Object.prototype.hasOwnProperty.call(MESSAGES, t);
}

/** Plain JSON object of a decoded message; `header` adds message_type and header_length. */
export function messageToJson(m: Message, opts: { header?: boolean } = {}): Record<string, unknown> {
  const l = layoutOf(m.type);
  const src = m as unknown as Record<string, unknown>;
  const out: Record<string, unknown> = { type: m.type };
  for (const f of l.fields) {
    if (f.name === 'message_type' || f.name === 'header_length') {
      if (opts.header) out[f.name] = f.name === 'message_type' ? l.def.id : l.size;
      continue;
    }
    const v = src[f.name];
    out[f.name] = f.kind === 'sha256' ? Buffer.from(v as Uint8Array).toString('hex') : v;
  }
  for (const t of l.def.tail) {
    if (!(t.name in src)) continue; // decodeStruct leaves the tail out
    const v = src[t.name];
    out[t.name] = t.kind === 'bytes' ? Buffer.from(v as Uint8Array).toString('hex') : v;
  }
  return out;
}

export interface FromJsonOptions {
  /** Refuse trailing-frame members: the caller encodes frame 0 only. */
  readonly structOnly?: boolean;
}

/**
 * The encoder's input from a JSON object of `type`. Throws EncodeError (UNKNOWN_TYPE,
 * BAD_FIELD) naming the member at fault; value ranges are left to encode()/encodeStruct().
 */
export function messageFromJson(type: unknown, json: unknown, opts: FromJsonOptions = {}): MessageInput {
  if (!isName(type)) throw new EncodeError('UNKNOWN_TYPE', `no message type named ${JSON.stringify(type)} (see 'grid codec types')`);
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new EncodeError('BAD_FIELD', `${type}: expected one JSON object, got ${Array.isArray(json) ? 'an array' : json === null ? 'null' : typeof json}`);
  }
  const l = layoutOf(type);
  const src = json as Record<string, unknown>;
  const out: Record<string, unknown> = { type };
  const known = new Set<string>(['type']);
  if (src.type !== undefined && src.type !== type) throw new EncodeError('BAD_FIELD', `${type}.type is ${JSON.stringify(src.type)}; it must be ${JSON.stringify(type)} or left out`);
  for (const f of l.fields) {
    known.add(f.name);
    const v = src[f.name];
    if (f.name === 'message_type' || f.name === 'header_length') {
      const want = f.name === 'message_type' ? l.def.id : l.size;
      if (v !== undefined && v !== want) throw new EncodeError('BAD_FIELD', `${type}.${f.name} must be ${want} or left out (it is filled in), got ${JSON.stringify(v)}`);
      continue;
    }
    if (v === undefined) continue; // the encoder reports MISSING_FIELD, or derives a count
    out[f.name] = f.kind === 'sha256' ? hexField(type, f.name, v, 32) : v;
  }
  for (const t of l.def.tail) {
    known.add(t.name);
    const v = src[t.name];
    if (v === undefined) continue;
    if (opts.structOnly) throw new EncodeError('BAD_FIELD', `${type}.${t.name} is a trailing frame; only frame 0 (the struct) is encoded here, so leave it out`);
    out[t.name] = t.kind === 'bytes' ? hexField(type, t.name, v) : v;
  }
  for (const k of Object.keys(src)) {
    if (!known.has(k)) throw new EncodeError('BAD_FIELD', `${type} has no field ${JSON.stringify(k)} (fields: ${[...known].join(', ')})`);
  }
  return out as unknown as MessageInput;
}

function hexField(type: string, name: string, v: unknown, len?: number): Buffer {
  const want = len === undefined ? 'a hex string' : `${len * 2} hex digits (${len} bytes)`;
  if (typeof v !== 'string' || !HEX_RE.test(v) || (len !== undefined && v.length !== len * 2)) {
    throw new EncodeError('BAD_FIELD', `${type}.${name} must be ${want}, got ${typeof v === 'string' ? JSON.stringify(v.length > 80 ? v.slice(0, 77) + '...' : v) : typeof v}`);
  }
  return Buffer.from(v, 'hex');
}
