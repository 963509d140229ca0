/**
 * Struct layout derived from the schema, by the C rules for x86-64 and AArch64 (LP64):
 * natural alignment, size rounded up to the struct's alignment.
 */
import { FieldDef, FieldKind, GENERIC_HEADER, MESSAGES, MessageDef, MessageName } from './schema';

export interface PlacedField extends FieldDef {
  readonly offset: number;
  readonly size: number;
  readonly align: number;
  /** true for the generic header's fields */
  readonly header: boolean;
}

export interface Layout {
  readonly name: MessageName;
  readonly def: MessageDef;
  readonly size: number;
  readonly align: number;
  readonly fields: readonly PlacedField[];
  /** [offset, length] of every padding run, in order */
  readonly padding: readonly (readonly [number, number])[];
}

export const KIND_SIZE: Readonly<Record<FieldKind, { size: number; align: number }>> = {
  u8: { size: 1, align: 1 },
  u16: { size: 2, align: 2 },
  u32: { size: 4, align: 4 },
  i32: { size: 4, align: 4 },
  u64: { size: 8, align: 8 },
  uuid: { size: 16, align: 8 },
  sha256: { size: 32, align: 1 },
};

const alignUp = (n: number, a: number): number => Math.ceil(n / a) * a;

function place(fields: readonly FieldDef[], start: number, header: boolean, out: PlacedField[], pads: [number, number][]): number {
  let off = start;
  for (const fd of fields) {
    const { size, align } = KIND_SIZE[fd.kind];
    const at = alignUp(off, align);
    if (at > off) pads.push([off, at - off]);
    out.push({ ...fd, offset: at, size, align, header });
    off = at + size;
  }
  return off;
}

function computeLayout(name: MessageName, def: MessageDef): Layout {
  const fields: PlacedField[] = [];
  const padding: [number, number][] = [];
  // The header is itself a struct embedded first: its own size is padded to its alignment.
  const headerEnd = place(GENERIC_HEADER, 0, true, fields, padding);
  const headerSize = alignUp(headerEnd, 8);
  if (headerSize > headerEnd) padding.push([headerEnd, headerSize - headerEnd]);
  const end = place(def.fields, headerSize, false, fields, padding);
  const align = Math.max(8, ...def.fields.map((x) => KIND_SIZE[x.kind].align));
  const size = alignUp(end, align);
  if (size > end) padding.push([end, size - end]);
  return { name, def, size, align, fields, padding };
}

/** Size of struct generic_message in bytes (32). */
export const GENERIC_HEADER_SIZE = computeLayout('generic_message', MESSAGES.generic_message).size;

export const LAYOUTS: ReadonlyMap<MessageName, Layout> = new Map(
  (Object.keys(MESSAGES) as MessageName[]).map((n) => [n, computeLayout(n, MESSAGES[n])]),
);

/** Layout by message_type number; undefined for an unknown type. */
export const LAYOUT_BY_ID: readonly (Layout | undefined)[] = (() => {
  const byId: (Layout | undefined)[] = new Array(256).fill(undefined);
  for (const l of LAYOUTS.values()) {
    if (l.def.id < 1 || l.def.id > 255) throw new Error(`message ${l.name}: id ${l.def.id} must fit a u8 and not be 0`);
    if (byId[l.def.id]) throw new Error(`message ids collide: ${l.name} and ${byId[l.def.id]!.name}`);
    byId[l.def.id] = l;
  }
  return byId;
})();

export function layoutOf(name: MessageName): Layout {
  const l = LAYOUTS.get(name);
  if (!l) throw new Error(`no message named ${name}`);
  return l;
}
