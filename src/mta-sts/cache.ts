/*
 * The MTA-STS policy cache, persisted in state_dir/mta-sts/ so policies
 * survive a restart (RFC 8461 5.1: a sender keeps a policy for max_age; a
 * sender that forgets on restart is the one an attacker who strips the
 * TXT record on the path can downgrade).
 *
 * One file per domain, `policy-<sha256(domain)[0..32]>.json`, written with
 * storage/durable.ts (temp, fsync, rename, fsync dir):
 *
 *   {"format":1,"domain":"example.com","id":"20260101T000000",
 *    "fetched_at":"...","expires_at":"...","refresh_at":"...",
 *    "policy":"version: STSv1\nmode: enforce\n..."}
 *
 * The policy text is kept as fetched and parsed again on load, so the file
 * is checked by the same parser as the network. A file that cannot be read
 * or does not check out (bad JSON, another domain's file, expires_at not
 * fetched_at + max_age) makes that domain's answer `error`, never `miss`:
 * the resolver then defers instead of delivering as if the domain had no
 * policy. Other domains are not affected: each has its own file.
 *
 * Limits: an entry file over MAX_ENTRY_BYTES is corrupt (a policy is at
 * most 64 KiB). A file that cannot be read and was last written more than
 * MAX_MAX_AGE ago cannot hold a policy still in force, so it is set aside
 * as a miss (and removed) rather than blocking its domain for good.
 */
import { createHash } from 'node:crypto';
import { lstat, open, readdir, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { ensurePrivateDir, fsyncDir, writeFileDurably } from '../storage/durable';
import { mtaStsDir, STS_ENTRY_RE, stsEntryName, TEMP_NAME_RE } from '../state-layout';
import { normaliseName, parsePolicy } from './policy';
import { MAX_MAX_AGE, type StsPolicy } from './types';

export const ENTRY_FORMAT = 1;
export const MAX_ENTRY_BYTES = 128 * 1024;

export interface StsCacheEntry {
  domain: string;
  /** The `id=` of the TXT record the policy was fetched under. */
  id: string;
  policy: StsPolicy;
  /** The policy file as fetched. */
  text: string;
  /** Epoch ms. */
  fetchedAt: number;
  /** fetchedAt + max_age: the policy must not be used from then on. */
  expiresAt: number;
  /** When the refresh loop should fetch it again (before expiresAt, jittered; see resolve.ts). */
  refreshAt: number;
}

export type CacheLookup = { kind: 'hit'; entry: StsCacheEntry } | { kind: 'miss' } | { kind: 'error'; detail: string };

export function entryFileName(domain: string): string {
  return stsEntryName(createHash('sha256').update(domain).digest('hex').slice(0, 32));
}

export class StsCache {
  readonly dir: string;
  private readonly now: () => number;
  private readonly good = new Map<string, StsCacheEntry>();
  /** File names of entries seen on disk at open() that did not load. */
  private readonly broken = new Map<string, string>();
  /** File names present at open(); a name outside it (and not written since) is a miss. */
  private readonly listed = new Set<string>();
  /** Set when the folder itself cannot be made or listed: every domain is an error. */
  private unusable: string | undefined = 'the cache was not opened';

  constructor(stateDir: string, opts: { now?: () => number } = {}) {
    this.dir = mtaStsDir(stateDir);
    this.now = opts.now ?? Date.now;
  }

  /**
   * Makes the folder (0700), removes interrupted writes, loads every entry.
   * Never throws: a folder it cannot use makes every lookup an `error`.
   */
  async open(): Promise<void> {
    this.good.clear();
    this.broken.clear();
    this.listed.clear();
    try {
      await ensurePrivateDir(this.dir);
      const names = await readdir(this.dir);
      for (const name of names) {
        if (TEMP_NAME_RE.test(name)) {
          await this.removeRegular(name);
          continue;
        }
        if (!STS_ENTRY_RE.test(name)) continue;
        this.listed.add(name);
        const r = await this.readFile(name, undefined);
        if (r.kind === 'hit') this.good.set(r.entry.domain, r.entry);
        else if (r.kind === 'error') this.broken.set(name, r.detail);
        else this.listed.delete(name);
      }
      this.unusable = undefined;
    } catch (err) {
      this.unusable = `${this.dir}: ${describe(err)}`;
    }
  }

  /** The cached entry for a (normalised) domain, expired or not: the caller checks expiresAt. */
  async get(domain: string): Promise<CacheLookup> {
    if (this.unusable) return { kind: 'error', detail: this.unusable };
    const hit = this.good.get(domain);
    if (hit) return { kind: 'hit', entry: hit };
    const name = entryFileName(domain);
    if (!this.listed.has(name)) return { kind: 'miss' };
    // Broken at open(): read again, the operator may have repaired or removed it.
    const r = await this.readFile(name, domain);
    if (r.kind === 'hit') {
      this.good.set(domain, r.entry);
      this.broken.delete(name);
    } else if (r.kind === 'miss') {
      this.listed.delete(name);
      this.broken.delete(name);
    } else this.broken.set(name, r.detail);
    return r;
  }

  /** Stores an entry durably; throws when it cannot (the caller decides). */
  async put(entry: StsCacheEntry): Promise<void> {
    if (this.unusable) await this.open();
    if (this.unusable) throw new Error(this.unusable);
    const name = entryFileName(entry.domain);
    const body = {
      format: ENTRY_FORMAT,
      domain: entry.domain,
      id: entry.id,
      fetched_at: new Date(entry.fetchedAt).toISOString(),
      expires_at: new Date(entry.expiresAt).toISOString(),
      refresh_at: new Date(entry.refreshAt).toISOString(),
      policy: entry.text,
    };
    await writeFileDurably(this.dir, name, JSON.stringify(body, null, 1) + '\n');
    this.good.set(entry.domain, entry);
    this.listed.add(name);
    this.broken.delete(name);
  }

  /** Forgets a domain's entry (an expired one, or on an operator's request). */
  async remove(domain: string): Promise<void> {
    const name = entryFileName(domain);
    await unlink(join(this.dir, name)).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT') throw err;
    });
    await fsyncDir(this.dir);
    this.good.delete(domain);
    this.listed.delete(name);
    this.broken.delete(name);
  }

  /** Removes entries that expired before `now`; returns their domains. */
  async purgeExpired(now = this.now()): Promise<string[]> {
    const gone: string[] = [];
    for (const e of [...this.good.values()]) {
      if (e.expiresAt <= now) {
        await this.remove(e.domain);
        gone.push(e.domain);
      }
    }
    return gone;
  }

  /** Policies in force at `now`: the value of mailveil_mta_sts_cache_entries. */
  entries(now = this.now()): number {
    let n = 0;
    for (const e of this.good.values()) if (e.expiresAt > now) n++;
    return n;
  }

  /** Every loaded entry, for the refresh loop and `tls check`. */
  all(): StsCacheEntry[] {
    return [...this.good.values()];
  }

  /** Entry files that did not load, with why: for logs and `tls check`. */
  brokenFiles(): { file: string; detail: string }[] {
    return [...this.broken].map(([file, detail]) => ({ file: join(this.dir, file), detail }));
  }

  private async readFile(name: string, domain: string | undefined): Promise<CacheLookup> {
    const path = join(this.dir, name);
    let text: string;
    let mtimeMs = 0;
    try {
      const fh = await open(path, 'r');
      try {
        const st = await fh.stat();
        mtimeMs = st.mtimeMs;
        if (!st.isFile()) throw Object.assign(new Error('not a regular file'), { code: 'EISDIR' });
        if (st.size > MAX_ENTRY_BYTES) throw new Error(`over ${MAX_ENTRY_BYTES} bytes`);
        text = await fh.readFile('utf8');
      } finally {
        await fh.close();
      }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { kind: 'miss' };
      return this.unreadable(name, mtimeMs, `${path}: ${describe(err)}`);
    }
    const entry = checkEntry(text, name);
    if (typeof entry === 'string') return this.unreadable(name, mtimeMs, `${path}: ${entry}`);
    if (domain !== undefined && entry.domain !== domain) return { kind: 'error', detail: `${path}: holds ${entry.domain}` };
    return { kind: 'hit', entry };
  }

  /** An entry that does not load is an error, unless it is too old to hold a policy still in force. */
  private async unreadable(name: string, mtimeMs: number, detail: string): Promise<CacheLookup> {
    if (mtimeMs > 0 && mtimeMs + MAX_MAX_AGE * 1000 < this.now()) {
      await this.removeRegular(name).catch(() => undefined);
      return { kind: 'miss' };
    }
    return { kind: 'error', detail };
  }

  /** Unlinks a name in the folder only when it is a regular file (never through a symlink). */
  private async removeRegular(name: string): Promise<void> {
    const p = join(this.dir, name);
    const st = await lstat(p).catch(() => undefined);
    if (st?.isFile()) await unlink(p).catch(() => undefined);
  }
}

