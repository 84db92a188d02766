/*
 * `mailveil quarantine list|show|release|delete|purge`: the operator's view
 * of and hand on the quarantine, acting on the same state_dir as `serve`
 * (--config / --state-dir).
 *
 *  - list [--rule ID] [--older-than 7d]: newest first, from the encrypted
 *    metadata only. Ids, times, sizes, rule ids and pseudonyms; never a value
 *    or an address. An unreadable entry is listed with its error (exit 0,
 *    stderr says how many).
 *  - show ID: the summary, the findings (rule, detector, count, part,
 *    offset: never a value), and the header section with the fields the
 *    findings point at masked (quarantine/header-view.ts). Never the body.
 *  - release ID [--redact]: delivers the held original to the next hop with
 *    its original envelope, through the rewriters every delivered message
 *    gets (header anonymisation, `X-Mailveil-Verdict: released; rules=...`;
 *    the rules' redaction too with --redact), and removes the entry only
 *    after the next hop's 250 (operations/release.ts).
 *  - delete ID, purge: remove one entry / everything past retention (plus
 *    expired audit days and retired keys, as serve's timer does).
 * Every change is one audit event naming the actor (os:<user>). Every
 * command has --json; errors are one line on stderr, exit 1 (unknown id:
 * `no quarantine entry <id>`).
 * The operations themselves are in operations/quarantine.ts (shared with
 * the admin API); this file parses flags and prints.
 */
import type { Command } from 'commander';
import type { Config } from '../config/load';
import { checkStateDir } from '../config/state-dir';
import { parseDuration } from '../config/duration';
import type { OperationContext } from '../operations/context';
import type { EntryDetail, EntryListItem } from '../operations/entry-view';
import { deleteEntry, listEntries, purgeEntries, releaseEntry, showEntry, type PurgeReport } from '../operations/quarantine';
import { formatRuleError, loadRuleSet, RuleSetError } from '../rules/load';
import type { RuleSet } from '../rules/types';
import { Pseudonymiser } from '../privacy/pseudonym';
import { formatReply } from '../pipeline/reply';
import { UserError } from './errors';
import { CONFIG_HELP, loadInstanceConfig, operationContext } from './instance';

interface CommonOpts {
  json?: boolean;
  config?: string;
  stateDir?: string;
}

function open(o: CommonOpts & { nextHop?: string; rules?: string; localRules?: string }): OperationContext {
  const { config } = loadInstanceConfig(o.config, { state_dir: o.stateDir, next_hop: o.nextHop, rules_dir: o.rules, local_rules_dir: o.localRules });
  // A mistyped --state-dir would otherwise look like an empty quarantine, and
  // a purge or delete must never write an audit log into someone else's dir.
  checkStateDir(config.state_dir);
  return operationContext(config);
}

function print(o: CommonOpts, json: unknown, text: string): void {
  process.stdout.write(o.json ? JSON.stringify(json, null, 2) + '\n' : text + '\n');
}

function common(c: Command): Command {
  return c
    .option('--json', 'print JSON')
    .option('--config <file>', CONFIG_HELP)
    .option('--state-dir <dir>', 'state directory (default from config, else ./var)');
}

