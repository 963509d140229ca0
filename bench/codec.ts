/**
 * Codec section of `npm run bench`: encode+decode per second of generic_message and
 * worker_request (frame 0, the fixed structs) and of a whole file_response carrying a 64 KiB
 * chunk, beside the same objects through JSON (bytes included: stringify+Buffer, toString+parse;
 * the chunk as base64) and msgpackr, and beside a C baseline (bench/baseline.c: struct fill +
 * memcpy, compiled here with cc -O2). Targets (docs/protocol.md "Performance"): within 10x of C
 * and >= 5x faster than JSON on the fixed structs; the 64 KiB chunk is never copied.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { Packr } from 'msgpackr';
import { MessageInput, MessageOf, decode, decodeStruct, encode, encodeStruct } from '../src/messages';
import { ROUNDS, measure } from './index';

const ROOT = path.resolve(__dirname, '../..');
const CHUNK_BYTES = 64 * 1024;

/** Compiles and runs bench/baseline.c; ns per encode+decode by case name. */
function cBaseline(): Map<string, number> {
  const dir = mkdtempSync(path.join(tmpdir(), 'grid-bench-'));
  try {
    const exe = path.join(dir, 'baseline');
    execFileSync('cc', ['-std=c11', '-O2', '-I', path.join(ROOT, 'include'), '-o', exe, path.join(ROOT, 'bench/baseline.c')], { stdio: ['ignore', 'pipe', 'pipe'] });
    const out = execFileSync(exe, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    return new Map(out.trim().split('\n').map((l) => l.split(' ')).map(([k, v]) => [k!, Number(v)]));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

interface Case {
  name: string;
  codec: () => void;
  json: () => void;
  msgpack: () => void;
  c: string;
  fixed: boolean;
}

let sink: unknown;

export async function codecSection(): Promise<void> {
  const packr = new Packr();
  const node_uuid = '123e4567-e89b-42d3-a456-426614174000';
  const generic = { type: 'generic_message', node_uuid } as MessageInput;
  const wr = { type: 'worker_request', node_uuid, job_uuid: '6ba7b810-9dad-11d1-80b4-00c04fd430c8', program_length: 103, num_input_files: 3 } as MessageInput;
  const chunk = Buffer.alloc(CHUNK_BYTES, 7);
  const fr = { type: 'file_response', node_uuid, file_uuid: '6ba7b811-9dad-11d1-80b4-00c04fd430c8', file_length: CHUNK_BYTES, data: chunk } as MessageInput;
  const frJson = { ...fr, data: chunk.toString('base64') };

  // The chunk must come back as a view of the frame it arrived in: check before timing.
  const frames = encode(fr);
  const back = decode(frames) as MessageOf<'file_response'>;
  if (frames[1] !== chunk && frames[1]!.buffer !== chunk.buffer) throw new Error('encode copied the 64 KiB chunk');
  if (back.data.buffer !== frames[1]!.buffer || back.data.byteOffset !== frames[1]!.byteOffset) throw new Error('decode copied the 64 KiB chunk');

  const viaJson = (o: unknown) => () => void (sink = JSON.parse(Buffer.from(JSON.stringify(o)).toString()));
  const viaPack = (o: unknown) => () => void (sink = packr.unpack(packr.pack(o)));
  const cases: Case[] = [
    { name: 'generic_message (frame 0)', codec: () => void (sink = decodeStruct(encodeStruct(generic))), json: viaJson(generic), msgpack: viaPack(generic), c: 'generic_message', fixed: true },
    { name: 'worker_request (frame 0)', codec: () => void (sink = decodeStruct(encodeStruct(wr))), json: viaJson(wr), msgpack: viaPack(wr), c: 'worker_request', fixed: true },
    { name: 'file_response + 64 KiB', codec: () => void (sink = decode(encode(fr))), json: viaJson(frJson), msgpack: viaPack(fr), c: 'file_response_64k', fixed: false },
  ];

  const c = cBaseline();
  const fmt = (n: number) => (n >= 1e6 ? `${(n / 1e6).toFixed(2)}M` : n >= 1e3 ? `${(n / 1e3).toFixed(1)}k` : n.toFixed(0));
  const rows = [['case', 'codec ops/s', 'codec ns/op', 'C ns/op', 'codec/C', 'JSON ops/s', 'codec vs JSON', 'msgpackr ops/s', 'codec vs msgpackr', 'targets']];
  for (const k of cases) {
    const m = measure(k.codec);
    const j = measure(k.json);
    const p = measure(k.msgpack);
    const cns = c.get(k.c)!;
    const vsC = m.nsPerOp / cns;
    const vsJson = m.opsPerSec / j.opsPerSec;
    const target = k.fixed ? `${vsC <= 10 ? 'ok' : 'MISSED'} <=10x C, ${vsJson >= 5 ? 'ok' : 'MISSED'} >=5x JSON` : 'chunk not copied: ok';
    rows.push([k.name, fmt(m.opsPerSec), m.nsPerOp.toFixed(0), cns.toFixed(1), `${vsC.toFixed(1)}x`, fmt(j.opsPerSec), `${vsJson.toFixed(1)}x`, fmt(p.opsPerSec), `${(m.opsPerSec / p.opsPerSec).toFixed(1)}x`, target]);
  }
  const copied = c.get('file_response_64k_copied');
  const w = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  for (const r of rows) process.stdout.write(r.map((x, i) => (i === 0 ? x.padEnd(w[i]!) : x.padStart(w[i]!))).join('  ') + '\n');
  process.stdout.write(`(best of ${ROUNDS} rounds each; C copying the 64 KiB chunk instead: ${copied?.toFixed(0)} ns/op; JSON carries the chunk as base64)\n`);
  void sink;
}
