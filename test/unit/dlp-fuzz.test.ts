/*
 * Seeded fuzzing of the DLP content side: pass 1 (MIME extraction, scanning,
 * decide) and the redact stage.
 *
 * Mutants: the golden redaction inputs and the negative corpus are mutated
 * at random (bytes flipped; CR, LF, "=", "--", boundary lines, "<", "&#",
 * quotes, attributes, conditional comment markers, script/style tags,
 * format=flowed soft breaks and quote marks inserted; the input truncated; a
 * MIME part duplicated; header lines deleted), then scanned in random-size
 * chunks and, when the verdict is redact, redacted in random-size chunks.
 * Each mutant must:
 *   - never make scan() throw;
 *   - never make the redact stage fail other than with a RedactionError (the
 *     designed fail-closed path: the relay then holds the message in
 *     quarantine, it is not delivered); those are counted and printed;
 *   - when it does come out redacted, hold no value of a redact rule that
 *     fired, as pass 1 reads it;
 *   - never hang (per-call guard, and the test's own timeout);
 *   - with any verdict but redact, come out of the redact stage unchanged.
 *
 * Generated messages: HTML with values in every place pass 1 scans (text
 * split by inline tags, attribute values in each quote style with character
 * references, comments, Outlook conditional comments, script, style, other
 * markup) and format=flowed text with values across soft breaks (DelSp
 * yes/no, quotes, stuffing), in 7bit, quoted-printable or base64. Whatever
 * pass 1 can see it can redact, so each of those must be delivered redacted:
 * no RedactionError, and no value left.
 *
 * The seed is in every assertion message; rerun one with FUZZ_SEED=<n>, a
 * longer run with FUZZ_ROUNDS=<n>. A failing input is written to the temp
 * directory, named in the message; with FUZZ_TRACE=1 each round is logged to
 * stderr and its input written first, for crashes that leave no message.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadRuleSet } from '../../src/rules/load';
import { RedactionError } from '../../src/pipeline/stages/redact';
import type { MessageContext } from '../../src/pipeline/context';
import type { RuleSet } from '../../src/rules/types';
import { scan, redacted, ruleSetFromYaml, everyDetectorRedacts } from '../helpers/dlp';
import { REPO_ROOT, TEST_DIR } from '../helpers/paths';
import { xorshift32 } from '../helpers/prng';

const SEED = Number(process.env.FUZZ_SEED ?? Date.now() % 1e6) >>> 0;
const ROUNDS = Number(process.env.FUZZ_ROUNDS ?? 800);
/** FUZZ_TRACE=1: each round's input goes to <tmp>/mv-dlp-fuzz-current.eml before it runs. */
const TRACE = process.env.FUZZ_TRACE === '1';
/** No single scan or redaction of these small inputs may take longer. */
const CALL_TIMEOUT_MS = 10_000;

/** xorshift32 */
const rng = (seed: number) => xorshift32(seed);

interface Base {
  name: string;
  raw: Buffer;
  rules: RuleSet[];
}

const SHIPPED = loadRuleSet(join(REPO_ROOT, 'rules.d'));
const ALL_REDACT = everyDetectorRedacts();

function bases(): Base[] {
  const out: Base[] = [];
  const golden = join(TEST_DIR, 'golden', 'redact');
  for (const d of existsSync(golden) ? readdirSync(golden).sort() : []) {
    const dir = join(golden, d);
    if (!existsSync(join(dir, 'in.eml'))) continue;
    out.push({ name: `golden/${d}`, raw: readFileSync(join(dir, 'in.eml')), rules: [ruleSetFromYaml(readFileSync(join(dir, 'rules.yaml'), 'utf8')), ALL_REDACT] });
  }
  const neg = join(TEST_DIR, 'fixtures', 'negative');
  for (const f of existsSync(neg) ? readdirSync(neg).sort() : []) {
    if (f.endsWith('.eml')) out.push({ name: `negative/${f}`, raw: readFileSync(join(neg, f)), rules: [SHIPPED, ALL_REDACT] });
  }
  return out;
}

