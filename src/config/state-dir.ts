/*
 * Whose directory is state_dir? mailveil deletes and creates files there
 * (spool cleanup, keys, quarantine), so it must never mistake a system
 * directory for its own: `./var` started from `/` is `/var`.
 *
 * The proof of ownership is a marker, <state_dir>/state.json (a format
 * version and the creation time), written when mailveil first takes a
 * directory:
 *  - serve (prepareStateDir) takes a directory that is new or empty, or
 *    one that holds only names mailveil itself makes (a state dir written
 *    before the marker existed). Anything else is refused with one line
 *    naming the path, unless --init says the operator means it.
 *  - other commands (checkStateDir) accept the same directories but never
 *    write the marker or create the directory: a mistyped --state-dir must
 *    fail, not be initialised.
 *
 * Limits: "only names mailveil makes" is judged on the top level, by name
 * and type (a symlink is never one of ours). A marker from a newer format
 * is refused rather than guessed at.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, lstatSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, statSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { describeAccess } from '../access-error';
import type { MvCode } from '../errors';
import { MARKER_TEMP_RE, markerTempName, STATE_ENTRIES, STATE_MARKER, stateMarkerFile } from '../state-layout';

export { STATE_MARKER } from '../state-layout';
export const STATE_FORMAT = 1;
const MARKER_KIND = 'mailveil-state';
/** How many foreign names an error message lists. */
const NAMES_SHOWN = 3;


export interface StateMarker {
  kind: typeof MARKER_KIND;
  format: number;
  created: string;
}

/** The CLI prints either code as one line and exits 1 (see src/errors.ts). */
export class StateDirError extends Error {
  constructor(
    message: string,
    /** MV_STATE_DIR_FOREIGN: files of someone else's; the fix is another dir, or --init. */
    readonly code: Extract<MvCode, 'MV_STATE_DIR' | 'MV_STATE_DIR_FOREIGN'> = 'MV_STATE_DIR',
  ) {
    super(message);
  }
}

export type StateDirStatus =
  | { kind: 'missing' }
  | { kind: 'marked'; marker: StateMarker }
  | { kind: 'empty' }
  /** No marker, and only names mailveil makes. */
  | { kind: 'own' }
  | { kind: 'foreign'; names: string[] };

function isOwn(dir: string, name: string): boolean {
  let st;
  try {
    st = lstatSync(join(dir, name));
  } catch (err) {
    // Gone since readdir (a spool file finishing): nothing foreign there.
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return true;
    throw err;
  }
  // A marker write that a crash interrupted: ours, harmless, left alone.
  if (MARKER_TEMP_RE.test(name)) return st.isFile();
  const want = STATE_ENTRIES.get(name);
  return want === 'dir' ? st.isDirectory() : want === 'file' ? st.isFile() : false;
}

function readMarker(dir: string): StateMarker | undefined {
  const file = stateMarkerFile(dir);
  let text: string;
  try {
    if (!lstatSync(file).isFile()) throw new StateDirError(`${file} is not a regular file; move it away, or point state_dir elsewhere`);
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    if (err instanceof StateDirError) throw err;
    throw new StateDirError(describeAccess(err, 'read', file, 'state_dir') ?? `${file}: cannot read: ${(err as NodeJS.ErrnoException).code ?? err}`);
  }
  let m: Partial<StateMarker> | undefined;
  try {
    m = JSON.parse(text);
  } catch {
    m = undefined;
  }
  if (!m || m.kind !== MARKER_KIND || !Number.isSafeInteger(m.format) || m.format! < 1) {
    throw new StateDirError(`${file} is not mailveil's state marker; move it away, or point state_dir elsewhere`);
  }
  if (m.format! > STATE_FORMAT) {
    throw new StateDirError(`${file} has format ${m.format}, newer than this mailveil reads (${STATE_FORMAT}); run the newer mailveil`);
  }
  return m as StateMarker;
}

