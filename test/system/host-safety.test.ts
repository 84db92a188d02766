/*
 * mailveil on a real host (issue 8, point 11): it never mistakes a system
 * directory for its state_dir, and it finds the running instance's config
 * without being told.
 *
 * The scratch-root test runs the real bin/mailveil from `/` in a private
 * mount namespace whose root is an overlay of the host's own `/`: the
 * process sees the real /var, /etc and /tmp, but every write, rename or
 * delete anywhere lands in the overlay's upper layer (a deletion as a
 * whiteout), on a tmpfs that vanishes with the namespace. A snapshot of the
 * upper layer before and after each run is therefore a record of
 * everything the run changed on the whole file system, and the host's /var
 * is never touched. It needs root (mount namespaces, overlayfs), util-linux
 * unshare and coreutils chroot; under CI=true nothing skips.
 *
 * The other tests speak to bin/mailveil on temp dirs, as an operator would.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { BIN, REPO_ROOT } from '../helpers/paths';
import { freePort, waitFor } from '../helpers/ports';
import { isCI, isRoot, startSink, systemSkipReason, type Sink } from '../helpers/sink';
import { sendOne } from '../helpers/smtp-client';
import { startMailveil } from '../helpers/mailveil';
import { snapshot } from '../helpers/tree';

const cleanups: (() => unknown)[] = [];
after(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function temp(prefix = 'mv-host-'): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  cleanups.push(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

/** The environment without MAILVEIL_CONFIG, plus `extra`. */
function env(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const e = { ...process.env, ...extra };
  if (!('MAILVEIL_CONFIG' in extra)) delete e.MAILVEIL_CONFIG;
  return e;
}

function run(args: string[], extraEnv: NodeJS.ProcessEnv = {}, cwd = REPO_ROOT) {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 20_000, cwd, env: env(extraEnv) });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

/** A directory like /var: other programs' files, one of them named like a spool file of ours. */
function foreignDir(): string {
  const d = temp();
  mkdirSync(join(d, 'spool', 'cron'), { recursive: true });
  writeFileSync(join(d, 'spool', 'cron', 'root'), '* * * * * true\n');
  writeFileSync(join(d, 'spool', '0ABC123.spool'), 'another program\'s file');
  mkdirSync(join(d, 'lib'));
  writeFileSync(join(d, 'notes.txt'), 'hello');
  return d;
}

const REFUSED = (dir: string, names: string) =>
  `mailveil: state_dir ${dir} already holds files mailveil did not create (${names}); set state_dir to a new or empty directory, or pass --init if mailveil should really use this one\n`;

test('serve refuses a state_dir holding files it did not create: exit 1, one line, nothing changed', () => {
  const dir = foreignDir();
  const before = snapshot(dir);
  const r = run(['serve', '--state-dir', dir, '--listen', '127.0.0.1:1', '--metrics', '127.0.0.1:2', '--admin', '127.0.0.1:3']);
  assert.equal(r.code, 1);
  assert.equal(r.err, REFUSED(dir, 'lib, notes.txt'));
  assert.equal(r.out, '');
  assert.deepEqual(snapshot(dir), before);
});

test('serve --init takes such a directory: the marker is added, the other files stay', { skip: systemSkipReason(['smtp-sink']) }, async () => {
  const dir = foreignDir();
  const before = snapshot(dir);
  const mv = await startMailveil({ nextHop: `127.0.0.1:${await freePort()}`, stateDir: dir, extraArgs: ['--init'], env: env() });
  cleanups.push(() => mv.stop());
  await mv.stop();
  const marker = JSON.parse(readFileSync(join(dir, 'state.json'), 'utf8'));
  assert.equal(marker.kind, 'mailveil-state');
  assert.equal(marker.format, 1);
  assert.ok(Date.now() - Date.parse(marker.created) < 60_000);
  const now = snapshot(dir);
  // --init says "this dir is mailveil's": a file named exactly like a spool file is then taken for one.
  const ours = ['.', 'spool', 'spool/0ABC123.spool'];
  for (const [path, entry] of Object.entries(before)) if (!ours.includes(path)) assert.equal(now[path], entry, path);
  assert.equal(now['spool/0ABC123.spool'], undefined);
});

