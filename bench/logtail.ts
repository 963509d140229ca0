/**
 * Incremental reader of the nodes' pino JSON logs for benches: each poll reads only what was
 * appended since the last one (from the last offset; a line cut at the end waits for the next
 * poll), and keeps only the lines a filter wants, so a long run is never re-read.
 */
import fs from 'node:fs';
import { StringDecoder } from 'node:string_decoder';

export interface LogLine {
  /** pino's time: wall-clock ms (every node on one machine shares that clock) */
  time: number;
  /** which log it came from (the name given to add) */
  source: string;
  [field: string]: unknown;
}

/** Most bytes read from one file per poll (a bound; the rest comes with the next poll). */
const MAX_READ_BYTES = 4 << 20;

interface Tail {
  file: string;
  source: string;
  offset: number;
  partial: string;
  /** keeps a UTF-8 character cut at the end of a read for the next one */
  decoder: StringDecoder;
}

export class LogTails {
  private readonly tails: Tail[] = [];
  private readonly buf = Buffer.alloc(MAX_READ_BYTES);

  /** @param keep a cheap test on the raw line (substring checks) before it is parsed */
  constructor(private readonly keep: (raw: string) => boolean) {}

  /** Starts following `file` from its current end (what was logged before is skipped). */
  add(file: string, source: string): void {
    if (this.tails.some((t) => t.file === file)) return;
    const size = fs.existsSync(file) ? fs.statSync(file).size : 0;
    this.tails.push({ file, source, offset: size, partial: '', decoder: new StringDecoder('utf8') });
  }

  /** The wanted lines appended since the last poll, in file order per file. */
  poll(): LogLine[] {
    const out: LogLine[] = [];
    for (const t of this.tails) {
      let fd: number;
      try {
        fd = fs.openSync(t.file, 'r');
      } catch {
        continue; // not created yet (the node has not logged)
      }
      try {
        for (;;) {
          const n = fs.readSync(fd, this.buf, 0, this.buf.length, t.offset);
          if (n <= 0) break;
          t.offset += n;
          const text = t.partial + t.decoder.write(this.buf.subarray(0, n));
          const lines = text.split('\n');
          t.partial = lines.pop()!;
          for (const raw of lines) {
            if (!this.keep(raw)) continue;
            try {
              out.push({ ...(JSON.parse(raw) as { time: number }), source: t.source });
            } catch {
              // not a JSON line (a crash trace on the node's stderr copy): not ours to time
            }
          }
          if (n < this.buf.length) break;
        }
      } finally {
        fs.closeSync(fd);
      }
    }
    return out;
  }
}