/** Looks, never writes. Throws StateDirError for a path that cannot be a state dir at all. */
export function inspectStateDir(dir: string): StateDirStatus {
  try {
    if (!statSync(dir).isDirectory()) throw new StateDirError(`state_dir ${dir} is not a directory`);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { kind: 'missing' };
    if (err instanceof StateDirError) throw err;
    throw new StateDirError(describeAccess(err, 'inspect', dir, 'state_dir') ?? `state_dir ${dir}: cannot read: ${(err as NodeJS.ErrnoException).code ?? err}`);
  }
  const marker = readMarker(dir);
  if (marker) return { kind: 'marked', marker };
  try {
    const names = readdirSync(dir).sort();
    if (names.length === 0) return { kind: 'empty' };
    const foreign = names.filter((n) => !isOwn(dir, n));
    return foreign.length ? { kind: 'foreign', names: foreign } : { kind: 'own' };
  } catch (err) {
    throw new StateDirError(describeAccess(err, 'list', dir, 'state_dir') ?? `state_dir ${dir}: cannot read: ${(err as NodeJS.ErrnoException).code ?? err}`);
  }
}

function listNames(names: string[]): string {
  const shown = names.slice(0, NAMES_SHOWN).join(', ');
  return names.length > NAMES_SHOWN ? `${shown} and ${names.length - NAMES_SHOWN} more` : shown;
}

/** Writes the marker: temp file, fsync, rename, directory fsync. */
function writeMarker(dir: string, now: Date): void {
  const marker: StateMarker = { kind: MARKER_KIND, format: STATE_FORMAT, created: now.toISOString() };
  const tmp = join(dir, markerTempName(randomBytes(6).toString('hex')));
  const fd = openSync(tmp, 'wx', 0o600);
  try {
    writeSync(fd, JSON.stringify(marker) + '\n');
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, stateMarkerFile(dir));
  const dfd = openSync(dir, 'r');
  try {
    fsyncSync(dfd);
  } finally {
    closeSync(dfd);
  }
}

export type PrepareResult = 'ready' | 'created' | 'adopted' | 'initialised';

/**
 * For `serve`: makes sure state_dir is mailveil's, creating it (0700) and
 * writing the marker when it is new, empty or holds only mailveil's names;
 * with `init`, also when it holds other files. Refuses otherwise.
 */
export function prepareStateDir(dir: string, opts: { init?: boolean; now?: () => Date } = {}): PrepareResult {
  const now = opts.now ?? (() => new Date());
  const status = inspectStateDir(dir);
  try {
    return take(dir, status, opts.init === true, now);
  } catch (err) {
    if (err instanceof StateDirError) throw err;
    throw new StateDirError(describeAccess(err, 'write', dir, 'state_dir') ?? `state_dir ${dir}: cannot write: ${(err as NodeJS.ErrnoException).code ?? err}`);
  }
}

function take(dir: string, status: StateDirStatus, init: boolean, now: () => Date): PrepareResult {
  switch (status.kind) {
    case 'marked':
      return 'ready';
    case 'missing':
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      writeMarker(dir, now());
      return 'created';
    case 'empty':
    case 'own':
      writeMarker(dir, now());
      return status.kind === 'empty' ? 'created' : 'adopted';
    case 'foreign':
      if (!init) {
        throw new StateDirError(
          `state_dir ${dir} already holds files mailveil did not create (${listNames(status.names)}); ` +
            `set state_dir to a new or empty directory, or pass --init if mailveil should really use this one`,
          'MV_STATE_DIR_FOREIGN',
        );
      }
      writeMarker(dir, now());
      return 'initialised';
  }
}

/**
 * For every other command: state_dir must exist and be mailveil's. Nothing
 * is written, so a command that only reads leaves no trace.
 */
export function checkStateDir(dir: string): void {
  const status = inspectStateDir(dir);
  if (status.kind === 'missing') throw new StateDirError(`state_dir ${dir} does not exist`);
  if (status.kind === 'foreign') {
    throw new StateDirError(
      `state_dir ${dir} is not mailveil's (no ${STATE_MARKER}, and it holds ${listNames(status.names)}); ` +
        `name the instance with --config FILE (or MAILVEIL_CONFIG) or --state-dir DIR`,
      'MV_STATE_DIR_FOREIGN',
    );
  }
}
