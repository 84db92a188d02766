/*
 * src/redact/html.ts: whatever pass 1's HTML reading (src/mime/html-text.ts)
 * scans, pass 2 finds again and replaces in the raw HTML, each place with the
 * escaping it needs, and the markup stays valid. Checked by reading the
 * output again with pass 1's own tokenizer. Also: the trace that pass 2
 * attaches to the tokenizer does not change what pass 1 reads, and the
 * redactor is linear in the size of the HTML.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { redactHtml } from '../../src/redact/html';
import { HtmlText, type HtmlTrace } from '../../src/mime/html-text';
import type { CompiledRule } from '../../src/rules/compile';
import { ruleSetFromYaml } from '../helpers/dlp';
import { growth } from '../helpers/growth';

function rulesOf(yaml: string): CompiledRule[] {
  return ruleSetFromYaml(yaml).compiled.rules.filter((r) => r.def.action === 'redact');
}
const rule = (id: string, spec: string, replacement: string) =>
  `  - id: ${id}\n    ${spec}\n    action: redact\n    replacement: ${JSON.stringify(replacement)}\n`;
const CARD = rulesOf('rules:\n' + rule('card', 'detector: credit_card', '[CARD]') + rule('ssn', 'detector: us_ssn', '[SSN]'));

/** What pass 1 reads in `html`. */
function read(html: string, trace?: HtmlTrace): string {
  const t = new HtmlText(trace);
  return t.write(html) + t.end();
}

/** Redacts, checks no value is left for pass 1 to see, and returns the HTML. */
function redacted(html: string, rules = CARD): string {
  const { text, count } = redactHtml(html, rules);
  assert.ok(count > 0, `nothing found in ${html}`);
  const again = redactHtml(text, rules);
  assert.equal(again.count, 0, `a value survived: ${text}`);
  return text;
}

test('HTML redaction: attribute values in every quote style, with references inside', () => {
  assert.equal(redacted('<p title="4111 1111 1111 1111">x</p>'), '<p title="[CARD]">x</p>');
  assert.equal(redacted("<img alt='4111&#32;1111&#x20;1111&nbsp;1111'>"), "<img alt='[CARD]'>");
  assert.equal(redacted('<input value=123-45-6789 name=x>'), '<input value=[SSN] name=x>');
  assert.equal(redacted('<a href="https://x.example/?a=1&amp;c=4111111111111111&amp;b=2">'), '<a href="https://x.example/?a=1&amp;c=[CARD]&amp;b=2">');
  assert.equal(redacted('<div data-x="{&quot;ssn&quot;:&quot;123-45-6789&quot;}">'), '<div data-x="{&quot;ssn&quot;:&quot;[SSN]&quot;}">');
  // A value ending inside a character reference takes the reference with it.
  assert.equal(redacted('<p>4111 1111 1111 111&#49;&amp;</p>'), '<p>[CARD]&amp;</p>');
});

test('HTML redaction: the replacement is escaped for where it lands', () => {
  const R = `<"A" & 'B'>--!`;
  const odd = rulesOf('rules:\n' + rule('card', 'detector: credit_card', R));
  // Input, output, and the replacement as pass 1 then reads it (comments, script and markup lose what would end them).
  const cases: [string, string, string][] = [
    ['<p>4111111111111111</p>', `<p>&lt;&quot;A&quot; &amp; 'B'&gt;--!</p>`, R],
    ['<p title="4111111111111111">', `<p title="&lt;&quot;A&quot; &amp; 'B'&gt;--!">`, R],
    ["<p title='4111111111111111'>", `<p title='&lt;"A" &amp; &#39;B&#39;&gt;--!'>`, R],
    ['<p title=4111111111111111>', '<p title=&#60;&#34;A&#34;&#32;&amp;&#32;&#39;B&#39;&#62;--!>', R],
    ['<!-- 4111111111111111 -->', `<!-- <"A" & 'B' -->`, `<"A" & 'B'`],
    ['<script>x="4111111111111111"</script>', `<script>x=""A" & 'B'>--!"</script>`, `"A" & 'B'>--!`],
    ['<!DOCTYPE 4111111111111111>', `<!DOCTYPE <"A" & 'B'--!>`, `<"A" & 'B'--!`],
  ];
  for (const [input, want, readAs] of cases) {
    const got = redacted(input, odd);
    assert.equal(got, want, input);
    // Read by pass 1, the output is the input with the value replaced: no tag, comment or script ended early.
    assert.equal(read(got), read(input).replace('4111111111111111', readAs), input);
  }
});