export function registerQuarantine(program: Command): void {
  const q = program.command('quarantine').description('inspect, release and delete the messages held in quarantine');

  common(q.command('list'))
    .description('list quarantined messages, newest first (metadata only; bodies stay encrypted)')
    .option('--rule <id>', 'only entries on which this rule fired')
    .option('--older-than <duration>', 'only entries received longer ago than this, e.g. 7d, 12h')
    .action(async (o: CommonOpts & { rule?: string; olderThan?: string }) => {
      let olderThanMs: number | undefined;
      if (o.olderThan !== undefined) {
        olderThanMs = parseDuration(o.olderThan);
        if (olderThanMs === undefined) throw new UserError(`--older-than: must be a duration, e.g. 30m, 12h, 7d (got ${JSON.stringify(o.olderThan)})`);
      }
      const ctx = open(o);
      const { entries, unreadable: bad } = await listEntries(ctx, { rule: o.rule, olderThanMs });
      const filtered = o.rule !== undefined || olderThanMs !== undefined;
      print(o, entries, entries.length ? entries.map(formatLine).join('\n') : filtered ? 'no matching messages in quarantine' : 'no messages in quarantine');
      if (bad) process.stderr.write(`mailveil: ${bad} quarantine ${bad === 1 ? 'entry is' : 'entries are'} unreadable\n`);
    });

  common(q.command('show'))
    .description('show the headers and findings of a held message (values masked, never the body)')
    .argument('<id>', 'quarantine id')
    .option('--rules <dir>', 'rules directory, to locate masked header values (default from config)')
    .option('--local-rules <dir>', 'local rules directory (default from config, else ./rules.local.d)')
    .action(async (id: string, o: CommonOpts & { rules?: string; localRules?: string }) => {
      const ctx = open(o);
      const { config } = ctx;
      const entry = await showEntry(ctx, id, () => {
        try {
          return loadRuleSet(config.rules_dir, config.local_rules_dir).rules;
        } catch {
          return undefined; // header fields with findings are then masked whole
        }
      });
      print(o, entry, formatShow(entry));
    });

  common(q.command('release'))
    .description('deliver a held message to the next hop with its original envelope (headers anonymised, verdict header set), then remove it')
    .argument('<id>', 'quarantine id')
    .option('--next-hop <host:port>', 'deliver here instead of the configured next_hop')
    .option('--redact', "also apply the rules' redaction (the held original is scanned again with the current rules)")
    .option('--rules <dir>', 'rules directory: header policy and redact rules (default from config)')
    .option('--local-rules <dir>', 'local rules directory, loaded after --rules (default from config, else ./rules.local.d)')
    .action(async (id: string, o: CommonOpts & { nextHop?: string; rules?: string; localRules?: string; redact?: boolean }) => {
      const ctx = open(o);
      const rules = releaseRules(ctx.config);
      const r = await releaseEntry(ctx, id, { rules, redact: o.redact === true });
      print(o, { id: r.id, released: true, nextHop: r.nextHop, rcpts: r.rcpts, size: r.size, reply: formatReply(r.reply) }, `released ${r.id} to ${r.nextHop}: ${formatReply(r.reply)}`);
    });

  common(q.command('delete'))
    .description('delete a held message')
    .argument('<id>', 'quarantine id')
    .action(async (id: string, o: CommonOpts) => {
      const ctx = open(o);
      const r = await deleteEntry(ctx, id);
      print(o, r, `deleted ${r.id}`);
    });

  common(q.command('purge'))
    .description('delete entries older than quarantine.retention, audit days older than audit.retention, and unused keys')
    .action(async (o: CommonOpts) => {
      const ctx = open(o);
      const r = await purgeEntries(ctx);
      print(o, r, formatPurge(r));
    });
}

/** The rules a release rewrites under; without them it cannot anonymise headers, so it does not start. */
function releaseRules(config: Config): RuleSet {
  try {
    return loadRuleSet(config.rules_dir, config.local_rules_dir);
  } catch (err) {
    if (!(err instanceof RuleSetError)) throw err;
    throw new UserError(`cannot release: the rules do not load (${err.errors.map(formatRuleError).join('; ')}); see \`mailveil rules check\``);
  }
}

/** `purged N entries (M unreadable), K left; audit: F days (E events); keys removed: n` */
export function formatPurge(r: PurgeReport): string {
  const n = r.quarantineDeleted;
  const unreadable = r.unreadableDeleted ? ` (${r.unreadableDeleted} unreadable)` : '';
  return (
    `purged ${n} quarantine ${n === 1 ? 'entry' : 'entries'}${unreadable}, ${r.quarantineRemaining} left; ` +
    `audit log: ${r.auditFilesDeleted} ${r.auditFilesDeleted === 1 ? 'day' : 'days'} (${r.auditEventsDeleted} events) removed; ` +
    `keys removed: ${r.keysRemoved.length ? r.keysRemoved.join(',') : 'none'}`
  );
}

export function formatShow(s: EntryDetail): string {
  const out = [
    `id:        ${s.id}`,
    `received:  ${s.receivedAt.replace(/\.\d+Z$/, 'Z')}`,
    `size:      ${formatSize(s.size)}`,
    `verdict:   ${s.verdict}`,
    `rules:     ${s.rules.length ? s.rules.join(',') : '-'}`,
    `reasons:   ${s.reasons.length ? s.reasons.join(',') : '-'}`,
    `from:      ${s.from || '<>'}`,
    `rcpts:     ${s.rcpts.length ? s.rcpts.join(',') : '-'}`,
    `key:       ${s.keyId}`,
    `findings:${s.findings.length ? '' : ' none'}`,
    ...s.findings.map((f) => `  rule=${f.rule} detector=${f.detector} count=${f.count} part=${f.part}${f.scope ? ` scope=${f.scope}` : ''} offset=${f.offset}`),
    'headers:',
    ...s.headers.split('\n').filter((l, i, a) => l !== '' || i < a.length - 1).map((l) => '  ' + l),
  ];
  if (s.headersTruncated) out.push('  [header section cut at the display limit]');
  return out.join('\n');
}

/** `<id>  <time>  <size>  <verdict>  rules=<ids>  from=<pseudonym>  rcpts=<n>`, or the error. */
export function formatLine(e: EntryListItem): string {
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