test('commands other than serve refuse a foreign state_dir and write nothing; an empty one is used, not marked', () => {
  const dir = foreignDir();
  const before = snapshot(dir);
  for (const args of [['quarantine', 'list'], ['quarantine', 'purge'], ['keys', 'rotate'], ['sar', 'erase', 'jane@example.com']]) {
    const r = run([...args, '--state-dir', dir]);
    assert.equal(r.code, 1, args.join(' '));
    assert.equal(r.err, `mailveil: state_dir ${dir} is not mailveil's (no state.json, and it holds lib, notes.txt); name the instance with --config FILE (or MAILVEIL_CONFIG) or --state-dir DIR\n`);
  }
  assert.deepEqual(snapshot(dir), before);
  const empty = temp();
  const r = run(['quarantine', 'list', '--state-dir', empty]);
  assert.equal(r.code, 0, r.err);
  assert.deepEqual(readdirSync(empty), []);
});

test('MAILVEIL_CONFIG names the instance for every command; --config wins over it; a missing one is an error', () => {
  const a = temp();
  const b = temp();
  for (const d of [a, b]) mkdirSync(join(d, 'state'));
  writeFileSync(join(a, 'mailveil.yaml'), `state_dir: state\nrules_dir: ${JSON.stringify(join(REPO_ROOT, 'rules.d'))}\n`);
  writeFileSync(join(b, 'mailveil.yaml'), 'state_dir: state\n');
  writeFileSync(join(b, 'state', 'notes.txt'), 'b is not a mailveil state dir');
  const elsewhere = temp();
  // Relative to the file, whatever the working directory.
  let r = run(['quarantine', 'list'], { MAILVEIL_CONFIG: join(a, 'mailveil.yaml') }, elsewhere);
  assert.equal(r.code, 0, r.err);
  assert.equal(r.out, 'no messages in quarantine\n');
  r = run(['quarantine', 'list'], { MAILVEIL_CONFIG: join(b, 'mailveil.yaml') }, elsewhere);
  assert.equal(r.code, 1);
  assert.match(r.err, new RegExp(`state_dir ${join(b, 'state')} is not mailveil's`));
  r = run(['quarantine', 'list', '--config', join(a, 'mailveil.yaml')], { MAILVEIL_CONFIG: join(b, 'mailveil.yaml') }, elsewhere);
  assert.equal(r.code, 0, r.err);
  r = run(['quarantine', 'list'], { MAILVEIL_CONFIG: join(a, 'missing.yaml') }, elsewhere);
  assert.equal(r.code, 1);
  assert.equal(r.err, `mailveil: ${join(a, 'missing.yaml')}: cannot read: ENOENT\n`);
  r = run(['gdpr', 'report'], { MAILVEIL_CONFIG: join(a, 'mailveil.yaml') }, elsewhere);
  assert.equal(r.code, 0, r.err);
  assert.ok(r.out.includes(`\`${join(a, 'state')}\``), 'the report names the instance from MAILVEIL_CONFIG');
  for (const cmd of [['serve'], ['quarantine', 'list'], ['keys', 'rotate'], ['sar', 'find'], ['gdpr', 'report'], ['rules', 'check']]) {
    const help = run([...cmd, '--help']).out.replace(/\s+/g, ' ');
    assert.ok(help.includes('--config <file> YAML config file (default: $MAILVEIL_CONFIG, else /etc/mailveil/mailveil.yaml if it exists)'), cmd.join(' '));
  }
});

// ---- the scratch root ------------------------------------------------------

const SCRATCH_TOOLS = ['unshare', 'chroot', 'mount', 'timeout', 'find', 'smtp-sink'];

function scratchSkip(): string | false {
  if (isCI()) return false;
  if (!isRoot()) return 'needs root (a private mount namespace with an overlay of /)';
  return systemSkipReason(SCRATCH_TOOLS);
}

/*
 * Run in `unshare --mount` (so every mount below is private to it): a tmpfs
 * over $MV_T holds the overlay's layers; $R is `/` with writes diverted.
 * Phases: A `serve` from / with no config and no --state-dir (must refuse
 * ./var = /var);
 * B `serve` from / with no flags, finding /etc/mailveil/mailveil.yaml;
 * C `quarantine list` from / with no flags. Snapshots of the upper layer
 * go to stdout as `MV-SNAP <tag> <entry>` lines.
 */
