/*
 * `mailveil rules check`: validate rules_dir and local_rules_dir as `serve`
 * would load them, and list each rule with the layer it came from.
 * `mailveil rules test`: run a message through the same set (postmap -q).
 */
import type { Command } from 'commander';
import { loadRuleSet, RuleSetError, formatRuleError } from '../rules/load';
import type { RuleSet, RuleSource } from '../rules/types';
import { createReadStream, existsSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { newContext } from '../pipeline/context';
import { analyse } from '../pipeline/run';
import { Pseudonymiser } from '../privacy/pseudonym';
import { exitCodeOf } from '../errors';
import { UserError } from './errors';
import { tlsRequirementWarning } from '../rules/tls-requirement-check';
import { CONFIG_HELP, loadInstanceConfig } from './instance';

const RULES_HELP = 'rules directory (default from config, else ./rules.d)';
const LOCAL_RULES_HELP = 'local rules directory, loaded after --rules; a rule there replaces the shipped rule of its id (default from config, else ./rules.local.d)';

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;

/** Where a rule came from, for JSON output. */
function origin(src: RuleSource) {
  return { layer: src.layer ?? 'shipped', file: src.file, line: src.line, ...(src.replaces ? { replaces: src.replaces } : {}) };
}

/** The JSON of a loaded set: each rule with its layer, and the rules switched off. */
function setJson(set: RuleSet) {
  return {
    ok: true,
    files: set.files,
    layers: set.layers,
    rules: set.rules.map((r) => ({ id: r.id, action: r.action, ...origin(r.source) })),
    disabled: (set.disabled ?? []).map((d) => ({ id: d.id, ...origin(d.source) })),
    tls_policy: [...(set.tlsPolicy?.values() ?? [])].map((e) => ({ domain: e.key, level: e.level, ...(e.match ? { match: e.match } : {}), ...(e.source ? origin(e.source) : {}) })),
  };
}

/** `ok: …`, the layers, then one line per rule: id, action (or off), layer, file:line. */
function setText(set: RuleSet): string {
  const lines = [`ok: ${set.files.length} files, ${set.rules.length} rules`];
  const local = set.layers?.local;
  if (set.layers) {
    lines.push(`  shipped: ${set.layers.shipped.dir} (${plural(set.layers.shipped.files.length, 'file')})`);
    if (local?.dir) lines.push(`  local:   ${local.dir} (${local.files.length ? plural(local.files.length, 'file') : existsSync(local.dir) ? 'no files' : 'not present'})`);
  }
  const rows = [
    ...set.rules.map((r) => [r.id, r.action, r.source]),
    ...(set.disabled ?? []).map((d) => [d.id, 'off', d.source]),
  ] as [string, string, RuleSource][];
  const w = rows.reduce((n, [id]) => Math.max(n, id.length), 0);
  for (const [id, action, src] of rows) {
    lines.push(`  ${id.padEnd(w)}  ${action.padEnd(10)}  ${(src.layer ?? 'shipped').padEnd(7)}  ${src.file}:${src.line}${src.replaces ? ` (${action === 'off' ? 'switches off' : 'replaces'} ${src.replaces})` : ''}`);
  }
  const tls = [...(set.tlsPolicy?.values() ?? [])];
  if (tls.length) {
    lines.push(`tls_policy: ${plural(tls.length, 'entry').replace(/entrys$/, 'entries')}`);
    const kw = tls.reduce((n, e) => Math.max(n, e.key.length), 0);
    for (const e of tls) {
      const lv = e.level + (e.match ? ` match=${e.match.join(',')}` : '');
      const src = e.source;
      lines.push(`  ${e.key.padEnd(kw)}  ${lv.padEnd(10)}  ${(src?.layer ?? 'shipped').padEnd(7)}  ${src ? `${src.file}:${src.line}` : ''}${src?.replaces ? ` (replaces ${src.replaces})` : ''}`);
    }
  }
  return lines.join('\n') + '\n';
}

export function registerRules(program: Command): void {
  const rules = program.command('rules').description('check and test rule files');
  rules
    .command('check')
    .description('validate every rule file of both layers; prints file:line:col: message per error, else each rule with its layer')
    .option('--config <file>', CONFIG_HELP)
    .option('--rules <dir>', RULES_HELP)
    .option('--local-rules <dir>', LOCAL_RULES_HELP)
    .option('--json', 'machine-readable output')
    .action((o) => {
      const { config } = loadInstanceConfig(o.config, { rules_dir: o.rules, local_rules_dir: o.localRules });
      try {
        const set = loadRuleSet(config.rules_dir, config.local_rules_dir);
        // The set loads, but a require_tls rule without a verified path defers all it fires on: said, not refused (exit 0).
        const warning = tlsRequirementWarning(set, config);
        process.stdout.write(o.json ? JSON.stringify({ ...setJson(set), warnings: warning ? [warning] : [] }, null, 2) + '\n' : setText(set));
        if (warning && !o.json) process.stderr.write(`mailveil: warning: ${warning}\n`);
      } catch (err) {
        if (!(err instanceof RuleSetError)) throw err;
        process.stdout.write(o.json ? JSON.stringify({ ok: false, errors: err.errors }, null, 2) + '\n' : err.errors.map(formatRuleError).join('\n') + '\n');
        process.exitCode = exitCodeOf(err);
      }
    });

  rules
    .command('test')
    .description('run FILE.eml through detection and print the verdict and hits per rule (never the values)')
    .argument('<file>', 'message to test (.eml)')
    .option('--config <file>', CONFIG_HELP)
    .option('--rules <dir>', RULES_HELP)
    .option('--local-rules <dir>', LOCAL_RULES_HELP)
    .option('--json', 'machine-readable output')
    .action(async (file: string, o) => {
      const { config } = loadInstanceConfig(o.config, { rules_dir: o.rules, local_rules_dir: o.localRules });
      let set;
      try {
        set = loadRuleSet(config.rules_dir, config.local_rules_dir);
      } catch (err) {
        if (!(err instanceof RuleSetError)) throw err;
        throw new UserError(`rules: ${err.errors.map(formatRuleError).join('; ')}`);
      }
      // A throwaway key: nothing is written and nothing needs to correlate.
      const ctx = newContext('TEST', config, set, new Pseudonymiser(randomBytes(32)));
      try {
        await analyse(ctx, createReadStream(file));
      } catch (err) {
        const e = err as NodeJS.ErrnoException;
        throw new UserError(e.code === 'ENOENT' || e.code === 'EACCES' ? `${file}: cannot read: ${e.code}` : `${file}: ${e.message}`);
      }
      const hits = set.rules
        .map((r) => {
          const f = ctx.findings.filter((x) => x.rule === r.id);
          return { rule: r.id, action: r.action, layer: r.source.layer ?? 'shipped', file: r.source.file, count: f.reduce((n, x) => n + x.count, 0), parts: [...new Set(f.map((x) => x.part))], fired: ctx.verdict.rules.includes(r.id) };
        })
        .filter((h) => h.count > 0);
      const disabled = (set.disabled ?? []).map((d) => ({ rule: d.id, layer: d.source.layer ?? 'shipped', file: d.source.file }));
      const result = { verdict: ctx.verdict.action, rules: ctx.verdict.rules, hits, disabled, unscannable: ctx.unscannable, not_extracted: ctx.notExtracted, size: ctx.size };
      if (o.json) {
        process.stdout.write(JSON.stringify(result, null, 2) + '\n');
        return;
      }
      const lines = [`verdict: ${result.verdict}${result.rules.length ? ` (rules: ${result.rules.join(', ')})` : ''}`];
      for (const h of hits) lines.push(`  ${h.rule} [${h.action}, ${h.layer}]: ${h.count} hit${h.count === 1 ? '' : 's'} in part${h.parts.length === 1 ? '' : 's'} ${h.parts.join(', ')}${h.fired ? '' : ' (below min_count)'}`);
      if (disabled.length) lines.push(`  off: ${disabled.map((d) => `${d.rule} (${d.layer})`).join(', ')}`);
      if (result.unscannable.length) lines.push(`  unscannable: ${result.unscannable.join(', ')}`);
      if (result.not_extracted) lines.push(`  not extracted (not scanned): ${result.not_extracted} part${result.not_extracted === 1 ? '' : 's'}`);
      process.stdout.write(lines.join('\n') + '\n');
    });
}