const PIECES = [
  '\r', '\n', '\r\n', '=', '=\r\n', '=3', '--', '\r\n--', '<', '</', '&#', '&#32;', '&nbsp;', '<b>', '<!--', '-->', '\r\n\r\n', ' ', '\t', '=?utf-8?Q?', '?=',
  // HTML places pass 1 scans as hidden text, and format=flowed soft breaks and quotes.
  '"', "'", ' title="', " alt='", ' value=', '<!--[if mso]>', '<![endif]-->', '<![if !mso]>', '<![endif]>', '<script>', '</script>', '<style>', '<!DOCTYPE ',
  ' \r\n', '\r\n> ', ' \r\n>> ',
];

function boundaries(raw: Buffer): string[] {
  return [...raw.toString('latin1').matchAll(/boundary="?([^";\r\n]+)"?/gi)].map((m) => m[1]);
}

function mutate(input: Buffer, next: () => number): { out: Buffer; ops: string[] } {
  let b = Buffer.from(input);
  const ops: string[] = [];
  const edits = 1 + (next() % 4);
  for (let e = 0; e < edits && b.length; e++) {
    const at = next() % b.length;
    const kind = next() % 7;
    switch (kind) {
      case 0: {
        const n = 1 + (next() % 4);
        for (let k = 0; k < n; k++) b[(at + k * 17) % b.length] ^= 1 << (next() % 8);
        ops.push(`flip@${at}x${n}`);
        break;
      }
      case 1: {
        const bs = boundaries(b);
        const piece = bs.length && next() % 4 === 0 ? `\r\n--${bs[next() % bs.length]}${next() % 2 ? '--' : ''}\r\n` : PIECES[next() % PIECES.length];
        b = Buffer.concat([b.subarray(0, at), Buffer.from(piece, 'latin1'), b.subarray(at)]);
        ops.push(`insert@${at}:${JSON.stringify(piece)}`);
        break;
      }
      case 2:
        b = b.subarray(0, at);
        ops.push(`truncate@${at}`);
        break;
      case 3: {
        // Duplicate a MIME part: the bytes from one delimiter line to the next.
        const bs = boundaries(b);
        if (!bs.length) break;
        const text = b.toString('latin1');
        const delim = `\r\n--${bs[next() % bs.length]}`;
        const starts: number[] = [];
        for (let i = text.indexOf(delim); i >= 0; i = text.indexOf(delim, i + 1)) starts.push(i);
        if (starts.length < 2) break;
        const k = next() % (starts.length - 1);
        const part = b.subarray(starts[k], starts[k + 1]);
        b = Buffer.concat([b.subarray(0, starts[k + 1]), part, b.subarray(starts[k + 1])]);
        ops.push(`dup-part@${starts[k]}+${part.length}`);
        break;
      }
      case 4: {
        // Delete a header line of the top-level header (maybe Content-Type or a fold).
        const end = b.indexOf('\r\n\r\n');
        if (end <= 0) break;
        const lines = b.subarray(0, end + 2).toString('latin1').split(/(?<=\r\n)/);
        const i = next() % lines.length;
        ops.push(`del-header:${JSON.stringify(lines[i].slice(0, 30))}`);
        lines.splice(i, 1);
        b = Buffer.concat([Buffer.from(lines.join(''), 'latin1'), b.subarray(end + 2)]);
        break;
      }
      case 5: {
        const len = 1 + (next() % 24);
        b = Buffer.concat([b.subarray(0, at), b.subarray(Math.min(b.length, at + len))]);
        ops.push(`delete@${at}+${len}`);
        break;
      }
      default: {
        b = Buffer.concat([b.subarray(0, at), Buffer.from([next() & 0xff]), b.subarray(at)]);
        ops.push(`byte@${at}`);
      }
    }
  }
  return { out: b, ops };
}

const CHUNK_SIZES = [1, 2, 3, 5, 7, 17, 64, 333, 1024, 65536];

/**
 * Runs `fn` with a time limit, and turns an unhandled rejection raised while
 * it runs into its failure (with `unhandled: true`), so a stage that loses an
 * error does not take the whole test process down and is still caught here.
 */
