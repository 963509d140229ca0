/**
 * `grid keys`: the operator's interface to CURVE keys and the trust dir (docs/operations.md,
 * "Security"). The files are plain text, so editing them by hand works too.
 *
 *   grid keys create [--out DIR] [--name NAME]     a key pair (NAME.key 0600, NAME.pub)
 *   grid keys show                                  this client's public key (made on first use)
 *   grid keys list                                  authorized keys by role, and known servers
 *   grid keys authorize ROLE KEY|FILE.pub [--name N]
 *   grid keys revoke KEY|FILE.pub [--role ROLE]
 *   grid keys server ENDPOINT KEY|FILE.pub          the key the server at ENDPOINT must hold
 *
 * The trust dir is --trust-dir, else GRID_TRUST_DIR, else <data-dir>/trust (./.grid/trust),
 * the one `grid dev` and the client commands use.
 */
import fs from 'node:fs';
import path from 'node:path';
import { Command } from 'commander';
import {
  GridError,
  KEY_ROLES,
  KeyRole,
  addServer,
  authorizeKey,
  clientTrustDir,
  isZ85Key,
  keyFingerprint,
  loadOrCreateKeyPair,
  newKeyPair,
  readAuthorized,
  readServers,
  revokeKey,
  writeKeyPair,
} from '../common';
import { DEFAULT_DATA_DIR } from './endpoints';

interface TrustFlags {
  trustDir?: string;
  dataDir?: string;
  json?: boolean;
}

function trustDirOf(f: TrustFlags): string {
  return f.trustDir ? path.resolve(f.trustDir) : clientTrustDir(f.dataDir ?? process.env.GRID_DATA_DIR ?? DEFAULT_DATA_DIR);
}

/** A public key given as the key itself or as the path of a .pub file. */
function keyArg(arg: string): string {
  if (isZ85Key(arg)) return arg;
  let text: string;
  try {
    text = fs.readFileSync(arg, 'utf8').trim();
  } catch {
    throw new GridError('BAD_REQUEST', `${JSON.stringify(arg)} is neither a 40-character Z85 public key nor a readable .pub file`, 'give the key (the content of a .pub file) or the file');
  }
  if (!isZ85Key(text)) throw new GridError('BAD_REQUEST', `${arg} does not hold a 40-character Z85 public key`, 'give a .pub file made by `grid keys create` or zmq_curve_keypair');
  return text;
}

function roleArg(arg: string): KeyRole {
  if (!(KEY_ROLES as readonly string[]).includes(arg)) throw new GridError('BAD_REQUEST', `unknown role ${JSON.stringify(arg)}`, `use one of ${KEY_ROLES.join(', ')}`);
  return arg as KeyRole;
}

function trustOptions(cmd: Command): Command {
  return cmd
    .option('--trust-dir <dir>', 'the trust dir (default: $GRID_TRUST_DIR, else <data-dir>/trust)')
    .option('--data-dir <dir>', 'the grid data dir whose trust dir to use (default ./.grid)');
}

