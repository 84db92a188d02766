/*
 * Turns findings and unscannable reasons into one verdict. Precedence is
 * reject > tempfail > quarantine > redact > tag > monitor (README, Actions): the
 * strongest action any fired rule asks for wins. Content that could not be
 * scanned takes the configured `unscannable` action, never "clean".
 */
import type { Action } from '../../rules/types';
import type { Decider } from '../stage';
import type { MessageContext } from '../context';

export const PRECEDENCE: readonly Action[] = ['reject', 'tempfail', 'quarantine', 'redact', 'tag', 'monitor'];

export function stronger(a: Action | 'pass', b: Action | 'pass'): Action | 'pass' {
  if (a === 'pass') return b;
  if (b === 'pass') return a;
  return PRECEDENCE.indexOf(a) <= PRECEDENCE.indexOf(b) ? a : b;
}

export function decideVerdict(ctx: MessageContext): void {
  let action: Action | 'pass' = 'pass';
  let reply: string | undefined;
  const fired: string[] = [];
  const counts = new Map<string, number>();
  for (const f of ctx.findings) counts.set(f.rule, (counts.get(f.rule) ?? 0) + f.count);
  for (const rule of ctx.rules.rules) {
    const n = counts.get(rule.id) ?? 0;
    if (n === 0 || n < (rule.min_count ?? 1)) continue;
    fired.push(rule.id);
    const next = stronger(action, rule.action);
    if (next !== action || (next === rule.action && reply === undefined)) reply = rule.reply;
    action = next;
  }
  if (ctx.unscannable.length) action = stronger(action, ctx.config.unscannable);
  ctx.verdict = { action, rules: fired, reply: action === 'reject' || action === 'tempfail' ? reply : undefined };
}

export const decide: Decider = { name: 'decide', kind: 'decider', decide: decideVerdict };