async function guarded<T>(fn: () => Promise<T>): Promise<T> {
  const saved = process.listeners('unhandledRejection');
  process.removeAllListeners('unhandledRejection');
  let timer: NodeJS.Timeout | undefined;
  try {
    return await new Promise<T>((resolve, reject) => {
      process.on('unhandledRejection', (reason) => reject(Object.assign(new Error('unhandled rejection'), { unhandled: true, reason })));
      timer = setTimeout(() => reject(Object.assign(new Error(`no result after ${CALL_TIMEOUT_MS} ms`), { hang: true })), CALL_TIMEOUT_MS);
      fn().then(resolve, reject);
    });
  } finally {
    clearTimeout(timer);
    process.removeAllListeners('unhandledRejection');
    for (const l of saved) process.on('unhandledRejection', l as (...a: unknown[]) => void);
  }
}

test(`DLP fuzz (seed ${SEED}, ${ROUNDS} rounds)`, { timeout: 60_000 }, async () => {
  const all = bases();
  assert.ok(all.length >= 20, `only ${all.length} inputs to mutate`);
  const next = rng(SEED);
  const started = Date.now();
  const stats = { rounds: 0, redactVerdicts: 0, redactedOk: 0, failClosed: 0, unscannable: 0 };
  const failClosedReasons = new Map<string, number>();

  const fail = (i: number, base: Base, ops: string[], input: Buffer, what: string): never => {
    const file = join(tmpdir(), `mv-dlp-fuzz-${SEED}-${i}.eml`);
    writeFileSync(file, input);
    assert.fail(`seed=${SEED} round=${i} base=${base.name} ops=${ops.join(' ')}: ${what} (input in ${file})`);
  };

  for (let i = 0; i < ROUNDS; i++) {
    const base = all[next() % all.length];
    const rules = base.rules[next() % base.rules.length];
    const { out: input, ops } = mutate(base.raw, next);
    const scanChunk = CHUNK_SIZES[next() % CHUNK_SIZES.length];
    const redactChunk = CHUNK_SIZES[next() % CHUNK_SIZES.length];
    stats.rounds++;
    if (TRACE) {
      // A crash (out of memory, native abort) leaves no assertion message: this leaves the input.
      writeFileSync(join(tmpdir(), `mv-dlp-fuzz-current.eml`), input);
      process.stderr.write(`seed=${SEED} round=${i} base=${base.name} rules=${rules === ALL_REDACT ? 'all-redact' : 'own'} scan=${scanChunk} redact=${redactChunk} ops=${ops.join(' ')}\n`);
    }

    let ctx: MessageContext;
    try {
      ctx = await guarded(() => scan(input, rules, scanChunk));
    } catch (err) {
      fail(i, base, ops, input, `scan (${scanChunk}-byte chunks) threw: ${(err as Error).stack}`);
    }
    if (ctx!.unscannable.length) stats.unscannable++;

    if (ctx!.verdict.action !== 'redact') {
      let out: Buffer;
      try {
        out = await guarded(() => redacted(input, ctx, redactChunk));
      } catch (err) {
        fail(i, base, ops, input, `verdict ${ctx!.verdict.action}, yet the redact stage threw: ${(err as Error).message}`);
      }
      if (!out!.equals(input)) fail(i, base, ops, input, `verdict ${ctx!.verdict.action}, yet the redact stage changed the message`);
      continue;
    }

    stats.redactVerdicts++;
    let out: Buffer | undefined;
    try {
      out = await guarded(() => redacted(input, ctx, redactChunk));
      stats.redactedOk++;
    } catch (err) {
      const e = err as Error & { unhandled?: boolean; reason?: unknown; hang?: boolean };
      if (e instanceof RedactionError) {
        stats.failClosed++;
        if (TRACE) writeFileSync(join(tmpdir(), `mv-dlp-fuzz-failclosed-${SEED}-${i}.eml`), input);
        const reason = e.message.replace(/^part [^:]*: /, 'part: ');
        failClosedReasons.set(reason, (failClosedReasons.get(reason) ?? 0) + 1);
      } else {
        fail(i, base, ops, input, `redaction (${redactChunk}-byte chunks) failed with something other than a RedactionError: ${e.unhandled ? `unhandled rejection ${String((e.reason as Error)?.stack ?? e.reason)}` : e.stack}`);
      }
    }
    // Delivered means clean: pass 1 finds no value of a redact rule that fired in what leaves.
    if (out) {
      const again = await guarded(() => scan(out, rules));
      const left = again.findings.filter((f) => ctx.verdict.rules.includes(f.rule) && rules.rules.some((r) => r.id === f.rule && r.action === 'redact'));
      if (left.length) fail(i, base, ops, input, `a redacted message still holds values: ${JSON.stringify(left.map((f) => [f.rule, f.part]))}`);
    }
  }

  const seconds = (Date.now() - started) / 1000;
  console.log(
    `# dlp fuzz seed=${SEED}: ${stats.rounds} rounds in ${seconds.toFixed(1)} s; ${stats.unscannable} unscannable; ` +
      `${stats.redactVerdicts} redact verdicts: ${stats.redactedOk} redacted, ${stats.failClosed} fail-closed (RedactionError), ` +
      'no output with a value left',
  );
  for (const [reason, n] of failClosedReasons) console.log(`#   fail-closed x${n}: ${reason}`);
  assert.ok(stats.rounds >= 300, `seed=${SEED}: only ${stats.rounds} rounds`);
  assert.ok(seconds < 40, `seed=${SEED}: ${stats.rounds} rounds took ${seconds.toFixed(1)} s (budget 40 s)`);
});

