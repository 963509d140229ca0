// Jobs contained (issue 9; docs/operations.md, "Containment"): the attacks of the issue, run
// as jobs on a real `grid dev` whose workers run as root with a real FUSE mount. Each shows
// the documented containment: a job cannot read a node's files (storage's SQLite and WAL,
// dev.json, keys), cannot kill the master or its worker, leaves no setsid child behind, keeps
// its /tmp writes out of the host's /tmp (refused at the output limit), and cannot list other
// jobs' files.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Grid, adminStatus, pidAlive, startGrid, taskVisibleDir, waitFor } from '../helpers/grid';
import { describeIf } from '../helpers/requires';

const isRoot = process.geteuid?.() === 0;
/** the worker setting taskUidBase's default: sandboxed tasks run from this uid on */
const TASK_UID_BASE = 64100;

/** Every path under dir (files and folders), not entering FUSE mount folders. */
function tree(dir: string): { dirs: string[]; files: string[] } {
  const out = { dirs: [dir], files: [] as string[] };
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.name === 'mnt') continue; // a worker's FUSE mount: served by the worker, not ours to walk
    if (e.isDirectory()) {
      const t = tree(p);
      out.dirs.push(...t.dirs);
      out.files.push(...t.files);
    } else if (e.isFile()) out.files.push(p);
  }
  return out;
}

