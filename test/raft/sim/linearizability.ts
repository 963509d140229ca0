/**
 * Wing & Gong linearizability checker with Lowe's memoization (the algorithm of porcupine
 * and Knossos' "linear" checker) for a key-value store, checked per key (P-compositionality:
 * a KV history is linearizable iff each key's sub-history is, Herlihy & Wing locality).
 *
 * Model per key: a register, initially null. put(v) sets it; get returns it. An operation
 * without a response (ret = Infinity) may take effect at any point after its invocation or
 * never; for writes that are never observed this is the same as "last".
 */

export interface KvOp {
  client: string;
  kind: 'put' | 'get';
  key: string;
  /** put: the value written; get: the value read (null = absent) */
  value: string | null;
  invoke: number;
  /** Infinity when no response was seen */
  ret: number;
}

export interface CheckResult {
  ok: boolean;
  /** first key whose history is not linearizable */
  badKey?: string;
  ops: number;
}

interface Node {
  op: KvOp | null; // null for the sentinel head
  id: number;
  isCall: boolean;
  match: Node | null; // call -> its return
  prev: Node | null;
  next: Node | null;
}

/** Checks one key's history; `maxStates` bounds the search (throws if exceeded). */
export function checkRegister(ops: KvOp[], maxStates = 2_000_000): boolean {
  // events: calls at invoke, returns at ret; at equal times calls first (treats them as concurrent)
  const events: { t: number; call: boolean; i: number }[] = [];
  ops.forEach((op, i) => {
    events.push({ t: op.invoke, call: true, i });
    events.push({ t: op.ret, call: false, i });
  });
  events.sort((a, b) => a.t - b.t || (a.call === b.call ? a.i - b.i : a.call ? -1 : 1));
  const head: Node = { op: null, id: -1, isCall: false, match: null, prev: null, next: null };
  let tail = head;
  const calls = new Map<number, Node>();
  for (const ev of events) {
    const n: Node = { op: ops[ev.i]!, id: ev.i, isCall: ev.call, match: null, prev: tail, next: null };
    tail.next = n;
    tail = n;
    if (ev.call) calls.set(ev.i, n);
    else calls.get(ev.i)!.match = n;
  }
  const lift = (n: Node): void => {
    n.prev!.next = n.next;
    if (n.next) n.next.prev = n.prev;
    const m = n.match!;
    m.prev!.next = m.next;
    if (m.next) m.next.prev = m.prev;
  };
  const unlift = (n: Node): void => {
    const m = n.match!;
    m.prev!.next = m;
    if (m.next) m.next.prev = m;
    n.prev!.next = n;
    if (n.next) n.next.prev = n;
  };
  const words = Math.ceil(ops.length / 32) || 1;
  const bits = new Uint32Array(words);
  const cache = new Set<string>();
  const stack: { n: Node; state: string | null }[] = [];
  let state: string | null = null;
  let entry = head.next;
  let explored = 0;
  while (head.next !== null) {
    if (entry === null) throw new Error('linearizability: ran off the event list');
    if (entry.isCall) {
      const op = entry.op!;
      let ok: boolean;
      let next: string | null;
      if (op.kind === 'put') {
        ok = true;
        next = op.value;
      } else {
        ok = op.value === state;
        next = state;
      }
      if (ok) {
        bits[entry.id >>> 5]! |= 1 << (entry.id & 31);
        const key = `${bits.join(',')}|${next === null ? '\u0000' : next}`;
        if (!cache.has(key)) {
          if (++explored > maxStates) throw new Error(`linearizability: search exceeded ${maxStates} states`);
          cache.add(key);
          stack.push({ n: entry, state });
          state = next;
          lift(entry);
          entry = head.next;
          continue;
        }
        bits[entry.id >>> 5]! &= ~(1 << (entry.id & 31));
      }
      entry = entry.next;
    } else {
      // a return with its call not yet linearized: backtrack
      const top = stack.pop();
      if (!top) return false;
      state = top.state;
      bits[top.n.id >>> 5]! &= ~(1 << (top.n.id & 31));
      unlift(top.n);
      entry = top.n.next;
    }
  }
  return true;
}

/** Partitions by key and checks each; gets without a response are dropped (no effect). */
export function checkKv(history: KvOp[]): CheckResult {
  const byKey = new Map<string, KvOp[]>();
  for (const op of history) {
    if (op.kind === 'get' && op.ret === Infinity) continue;
    let l = byKey.get(op.key);
    if (!l) byKey.set(op.key, (l = []));
    l.push(op);
  }
  for (const [key, ops] of byKey) if (!checkRegister(ops)) return { ok: false, badKey: key, ops: history.length };
  return { ok: true, ops: history.length };
}