const SCRATCH_SCRIPT = String.raw`
set -eu
T="$MV_T"; R="$T/root"
mount -t tmpfs mailveil-scratch "$T"
mkdir -p "$T/upper/var/spool" "$T/work" "$R"
# A file in the system spool named exactly like one of ours: it must survive.
printf 'another program\n' > "$T/upper/var/spool/0ABC123.spool"
mount -t overlay mailveil-root -o "lowerdir=/,upperdir=$T/upper,workdir=$T/work" "$R"
mount --rbind /proc "$R/proc"
mount --rbind /dev "$R/dev"
# The repository and node may live on another file system than /: bind them, read-only.
for d in "$MV_REPO" "$MV_NODE_DIR"; do
  if [ -z "$(ls -A "$R$d" 2>/dev/null)" ]; then mkdir -p "$R$d"; mount --bind "$d" "$R$d"; mount -o remount,bind,ro "$R$d"; fi
done
# The host's own /etc/mailveil, if any, must not be what this test reads.
if [ -e "$R/etc/mailveil" ]; then mount -t tmpfs mailveil-etc "$R/etc/mailveil"; else mkdir "$R/etc/mailveil"; fi
snap() { (cd "$T/upper" && find . \( -type d -printf "MV-SNAP $1 d %m %p\n" \) -o -printf "MV-SNAP $1 %y %m %s %T@ %p\n"); }

snap A0
# Everything but state_dir is given, as an operator would: only ./var is left to its default.
rc=0; timeout 20 chroot "$R" "$MV_NODE" "$MV_REPO/bin/mailveil" serve --rules "$MV_REPO/rules.d" \
  --listen "127.0.0.1:$MV_LISTEN" --metrics "127.0.0.1:$MV_METRICS" --admin "127.0.0.1:$MV_ADMIN" --next-hop "$MV_NEXT_HOP" \
  >"$T/a.out" 2>"$T/a.err" || rc=$?
echo "MV-EXIT A $rc"; sed 's/^/MV-OUT A /' "$T/a.out"; sed 's/^/MV-ERR A /' "$T/a.err"
snap A1

cat > "$R/etc/mailveil/mailveil.yaml" <<EOF
state_dir: $MV_STATE
rules_dir: $MV_REPO/rules.d
listen: 127.0.0.1:$MV_LISTEN
next_hop: $MV_NEXT_HOP
metrics: 127.0.0.1:$MV_METRICS
admin: 127.0.0.1:$MV_ADMIN
EOF
snap B0
chroot "$R" "$MV_NODE" "$MV_REPO/bin/mailveil" serve &
pid=$!
echo "MV-PID $pid"
rc=0; wait "$pid" || rc=$?
echo "MV-EXIT B $rc"
snap B1

rc=0; timeout 30 chroot "$R" "$MV_NODE" "$MV_REPO/bin/mailveil" quarantine list --json >"$T/c.out" 2>"$T/c.err" || rc=$?
echo "MV-EXIT C $rc"; sed 's/^/MV-OUT C /' "$T/c.out"; sed 's/^/MV-ERR C /' "$T/c.err"
snap C1
`;

interface ScratchRun {
  exits: Record<string, number>;
  out: Record<string, string[]>;
  err: Record<string, string[]>;
  snaps: Record<string, Map<string, string>>;
  logs: Record<string, unknown>[];
  stderr: string;
}

/** Entries of the upper layer that differ between two snapshots, by path. */
function changed(a: Map<string, string>, b: Map<string, string>): string[] {
  const paths = new Set([...a.keys(), ...b.keys()]);
  return [...paths].filter((p) => a.get(p) !== b.get(p)).sort();
}

