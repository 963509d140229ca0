/**
 * `grid codec`: the wire codec from the shell, for debugging peers and writing C clients.
 *   grid codec encode <type> [--hex]   one JSON object on stdin -> frame 0 on stdout
 *   grid codec decode [--hex]          frame 0 on stdin -> JSON on stdout
 *   grid codec types [--json|--markdown]
 * JSON uses the seed's field names, one canonical string per UUID pair and hex for sha256
 * (src/messages/json.ts). Only frame 0 (the struct) is handled: trailing frames are not part
 * of a single byte stream, so their length/count fields must be given explicitly.
 * Bad input: exit code 1 and one line `grid codec: CODE: what is wrong`, never a stack trace.
 */
import { Command } from 'commander';
import { DecodeError, EncodeError, LAYOUTS, decodeStruct, encodeStruct, messageFromJson, messageToJson } from '../messages';
import { protocolMarkdown, typeInfos } from '../messages/describe';

/** Most stdin `grid codec` reads: far above any struct or its JSON, small enough to hold. */
export const CODEC_MAX_STDIN_BYTES = 1024 * 1024;

class CodecInputError extends Error {
  constructor(
    readonly code: 'BAD_JSON' | 'BAD_HEX' | 'TOO_LARGE' | 'NO_INPUT',
    message: string,
  ) {
    super(`${code}: ${message}`);
  }
}

async function readStdin(): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of process.stdin as AsyncIterable<Buffer>) {
    n += c.length;
    if (n > CODEC_MAX_STDIN_BYTES) throw new CodecInputError('TOO_LARGE', `stdin is over ${CODEC_MAX_STDIN_BYTES} bytes; give one message`);
    chunks.push(c);
  }
  return Buffer.concat(chunks);
}

/** Runs a command body; expected failures become one line on stderr and exit code 1. */
async function guarded(body: () => Promise<void>): Promise<void> {
  try {
    await body();
  } catch (e) {
    if (e instanceof EncodeError || e instanceof DecodeError || e instanceof CodecInputError) {
      process.stderr.write(`grid codec: ${e.message.replace(/\s*\n\s*/g, ' ')}\n`);
    } else {
      process.stderr.write(`grid codec: INTERNAL: ${e instanceof Error ? e.message : String(e)} (a bug; please report it with the input)\n`);
    }
    process.exitCode = 1;
  }
}

function parseHex(text: string): Buffer {
  const s = text.replace(/\s+/g, '');
  if (!/^(?:[0-9a-fA-F]{2})*$/.test(s)) throw new CodecInputError('BAD_HEX', 'stdin is not hex (pairs of 0-9a-f, whitespace ignored); drop --hex to pass raw bytes');
  return Buffer.from(s, 'hex');
}

export function registerCodecCommands(program: Command): void {
  const codec = program.command('codec').description('encode, decode and list wire messages (frame 0, the struct; see docs/protocol.md)');

  codec
    .command('encode <type>')
    .description('read one JSON object on stdin, write its frame 0 (binary, or hex with --hex)')
    .option('--hex', 'write lower-case hex and a newline instead of raw bytes')
    .action((type: string, opts: { hex?: boolean }) =>
      guarded(async () => {
        const text = (await readStdin()).toString('utf8');
        if (!text.trim()) throw new CodecInputError('NO_INPUT', `stdin is empty; give one JSON object, e.g. {"node_uuid": "...", ...} (see 'grid codec types')`);
        let json: unknown;
        try {
          json = JSON.parse(text);
        } catch (e) {
          throw new CodecInputError('BAD_JSON', `stdin is not JSON: ${e instanceof Error ? e.message : String(e)}`);
        }
        const frame0 = encodeStruct(messageFromJson(type, json, { structOnly: true }));
        process.stdout.write(opts.hex ? frame0.toString('hex') + '\n' : frame0);
      }),
    );

  codec
    .command('decode')
    .description('read frame 0 on stdin (binary, or hex with --hex), print it as JSON')
    .option('--hex', 'stdin is hex (whitespace ignored)')
    .action((opts: { hex?: boolean }) =>
      guarded(async () => {
        const raw = await readStdin();
        const frame0 = opts.hex ? parseHex(raw.toString('latin1')) : raw;
        process.stdout.write(JSON.stringify(messageToJson(decodeStruct(frame0), { header: true }), null, 2) + '\n');
      }),
    );

  codec
    .command('types')
    .description('list every message type: number, name, sizeof frame 0')
    .option('--json', 'full layouts as JSON')
    .option('--markdown', 'the registry and layout tables of docs/protocol.md')
    .action((opts: { json?: boolean; markdown?: boolean }) =>
      guarded(async () => {
        if (opts.json) return void process.stdout.write(JSON.stringify(typeInfos(), null, 2) + '\n');
        if (opts.markdown) return void process.stdout.write(protocolMarkdown());
        const w = Math.max(...[...LAYOUTS.keys()].map((n) => n.length));
        const lines = ['  id  ' + 'name'.padEnd(w) + '  size  family  trailing frames'];
        for (const l of LAYOUTS.values()) {
          lines.push(`${String(l.def.id).padStart(4)}  ${l.name.padEnd(w)}  ${String(l.size).padStart(4)}  ${l.def.family.padEnd(6)}  ${l.def.tail.map((t) => t.name).join(', ') || '-'}`);
        }
        process.stdout.write(lines.join('\n') + '\n');
      }),
    );
}
