/**
 * Property and fuzz tests of the codec (docs/protocol.md, "Frames" and "Decode errors"):
 * every type round-trips random values; random and mutated frames only ever give a
 * DecodeError or a canonical message (test/fuzz/generators.ts, checkDecodeSafety).
 * GRID_FUZZ_SEED=<n> replays a run; fast-check prints the seed of any failure.
 */
import assert from 'node:assert/strict';
import * as fc from 'fast-check';
import { DecodeError, MessageInput, decode, encode, encodeStruct, isUuid, readUuid, uuidFromHalves, writeUuid } from '../../src/messages';
import { MESSAGE_NAMES, arbMessage, arbMutatedFrames, arbRandomFrames, checkDecodeSafety, sameMessage } from '../fuzz/generators';

const seed = process.env.GRID_FUZZ_SEED ? Number(process.env.GRID_FUZZ_SEED) : undefined;
const ROUND_TRIP_RUNS_PER_TYPE = 1000;
const HOSTILE_RUNS = 20_000;

function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof DecodeError, `expected a DecodeError, got ${String(e)}`);
    return e.code;
  }
  assert.fail('expected a DecodeError, but decode succeeded');
}

describe('codec properties (fast-check)', function () {
  this.timeout(120_000);

  for (const name of MESSAGE_NAMES) {
    it(`${name}: random values round-trip and re-encode to the same bytes`, () => {
      fc.assert(
        fc.property(arbMessage(name), (m) => {
          const frames = encode(m);
          const back = decode(frames);
          assert.equal(back.type, name);
          assert.ok(sameMessage(back, m), `decoded value differs:\n${JSON.stringify(back)}\n${JSON.stringify(m)}`);
          assert.equal(checkDecodeSafety(frames), null);
        }),
        { numRuns: ROUND_TRIP_RUNS_PER_TYPE, seed },
      );
    });
  }

  it('random bytes only ever give a DecodeError or a canonical message', () => {
    const seen = new Set<string | null>();
    fc.assert(
      fc.property(arbRandomFrames, (frames) => {
        seen.add(checkDecodeSafety(frames));
      }),
      { numRuns: HOSTILE_RUNS, seed },
    );
    // the generator must reach past the header checks, or this test proves little
    for (const c of ['TRUNCATED', 'UNKNOWN_TYPE', 'BAD_HEADER_LENGTH', 'NONZERO_PADDING', 'BAD_FRAME_COUNT']) assert.ok(seen.has(c), `random frames never gave ${c}: ${[...seen].join(', ')}`);
  });

  it('mutated valid frames (bit flips, truncation, extension, lying lengths and counts, frames added and dropped) are caught', () => {
    const seen = new Set<string | null>();
    fc.assert(
      fc.property(arbMutatedFrames, (frames) => {
        seen.add(checkDecodeSafety(frames));
      }),
      { numRuns: HOSTILE_RUNS, seed },
    );
    const want = ['NO_FRAMES', 'TRUNCATED', 'UNKNOWN_TYPE', 'BAD_HEADER_LENGTH', 'TRAILING_BYTES', 'NONZERO_PADDING', 'VALUE_OUT_OF_RANGE', 'BAD_FRAME_COUNT', 'LENGTH_MISMATCH', 'BAD_UTF8'];
    for (const c of want) assert.ok(seen.has(c), `mutations never gave ${c}: ${[...seen].join(', ')}`);
  });

  it('a count of 2^32-1 with no trailing frames fails with BAD_FRAME_COUNT before allocating', () => {
    const f0 = encodeStruct({ type: 'job_list_response', node_uuid: '00000000-0000-0000-0000-000000000001', request_uuid: '00000000-0000-0000-0000-000000000002', num_jobs: 2 ** 32 - 1 } as MessageInput);
    // job_list_response carries its UUIDs in ONE frame: the frame's length is what is wrong
    assert.equal(codeOf(() => decode([f0])), 'BAD_FRAME_COUNT');
    assert.equal(codeOf(() => decode([f0, Buffer.alloc(16)])), 'LENGTH_MISMATCH');
    const wr = encodeStruct({ type: 'worker_request', node_uuid: '00000000-0000-0000-0000-000000000001', job_uuid: '00000000-0000-0000-0000-000000000002', program_length: 0, num_input_files: 2 ** 32 - 1,
      // the grid's fields after the seed's (the seed's offsets are unchanged)
      program_file_uuid: '00000000-0000-0000-0000-000000000003', task_index: 0, task_count: 1, attempt: 0, max_retries: 0, timeout_ms: 0, memory_limit_mb: 0, num_args: 0, output_limit_bytes: 0, epoch: 0 } as MessageInput);
    assert.equal(codeOf(() => decode([wr])), 'BAD_FRAME_COUNT');
    assert.equal(codeOf(() => decode([wr, Buffer.alloc(0)])), 'BAD_FRAME_COUNT');
    const biggest = Buffer.from(wr);
    biggest.writeUInt32LE(0xffffffff, 56); // num_input_files = 2^53 - 1, the largest a u64 may hold here
    biggest.writeUInt32LE(0x1fffff, 60);
    assert.equal(codeOf(() => decode([biggest, Buffer.alloc(0)])), 'BAD_FRAME_COUNT');
    biggest.writeUInt32LE(0xffffffff, 60); // 2^64-1 is above 2^53-1
    assert.equal(codeOf(() => decode([biggest, Buffer.alloc(0)])), 'VALUE_OUT_OF_RANGE');
  });

  it('UUID text <-> bytes: writeUuid accepts exactly the canonical form, readUuid gives it back (docs/protocol.md "UUIDs")', () => {
    // strings that look almost like UUIDs: hex digits, dashes, other ASCII, and non-ASCII whose
    // low 7 bits are hex digits (U+0130 & 127 is '0')
    const ch = fc.constantFrom(...'0123456789abcdefABCDEF-', 'g', ' ', 'G', '\u0130', '\u0661', '\uff10');
    const nearUuid = fc.oneof(
      fc.array(ch, { minLength: 36, maxLength: 36 }).map((a) => a.join('')),
      fc.tuple(fc.uint8Array({ minLength: 16, maxLength: 16 }), fc.nat({ max: 35 }), ch).map(([b, i, c]) => {
        const h = Buffer.from(b).toString('hex');
        const u = `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
        return u.slice(0, i) + c + u.slice(i + 1);
      }),
      fc.string({ maxLength: 40 }),
    );
    const buf = Buffer.alloc(16);
    fc.assert(
      fc.property(nearUuid, (s) => {
        const ok = writeUuid(buf, 0, s);
        assert.equal(ok, isUuid(s), JSON.stringify(s));
        if (ok) assert.equal(readUuid(buf, 0), s.toLowerCase());
      }),
      { numRuns: 20_000, seed },
    );
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), (upper, lower) => {
        buf.writeBigUInt64LE(upper, 0);
        buf.writeBigUInt64LE(lower, 8);
        assert.equal(readUuid(buf, 0), uuidFromHalves(upper, lower));
      }),
      { numRuns: 5000, seed },
    );
  });

  it('more frames than MAX_FRAMES fail with TOO_LARGE without looking at them', () => {
    const frames = new Array<Buffer>(100_002).fill(Buffer.alloc(0));
    assert.equal(codeOf(() => decode(frames)), 'TOO_LARGE');
  });
});
