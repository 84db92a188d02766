/*
 * Pass 1 (MIME extraction, decoding, the scanner, decide) is linear in the
 * size of the message, whatever its shape. mailsplit's rule, tightened: a
 * message 4x as large may take at most 5x as long. Each shape is built at
 * n ~ 1 MiB and 4n, clean-ish with sparse PII (a card, an SSN, an address
 * every few dozen KiB, so the match paths run too), and scanned with the
 * shipped rules.d through scan() from test/helpers/dlp.ts. Timing is the
 * best of three runs after a warm-up, compared within one run, so machine
 * speed does not matter; one attempt in three has to pass, to absorb GC
 * noise (quadratic code is ~16x every time).
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { loadRuleSet } from '../../src/rules/load';
import { scan } from '../helpers/dlp';
import { REPO_ROOT } from '../helpers/paths';

const RULES = loadRuleSet(join(REPO_ROOT, 'rules.d'));
const N = 1 << 20;
const MAX_RATIO = 5;
const CRLF = '\r\n';

const HEAD = (contentType: string, extra = '') =>
  `From: "Pat Sender" <sender@example.com>${CRLF}To: <rcpt@example.net>${CRLF}Subject: linearity${CRLF}Date: Sun, 22 Nov 2026 09:30:00 +0000${CRLF}` +
  `Message-ID: <linearity@example.com>${CRLF}MIME-Version: 1.0${CRLF}Content-Type: ${contentType}${CRLF}${extra}${CRLF}`;

/** Text of about `size` characters: prose with numbers, a PII value every ~48 KiB. */
function prose(size: number, lineLength = 72, eol = CRLF): string {
  const words = 'the order 2026-4711 shipped on 22.11.2026 for EUR 1,299.00 ref PO-77120934 see ticket #4111 version 4.11.1 and the report'.split(' ');
  const pii = ['card 4111 1111 1111 1111', 'SSN 123-45-6789', 'mail pat@example.com', 'host 192.0.2.10'];
  const out: string[] = [];
  let total = 0;
  let line = '';
  let w = 0;
  let sinceValue = 0;
  while (total + line.length < size) {
    let word = words[w++ % words.length];
    if (sinceValue > 48 * 1024) {
      word = pii[(w >> 3) % pii.length];
      sinceValue = 0;
    }
    sinceValue += word.length + 1;
    if (line.length + word.length + 1 > lineLength && line) {
      out.push(line + eol);
      total += line.length + eol.length;
      line = '';
    }
    line += (line ? ' ' : '') + word;
  }
  if (line) out.push(line + eol);
  return out.join('');
}

function base64Lines(b: Buffer): string {
  return b.toString('base64').replace(/.{76}/g, (l) => l + CRLF) + CRLF;
}

function multipart(parts: string[]): string {
  return HEAD('multipart/mixed; boundary="lin-b"') + parts.map((p) => `--lin-b${CRLF}${p}${CRLF}`).join('') + `--lin-b--${CRLF}`;
}

const SHAPES: Record<string, (n: number) => string> = {
  'plain text': (n) => HEAD('text/plain; charset=utf-8') + prose(n),
  'HTML with entities and inline tags': (n) =>
    HEAD('text/html; charset=utf-8') +
    prose(n, 200)
      .split(CRLF)
      .map((l) => `<p class="x">${l.replace(/ the /g, ' <b>the</b> ').replace(/EUR/g, '&euro;&nbsp;')}</p>`)
      .join(CRLF),
  'base64 text attachment': (n) =>
    multipart([
      `Content-Type: text/plain${CRLF}${CRLF}See the attached export.`,
      `Content-Type: text/csv; name="export.csv"${CRLF}Content-Disposition: attachment; filename="export.csv"${CRLF}Content-Transfer-Encoding: base64${CRLF}${CRLF}${base64Lines(Buffer.from(prose((n * 3) / 4, 60)))}`,
    ]),
  // max_parts (1000) stays above the part count at 4n, so every part is scanned.
  'many small MIME parts': (n) => {
    const size = Math.ceil((4 * N) / 900);
    const count = Math.floor(n / size);
    return multipart(
      Array.from(
        { length: count },
        (_, i) => `Content-Type: text/plain; charset=utf-8${CRLF}Content-Transfer-Encoding: quoted-printable${CRLF}X-Part: ${i}${CRLF}${CRLF}${i % 10 ? '' : 'SSN 123-45-6789' + CRLF}${prose(size - 140)}`,
      ),
    );
  },
  // Past max_parts: the rest is cut off (unscannable), and that path must be linear too.
  'tiny MIME parts beyond max_parts': (n) => multipart(Array.from({ length: Math.floor(n / 50) }, (_, i) => `Content-Type: text/plain${CRLF}${CRLF}part ${i}${i % 50 ? '' : ' SSN 123-45-6789'}`)),
  'one long line': (n) => HEAD('text/plain; charset=utf-8') + prose(n, Infinity, ' ') + CRLF,
  'many short lines': (n) => HEAD('text/plain; charset=utf-8') + Array.from({ length: Math.floor(n / 5) }, (_, i) => (i % 10000 ? String(i % 1000).padStart(3, '0') : 'SSN 123-45-6789') + CRLF).join(''),
};

async function best(input: Buffer): Promise<number> {
  let t = Infinity;
  for (let i = 0; i < 3; i++) {
    const s = process.hrtime.bigint();
    await scan(input, RULES);
    t = Math.min(t, Number(process.hrtime.bigint() - s));
  }
  return t;
}

const ratios: string[] = [];

describe('pass 1 scan linearity (4x input, at most 5x time)', () => {
  for (const [name, make] of Object.entries(SHAPES)) {
    test(name, { timeout: 120_000 }, async () => {
      const small = Buffer.from(make(N), 'utf8');
      const large = Buffer.from(make(4 * N), 'utf8');
      assert.ok(large.length > 3.5 * small.length && small.length > 0.9 * N, `${name}: sizes ${small.length} and ${large.length}`);
      const ctx = await scan(small, RULES); // warm up, and a sanity check that the PII is seen
      assert.ok(ctx.findings.length > 0, `${name}: no finding at all, the shape is not scanned`);
      const seen: string[] = [];
      for (let attempt = 0; attempt < 3; attempt++) {
        const a = await best(small);
        const b = await best(large);
        const line = `${(a / 1e6).toFixed(0)} ms -> ${(b / 1e6).toFixed(0)} ms (x${(b / a).toFixed(2)})`;
        if (b / a <= MAX_RATIO) {
          ratios.push(`${name}: ${(small.length / 2 ** 20).toFixed(2)} MiB ${line}`);
          return;
        }
        seen.push(line);
      }
      assert.fail(`${name} is not linear: ${seen.join(', ')}`);
    });
  }
  test('report', () => {
    for (const r of ratios) console.log(`# scan linearity ${r}`);
  });
});
