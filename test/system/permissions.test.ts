/*
 * A permission problem is the operator's to fix, so it reads as one: exit 1,
 * one line on stderr naming the path and what to do, never "internal error"
 * and a stack trace (issue 9). Each case runs the real bin/mailveil as
 * nobody (uid 65534, through setpriv or runuser) against a state_dir that
 * root prepared, so it needs root; it is skipped otherwise, except under CI.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, chownSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { BIN, REPO_ROOT } from '../helpers/paths';
import { freePorts } from '../helpers/ports';
import { findTool, isCI, isRoot } from '../helpers/sink';
import { QuarantineStore } from '../../src/quarantine/store';
import { SMALL_MESSAGE, chunked, sampleMeta } from '../fixtures/quarantine/sample';

const NOBODY = 65534;
const AS_NOBODY = findTool('setpriv')
  ? [findTool('setpriv')!, `--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups']
  : findTool('runuser')
    ? [findTool('runuser')!, '-u', 'nobody', '--']
    : undefined;
const skip = isCI() ? false : !isRoot() ? 'needs root (to run mailveil as another user)' : !AS_NOBODY ? 'needs setpriv or runuser (util-linux)' : false;

const cleanups: (() => void)[] = [];
after(() => {
  for (const c of cleanups.splice(0).reverse()) c();
});

/** Where nobody finds node and the checkout. */
interface AppView {
  node: string;
  bin: string;
  root: string;
}
let view: AppView | undefined;

/**
 * The checkout, and node itself, may sit under a directory only root may
 * enter (CI's clone, the Node 24 copy under a 0700 mktemp dir). Then they are
 * bind-mounted into a world-readable scratch dir: a bind mount is reached
 * without passing the original's parents.
 */
function appView(): AppView {
  if (view) return view;
  const probe = spawnSync(AS_NOBODY![0], [...AS_NOBODY!.slice(1), process.execPath, '-e', `require('fs').accessSync(${JSON.stringify(BIN)}, 4)`], { timeout: 20_000 });
  if (probe.status === 0) return (view = { node: process.execPath, bin: BIN, root: REPO_ROOT });
  const base = mkdtempSync(join(tmpdir(), 'mv-perm-app-'));
  chmodSync(base, 0o755);
  const root = join(base, 'app');
  const node = join(base, 'node');
  mkdirSync(root, { mode: 0o755 });
  writeFileSync(node, '', { mode: 0o755 });
  // Cleanups run last-first: the mounts go before the directory holding them.
  cleanups.push(() => rmSync(base, { recursive: true, force: true }));
  for (const [from, to] of [[REPO_ROOT, root], [process.execPath, node]]) {
    const r = spawnSync('mount', ['--bind', from, to], { encoding: 'utf8' });
    assert.equal(r.status, 0, `mount --bind ${from}: ${r.stderr}`);
    cleanups.push(() => void spawnSync('umount', [to]));
  }
  return (view = { node, bin: join(root, relative(REPO_ROOT, BIN)), root });
}

/** A world-readable scratch dir holding a config file that names the shipped rules. */
function scratch(): { base: string; config: string } {
  const base = mkdtempSync(join(tmpdir(), 'mv-perm-'));
  cleanups.push(() => rmSync(base, { recursive: true, force: true }));
  chmodSync(base, 0o755);
  const config = join(base, 'mailveil.yaml');
  writeFileSync(config, `rules_dir: ${join(appView().root, 'rules.d')}\nlog_level: warn\n`, { mode: 0o644 });
  return { base, config };
}

/** A marked state_dir, as `serve` leaves it. */
function stateDir(base: string, name = 'state'): string {
  const dir = join(base, name);
  mkdirSync(dir, { mode: 0o755 });
  writeFileSync(join(dir, 'state.json'), JSON.stringify({ kind: 'mailveil-state', format: 1, created: new Date().toISOString() }) + '\n', { mode: 0o644 });
  return dir;
}

function chownTree(path: string, uid: number): void {
  chownSync(path, uid, uid);
  if (lstatSync(path).isDirectory()) for (const n of readdirSync(path)) chownTree(join(path, n), uid);
}