export function registerKeysCommand(program: Command): void {
  const keys = program.command('keys').description('CURVE keys: create key pairs, authorize them by role, revoke them (docs/operations.md, "Security")');

  keys
    .command('create')
    .description('make a new key pair: NAME.key (secret, 0600) and NAME.pub, Z85 text as zmq_curve_keypair makes it')
    .option('--out <dir>', 'folder to write into (default: the current folder)')
    .option('--name <name>', 'file name without extension (default: client)')
    .action((f: { out?: string; name?: string }) => {
      const dir = path.resolve(f.out ?? '.');
      const name = f.name ?? 'client';
      if (!/^[A-Za-z0-9._-]{1,100}$/.test(name)) throw new GridError('BAD_REQUEST', `--name ${JSON.stringify(name)} is not a plain file name`, 'use letters, digits, ., _ and -');
      const k = newKeyPair();
      try {
        writeKeyPair(dir, name, k);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'EEXIST') throw new GridError('BAD_REQUEST', `${path.join(dir, name)}.key already exists`, 'choose another --name or --out; a key is never overwritten');
        throw new GridError('BAD_REQUEST', `cannot write ${path.join(dir, name)}.key: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
      }
      process.stdout.write(`${k.publicKey}\n`);
      process.stderr.write(`wrote ${path.join(dir, name)}.key (secret, 0600) and ${name}.pub; authorize it with \`grid keys authorize ROLE ${path.join(dir, name)}.pub\`\n`);
    });

  trustOptions(keys.command('show').description("print this client's public key (made on first use; GRID_CLIENT_KEY names another .key file)")).action((f: TrustFlags) => {
    const file = process.env.GRID_CLIENT_KEY ? path.resolve(process.env.GRID_CLIENT_KEY) : path.join(trustDirOf(f), 'client.key');
    const k = loadOrCreateKeyPair(path.dirname(file), path.basename(file).replace(/\.key$/, ''));
    process.stdout.write(`${k.publicKey}\n`);
  });

  trustOptions(keys.command('list').description('list the authorized keys by role and the known servers').option('--json', 'machine-readable output on stdout')).action((f: TrustFlags) => {
    const dir = trustDirOf(f);
    const auth = readAuthorized(dir);
    const servers = [...readServers(dir)].map(([endpoint, key]) => ({ endpoint, key, fingerprint: keyFingerprint(key) }));
    if (f.json) {
      process.stdout.write(JSON.stringify({ trustDir: dir, authorized: auth.map((a) => ({ ...a, fingerprint: keyFingerprint(a.key) })), servers }, null, 2) + '\n');
      return;
    }
    process.stdout.write(`trust dir ${dir}\n`);
    process.stdout.write(`${'ROLE'.padEnd(10)} ${'FINGERPRINT'.padEnd(11)} ${'PUBLIC KEY'.padEnd(40)} NAME\n`);
    for (const a of auth) process.stdout.write(`${a.role.padEnd(10)} ${keyFingerprint(a.key).padEnd(11)} ${a.key} ${a.name}\n`);
    if (servers.length) {
      process.stdout.write(`\n${'SERVER'.padEnd(28)} ${'FINGERPRINT'.padEnd(11)} PUBLIC KEY\n`);
      for (const s of servers) process.stdout.write(`${s.endpoint.padEnd(28)} ${s.fingerprint.padEnd(11)} ${s.key}\n`);
    }
  });

  trustOptions(
    keys
      .command('authorize')
      .description(`authorize a public key for a role (${KEY_ROLES.join(', ')}); nodes re-read the files within a second`)
      .argument('<role>', KEY_ROLES.join(', '))
      .argument('<key>', 'the public key, or a .pub file')
      .option('--name <name>', 'a name shown in listings and logs (default: the file name or the fingerprint)'),
  ).action((role: string, key: string, f: TrustFlags & { name?: string }) => {
    const r = roleArg(role);
    const k = keyArg(key);
    const name = f.name ?? (isZ85Key(key) ? `${r}-${keyFingerprint(k)}` : path.basename(key).replace(/\.pub$/, ''));
    const dir = trustDirOf(f);
    const added = authorizeKey(dir, r, k, name);
    process.stderr.write(added ? `authorized ${keyFingerprint(k)} (${name}) as ${r} in ${dir}\n` : `${keyFingerprint(k)} was already authorized as ${r}\n`);
  });

  trustOptions(
    keys
      .command('revoke')
      .description('remove a public key from every role (or one); its open connections are refused from their next message')
      .argument('<key>', 'the public key, or a .pub file')
      .option('--role <role>', 'only this role'),
  ).action((key: string, f: TrustFlags & { role?: string }) => {
    const k = keyArg(key);
    const roles = revokeKey(trustDirOf(f), k, f.role ? roleArg(f.role) : undefined);
    if (roles.length === 0) throw new GridError('NOT_FOUND', `${keyFingerprint(k)} is not authorized${f.role ? ` as ${f.role}` : ''}`, 'see `grid keys list`');
    process.stderr.write(`revoked ${keyFingerprint(k)} from ${roles.join(', ')}\n`);
  });

  trustOptions(
    keys
      .command('server')
      .description('record the public key the server at ENDPOINT must hold (the servers file, like ssh known_hosts)')
      .argument('<endpoint>', 'tcp://HOST:PORT')
      .argument('<key>', 'the public key, or a .pub file'),
  ).action((endpoint: string, key: string, f: TrustFlags) => {
    if (!/^tcp:\/\/[^:/\s]+:\d{1,5}$/.test(endpoint)) throw new GridError('BAD_REQUEST', `${JSON.stringify(endpoint)} is not an endpoint like tcp://10.0.0.2:7700`);
    const k = keyArg(key);
    addServer(trustDirOf(f), endpoint, k);
    process.stderr.write(`the server at ${endpoint} must hold ${keyFingerprint(k)}\n`);
  });
}
