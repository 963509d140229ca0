/** `grid results`: the outputs of a job's succeeded tasks into DIR/<task>/<name>. */
import fs from 'node:fs';
import path from 'node:path';
import { GridError } from '../common';
import { TaskState } from '../messages';
import { outputWriteError, prepareOutDir } from './outdir';
import { outputPath } from './paths';
import { createProgress } from './progress';
import { Ctx, EndpointFlags, mapLimit, note, out, range } from './ctx';
import { EXIT_JOB_NOT_SUCCEEDED, EXIT_JOB_RUNNING, jobStateName, resultsExitCode, taskCounts } from './report';

export async function results(jobArg: string, f: EndpointFlags & { out?: string }): Promise<void> {
  if (!f.out) throw new GridError('BAD_REQUEST', 'no output folder given', 'add --out DIR');
  const outDir = path.resolve(f.out);
  // before the master is asked: a bad --out costs nothing
  prepareOutDir(outDir);
  await Ctx.run(f, async (c) => {
    const jobUuid = await c.jobId(jobArg);
    const s = await c.master.jobStatus(jobUuid);
    const tasks = await mapLimit(range(s.task_count), c.cfg.taskStatusConcurrency, (i) => c.master.taskStatus(jobUuid, i));
    const done = tasks.filter((t) => t.state === TaskState.succeeded);
    const counts = taskCounts(tasks);
    // every name is checked before the first byte is written
    const files = done.flatMap((t) => t.output_names.map((name, k) => ({ task: t.task_index, name, fileUuid: t.output_file_uuids[k]!, dest: outputPath(outDir, t.task_index, name) })));
    const bar = process.stderr.isTTY ? createProgress('download', 'tasks') : undefined;
    let n = 0;
    let bytes = 0;
    if (files.length) await c.reachStorage();
    await mapLimit(files, c.cfg.transferConcurrency, async (x) => {
      let got: number;
      try {
        fs.mkdirSync(path.dirname(x.dest), { recursive: true });
        got = await c.storage.downloadTo(x.fileUuid, x.dest);
      } catch (e) {
        throw outputWriteError(e, x.dest);
      }
      // add after the await: `bytes += await ...` reads bytes before the await and loses the
      // concurrent downloads' additions
      bytes += got;
      bar?.update(++n, files.length, x.name);
    });
    bar?.stop();
    const summary = {
      jobId: jobUuid,
      state: jobStateName(s.state),
      out: outDir,
      tasks: s.task_count,
      tasksWithOutputs: done.length,
      tasksFailed: counts.failed,
      tasksCancelled: counts.cancelled,
      tasksUnfinished: counts.pending + counts.running,
      files: files.length,
      bytes,
    };
    if (f.json) out(JSON.stringify(summary));
    else out(`wrote ${files.length} files (${bytes} bytes) of ${done.length}/${s.task_count} tasks to ${outDir}`);
    const code = resultsExitCode(s.state);
    if (code === EXIT_JOB_RUNNING) note(`job ${jobUuid} is still running (${counts.pending + counts.running} tasks to go): the outputs of its ${done.length} succeeded tasks so far were written; run results again when it is done`);
    else if (code === EXIT_JOB_NOT_SUCCEEDED) note(`job ${jobUuid} is ${jobStateName(s.state)} (${counts.failed} failed, ${counts.cancelled} cancelled): only the outputs of its ${done.length} succeeded tasks were written`);
    if (code) process.exitCode = code;
  });
}
