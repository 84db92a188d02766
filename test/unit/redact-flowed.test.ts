/*
 * src/redact/flowed.ts: a value in format=flowed text (RFC 3676), found in
 * the text as pass 1 unwraps it (src/mime/flowed.ts), is replaced across soft
 * line breaks, and the result is still flowed text that unwraps to the input
 * with the value replaced: soft breaks stay soft, quote marks and stuffing
 * stay, no line grows past 998 octets. The property is also checked on
 * seeded random paragraphs (FLOWED_SEED=<n> reruns one), and the redactor is
 * linear in the size of the text.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { redactFlowed, MAX_LINE_OCTETS } from '../../src/redact/flowed';
import { RedactionError } from '../../src/redact/error';
import { findRanges, applyRanges } from '../../src/redact/find';
import { FlowedText } from '../../src/mime/flowed';
import type { CompiledRule } from '../../src/rules/compile';
import { ruleSetFromYaml } from '../helpers/dlp';
import { xorshift32 } from '../helpers/prng';
import { growth } from '../helpers/growth';

function rulesOf(yaml: string): CompiledRule[] {
  return ruleSetFromYaml(yaml).compiled.rules.filter((r) => r.def.action === 'redact');
}
const rule = (id: string, spec: string, replacement: string) =>
  `  - id: ${id}\n    ${spec}\n    action: redact\n    replacement: ${JSON.stringify(replacement)}\n`;
const CARD = rulesOf('rules:\n' + rule('card', 'detector: credit_card', '[CARD]') + rule('ssn', 'detector: us_ssn', '[SSN]'));

const unwrap = (text: string, delSp: boolean) => {
  const f = new FlowedText(delSp);
  return f.write(text) + f.end();
};

/** Redacts and checks the flowed properties; returns the wrapped result. */
function redacted(text: string, delSp: boolean, rules = CARD): string {
  const { text: out, count } = redactFlowed(text, delSp, rules);
  const before = unwrap(text, delSp);
  assert.ok(count > 0, `nothing found in ${JSON.stringify(before)}`);
  assert.equal(unwrap(out, delSp), applyRanges(before, findRanges(before, rules)), `unwrapped output of ${JSON.stringify(text)}`);
  for (const line of out.split('\n')) assert.ok(Buffer.byteLength(line.replace(/\r$/, '')) <= MAX_LINE_OCTETS, `line of ${line.length}`);
  return out;
}

test('flowed redaction: a value across a soft break, DelSp=no and DelSp=yes', () => {
  assert.equal(redacted('Card 4111 1111 \r\n1111 1111 thanks\r\n', false), 'Card [CARD] thanks\r\n');
  assert.equal(redacted('Card 41111111 \r\n11111111 ok, SSN 123-45- \r\n6789.\r\n', true), 'Card [CARD] ok, SSN [SSN].\r\n');
  // Soft breaks before and after the value stay where they were.
  assert.equal(redacted('a \r\nb 4111 1111 \r\n1111 1111 c \r\nd\r\n', false), 'a \r\nb [CARD] c \r\nd\r\n');
  assert.equal(redacted('a\n4111 1111 \n1111 1111\nb\n', false), 'a\n[CARD]\nb\n');
});

test('flowed redaction: quote marks, space-stuffing and the signature line stay', () => {
  assert.equal(redacted('> a 4111 1111 \r\n> 1111 1111 b\r\n>> c\r\n', false), '> a [CARD] b\r\n>> c\r\n');
  assert.equal(redacted('>> x \r\n>> 4111 1111 1111 1111 y\r\n', false), '>> x \r\n>> [CARD] y\r\n');
  assert.equal(redacted(' From 4111 1111 1111 1111\r\n-- \r\n123-45-6789\r\n', false), ' From [CARD]\r\n-- \r\n[SSN]\r\n');
});

test('flowed redaction: a value that ends in the soft space takes the break along', () => {
  const withSpace = rulesOf('rules:\n' + rule('pair', 'pattern: "AB\\\\s+CD\\\\s?"', '[P]'));
  assert.equal(redacted('x AB \r\nCD \r\nrest\r\n', false, withSpace), 'x [P]rest\r\n');
  assert.equal(redacted('> x AB \r\n> CD \r\n>  rest\r\n', false, withSpace), '> x [P] rest\r\n');
});

