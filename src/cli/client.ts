/**
 * Client commands: status, jobs, logs, cancel, init and the registration of every command.
 * In their own files: submit.ts, results.ts; ctx.ts (what each command works with) and
 * report.ts (how jobs and tasks are shown, exit codes).
 * They talk to the master with job_* requests (MasterClient) and to storage with
 * StorageClient; file data never goes through the master (docs/architecture.md).
 *
 * Output rules: stdout carries what scripts read (the job id, tables, --json), stderr
 * carries progress; an operating error is one line `grid: CODE: what (what to do)`, exit 1.
 * `submit --wait` and `results` exit 2 when the job did not succeed.
 */
import fs from 'node:fs';
import path from 'node:path';
import { Command } from 'commander';
import { GridError, keyFingerprint } from '../common';
import { JobState, NIL_UUID } from '../messages';
import * as masterRole from '../master';
import * as balancerRole from '../balancer';
import * as storageRole from '../storage';
import * as workerRole from '../worker';
import { intFlag } from './args';
import { shownTime } from './format';
import { registerClusterCommand } from './cluster';
import { registerCodecCommands } from './codec';
import { registerCompletionCommand } from './completion';
import { registerDevCommand } from './dev';
import { Ctx, EndpointFlags, mapLimit, note, out, range } from './ctx';
import { JobStatus } from './master-client';
import { describeJob, jobJson, jobStateName, outcomeName, taskJson, taskStateName } from './report';
import { results } from './results';
import { SubmitFlags, submit } from './submit';
import { registerKeysCommand } from './keys';

// ---- status, jobs, logs, cancel, results ----------------------------------------------------

interface ListFlags extends EndpointFlags {
  state?: string;
  limit?: string;
}

const JOB_STATES = Object.keys(JobState);

/** The newest jobs, optionally only those in one state, at most `limit` (default maxJobsListed). */
async function listJobs(c: Ctx, f: ListFlags): Promise<void> {
  const limit = intFlag(f.limit, '--limit', 1, 100_000, c.cfg.maxJobsListed);
  const state = f.state === undefined ? undefined : f.state.toLowerCase();
  if (state !== undefined && !JOB_STATES.includes(state)) {
    throw new GridError('BAD_REQUEST', `--state must be one of ${JOB_STATES.join(', ')}, got ${JSON.stringify(f.state)}`, 'e.g. grid jobs --state running');
  }
  // with --state the newest maxJobsScanned jobs are looked through, else just `limit`
  const listed = await c.master.listJobsWithOwners(state === undefined ? limit : Math.max(limit, c.cfg.maxJobsScanned));
  const ids = listed.map((j) => j.jobUuid);
  const ownerOf = new Map(listed.map((j) => [j.jobUuid, j.ownerKey]));
  const all = await mapLimit(ids, c.cfg.taskStatusConcurrency, (id) => c.master.jobStatus(id));
  const ss = (state === undefined ? all : all.filter((s) => jobStateName(s.state) === state)).slice(0, limit);
  // the owner as the dashboard and `grid keys list` show it: the key's fingerprint
  const owner = (s: JobStatus): string | null => {
    const k = ownerOf.get(s.job_uuid) ?? '';
    return k ? keyFingerprint(k) : null;
  };
  if (f.json) {
    out(JSON.stringify(ss.map((s) => ({ ...jobJson(s), owner: owner(s), ownerKey: ownerOf.get(s.job_uuid) || null }))));
    return;
  }
  if (ss.length === 0) {
    out(state ? `no ${state} jobs among the newest ${ids.length}` : 'no jobs yet; submit one with `grid submit job.js --inputs FILE...`');
    return;
  }
  const tty = !!process.stdout.isTTY;
  const now = Date.now();
  const when = ss.map((s) => shownTime(s.created_at_ms, now, tty));
  const w = Math.max(7, ...when.map((x) => x.length));
  const ow = Math.max(5, ...ss.map((s) => (owner(s) ?? '-').length));
  out(['JOB'.padEnd(36), 'STATE'.padEnd(9), 'TASKS'.padStart(6), 'OK'.padStart(6), 'FAILED'.padStart(6), 'CANCELLED'.padStart(9), '  ' + 'CREATED'.padEnd(w), 'OWNER'.padEnd(ow), 'PROGRAM'].join(' '));
  ss.forEach((s, i) => {
    out(
      [
        s.job_uuid,
        jobStateName(s.state).padEnd(9),
        String(s.task_count).padStart(6),
        String(s.tasks_succeeded).padStart(6),
        String(s.tasks_failed).padStart(6),
        String(s.tasks_cancelled).padStart(9),
        '  ' + when[i]!.padEnd(w),
        (owner(s) ?? '-').padEnd(ow),
        s.program_name,
      ].join(' '),
    );
  });
}