test('scratch root: serve from / refuses ./var and changes nothing anywhere; with the /etc config it writes only under state_dir; quarantine list finds that instance', { skip: scratchSkip(), timeout: 120_000 }, async () => {
  const t = mkdtempSync(join(tmpdir(), 'mv-scratch-'));
  cleanups.push(() => {
    // The tmpfs over it lived in the namespace only; here it is an empty dir.
    if (existsSync(t) && readdirSync(t).length === 0) rmdirSync(t);
  });
  const sink: Sink = await startSink();
  cleanups.push(() => sink.stop());
  const [listen, metrics, admin] = [await freePort(), await freePort(), await freePort()];
  const stateDir = `/var/lib/mailveil-host-safety-${randomBytes(4).toString('hex')}`;
  const child = spawn('unshare', ['--mount', '--propagation', 'private', 'sh', '-c', SCRATCH_SCRIPT], {
    env: env({
      MV_T: t,
      MV_REPO: REPO_ROOT,
      MV_NODE: process.execPath,
      MV_NODE_DIR: dirname(process.execPath),
      MV_STATE: stateDir,
      MV_LISTEN: String(listen),
      MV_NEXT_HOP: sink.address,
      MV_METRICS: String(metrics),
      MV_ADMIN: String(admin),
    }),
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  cleanups.push(() => {
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {
      /* already gone */
    }
  });
  const r: ScratchRun = { exits: {}, out: {}, err: {}, snaps: {}, logs: [], stderr: '' };
  let pid: number | undefined;
  child.stderr.on('data', (d) => (r.stderr += d));
  createInterface({ input: child.stdout }).on('line', (line) => {
    let m: RegExpExecArray | null;
    if ((m = /^MV-SNAP (\S+) (\S+ \S+(?: \S+ \S+)?) (\..*)$/.exec(line))) (r.snaps[m[1]] ??= new Map()).set(m[3], m[2]);
    else if ((m = /^MV-EXIT (\S+) (\d+)$/.exec(line))) r.exits[m[1]] = Number(m[2]);
    else if ((m = /^MV-(OUT|ERR) (\S+) ?(.*)$/.exec(line))) (r[m[1] === 'OUT' ? 'out' : 'err'][m[2]] ??= []).push(m[3]);
    else if ((m = /^MV-PID (\d+)$/.exec(line))) pid = Number(m[1]);
    else if (line.startsWith('{')) r.logs.push(JSON.parse(line));
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));

  // Phase B is up once its listening line is out; then one message goes to quarantine (spooled: over 1 MiB).
  await waitFor(() => r.logs.some((l) => l.msg === 'listening') || child.exitCode !== null, {
    timeoutMs: 60_000,
    what: 'phase B to listen',
    describe: () => r.stderr,
  });
  assert.ok(pid, `no phase B: ${r.stderr}`);
  const filler = 'Lorem ipsum dolor sit amet, consectetur adipiscing elit.\r\n'.repeat(30_000);
  const body = `From: <sender@example.com>\r\nTo: <rcpt@example.net>\r\nSubject: keys\r\n\r\n${filler}-----BEGIN OPENSSH PRIVATE KEY-----\r\nb3BlbnNzaC1rZXktdjEAAAAA\r\n-----END OPENSSH PRIVATE KEY-----\r\n`;
  const sent = await sendOne(listen, { from: 'sender@example.com', to: ['rcpt@example.net'], body });
  assert.equal(sent.final?.code, 250, JSON.stringify(sent));
  const id = /held in quarantine as ([0-9A-Z]+)/.exec(sent.final!.text)?.[1];
  assert.ok(id, sent.final!.text);
  process.kill(pid!, 'SIGTERM');
  assert.equal(await exited, 0, r.stderr);

  // A: refused in one line, exit 1, and not one entry of the whole file system changed.
  assert.equal(r.exits.A, 1, (r.err.A ?? []).join('\n'));
  assert.equal(r.out.A, undefined);
  assert.equal(r.err.A?.length, 1);
  assert.match(r.err.A[0], /^mailveil: state_dir \/var already holds files mailveil did not create \(.+\); set state_dir to a new or empty directory, or pass --init if mailveil should really use this one$/);
  assert.ok(r.snaps.A0.has('./var/spool/0ABC123.spool'));
  assert.deepEqual(changed(r.snaps.A0, r.snaps.A1), []);

  // B: every change is state_dir or inside it, or a parent directory the overlay copied up to hold it.
  assert.equal(r.exits.B, 0);
  const rel = '.' + stateDir;
  const parents = ['./var', './var/lib'];
  const changes = changed(r.snaps.B0, r.snaps.B1);
  for (const p of changes) {
    const inside = p === rel || p.startsWith(rel + '/');
    const parentDir = parents.includes(p) && r.snaps.B1.get(p)?.startsWith('d ');
    assert.ok(inside || parentDir, `serve changed ${p} (${r.snaps.B0.get(p)} -> ${r.snaps.B1.get(p)}), outside state_dir ${stateDir}`);
  }
  for (const p of ['state.json', 'pseudonym.key', 'admin.token', 'spool', `quarantine/${id}.mvq`]) assert.ok(changes.includes(`${rel}/${p}`), `${p} in ${changes.join(' ')}`);
  assert.ok(![...r.snaps.B1.values()].some((v) => v.startsWith('c ')), 'no whiteout: nothing was deleted outside what serve made');
  assert.equal(r.snaps.B1.get('./var/spool/0ABC123.spool'), r.snaps.A0.get('./var/spool/0ABC123.spool'));

  // C: the default config file led `quarantine list` to the instance, and it wrote nothing.
  assert.equal(r.exits.C, 0, (r.err.C ?? []).join('\n'));
  assert.deepEqual(JSON.parse(r.out.C.join('\n')).map((e: { id: string }) => e.id), [id]);
  assert.deepEqual(changed(r.snaps.B1, r.snaps.C1), []);
});