test('flowed redaction: a replacement that would start a line with " ", ">" or "From " is space-stuffed', () => {
  for (const replacement of [' gone', '>gone', 'From gone']) {
    const rules = rulesOf('rules:\n' + rule('card', 'detector: credit_card', replacement));
    assert.equal(redacted('4111 1111 1111 1111 x\r\n', false, rules), ` ${replacement} x\r\n`);
    assert.equal(redacted('a \r\n>4111 1111 1111 1111 x\r\n', false, rules), `a \r\n> ${replacement} x\r\n`);
    assert.equal(redacted(' 4111 1111 1111 1111 x\r\n', false, rules), ` ${replacement} x\r\n`);
  }
});

test('flowed redaction: a line made longer than 998 octets is wrapped again with soft breaks', () => {
  const words = (n: number) => Array.from({ length: n }, (_, i) => `wörd${i}`).join(' ');
  const long = rulesOf('rules:\n' + rule('card', 'detector: credit_card', 'CARD '.repeat(100).trim()));
  for (const delSp of [false, true]) {
    // With DelSp=yes the soft break's space goes: a space that stays is written before it.
    const text = `> ${words(150)} 4111 1111 ${delSp ? ' ' : ''}\r\n> 1111 1111 ${words(150)}\r\nend\r\n`;
    const out = redacted(text, delSp, long);
    const lines = out.split('\r\n');
    assert.ok(lines.length > 3, 'wrapped');
    for (const line of lines.slice(0, -2)) assert.match(line, /^> /, 'continuation lines keep the quote marks');
  }
  // DelSp=no can only break after a space: a replacement with none, in a line with none, cannot be wrapped.
  const solid = rulesOf('rules:\n' + rule('card', 'detector: credit_card', 'X'.repeat(1200)));
  assert.throws(() => redactFlowed('4111111111111111\r\n', false, solid), RedactionError);
  assert.ok(redacted('4111111111111111\r\n', true, solid).split('\r\n').length > 2);
});

test('flowed redaction keeps the unwrapped text exact on random wrapped paragraphs', () => {
  const seed = Number(process.env.FLOWED_SEED ?? Date.now() % 1e6) >>> 0;
  const next = xorshift32(seed);
  const pick = <T>(a: readonly T[]) => a[next() % a.length];
  const pieces = ['4111 1111 1111 1111', '4111111111111111', '123-45-6789', 'word', 'more text', '4111-2026-000187', 'From', '>', '--', ' ', 'é'];
  for (let round = 0; round < 300; round++) {
    const delSp = next() % 2 === 0;
    const quote = pick(['', '> ', '>> ', '>']);
    // A paragraph cut at random places into soft-broken lines (after a space for DelSp=no), with some hard breaks.
    let text = '';
    let line = quote;
    const words = Array.from({ length: 4 + (next() % 12) }, () => pick(pieces));
    for (const word of words.join(' ')) {
      line += word;
      const cut = next() % 9 === 0;
      if (cut && (delSp || word === ' ')) {
        text += line + (delSp ? ' ' : '') + pick(['\r\n', '\n']);
        line = quote + (next() % 3 === 0 ? ' ' : '');
      } else if (next() % 40 === 0) {
        text += line + '\r\n';
        line = quote;
      }
    }
    text += line + '\r\n';
    const { count } = redactFlowed(text, delSp, CARD);
    if (!count) continue;
    try {
      redacted(text, delSp);
    } catch (err) {
      assert.fail(`FLOWED_SEED=${seed} round ${round} delSp=${delSp}: ${JSON.stringify(text)}: ${(err as Error).message}`);
    }
  }
});

test('flowed redaction is linear in the size of the text', () => {
  const unit = 'Please charge 4111 1111 \r\n1111 1111 and note the order \r\n> 4111-2026-000187 with SSN 123-45- \r\n6789 today.\r\n';
  const ratio = growth((text: string) => redactFlowed(text, true, CARD), unit.repeat(3000), unit.repeat(12000), 6);
  assert.ok(ratio <= 6, `4x the text took ${ratio.toFixed(1)}x as long`);
});
