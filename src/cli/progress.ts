/**
 * Progress of uploads and of a running job: a cli-progress bar when stderr is a terminal,
 * plain lines otherwise (so logs and CI output stay readable). Always on stderr: stdout is
 * kept for the job id and results that scripts read.
 */
import cliProgress from 'cli-progress';

export interface Progress {
  update(done: number, total: number, detail: string): void;
  stop(): void;
}

/** Smallest interval between two plain progress lines, ms (TTY bars redraw themselves). */
const PLAIN_LINE_MIN_INTERVAL_MS = 1_000;

export function createProgress(label: string, unit: 'bytes' | 'tasks', stream: NodeJS.WriteStream = process.stderr): Progress {
  if (stream.isTTY) return new BarProgress(label, unit, stream);
  return new PlainProgress(label, unit, stream);
}

function fmt(n: number, unit: 'bytes' | 'tasks'): string {
  if (unit === 'tasks') return String(n);
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

class BarProgress implements Progress {
  private readonly bar: cliProgress.SingleBar;
  private started = false;
  constructor(
    label: string,
    private readonly unit: 'bytes' | 'tasks',
    stream: NodeJS.WriteStream,
  ) {
    this.bar = new cliProgress.SingleBar(
      {
        stream,
        format: `${label} [{bar}] {percentage}% | {shown} | {detail}`,
        hideCursor: true,
        clearOnComplete: false,
      },
      cliProgress.Presets.shades_classic,
    );
  }
  update(done: number, total: number, detail: string): void {
    const payload = { shown: `${fmt(done, this.unit)}/${fmt(total, this.unit)}`, detail };
    if (!this.started) {
      this.bar.start(Math.max(total, 1), done, payload);
      this.started = true;
    } else {
      this.bar.setTotal(Math.max(total, 1));
      this.bar.update(done, payload);
    }
  }
  stop(): void {
    if (this.started) this.bar.stop();
  }
}

class PlainProgress implements Progress {
  private last = '';
  private lastAtMs = 0;
  constructor(
    private readonly label: string,
    private readonly unit: 'bytes' | 'tasks',
    private readonly stream: NodeJS.WriteStream,
  ) {}
  update(done: number, total: number, detail: string): void {
    const line = `${this.label}: ${fmt(done, this.unit)}/${fmt(total, this.unit)} ${detail}`.trimEnd();
    const now = Date.now();
    // print when something changed, but not more than once a second unless it is the end
    if (line === this.last || (now - this.lastAtMs < PLAIN_LINE_MIN_INTERVAL_MS && done < total)) return;
    this.last = line;
    this.lastAtMs = now;
    this.stream.write(line + '\n');
  }
  stop(): void {}
}