test('HTML redaction: an unquoted value removed whole is written "" so the next attribute stays one', () => {
  const across = rulesOf('rules:\n' + rule('pair', 'pattern: "AB\\\\s+CD"', '[X]'));
  assert.equal(redacted('<p data-a=AB data-b=CD title=t>x</p>', across), '<p data-a=[X] data-b="" title=t>x</p>');
  assert.equal(redacted('<i title=AB alt=\'CD\'></i><!-- AB --><!-- CD -->', across), "<i title=[X] alt=''></i><!-- [X]--><!-- -->");
});

test('HTML redaction: conditional comments are HTML; comments, style, script and other markup are text', () => {
  const html =
    '<!--[if mso]><td title="5555 5555 5555 4444">5555 5555 5555 4444</td><![endif]-->' +
    '<![if !mso]><b>123-45-6789</b><![endif]>' +
    '<!--[if !mso]><!--><p>4111 1111 1111 1111</p><!--<![endif]-->' +
    '<!-- 4111111111111111 --><!---- 4111111111111111 --!><style>/* 123-45-6789 */</style>' +
    '<script>var s = "</scr" + "123-45-6789";</script><?xml 123-45-6789?>';
  assert.equal(
    redacted(html),
    '<!--[if mso]><td title="[CARD]">[CARD]</td><![endif]-->' +
      '<![if !mso]><b>[SSN]</b><![endif]>' +
      '<!--[if !mso]><!--><p>[CARD]</p><!--<![endif]-->' +
      '<!-- [CARD] --><!---- [CARD] --!><style>/* [SSN] */</style>' +
      '<script>var s = "</scr" + "[SSN]";</script><?xml [SSN]?>',
  );
  // Unterminated constructs run to the end of the part, as pass 1 reads them.
  assert.equal(redacted('<p>x</p><!-- 4111111111111111'), '<p>x</p><!-- [CARD]');
  assert.equal(redacted('<script>4111111111111111'), '<script>[CARD]');
  assert.equal(redacted('<p title="4111111111111111'), '<p title="[CARD]');
});

test('HTML redaction: inline tags, block breaks and NULs as pass 1 reads them', () => {
  assert.equal(redacted('<p>Card <b>4111</b> 1111 <i>1111</i> 1111.</p>'), '<p>Card <b>[CARD]</b><i></i>.</p>');
  assert.equal(redacted('<p>4111\0 1111 1111 1111</p>'), '<p>[CARD]</p>');
  // A block element separates: no value across it.
  assert.equal(redactHtml('<p>4111 1111</p><p>1111 1111</p>', CARD).count, 0);
});

test('HTML tokenizer: the trace pass 2 attaches does not change what pass 1 reads', () => {
  const noop: HtmlTrace = { copy() {}, decoded() {}, gap() {}, flush() {} };
  const samples = [
    '123-<b class="x">45</b>-<span title=\'t\'>6789</span> more<br>',
    'x<script type="a>b">if (a<b) { s = "</scr" + "ipt>"; }</script >y<style>p{}</STYLE>z',
    'a<!-- 111-11-1111 -->b<!---->c<!-->d<!--->e<!-- x --!>f<!---y-- -->g<!--[if mso]><p>222</p><![endif]-->',
    '<!DOCTYPE html><?xml x?>3 < 4, a<>b, 5 <= 6 &amp &notit; &#x34;&#52 &unknown; <a href=x&amp;y=1 title=&quot;>',
    'unterminated <b',
    'x<!-- open',
  ];
  for (const s of samples) assert.equal(read(s, noop), read(s), s);
});

test('HTML redaction is linear in the size of the HTML', () => {
  const unit =
    '<tr><td title="Card 4111 1111 1111 1111" data-x=\'a&amp;b\'>4111 <b>1111</b> 1111 1111</td><td><!-- 123-45-6789 --></td>' +
    '<td><a href=https://x.example/?q=1&amp;r=2>link</a> &nbsp;&#52;</td></tr>\r\n';
  const ratio = growth((html: string) => redactHtml(html, CARD), unit.repeat(2000), unit.repeat(8000), 6);
  assert.ok(ratio <= 6, `4x the HTML took ${ratio.toFixed(1)}x as long`);
});
