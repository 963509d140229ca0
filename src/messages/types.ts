/** TypeScript types of every message, derived from the schema table (no second listing). */
import { FieldKind, MESSAGES, MessageName, TailKind } from './schema';

type FieldValue<K extends FieldKind> = K extends 'uuid' ? string : K extends 'sha256' ? Buffer : number;
type TailValue<K extends TailKind> = K extends 'bytes' ? Buffer : K extends 'utf8' ? string : string[];

type Def<N extends MessageName> = (typeof MESSAGES)[N];
type FieldsOf<N extends MessageName> = {
  -readonly [F in Def<N>['fields'][number] as F['name']]: FieldValue<F['kind']>;
};
type TailOf<N extends MessageName> = {
  -readonly [T in Def<N>['tail'][number] as T['name']]: TailValue<T['kind']>;
};
/** Struct fields whose value follows from a trailing frame (a length or a count). */
type DerivedOf<N extends MessageName> = Def<N>['tail'][number] extends infer T
  ? T extends { lengthField: infer L extends string }
    ? L
    : T extends { countField: infer C extends string }
      ? C
      : never
  : never;

/** A decoded message: `type`, the sender's `node_uuid`, the struct fields and the tail. */
export type MessageOf<N extends MessageName> = { type: N; node_uuid: string } & FieldsOf<N> & TailOf<N>;
export type Message = { [N in MessageName]: MessageOf<N> }[MessageName];

/** What encode() takes: as MessageOf, but length and count fields may be left out. */
export type MessageInput<N extends MessageName = MessageName> = {
  [M in N]: Omit<MessageOf<M>, DerivedOf<M>> & Partial<Pick<MessageOf<M>, DerivedOf<M> & keyof MessageOf<M>>>;
}[N];