interface StatusFlags extends EndpointFlags {
  tasks?: boolean;
}

async function status(jobArg: string | undefined, f: StatusFlags): Promise<void> {
  await Ctx.run(f, async (c) => {
    if (!jobArg) return listJobs(c, f);
    const s = await c.master.jobStatus(await c.jobId(jobArg));
    const tasks = f.tasks ? await mapLimit(range(s.task_count), c.cfg.taskStatusConcurrency, (i) => c.master.taskStatus(s.job_uuid, i)) : undefined;
    if (f.json) {
      out(JSON.stringify(tasks ? { ...jobJson(s), tasks: tasks.map(taskJson) } : jobJson(s)));
      return;
    }
    for (const l of describeJob(s)) out(l);
    for (const t of tasks ?? []) {
      out(`  task ${t.task_index}: ${taskStateName(t.state)}${t.outcome ? ` (${outcomeName(t.outcome)}, exit ${t.exit_code})` : ''}, ${t.attempts} attempt(s), ${t.output_names.length} output(s), inputs ${t.input_names.join(' ')}`);
      if (t.error) out(`    reason: ${t.error}`);
    }
  });
}


/**
 * The stored log of each task. With --json: one JSON object per task and line (JSON Lines,
 * so a long log streams): taskIndex, state, attempts, inputs, source ("stored": the whole
 * log; "tail": only the tail the worker reported; "none": the task has not run), log.
 */
async function logs(jobArg: string, f: EndpointFlags & { task?: string }): Promise<void> {
  await Ctx.run(f, async (c) => {
    const jobUuid = await c.jobId(jobArg);
    const s = await c.master.jobStatus(jobUuid);
    let indexes = range(s.task_count);
    if (f.task !== undefined) {
      const i = Number(f.task);
      if (!Number.isInteger(i) || i < 0 || i >= s.task_count) {
        throw new GridError('BAD_REQUEST', `--task must be a task index from 0 to ${s.task_count - 1}, got ${JSON.stringify(f.task)}`, `job ${jobUuid} has ${s.task_count} tasks`);
      }
      indexes = [i];
    }
    for (const i of indexes) {
      const t = await c.master.taskStatus(jobUuid, i);
      const head = { jobId: jobUuid, taskIndex: i, state: taskStateName(t.state), attempts: t.attempts, inputs: t.input_names };
      if (!f.json && f.task === undefined) out(`==> task ${i} (${taskStateName(t.state)}, ${t.attempts} attempt(s), inputs ${t.input_names.join(' ')}) <==`);
      if (t.log_file_uuid === NIL_UUID) {
        const why = t.attempts === 0 ? 'the task has not run yet' : 'no log was stored for its last attempt';
        if (f.json) {
          out(JSON.stringify({ ...head, source: t.log_tail ? 'tail' : 'none', log: t.log_tail, note: why }));
          continue;
        }
        if (t.log_tail) out(t.log_tail.replace(/\n$/, ''));
        note(`(task ${i}: ${why}${t.log_tail ? '; shown is the log tail the worker reported' : ''})`);
        continue;
      }
      await c.reachStorage();
      const buf = await c.storage.readWhole(t.log_file_uuid);
      if (f.json) {
        out(JSON.stringify({ ...head, source: 'stored', log: buf.toString('utf8') }));
        continue;
      }
      process.stdout.write(buf);
      if (buf.length && buf[buf.length - 1] !== 10) out('');
    }
  });
}

async function cancel(jobArg: string, f: EndpointFlags): Promise<void> {
  await Ctx.run(f, async (c) => {
    const jobUuid = await c.jobId(jobArg);
    await c.master.cancel(jobUuid);
    const s = await c.master.jobStatus(jobUuid);
    if (f.json) out(JSON.stringify(jobJson(s)));
    else out(`job ${jobUuid} is ${jobStateName(s.state)}`);
  });
}

// ---- init ------------------------------------------------------------------------------------

const ROLE_MODULES: Record<string, unknown> = { master: masterRole, balancer: balancerRole, storage: storageRole, worker: workerRole };

/** The commented sample config of a role (each role exports sampleConfig() from index.ts). */
export function sampleConfigFor(role: string): string {
  const mod = ROLE_MODULES[role] as { sampleConfig?: () => string } | undefined;
  if (!mod) throw new GridError('BAD_REQUEST', `unknown role ${JSON.stringify(role)}`, `roles: ${Object.keys(ROLE_MODULES).join(', ')}`);
  if (typeof mod.sampleConfig !== 'function') throw new GridError('UNAVAILABLE', `the ${role} role has no sample config in this build`);
  return mod.sampleConfig();
}