/** Values the built-in detectors find (card, Amex, SSN). */
const VALUES = ['4111 1111 1111 1111', '5555555555554444', '3782 822463 10005', '123-45-6789'];

const pick = <T>(next: () => number, a: readonly T[]): T => a[next() % a.length];

/** A value with some characters written as HTML references; in an unquoted attribute every space is one. */
function referenced(next: () => number, value: string, unquoted = false): string {
  let out = '';
  for (const c of value) {
    const r = next() % 6;
    if (c === ' ' && (unquoted || r === 0)) out += pick(next, ['&#32;', '&#x20;', '&nbsp;', '&#160;']);
    else if (r === 1) out += `&#${c.charCodeAt(0)};`;
    else if (r === 2) out += `&#x${c.charCodeAt(0).toString(16)};`;
    else out += c;
  }
  return out;
}

/** One place in HTML that pass 1 scans, holding `value`. */
function htmlPlace(next: () => number, value: string): string {
  const cut = 1 + (next() % (value.length - 1));
  switch (next() % 12) {
    case 0:
      return `<p>Card ${referenced(next, value)} here</p>`;
    case 1: // inline tags join text
      return `<p>x ${value.slice(0, cut)}<${pick(next, ['b', 'span class="c"', 'i'])}>${value.slice(cut)}</${pick(next, ['b', 'span', 'i'])}> y</p>`;
    case 2:
      return `<span title="${referenced(next, value).replace(/"/g, '&quot;')}">t</span>`;
    case 3:
      return `<img alt='Card ${referenced(next, value)}' src="cid:x@example.com">`;
    case 4:
      return `<input type=hidden value=${referenced(next, value, true)} name=v>`;
    case 5:
      return `<a href="https://pay.example.com/?a=1&amp;v=${referenced(next, value)}&amp;b=2" data-x='{"v":"${value}"}'>link</a>`;
    case 6:
      return `<!-- ${value} -->`;
    case 7:
      return `<!--[if mso]><td title="${value}">${value}</td><![endif]-->`;
    case 8:
      return `<![if !mso]><p>${referenced(next, value)}</p><![endif]><!--[if !mso]><!--><b>${value}</b><!--<![endif]-->`;
    case 9:
      return `<script>var v = "${value}"; if (a < b) {}</script>`;
    case 10:
      return `<style>/* ${value} */ p { margin: 0 }</style>`;
    default:
      return pick(next, [`<!DOCTYPE html ${value}>`, `<?xml ${value}?>`, `<![CDATA[ ${value} ]]>`]);
  }
}

