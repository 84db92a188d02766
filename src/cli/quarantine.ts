/*
 * `mailveil quarantine list [--json]`: what the quarantine holds, newest
 * first, from the encrypted metadata only (bodies are never decrypted here).
 * Output carries ids, times, sizes, rule ids and pseudonyms, never a value or
 * an address (guarantee 6). An entry that cannot be read is shown with its
 * error instead of failing the listing; the exit code stays 0 because the
 * listing itself succeeded, and stderr says how many were unreadable.
 *
 * show, release, delete and purge come with later issues.
 */
import type { Command } from 'commander';
import { existsSync } from 'node:fs';
import { loadConfig } from '../config/load';
import { QuarantineStore, type QuarantineSummary } from '../quarantine/store';
import { UserError } from './main';

export function registerQuarantine(program: Command): void {
  const q = program.command('quarantine').description('inspect the messages held in quarantine');
  q.command('list')
    .description('list quarantined messages, newest first (metadata only; bodies stay encrypted)')
    .option('--json', 'print a JSON array of entry summaries')
    .option('--config <file>', 'YAML config file')
    .option('--state-dir <dir>', 'state directory (default from config, else ./var)')
    .action(async (o: { json?: boolean; config?: string; stateDir?: string }) => {
      const config = loadConfig(o.config, { state_dir: o.stateDir });
      // A mistyped --state-dir would otherwise look like an empty quarantine.
      if (!existsSync(config.state_dir)) throw new UserError(`state_dir ${config.state_dir} does not exist`);
      const entries = await new QuarantineStore(config.state_dir).list();
      if (o.json) {
        process.stdout.write(JSON.stringify(entries, null, 2) + '\n');
      } else if (entries.length === 0) {
        process.stdout.write('no messages in quarantine\n');
      } else {
        process.stdout.write(entries.map(formatLine).join('\n') + '\n');
      }
      const bad = entries.filter((e) => e.error !== undefined).length;
      if (bad) process.stderr.write(`mailveil: ${bad} quarantine ${bad === 1 ? 'entry is' : 'entries are'} unreadable\n`);
    });
}

/** `<id>  <time>  <size>  <verdict>  rules=<ids>  from=<pseudonym>  rcpts=<n>`, or the error. */
export function formatLine(e: QuarantineSummary): string {
  const when = e.receivedAt.replace(/\.\d+Z$/, 'Z');
  if (e.error !== undefined) return `${e.id}  ${when}  ${formatSize(e.fileSize)}  UNREADABLE: ${e.error}`;
  const rules = e.rules.length ? e.rules.join(',') : '-';
  const reasons = e.reasons.length ? `  reasons=${e.reasons.join(',')}` : '';
  return `${e.id}  ${when}  ${formatSize(e.size)}  ${e.verdict}  rules=${rules}${reasons}  from=${e.from || '<>'}  rcpts=${e.rcpts.length}`;
}

export function formatSize(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v < 10 ? v.toFixed(1) : Math.round(v)} ${units[u]}`;
}