function init(f: { role?: string; out?: string; force?: boolean }): void {
  if (!f.role) throw new GridError('BAD_REQUEST', 'no role given', `add --role ROLE (one of ${Object.keys(ROLE_MODULES).join(', ')})`);
  const text = sampleConfigFor(f.role);
  if (!f.out) {
    process.stdout.write(text);
    return;
  }
  if (fs.existsSync(f.out) && !f.force) throw new GridError('BAD_REQUEST', `${f.out} already exists`, 'choose another --out, or add --force to overwrite it');
  try {
    fs.mkdirSync(path.dirname(path.resolve(f.out)), { recursive: true });
    fs.writeFileSync(f.out, text);
  } catch (e) {
    throw new GridError('BAD_REQUEST', `cannot write ${f.out}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  note(`wrote the ${f.role} sample config to ${f.out}; start with: grid ${f.role} --config ${f.out}`);
}

// ---- registration ----------------------------------------------------------------------------

function endpointOptions(cmd: Command, json = true): Command {
  cmd
    .option('--master <endpoints>', 'master endpoint, or a comma list of a replicated group (default: $GRID_MASTER, the running `grid dev`, or tcp://127.0.0.1:7700)')
    .option('--storage <endpoint>', 'storage endpoint (default: $GRID_STORAGE, the running `grid dev`, or tcp://127.0.0.1:7702)')
    .option('--data-dir <dir>', 'where `grid dev` keeps dev.json (default ./.grid)');
  if (json) cmd.option('--json', 'machine-readable output on stdout');
  return cmd;
}

export function registerClientCommands(program: Command): void {
  endpointOptions(
    program
      .command('submit')
      .description('upload job.js and its inputs, submit a job, print its id')
      .argument('<program>', 'the job program (run as `node job.js <input paths>` on workers)')
      .option('--inputs <files...>', 'input files; task i gets inputs [i*chunk, (i+1)*chunk)')
      .option('--chunk-size <n>', 'inputs per task (default 1)')
      .option('--args <args...>', 'arguments for every task, passed as GRID_ARGS (JSON array)')
      .option('--retries <n>', 'retries of a failed task on another worker (default 2)')
      .option('--task-timeout <seconds>', 'kill a task running longer (default 600)')
      .option('--memory-limit <MiB>', 'memory a task may use (default 1024)')
      .option('--output-limit <MiB>', 'total size of a task\'s outputs (default 1024)')
      .option('--wait', 'show progress until the job ends; exit 2 unless every task succeeded')
      .option('--notify <url>', 'when the job ends, the master POSTs its final status as JSON to this http(s) URL (retried with backoff)')
      .option('--notify-cmd <cmd>', 'with --wait: run CMD in a shell when the job ends (GRID_JOB_ID, GRID_JOB_STATE; the status as JSON on stdin)'),
  ).action((p: string, f: SubmitFlags) => submit(p, f));

  endpointOptions(
    program
      .command('status')
      .description('state of one job, or a list of recent jobs')
      .argument('[job]', 'job id (or a unique prefix); none lists recent jobs')
      .option('--tasks', 'also show every task'),
  ).action((j: string | undefined, f: StatusFlags) => status(j, f));

  endpointOptions(
    program
      .command('jobs')
      .description('list recent jobs, newest first')
      .option('--state <state>', `only jobs in this state: ${JOB_STATES.join(', ')}`)
      .option('--limit <n>', 'most jobs listed (default 50, GRID_MAX_JOBS_LISTED)'),
  ).action((f: ListFlags) => Ctx.run(f, (c) => listJobs(c, f)));

  endpointOptions(
    program
      .command('logs')
      .description("print the stored log (stdout+stderr) of a job's tasks")
      .argument('<job>', 'job id (or a unique prefix)')
      .option('--task <index>', 'only this task'),
  ).action((j: string, f: EndpointFlags & { task?: string }) => logs(j, f));

  endpointOptions(program.command('cancel').description('cancel a running job').argument('<job>', 'job id (or a unique prefix)')).action(
    (j: string, f: EndpointFlags) => cancel(j, f),
  );

  endpointOptions(
    program
      .command('results')
      .description('download the outputs of a job: task i lands in DIR/<i>/<name>')
      .argument('<job>', 'job id (or a unique prefix)')
      .option('--out <dir>', 'folder to write into (created if missing)'),
  ).action((j: string, f: EndpointFlags & { out?: string }) => results(j, f));

  program
    .command('init')
    .description("write a role's commented sample config file")
    .option('--role <role>', 'master, balancer, storage or worker')
    .option('--out <file>', 'file to write (default: print to stdout)')
    .option('--force', 'overwrite an existing file')
    .action((f: { role?: string; out?: string; force?: boolean }) => init(f));

  registerDevCommand(program);
  registerClusterCommand(program);
  registerCodecCommands(program);
  registerCompletionCommand(program);
  registerKeysCommand(program);
}
