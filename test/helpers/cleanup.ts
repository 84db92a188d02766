/*
 * Per-file cleanup for system tests: processes to stop (newest first) and
 * temp dirs to remove once the file's tests are done. MAILVEIL_TEST_KEEP=1
 * keeps the dirs for a post-mortem.
 */
import { after } from 'node:test';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export function cleanupAfter(): { running: { stop(): Promise<unknown> }[]; tempDir(prefix: string): string } {
  const running: { stop(): Promise<unknown> }[] = [];
  const dirs: string[] = [];
  after(async () => {
    for (const r of running.splice(0).reverse()) await r.stop().catch(() => undefined);
    if (process.env.MAILVEIL_TEST_KEEP !== '1') for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });
  return {
    running,
    tempDir(prefix: string): string {
      const d = mkdtempSync(join(tmpdir(), prefix));
      dirs.push(d);
      return d;
    },
  };
}
