/**
 * Peers authenticated (docs/operations.md, "Security"), on a real `grid dev` with security on:
 * each attack of issue 9's "Peers" list is refused with the documented error, and a C client
 * built on include/grid/messages.h and libzmq lists the jobs over CURVE.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import * as zmq from 'zeromq';
import { keyFingerprint } from '../../src/common';
import { ERROR_CODES, Message, MessageInput, PROTOCOL_VERSION, decode, encode, newUuid } from '../../src/messages';
import { EXAMPLES, Grid, REPO, adminStatus, makeTmpDir, startGrid, waitFor } from '../helpers/grid';
import { TEST_TRUST_DIR, freshSecurity, watchedSocket } from '../helpers/security';

const WORDCOUNT = path.join(EXAMPLES, 'wordcount', 'job.js');
const DATA = path.join(EXAMPLES, 'wordcount', 'data');
/** Time a raw peer waits for the answer to one message. */
const ANSWER_WAIT_MS = 10_000;

/** Sends one message on a fresh socket of `sec` and returns the first answer. */
async function ask(sock: zmq.Dealer, m: MessageInput): Promise<Message> {
  await sock.send(encode(m));
  const got = await Promise.race([sock.receive(), new Promise<never>((_, rej) => setTimeout(() => rej(new Error('no answer')), ANSWER_WAIT_MS))]);
  return decode(got as Buffer[]);
}

function errorOf(m: Message): { code: number; message: string } {
  assert.equal(m.type, 'error_reply', `expected error_reply, got ${m.type}`);
  return { code: (m as { error_code: number }).error_code, message: (m as { message: string }).message };
}

function vmHwmKiB(pid: number): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m![1]);
}