/** format=flowed text with `value` somewhere, wrapped at random (after a space with DelSp=no), quoted, stuffed where needed. */
function flowedText(next: () => number, value: string, delSp: boolean): string {
  const quote = pick(next, ['', '> ', '>> ', '>']);
  const words = ['please', 'charge', 'From', 'the', 'card', value, 'today,', 'thanks', '-', '>', 'é'];
  const text = Array.from({ length: 6 + (next() % 10) }, () => pick(next, words)).join(' ') + ' ' + value + ' end';
  const chunks: string[] = [];
  let from = 0;
  for (let at = 1; at < text.length; at++) {
    if (next() % 7 === 0 && (delSp || text[at - 1] === ' ')) {
      chunks.push(text.slice(from, at));
      from = at;
    }
  }
  chunks.push(text.slice(from));
  // A continuation line loses its quote marks and one space: a chunk starting with either is stuffed.
  const lines = chunks.map((c, k) => (k === 0 ? quote : quote.trim() + (/^[ >]/.test(c) || next() % 4 === 0 ? ' ' : '')) + c);
  return lines.map((l, k) => l + (k < lines.length - 1 && delSp ? ' ' : '') + '\r\n').join('');
}

/** Quoted-printable (RFC 2045 6.7) written for the test: lines of at most 76, an escape never cut by a soft break. */
function qpEncode(body: string): string {
  return body
    .split('\r\n')
    .map((line) => {
      const bytes = Buffer.from(line, 'utf8');
      const tokens = [...bytes].map((b, k) =>
        b === 0x3d || b > 0x7e || ((b === 0x20 || b === 0x09) && k === bytes.length - 1) ? '=' + b.toString(16).toUpperCase().padStart(2, '0') : String.fromCharCode(b),
      );
      let out = '';
      let width = 0;
      for (const t of tokens) {
        if (width + t.length > 75) {
          out += '=\r\n';
          width = 0;
        }
        out += t;
        width += t.length;
      }
      return out;
    })
    .join('\r\n');
}

function encodeBody(body: string, encoding: string): string {
  if (encoding === 'base64') return Buffer.from(body, 'utf8').toString('base64').replace(/.{76}/g, '$&\r\n') + '\r\n';
  return encoding === 'quoted-printable' ? qpEncode(body) : body;
}

test(`DLP fuzz: values in every HTML place and across flowed soft breaks are delivered redacted (seed ${SEED})`, { timeout: 60_000 }, async () => {
  const next = rng(SEED ^ 0x5bd1e995);
  const rules = ruleSetFromYaml(
    'rules:\n  - id: card\n    detector: credit_card\n    action: redact\n    replacement: "[CARD]"\n' +
      '  - id: ssn\n    detector: us_ssn\n    action: redact\n    replacement: "[SSN]"\n',
  );
  const rounds = Math.max(100, ROUNDS >> 2);
  for (let i = 0; i < rounds; i++) {
    const encoding = pick(next, ['7bit', 'quoted-printable', 'base64']);
    let type: string;
    let body: string;
    if (next() % 3) {
      type = 'text/html; charset=utf-8';
      const places = Array.from({ length: 1 + (next() % 4) }, () => htmlPlace(next, pick(next, VALUES)));
      body = `<html><head><title>t</title></head><body>\r\n${places.join(pick(next, ['', '\r\n', '<br>', ' ']))}\r\n</body></html>\r\n`;
    } else {
      const delSp = next() % 2 === 0;
      type = `text/plain; charset=utf-8; format=flowed${delSp ? '; delsp=yes' : ''}`;
      body = flowedText(next, pick(next, VALUES), delSp);
    }
    const input = Buffer.from(
      `From: <a@example.com>\r\nTo: <b@example.net>\r\nSubject: fuzz\r\nMIME-Version: 1.0\r\nContent-Type: ${type}\r\n` +
        `Content-Transfer-Encoding: ${encoding}\r\n\r\n${encodeBody(body, encoding)}`,
      'utf8',
    );
    const what = `seed=${SEED} generated round ${i}: ${JSON.stringify(body)} (${encoding})`;
    const ctx = await guarded(() => scan(input, rules, pick(next, CHUNK_SIZES)));
    assert.equal(ctx.verdict.action, 'redact', `${what}: pass 1 should find the value`);
    let out: Buffer;
    try {
      out = await guarded(() => redacted(input, ctx, pick(next, CHUNK_SIZES)));
    } catch (err) {
      assert.fail(`${what}: not redacted: ${(err as Error).message}`);
    }
    const again = await scan(out, rules);
    assert.deepEqual(again.findings, [], `${what}: a value is left in ${out.toString('latin1')}`);
    assert.deepEqual(again.unscannable, [], `${what}: the output is not fully decodable`);
  }
});