/** Processes alive now whose uid is a task uid (the sandbox's range). */
function taskProcesses(): string[] {
  const out: string[] = [];
  for (const d of fs.readdirSync('/proc').filter((x) => /^\d+$/.test(x))) {
    try {
      const status = fs.readFileSync(`/proc/${d}/status`, 'utf8');
      const uid = Number(/^Uid:\s+(\d+)/m.exec(status)?.[1]);
      const zombie = /^State:\s+Z/m.test(status);
      if (!zombie && uid >= TASK_UID_BASE && uid < TASK_UID_BASE + 1024) out.push(`${d} uid ${uid}`);
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

/** The attack: tries each hostile act and writes what happened to report.json (exits 0). */
const ATTACK = `
const fs = require('fs');
const t = (f) => { try { const r = f(); return r === undefined ? 'ok' : r; } catch (e) { return e.code || String(e); } };
const { files, dirs, masterPid, workerPids, mount } = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const report = {
  read: files.map((f) => [f, t(() => { fs.readFileSync(f); })]),
  list: dirs.map((d) => [d, t(() => { fs.readdirSync(d); })]),
  killMaster: t(() => process.kill(masterPid, 'SIGKILL')),
  killWorkers: workerPids.map((p) => t(() => process.kill(p, 'SIGKILL'))),
  ownInputs: fs.readdirSync(require('path').dirname(require('path').dirname(process.argv[2]))),
  mountRoot: t(() => fs.readdirSync(mount)),
  uid: process.getuid(),
};
fs.writeFileSync('report.json', JSON.stringify(report));
`;

describeIf(isRoot ? null : 'containment needs the worker to run as root', 'e2e: jobs contained (worker as root, real FUSE)', function () {
  this.timeout(240_000);
  let g: Grid | undefined;
  let shared: string;
  let work: string;

  before(async () => {
    // the grid's temp folder is reachable (0755) by a task: what stops it is each data dir
    shared = taskVisibleDir();
    g = await startGrid({ workers: 2, slots: 1, prefetch: 0, under: shared });
    fs.chmodSync(g.tmp, 0o755);
    work = path.join(g.tmp, 'work');
    fs.mkdirSync(work);
  });
  after(async () => {
    await g?.stop();
    fs.rmSync(shared, { recursive: true, force: true });
  });

  const submit = async (src: string, name: string, inputs: string[], extra: string[] = []) => {
    const job = path.join(work, `${name}.js`);
    fs.writeFileSync(job, src);
    const r = await g!.run(['submit', job, '--inputs', ...inputs, '--wait', ...extra]);
    const id = /([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})/.exec(r.stdout + r.stderr)?.[1];
    assert.ok(id, r.stdout + r.stderr);
    return { ...r, id };
  };
  const workers = () => g!.refreshState().nodes.filter((n) => n.role === 'worker');

  it("every node's data dir is 0700 with files 0600, and a job reads none of them nor kills the master or its worker", async () => {
    // another job's secret goes through storage first (its SQLite and WAL hold it)
    const secret = path.join(work, 'secret.txt');
    fs.writeFileSync(secret, 'the other job secret\n');
    const s = await submit(`require('fs').writeFileSync('copy.txt', require('fs').readFileSync(process.argv[2]));`, 'secret', [secret]);
    assert.equal(s.code, 0, s.stdout + s.stderr);

    const state = g!.refreshState();
    const t = tree(g!.dataDir);
    const loose = [...t.dirs.filter((d) => (fs.statSync(d).mode & 0o777) !== 0o700), ...t.files.filter((f) => (fs.statSync(f).mode & 0o077) !== 0)];
    assert.deepEqual(loose, [], 'every folder 0700, no file readable by group or others');
    const storageDir = state.nodes.find((n) => n.role === 'storage')!.dataDir;
    const wal = t.files.filter((f) => f.startsWith(storageDir) && /-wal$/.test(f));
    assert.ok(wal.length > 0, `storage has a WAL: ${t.files.filter((f) => f.startsWith(storageDir)).join(', ')}`);
    assert.ok(t.files.includes(path.join(g!.dataDir, 'dev.json')));

    const master = state.nodes.find((n) => n.role === 'master')!;
    const plan = {
      files: t.files,
      dirs: t.dirs,
      masterPid: master.pid,
      workerPids: workers().map((w) => w.pid),
      mount: path.join(workers()[0]!.dataDir, 'mnt'),
    };
    const planFile = path.join(work, 'plan.json');
    fs.writeFileSync(planFile, JSON.stringify(plan));
    const a = await submit(ATTACK, 'attack', [planFile]);
    assert.equal(a.code, 0, a.stdout + a.stderr);
    const out = path.join(work, 'attack-results');
    assert.equal((await g!.run(['results', a.id, '--out', out])).code, 0);
    const report = JSON.parse(fs.readFileSync(path.join(out, '0', 'report.json'), 'utf8'));

    assert.ok(report.uid >= TASK_UID_BASE, `the job ran as a task uid, not ${report.uid}`);
    assert.deepEqual(report.read.filter(([, r]: [string, string]) => r !== 'EACCES'), [], 'every node file read is refused (EACCES)');
    // the dev data dir itself may be listed by no one but its owner; everything below it neither
    assert.deepEqual(report.list.filter(([, r]: [string, string]) => r !== 'EACCES'), [], 'every node folder listing is refused');
    // outside its PID namespace no grid process has a pid the job can name
    assert.equal(report.killMaster, 'ESRCH');
    assert.deepEqual(report.killWorkers, plan.workerPids.map(() => 'ESRCH'));
    assert.ok(pidAlive(master.pid), 'the master lives');
    for (const p of plan.workerPids) assert.ok(pidAlive(p), `worker ${p} lives`);
    // its own FUSE view holds only its own input; the mount root is out of reach
    assert.equal(report.ownInputs.length, 1, JSON.stringify(report.ownInputs));
    assert.equal(report.mountRoot, 'EACCES');
  });

  it('a job that SIGKILLs its parent and the worker pids, retried, leaves the grid its workers', async () => {
    const before = workers().map((w) => w.pid);
    const pidsFile = path.join(work, 'pids.json');
    fs.writeFileSync(pidsFile, JSON.stringify(before));
    // it records what each kill did, then fails so that it is retried (on the other worker)
    const k = await submit(
      `const fs = require('fs');
       const t = (f) => { try { f(); return 'ok'; } catch (e) { return e.code; } };
       const kills = JSON.parse(fs.readFileSync(process.argv[2], 'utf8')).map((p) => t(() => process.kill(p, 'SIGKILL')));
       // its parent is outside its PID namespace: ppid 0; kill(0) reaches only its own uid
       const parent = [process.ppid, t(() => process.kill(process.ppid, 'SIGKILL'))];
       console.log('KILLS ' + JSON.stringify({ kills, parent }));
       process.exit(3);`,
      'parricide',
      [pidsFile],
      ['--retries', '1'],
    );
    assert.equal(k.code, 2, `the job fails by its own exit code: ${k.stdout}${k.stderr}`);
    const st = JSON.parse((await g!.run(['status', k.id, '--json', '--tasks'])).stdout);
    assert.equal(st.state, 'failed');
    assert.equal(st.tasks[0].attempts, 2, 'it was retried');
    const logs = (await g!.run(['logs', k.id])).stdout;
    assert.match(logs, /KILLS \{"kills":\["ESRCH","ESRCH"\],"parent":\[0,"ok"\]\}/, logs);
    assert.deepEqual(workers().map((w) => [w.pid, w.state, w.restarts]), before.map((p) => [p, 'running', 0]), 'the same two workers, never restarted');
    // and they still take work
    const ok = await submit(`require('fs').writeFileSync('o.txt', 'fine');`, 'after', [pidsFile]);
    assert.equal(ok.code, 0, ok.stdout + ok.stderr);
  });

  it('an escaping setsid child is dead when its task ends; 450 MiB to /tmp never reaches the host /tmp and is refused', async () => {
    const name = `grid-hog-${process.pid}-${Date.now()}`;
    const input = path.join(work, 'one.txt');
    fs.writeFileSync(input, 'x');
    const h = await submit(
      `const { spawn } = require('child_process');
       const c = spawn('setsid', [process.execPath, '-e', 'setInterval(() => {}, 1000)'], { detached: true, stdio: 'ignore' });
       c.unref();
       const fs = require('fs'); const b = Buffer.alloc(1 << 20, 7);
       const fd = fs.openSync('/tmp/${name}', 'w');
       for (let i = 0; i < 450; i++) fs.writeSync(fd, b);`,
      'hog',
      [input],
      ['--retries', '0', '--output-limit', '64'],
    );
    assert.equal(h.code, 2, h.stdout + h.stderr);
    assert.match(h.stdout + h.stderr, /output limit of 64 MiB/);
    assert.equal(fs.existsSync(path.join('/tmp', name)), false, "the host's /tmp never saw it");
    await waitFor(() => taskProcesses().length === 0, `no task process left (${taskProcesses().join(', ')})`, 10_000);
    // the task folder (and its temp folder) is gone
    for (const w of workers()) assert.deepEqual(fs.readdirSync(path.join(w.dataDir, 'tasks')), []);
  });

  it('a worker killed by SIGKILL takes its running task (and the task\'s children) with it', async () => {
    const input = path.join(work, 'forever.txt');
    fs.writeFileSync(input, 'x');
    const job = path.join(work, 'forever.js');
    fs.writeFileSync(job, `require('child_process').spawn('setsid', [process.execPath, '-e', 'setInterval(() => {}, 1000)'], { detached: true, stdio: 'ignore' }).unref(); setInterval(() => {}, 1000);`);
    const sub = await g!.run(['submit', job, '--inputs', input, '--retries', '0']);
    assert.equal(sub.code, 0, sub.stderr);
    const id = sub.stdout.trim();
    let victim: ReturnType<Grid['node']> | undefined;
    await waitFor(
      async () => {
        for (const n of workers()) {
          const st = (await adminStatus(n.adminPort)) as { running?: { jobUuid: string; state: string; pid: number }[] } | undefined;
          if (st?.running?.some((x) => x.jobUuid === id && x.state === 'running' && x.pid > 0)) victim = n;
        }
        return !!victim && taskProcesses().length >= 2;
      },
      'the task and its child to run',
      60_000,
    );
    // the task's processes now (the task may be dispatched again to the other worker later)
    const doomed = taskProcesses().map((p) => Number(p.split(' ')[0]));
    process.kill(victim!.pid, 'SIGKILL');
    const left = () => doomed.filter((p) => taskProcesses().some((t) => Number(t.split(' ')[0]) === p));
    await waitFor(() => left().length === 0, `the task's processes to die with their worker (left: ${left().join(', ')})`, 15_000);
    assert.equal((await g!.run(['cancel', id])).code, 0);
    await waitFor(() => g!.node(victim!.name).state === 'running' && g!.node(victim!.name).pid !== victim!.pid, `${victim!.name} restarted by dev`, 30_000);
  });
});
