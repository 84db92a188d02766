/*
 * A directory tree as data, to show that an operation changed nothing (or
 * only what it should): every entry by relative path, with its type, mode,
 * size, mtime and, for files, a content hash; symlinks by target, never
 * followed.
 */
import { createHash } from 'node:crypto';
import { lstatSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { join, relative } from 'node:path';

export function snapshot(root: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (p: string) => {
    const st = lstatSync(p);
    const rel = relative(root, p) || '.';
    const mode = (st.mode & 0o7777).toString(8);
    if (st.isSymbolicLink()) out[rel] = `link ${readlinkSync(p)}`;
    else if (st.isFile()) out[rel] = `file ${mode} ${st.size} ${st.mtimeMs} ${createHash('sha256').update(readFileSync(p)).digest('hex')}`;
    else if (st.isDirectory()) {
      // A directory's mtime moves when an entry is added or removed: the entries say that already.
      out[rel] = `dir ${mode}`;
      for (const name of readdirSync(p).sort()) walk(join(p, name));
    } else out[rel] = `other ${mode}`;
  };
  walk(root);
  return out;
}
