/*
 * Seeded fuzzing of the DLP content side: pass 1 (MIME extraction, scanning,
 * decide) and the redact stage. The golden redaction inputs and the negative
 * corpus are mutated at random (bytes flipped; CR, LF, "=", "--", boundary
 * lines, "<", "&#" inserted; the input truncated; a MIME part duplicated;
 * header lines deleted), then scanned in random-size chunks and, when the
 * verdict is redact, redacted in random-size chunks. Each mutant must:
 *   - never make scan() throw;
 *   - never make the redact stage fail other than with a RedactionError (the
 *     designed fail-closed path: the relay then answers 451 and the message
 *     is not delivered); those are counted and printed;
 *   - never hang (per-call guard, and the test's own timeout);
 *   - with any verdict but redact, come out of the redact stage unchanged.
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
import { RedactionError } from '../../src/pipeline/redact';
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

const PIECES = ['\r', '\n', '\r\n', '=', '=\r\n', '=3', '--', '\r\n--', '<', '</', '&#', '&#32;', '&nbsp;', '<b>', '<!--', '-->', '\r\n\r\n', ' ', '\t', '=?utf-8?Q?', '?='];

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

/**
 * Known bug (todo test in test/golden/redact.test.ts): src/redact/html.ts
 * loops forever on an HTML comment that is never closed, synchronously, so
 * no timeout can stop it and the heap runs out. Redaction is not attempted
 * on such mutants (counted instead) until that is fixed. Conservative: any
 * "<!--" whose next "-->" is missing or lies beyond a line starting "--".
 */
function unclosedComment(raw: Buffer): boolean {
  const text = raw.toString('latin1').replace(/=\r?\n/g, '');
  for (let i = text.indexOf('<!--'); i >= 0; i = text.indexOf('<!--', i + 4)) {
    const close = text.indexOf('-->', i + 4);
    if (close < 0 || /\n--/.test(text.slice(i, close))) return true;
  }
  return false;
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
  const stats = { rounds: 0, redactVerdicts: 0, redactedOk: 0, failClosed: 0, unscannable: 0, lostSubjectError: 0, unclosedComment: 0, survivors: 0 };
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
    if (unclosedComment(input)) {
      stats.unclosedComment++;
      continue;
    }
    try {
      const out = await guarded(() => redacted(input, ctx, redactChunk));
      stats.redactedOk++;
      // Not a requirement of this test (see the known bugs in test/golden/redact.test.ts), only counted.
      const again = await guarded(() => scan(out, rules));
      const ids = new Set(rules.rules.filter((r) => r.action === 'redact').map((r) => r.id));
      if (again.findings.some((f) => ids.has(f.rule))) {
        stats.survivors++;
        if (TRACE) writeFileSync(join(tmpdir(), `mv-dlp-fuzz-survivor-${SEED}-${i}.eml`), input);
      }
    } catch (err) {
      const e = err as Error & { unhandled?: boolean; reason?: unknown; hang?: boolean };
      if (e instanceof RedactionError) {
        stats.failClosed++;
        if (TRACE) writeFileSync(join(tmpdir(), `mv-dlp-fuzz-failclosed-${SEED}-${i}.eml`), input);
        const reason = e.message.replace(/^part [^:]*: /, 'part: ');
        failClosedReasons.set(reason, (failClosedReasons.get(reason) ?? 0) + 1);
      } else if (e.unhandled && e.reason instanceof RedactionError && /^subject: /.test(e.reason.message)) {
        // Known bug (todo test in test/golden/redact.test.ts): a RedactionError from the
        // Subject escapes RedactNodes as an unhandled rejection and the stream never ends.
        stats.lostSubjectError++;
      } else {
        fail(i, base, ops, input, `redaction (${redactChunk}-byte chunks) failed with something other than a RedactionError: ${e.unhandled ? `unhandled rejection ${String((e.reason as Error)?.stack ?? e.reason)}` : e.stack}`);
      }
    }
  }

  const seconds = (Date.now() - started) / 1000;
  console.log(
    `# dlp fuzz seed=${SEED}: ${stats.rounds} rounds in ${seconds.toFixed(1)} s; ${stats.unscannable} unscannable; ` +
      `${stats.redactVerdicts} redact verdicts: ${stats.redactedOk} redacted, ${stats.failClosed} fail-closed (RedactionError), ` +
      `${stats.lostSubjectError} Subject errors lost as unhandled rejections (known bug), ${stats.unclosedComment} not tried (unclosed HTML comment, known bug); ` +
      `${stats.survivors} outputs with a value left (known bugs: HTML attributes/conditional comments, MIME structure read differently, charset re-encoding)`,
  );
  for (const [reason, n] of failClosedReasons) console.log(`#   fail-closed x${n}: ${reason}`);
  assert.ok(stats.rounds >= 300, `seed=${SEED}: only ${stats.rounds} rounds`);
  assert.ok(seconds < 40, `seed=${SEED}: ${stats.rounds} rounds took ${seconds.toFixed(1)} s (budget 40 s)`);
});