function runAsNobody(args: string[], cwd: string) {
  const env = { ...process.env };
  delete env.MAILVEIL_CONFIG;
  const { node, bin } = appView();
  const r = spawnSync(AS_NOBODY![0], [...AS_NOBODY!.slice(1), node, bin, ...args], { encoding: 'utf8', timeout: 20_000, cwd, env });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

/** Exit 1 and exactly one stderr line, naming `path`, with the fix and no stack. */
function assertOneLine(r: ReturnType<typeof runAsNobody>, path: string, pattern: RegExp): void {
  const show = `exit ${r.code}\nstderr: ${r.err}\nstdout: ${r.out}`;
  assert.equal(r.code, 1, show);
  assert.match(r.err, /^mailveil: [^\n]+\n$/, show);
  assert.ok(r.err.includes(path), `stderr does not name ${path}\n${show}`);
  assert.match(r.err, pattern, show);
  assert.doesNotMatch(r.err, /internal error|\bat .+:\d+:\d+/, show);
}

const FIX = /EACCES \(permission denied\); run mailveil as the user that owns state_dir, or fix its ownership\n$/;

async function servePorts(): Promise<string[]> {
  const [smtp, metrics, admin] = await freePorts(3);
  return ['--listen', `127.0.0.1:${smtp}`, '--metrics', `127.0.0.1:${metrics}`, '--admin', `127.0.0.1:${admin}`, '--next-hop', '127.0.0.1:9'];
}

test('serve: a state_dir owned by root with mode 0500', { skip }, async () => {
  const { base, config } = scratch();
  const dir = stateDir(base);
  chmodSync(dir, 0o500);
  const r = runAsNobody(['serve', '--config', config, '--state-dir', dir, ...(await servePorts())], base);
  assertOneLine(r, dir, new RegExp(`^mailveil: cannot read ${dir}/state\\.json: ${FIX.source}`));
});

test('serve: pseudonym.key cannot be written (state_dir not writable)', { skip }, async () => {
  const { base, config } = scratch();
  const dir = stateDir(base); // root's, 0755: readable, not writable
  const r = runAsNobody(['serve', '--config', config, '--state-dir', dir, ...(await servePorts())], base);
  assertOneLine(r, join(dir, 'pseudonym.key'), new RegExp(`^mailveil: cannot write ${dir}/pseudonym\\.key: ${FIX.source}`));
});

test('serve: pseudonym.key unreadable', { skip }, async () => {
  const { base, config } = scratch();
  const dir = stateDir(base);
  writeFileSync(join(dir, 'pseudonym.key'), Buffer.alloc(32, 7), { mode: 0o600 });
  chownTree(dir, NOBODY);
  chownSync(join(dir, 'pseudonym.key'), 0, 0);
  const r = runAsNobody(['serve', '--config', config, '--state-dir', dir, ...(await servePorts())], base);
  assertOneLine(r, join(dir, 'pseudonym.key'), new RegExp(`^mailveil: cannot read ${dir}/pseudonym\\.key: ${FIX.source}`));
});

test('serve: admin.token unreadable', { skip }, async () => {
  const { base, config } = scratch();
  const dir = stateDir(base);
  writeFileSync(join(dir, 'admin.token'), 'a'.repeat(64) + '\n', { mode: 0o600 });
  chownTree(dir, NOBODY);
  chownSync(join(dir, 'admin.token'), 0, 0);
  const r = runAsNobody(['serve', '--config', config, '--state-dir', dir, ...(await servePorts())], base);
  assertOneLine(r, join(dir, 'admin.token'), new RegExp(`^mailveil: cannot read ${dir}/admin\\.token: ${FIX.source}`));
});

test('keys rotate: a keys directory mailveil cannot write', { skip }, () => {
  const { base, config } = scratch();
  const dir = stateDir(base);
  mkdirSync(join(dir, 'keys'), { mode: 0o700 });
  chownSync(dir, NOBODY, NOBODY); // state_dir is nobody's; keys/ stays root's
  const r = runAsNobody(['keys', 'rotate', '--config', config, '--state-dir', dir], base);
  assertOneLine(r, join(dir, 'keys'), FIX);
});

test('quarantine show: a quarantine key file that cannot be read', { skip }, async () => {
  const { base, config } = scratch();
  const dir = stateDir(base);
  await new QuarantineStore(dir).put(sampleMeta('HELD01', SMALL_MESSAGE.length), chunked(SMALL_MESSAGE, 64));
  chownTree(dir, NOBODY);
  const keys = join(dir, 'keys');
  const keyFile = readdirSync(keys).find((n) => n.endsWith('.key'))!;
  chownSync(join(keys, keyFile), 0, 0);
  const r = runAsNobody(['quarantine', 'show', 'HELD01', '--config', config, '--state-dir', dir], base);
  assertOneLine(r, join(keys, keyFile), new RegExp(`^mailveil: cannot read ${keys}/${keyFile}: ${FIX.source}`));
});
