/*
 * The MTA-STS cache as `mailveil tls check` uses it: read, never written.
 *
 * tls check runs as whoever types it (often root), next to a `serve` that
 * owns state_dir. Opening the real cache would make the folder, remove
 * interrupted writes (one `serve` may be making right now) and store any
 * policy fetched, all as that user. So this cache reads one entry file per
 * lookup, with the same checks as the real one (checkEntry), and a fetched
 * policy is shown but not stored: the running `serve` fetches and stores
 * it itself when it next needs it.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { checkEntry, entryFileName, StsCache, type CacheLookup, type StsCacheEntry } from './cache';
import { MAX_ENTRY_BYTES } from './cache';

export class ReadOnlyStsCache extends StsCache {
  /** Nothing to open: every get() reads its file. */
  override async open(): Promise<void> {}

  override async get(domain: string): Promise<CacheLookup> {
    const name = entryFileName(domain);
    let text: string;
    try {
      text = await readFile(join(this.dir, name), 'utf8');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') return { kind: 'miss' };
      return { kind: 'error', detail: `${join(this.dir, name)}: ${code ?? err}` };
    }
    if (text.length > MAX_ENTRY_BYTES) return { kind: 'error', detail: `${join(this.dir, name)}: over ${MAX_ENTRY_BYTES} bytes` };
    const entry = checkEntry(text, name);
    if (typeof entry === 'string') return { kind: 'error', detail: `${join(this.dir, name)}: ${entry}` };
    if (entry.domain !== domain) return { kind: 'error', detail: `${join(this.dir, name)}: holds ${entry.domain}` };
    return { kind: 'hit', entry };
  }

  /** Not stored: see above. The resolver still answers with the fetched policy. */
  override async put(_entry: StsCacheEntry): Promise<void> {}

  override async remove(_domain: string): Promise<void> {}

  override async purgeExpired(): Promise<string[]> {
    return [];
  }
}