/** The entry a file holds, or why it is not one. */
export function checkEntry(text: string, name: string): StsCacheEntry | string {
  let j: Record<string, unknown>;
  try {
    j = JSON.parse(text) as Record<string, unknown>;
  } catch {
    return 'not JSON';
  }
  if (j === null || typeof j !== 'object') return 'not an object';
  if (j.format !== ENTRY_FORMAT) return `format ${String(j.format)} is not ${ENTRY_FORMAT}`;
  const domain = typeof j.domain === 'string' ? normaliseName(j.domain) : undefined;
  if (domain === undefined || domain !== j.domain) return 'no valid domain';
  if (entryFileName(domain) !== name) return `holds ${domain}, whose file name is another`;
  if (typeof j.id !== 'string' || !/^[A-Za-z0-9]{1,32}$/.test(j.id)) return 'no valid id';
  if (typeof j.policy !== 'string') return 'no policy';
  const p = parsePolicy(j.policy);
  if (p.kind !== 'ok') return `policy: ${p.error}: ${p.detail}`;
  const times = ['fetched_at', 'expires_at', 'refresh_at'].map((k) => (typeof j[k] === 'string' ? Date.parse(j[k] as string) : NaN));
  if (times.some((t) => !Number.isFinite(t))) return 'a time is missing or invalid';
  const [fetchedAt, expiresAt, refreshAt] = times;
  if (expiresAt !== fetchedAt + p.policy.maxAge * 1000) return 'expires_at is not fetched_at + max_age';
  if (refreshAt < fetchedAt || refreshAt > expiresAt) return 'refresh_at is outside fetched_at..expires_at';
  return { domain, id: j.id, policy: p.policy, text: j.policy, fetchedAt, expiresAt, refreshAt };
}

function describe(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  return e?.code ? `${e.code} (${e.message})` : String(e?.message ?? err);
}