describe('e2e: peers authenticated (CurveZMQ + ZAP, role checks, sender checks)', function () {
  this.timeout(180_000);
  let g: Grid | undefined;
  let jobId = '';
  const socks: zmq.Socket[] = [];
  const tmp = makeTmpDir('grid-sec-');

  before(async () => {
    g = await startGrid({ workers: 1 });
    const r = await g.run(['submit', WORDCOUNT, '--inputs', path.join(DATA, fs.readdirSync(DATA)[0]!), '--wait']);
    assert.equal(r.code, 0, r.stderr);
    jobId = /job ([0-9a-f-]{36}) succeeded/.exec(r.stdout + r.stderr)![1]!;
  });
  after(async () => {
    for (const s of socks.splice(0)) s.close();
    await g?.stop();
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  /** A raw peer with a fresh key authorized as `roles`, and its first handshake's outcome. */
  function sock(roles: Parameters<typeof freshSecurity>[1], endpoint: string): zmq.Dealer {
    const w = watchedSocket(freshSecurity('attacker', roles), endpoint);
    socks.push(w.sock);
    handshakes.set(w.sock, w.handshake);
    return w.sock;
  }
  /** zeromq sockets are sealed: the first handshake outcome of each raw peer is kept here. */
  const handshakes = new Map<zmq.Dealer, Promise<string>>();

  it('a client whose key is not authorized gets "not authorized: ..." at once, not a timeout', async () => {
    const keyDir = path.join(tmp, 'stranger');
    fs.mkdirSync(keyDir);
    const made = spawnSync(process.execPath, [path.join(REPO, 'bin', 'grid.js'), 'keys', 'create', '--out', keyDir, '--name', 'stranger'], { encoding: 'utf8' });
    assert.equal(made.status, 0, made.stderr);
    assert.equal((fs.statSync(path.join(keyDir, 'stranger.key')).mode & 0o777).toString(8), '600');
    const r = await g!.run(['jobs'], { env: { GRID_CLIENT_KEY: path.join(keyDir, 'stranger.key'), GRID_MASTER_RETRY_WINDOW_MS: '60000' } });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /NOT_AUTHORIZED: not authorized: the server at tcp:\/\/127\.0\.0\.1:\d+ refused this client's key/);
    assert.match(r.stderr, /grid keys authorize clients/);
    assert.doesNotMatch(r.stderr, /no master answers|TIMEOUT/);
    // authorized, the same key works
    const auth = await g!.run(['keys', 'authorize', 'clients', path.join(keyDir, 'stranger.pub')]);
    assert.equal(auth.code, 0, auth.stderr);
    const ok = await g!.run(['jobs'], { env: { GRID_CLIENT_KEY: path.join(keyDir, 'stranger.key') } });
    assert.equal(ok.code, 0, ok.stderr);
    // revoked: refused again
    assert.equal((await g!.run(['keys', 'revoke', path.join(keyDir, 'stranger.pub')])).code, 0);
    await waitFor(async () => (await g!.run(['jobs'], { env: { GRID_CLIENT_KEY: path.join(keyDir, 'stranger.key') } })).code === 1, 'the revoked key to be refused', 10_000, 200);
  });

  it("jobs have owners: another client can neither list, see, read nor cancel a job; an admin key can", async () => {
    const keyOf = (name: string, roles: string[]) => {
      const dir = path.join(tmp, name);
      fs.mkdirSync(dir);
      const made = spawnSync(process.execPath, [path.join(REPO, 'bin', 'grid.js'), 'keys', 'create', '--out', dir, '--name', name], { encoding: 'utf8' });
      assert.equal(made.status, 0, made.stderr);
      for (const r of roles) assert.equal(spawnSync(process.execPath, [path.join(REPO, 'bin', 'grid.js'), 'keys', 'authorize', r, path.join(dir, `${name}.pub`)], { encoding: 'utf8' }).status, 0);
      return { GRID_CLIENT_KEY: path.join(dir, `${name}.key`) };
    };
    const other = keyOf('other', ['clients']);
    const admin = keyOf('admin', ['clients', 'admins']);
    const list = await g!.run(['jobs', '--json'], { env: other });
    assert.equal(list.code, 0, list.stderr);
    assert.ok(!list.stdout.includes(jobId), "another client's list does not show the job");

    // `grid jobs` shows each job's owner as its key's fingerprint (job_list2_response.owner_keys)
    const otherKey = fs.readFileSync(other.GRID_CLIENT_KEY.replace(/\.key$/, '.pub'), 'utf8').trim().split(/\s+/)[0]!;
    const sub = await g!.run(['submit', WORDCOUNT, '--inputs', path.join(DATA, fs.readdirSync(DATA)[0]!), '--wait'], { env: other });
    assert.equal(sub.code, 0, sub.stderr);
    const otherJob = /job ([0-9a-f-]{36}) succeeded/.exec(sub.stdout + sub.stderr)![1]!;
    type Listed = { jobId: string; owner: string | null; ownerKey: string | null };
    const listJson = async (env?: NodeJS.ProcessEnv): Promise<Listed[]> => {
      const r = await g!.run(['jobs', '--json'], { env });
      assert.equal(r.code, 0, r.stderr);
      return JSON.parse(r.stdout) as Listed[];
    };
    const asOther = await listJson(other);
    assert.deepEqual(asOther.map((j) => [j.jobId, j.owner, j.ownerKey]), [[otherJob, keyFingerprint(otherKey), otherKey]], 'the second key sees its own job only, with itself as owner');
    const asOwner = await listJson();
    assert.ok(!asOwner.some((j) => j.jobId === otherJob), "the first client does not see the second key's job");
    const ownerFp = asOwner.find((j) => j.jobId === jobId)?.owner;
    assert.match(ownerFp ?? '', /^[0-9a-f]{8}$/, 'the job shows its owner');
    assert.notEqual(ownerFp, keyFingerprint(otherKey));
    const asAdmin = await listJson(admin);
    assert.deepEqual(
      [jobId, otherJob].map((id) => asAdmin.find((j) => j.jobId === id)?.owner),
      [ownerFp, keyFingerprint(otherKey)],
      'an admin sees every job with its owner',
    );
    const text = await g!.run(['jobs']);
    assert.match(text.stdout.split('\n')[0]!, /\bOWNER\b/);
    assert.match(text.stdout.split('\n').find((l) => l.startsWith(jobId)) ?? '', new RegExp(`\\s${ownerFp}\\s`), text.stdout);
    const otherText = await g!.run(['jobs'], { env: other });
    assert.match(otherText.stdout.split('\n').find((l) => l.startsWith(otherJob)) ?? '', new RegExp(`\\s${keyFingerprint(otherKey)}\\s`), otherText.stdout);
    for (const args of [['status', jobId], ['results', jobId, '--out', path.join(tmp, 'other-out')], ['cancel', jobId], ['logs', jobId]]) {
      const r = await g!.run(args, { env: other });
      assert.notEqual(r.code, 0, `${args[0]} must fail for another client: ${r.stdout}`);
      assert.match(r.stderr, /NOT_FOUND/, `${args[0]}: ${r.stderr}`);
    }
    const seen = await g!.run(['jobs', '--json'], { env: admin });
    assert.ok(seen.stdout.includes(jobId), 'an admin sees every job');
    const st = await g!.run(['status', jobId], { env: admin });
    assert.equal(st.code, 0, st.stderr);
    const mine = await g!.run(['status', jobId]);
    assert.equal(mine.code, 0, mine.stderr);
  });

  it('forged task_result: refused NOT_AUTHORIZED from a client key, and nothing is recorded', async () => {
    const s = sock(['clients'], g!.master);
    const m = await ask(s, {
      type: 'task_result',
      node_uuid: newUuid(),
      job_uuid: jobId,
      task_index: 0,
      attempt: 0,
      worker_uuid: newUuid(),
      outcome: 0,
      final: 1,
      exit_code: 0,
      duration_ms: 1,
      log_file_uuid: newUuid(),
      epoch: 1,
      output_file_uuids: [],
      output_names: [],
      error: '',
      log_tail: '',
    } as unknown as MessageInput);
    const e = errorOf(m);
    assert.equal(e.code, ERROR_CODES.NOT_AUTHORIZED);
    assert.match(e.message, /task_result is taken only from balancers/);
  });

  it('fake balancer: a worker key asking for the lease is refused and gets no task', async () => {
    const s = sock(['workers'], g!.master);
    const m = await ask(s, { type: 'balancer_hello', node_uuid: newUuid(), protocol_version: PROTOCOL_VERSION, role: 0, epoch: 0, request_seq: 1, fed: 0, credit_limit: 1000 } as MessageInput);
    assert.equal(errorOf(m).code, ERROR_CODES.NOT_AUTHORIZED);
  });

  it('fake worker: a client key sending worker_ready to the balancer is refused', async () => {
    const s = sock(['clients'], g!.state.balancer);
    const m = await ask(s, { type: 'worker_ready', node_uuid: newUuid(), protocol_version: PROTOCOL_VERSION, slots: 4, prefetch: 0, software_version: '', cached_file_uuids: [] } as unknown as MessageInput);
    assert.equal(errorOf(m).code, ERROR_CODES.NOT_AUTHORIZED);
  });

  it("forged worker_status with a real worker's id (another worker key) does not evict it", async () => {
    const worker = g!.node('worker-0');
    const bal = g!.node('balancer');
    const before = (await adminStatus(bal.adminPort)) as { workers: { workerId: string }[] };
    assert.ok(before.workers.some((w) => w.workerId === worker.nodeId), 'the real worker is registered');
    const s = sock(['workers'], g!.state.balancer);
    const m = await ask(s, { type: 'worker_status', node_uuid: worker.nodeId, job_uuid: '00000000-0000-0000-0000-000000000000', state: 0 } as MessageInput);
    const e = errorOf(m);
    assert.equal(e.code, ERROR_CODES.NOT_AUTHORIZED);
    assert.match(e.message, /registered by another key/);
    const after = (await adminStatus(bal.adminPort)) as { workers: { workerId: string }[] };
    assert.ok(after.workers.some((w) => w.workerId === worker.nodeId), 'still registered');
    // and it still runs work
    const r = await g!.run(['submit', WORDCOUNT, '--inputs', path.join(DATA, fs.readdirSync(DATA)[0]!), '--wait']);
    assert.equal(r.code, 0, r.stderr);
  });

  it('a key authorized for no role cannot even connect (ZAP): handshake:error:auth', async () => {
    const s = sock([], g!.master);
    void s.send(encode({ type: 'job_list_request', node_uuid: newUuid(), request_uuid: newUuid(), limit: 1 } as MessageInput)).catch(() => undefined);
    assert.equal(await handshakes.get(s), 'handshake:error:auth');
  });

  it('oversized frames: the master drops the connection and its peak memory stays bounded', async () => {
    const master = g!.node('master');
    const peakBefore = vmHwmKiB(master.pid);
    const s = sock(['clients'], g!.master);
    s.sendTimeout = 2_000;
    assert.equal(await handshakes.get(s), 'handshake');
    const big = Buffer.alloc(256 * 1024 * 1024, 0x41);
    for (let i = 0; i < 8; i++) await s.send([big]).catch(() => undefined);
    // the master still serves, and its peak RSS grew by far less than one frame
    const ok = await g!.run(['jobs']);
    assert.equal(ok.code, 0, ok.stderr);
    const grownMiB = (vmHwmKiB(master.pid) - peakBefore) / 1024;
    assert.ok(grownMiB < 128, `master peak RSS grew by ${grownMiB.toFixed(0)} MiB (a 256 MiB frame must never be buffered)`);
  });

  it('a C client (libzmq + include/grid/messages.h, CURVE) lists the jobs; with an unauthorized key it is told so', function () {
    const bin = path.join(tmp, 'list_jobs');
    execFileSync('cc', ['-O1', '-Wall', '-Werror', '-I', path.join(REPO, 'include'), '-o', bin, path.join(REPO, 'test', 'messages', 'c', 'list_jobs.c'), '-lzmq', '-lcrypto']);
    const serverPub = path.join(g!.node('master').dataDir, 'curve.pub');
    const trust = process.env.GRID_TRUST_DIR ?? TEST_TRUST_DIR;
    const ok = spawnSync(bin, [g!.master, serverPub, path.join(trust, 'client.key'), path.join(trust, 'client.pub')], { encoding: 'utf8', timeout: 30_000 });
    assert.equal(ok.status, 0, ok.stdout + ok.stderr);
    assert.ok(ok.stdout.split('\n').includes(jobId), `the job ${jobId} is listed:\n${ok.stdout}`);
    const stranger = freshSecurity('c-stranger');
    const dir = path.join(tmp, 'c-stranger');
    fs.mkdirSync(dir);
    fs.writeFileSync(path.join(dir, 'k.key'), stranger.keys!.secretKey + '\n');
    fs.writeFileSync(path.join(dir, 'k.pub'), stranger.keys!.publicKey + '\n');
    const no = spawnSync(bin, [g!.master, serverPub, path.join(dir, 'k.key'), path.join(dir, 'k.pub')], { encoding: 'utf8', timeout: 30_000 });
    assert.equal(no.status, 4, no.stdout + no.stderr);
    assert.match(no.stdout, /not authorized/);
  });
});
