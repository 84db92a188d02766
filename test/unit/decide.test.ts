/* Verdict precedence and fail-closed handling of unscannable content. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decideVerdict } from '../../src/pipeline/stages/decide';
import { newContext } from '../../src/pipeline/context';
import { loadConfig } from '../../src/config/load';
import { Pseudonymiser } from '../../src/privacy/pseudonym';
import type { Action, RuleDefinition, RuleSet } from '../../src/rules/types';
import { EMPTY_HEADER_POLICY } from '../../src/rules/load';
import { buildCompiled } from '../../src/rules/compile';

const rule = (id: string, action: Action, extra: Partial<RuleDefinition> = {}): RuleDefinition => ({ id, detector: 'x', action, source: { file: 'f', line: 1 }, ...extra });

function ctxWith(rules: RuleDefinition[], hits: [string, number][], unscannable: string[] = []) {
  const set: RuleSet = { headers: EMPTY_HEADER_POLICY, rules, files: [], loadedAt: new Date(), compiled: buildCompiled([]) };
  const ctx = newContext('T', loadConfig(undefined), set, new Pseudonymiser(Buffer.alloc(32)));
  ctx.findings = hits.map(([r, count]) => ({ rule: r, detector: 'x', count, part: '1', scope: 'body', offset: 0 }));
  ctx.unscannable = unscannable;
  decideVerdict(ctx);
  return ctx.verdict;
}

test('no findings: pass', () => {
  assert.deepEqual(ctxWith([rule('a', 'reject')], []), { action: 'pass', rules: [], reply: undefined });
});

test('precedence: reject > tempfail > quarantine > redact > tag > monitor', () => {
  const order: Action[] = ['monitor', 'tag', 'redact', 'quarantine', 'tempfail', 'reject'];
  for (let i = 0; i < order.length; i++) {
    const rules = order.slice(0, i + 1).map((a) => rule(a, a));
    const v = ctxWith(rules, rules.map((r) => [r.id, 1]));
    assert.equal(v.action, order[i]);
    assert.deepEqual(v.rules, rules.map((r) => r.id));
  }
});

test('min_count: a rule fires only at or above its count', () => {
  assert.equal(ctxWith([rule('a', 'tag', { min_count: 3 })], [['a', 2]]).action, 'pass');
  assert.equal(ctxWith([rule('a', 'tag', { min_count: 3 })], [['a', 1], ['a', 2]]).action, 'tag');
});

test('the reply of the winning reject rule is kept', () => {
  const v = ctxWith([rule('t', 'tempfail', { reply: '451 4.7.1 later' }), rule('r', 'reject', { reply: '550 5.7.1 no' })], [['t', 1], ['r', 1]]);
  assert.equal(v.reply, '550 5.7.1 no');
});

test('unscannable content is never clean: it takes the configured action', () => {
  assert.equal(ctxWith([], [], ['header_size']).action, 'quarantine');
  assert.equal(ctxWith([rule('r', 'reject')], [['r', 1]], ['header_size']).action, 'reject');
});
