/**
 * Fixed test vectors (test/vectors, written by test/vectors/gen.ts): every message type decodes
 * from its committed hex to the committed values and re-encodes to the same hex; every hostile
 * vector in test/vectors/bad gives its DecodeError code (docs/protocol.md "Decode errors"), and
 * inputs `npm run fuzz` saved (code null) must no longer break the decode properties.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { DECODE_ERROR_CODES, DecodeError, LAYOUTS, decode, decodeStruct, encode, encodeStruct, messageFromJson, messageToJson } from '../../src/messages';
import { checkDecodeSafety } from '../fuzz/generators';
import type { BadVector, VectorCase } from '../vectors/gen';

const DIR = path.resolve(__dirname, '../../../test/vectors');
const read = <T>(file: string): T => JSON.parse(readFileSync(file, 'utf8')) as T;
const fromHex = (frames: string[]) => frames.map((h) => Buffer.from(h, 'hex'));

describe('test vectors (test/vectors)', () => {
  for (const l of LAYOUTS.values()) {
    describe(l.name, () => {
      const file = path.join(DIR, `${l.name}.json`);
      it('has a vector file (npx tsc -p . && node dist/test/vectors/gen.js writes it)', () => {
        const v = read<{ type: string; id: number; size: number; cases: VectorCase[] }>(file);
        assert.equal(v.type, l.name);
        assert.equal(v.id, l.def.id, 'registry numbers never change');
        assert.equal(v.size, l.size, 'a struct never changes size');
        assert.ok(v.cases.length >= 2);
      });
      it('decodes each vector to its values and re-encodes to the same hex', () => {
        const v = read<{ cases: VectorCase[] }>(file);
        for (const c of v.cases) {
          const frames = fromHex(c.frames);
          const m = decode(frames);
          assert.deepEqual(messageToJson(m, { header: true }), c.value, `${l.name}/${c.name}: decoded values`);
          assert.deepEqual(encode(messageFromJson(l.name, c.value)).map((f) => f.toString('hex')), c.frames, `${l.name}/${c.name}: re-encoded from the JSON values`);
          assert.equal(encodeStruct(messageFromJson(l.name, c.value)).toString('hex'), c.frames[0], `${l.name}/${c.name}: frame 0 alone`);
          assert.deepEqual(messageToJson(decodeStruct(frames[0]!), { header: true }), Object.fromEntries(Object.entries(c.value).filter(([k]) => !l.def.tail.some((t) => t.name === k))));
        }
      });
    });
  }

  describe('hostile vectors (test/vectors/bad)', () => {
    const files = readdirSync(path.join(DIR, 'bad')).filter((f) => f.endsWith('.json')).sort();
    it('exist, covering every DecodeError code a vector can carry', () => {
      const codes = new Set(files.map((f) => read<BadVector>(path.join(DIR, 'bad', f)).code));
      for (const c of DECODE_ERROR_CODES) {
        assert.ok(codes.has(c), `no bad vector gives ${c}`);
      }
    });
    for (const f of files) {
      it(f, () => {
        const v = read<BadVector>(path.join(DIR, 'bad', f));
        const frames = fromHex(v.frames);
        // found by `npm run fuzz` (code null): the properties must hold, whatever the outcome
        const code = checkDecodeSafety(frames);
        if (v.code === null) return;
        let err: unknown;
        try {
          decode(frames);
        } catch (e) {
          err = e;
        }
        assert.ok(err instanceof DecodeError, `${v.description}: expected DecodeError ${v.code}, got ${err === undefined ? 'a decoded message' : String(err)}`);
        assert.equal(err.code, v.code, `${v.description}: ${err.message}`);
        assert.equal(code, v.code);
      });
    }
  });
});
