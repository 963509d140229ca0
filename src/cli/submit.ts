/** `grid submit`: check, upload (content-addressed), submit, then --notify / --wait / --notify-cmd. */
import fs from 'node:fs';
import path from 'node:path';
import { GridError } from '../common';
import { newUuid } from '../messages';
import { checkNotifyUrl } from '../master';
import { checkReadableFile, parseJobOptions, RawJobFlags } from './args';
import { createProgress } from './progress';
import { Ctx, EndpointFlags, mapLimit, note, out } from './ctx';
import { report, waitForJob } from './report';

// ---- submit ----------------------------------------------------------------------------------

export interface SubmitFlags extends EndpointFlags, RawJobFlags {
  inputs?: string[];
  wait?: boolean;
  notify?: string;
  notifyCmd?: string;
}

export async function submit(program: string, f: SubmitFlags): Promise<void> {
  const job = parseJobOptions(f);
  const inputs = f.inputs ?? [];
  if (inputs.length === 0) throw new GridError('BAD_REQUEST', 'no input files given', 'add --inputs FILE... (e.g. --inputs data/*.txt)');
  // every file is checked before anything is uploaded, so a typo costs nothing
  checkReadableFile(program, 'program');
  for (const p of inputs) checkReadableFile(p, 'input file');
  if (f.notify !== undefined) {
    const bad = checkNotifyUrl(f.notify);
    if (bad) throw new GridError('BAD_REQUEST', `--notify ${bad}`, 'give an http:// or https:// URL that takes a POST');
  }
  if (f.notifyCmd !== undefined && !f.wait) throw new GridError('BAD_REQUEST', '--notify-cmd runs when `submit --wait` sees the job end', 'add --wait, or use --notify URL (the master posts the status even when no client waits)');

  await Ctx.run(f, async (c) => {
    const files = [program, ...inputs];
    const sizes = files.map((p) => fs.statSync(p).size);
    const total = sizes.reduce((a, b) => a + b, 0);
    const sent = new Array<number>(files.length).fill(0);
    const bar = process.stderr.isTTY ? createProgress('upload', 'bytes') : undefined;
    let uploaded = 0;
    let uploadedBytes = 0;
    await c.reachStorage();
    const ids = await mapLimit(files, c.cfg.transferConcurrency, async (p, i) => {
      const r = await c.storage.putFile(p, (n) => {
        sent[i] = n;
        bar?.update(sent.reduce((a, b) => a + b, 0), total, path.basename(p));
      });
      sent[i] = sizes[i]!;
      if (r.uploaded) {
        uploaded++;
        uploadedBytes += r.length;
      }
      return r.fileUuid;
    });
    bar?.update(total, total, 'done');
    bar?.stop();
    note(`uploaded ${uploaded} of ${files.length} files (${uploadedBytes} bytes); ${files.length - uploaded} already stored`);

    const jobUuid = newUuid();
    const r = await c.master.submit({
      job_uuid: jobUuid,
      program_file_uuid: ids[0]!,
      chunk_size: job.chunkSize,
      max_retries: job.maxRetries,
      task_timeout_ms: job.taskTimeoutMs,
      memory_limit_mb: job.memoryLimitMb,
      output_limit_bytes: job.outputLimitBytes,
      input_file_uuids: ids.slice(1),
      input_names: inputs.map((p) => path.basename(p)),
      args: job.args,
      program_name: path.basename(program),
    });
    // the master posts the final status to --notify when the job ends (even if it already has)
    if (f.notify !== undefined) await c.master.notify(r.job_uuid, f.notify);
    if (!f.wait) {
      if (f.json) out(JSON.stringify({ jobId: r.job_uuid, taskCount: r.task_count }));
      else out(r.job_uuid);
      note(`job ${r.job_uuid} accepted: ${r.task_count} task${r.task_count === 1 ? '' : 's'}; follow it with \`grid status ${r.job_uuid}\``);
      return;
    }
    if (!f.json) out(r.job_uuid);
    const s = await waitForJob(c, r.job_uuid);
    const summary = await report(c, s, !!f.json);
    if (f.notifyCmd !== undefined) await runNotifyCmd(f.notifyCmd, summary, c.cfg.notifyCmdTimeoutMs);
  });
}

/**
 * `--notify-cmd CMD`: once `--wait` sees the job end, CMD runs in a shell with GRID_JOB_ID,
 * GRID_JOB_STATE and the final status as JSON on its stdin; its output goes to stderr (stdout
 * is for scripts). Its failure is reported but does not change grid's exit code.
 */
export async function runNotifyCmd(cmd: string, status: Record<string, unknown>, timeoutMs: number): Promise<void> {
  const { spawn } = await import('node:child_process');
  const child = spawn(cmd, {
    shell: true,
    stdio: ['pipe', process.stderr, process.stderr],
    env: { ...process.env, GRID_JOB_ID: String(status.jobId), GRID_JOB_STATE: String(status.state) },
  });
  child.stdin!.on('error', () => undefined); // a command that does not read its stdin
  child.stdin!.end(JSON.stringify(status) + '\n');
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) => {
    child.once('error', () => resolve([127, null]));
    child.once('exit', (c, s) => resolve([c, s]));
  });
  clearTimeout(timer);
  if (signal) note(`grid: --notify-cmd was killed by ${signal}${signal === 'SIGKILL' ? ` (still running after ${timeoutMs} ms, GRID_NOTIFY_CMD_TIMEOUT_MS)` : ''}`);
  else if (code !== 0) note(`grid: --notify-cmd exited with code ${code}`);
}
