/*
 * Golden tests for what a release from quarantine sends
 * (src/operations/release-rewrite.ts). Each folder under test/golden/release/
 * holds in.eml (the held original), rules.yaml (a rule file: the `headers:`
 * policy and the rules), out.eml (the bytes the next hop gets before the
 * final dot: CRLF, dot-stuffed) and verdict.json ({verdict, rules} of the
 * hold, and the release's `redact` and verdict header value). The runner
 * holds in.eml as serve would (pass 1 + decide, which must say quarantine),
 * releases it with a fixed pseudonym key, fed in 1-, 3-, 17-byte chunks and
 * whole, and compares with out.eml byte for byte. UPDATE_GOLDEN=1 rewrites
 * out.eml and verdict.json instead: only on purpose, and review the diff by
 * eye.
 *
 * Beyond the golden bytes, every case must also hold these properties:
 *   - the header section is exactly what a delivered message's anonymisation
 *     gives (anonymiseHeaderBlock with the same policy and key), below one
 *     `X-Mailveil-Verdict: released; rules=<ids>` line; a copy the sender
 *     forged is gone;
 *   - none of the case's internal host names or addresses is left, and the
 *     number of Received fields is unchanged;
 *   - without redact, the body is the held body (dot-stuffed); with redact,
 *     no value of a redact rule is left and everything else is unchanged.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { scan, ruleSetFromYaml } from '../helpers/dlp';
import { TEST_DIR } from '../helpers/paths';
import { loadConfig } from '../../src/config/load';
import { Pseudonymiser } from '../../src/privacy/pseudonym';
import { anonymiseHeaderBlock } from '../../src/pipeline/stages/anonymise-headers';
import { verdictHeaderValue } from '../../src/pipeline/stages/verdict-header';
import { releaseContext, releasedStream, trialRun, ReleaseRewriteError } from '../../src/operations/release-rewrite';
import type { RuleSet } from '../../src/rules/types';

const CASES = join(TEST_DIR, 'golden', 'release');
const UPDATE = process.env.UPDATE_GOLDEN === '1';
const KEY = new Pseudonymiser(Buffer.alloc(32, 5));

interface Case {
  redact: boolean;
  /** Internal names and addresses in in.eml that must not leave. */
  internal: string[];
  /** Values that must (kept) or must not (gone) be in the body that leaves. */
  kept: string[];
  gone: string[];
}

const INTERNAL = ['ws-anna.corp.internal', '10.20.30.40', 'printer-3f.lan', 'fd12:3456:789a::17', 'localhost', '127.0.0.1'];

const EXPECTED: Record<string, Case> = {
  'internal-hops': { redact: false, internal: INTERNAL, kept: ['123-45-6789', 'HOLDME-2046', 'payroll@example.com'], gone: [] },
  'internal-hops-redact': { redact: true, internal: INTERNAL, kept: ['[SSN]', 'HOLDME-2046', 'payroll@example.com'], gone: ['123-45-6789'] },
};

function chunks(buf: Buffer, size: number): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < buf.length; i += size) out.push(buf.subarray(i, i + size));
  return out;
}

async function collect(s: AsyncIterable<Buffer>): Promise<Buffer> {
  const out: Buffer[] = [];
  for await (const b of s) out.push(b);
  return Buffer.concat(out);
}

/** Holds `raw` as serve would, then produces what a release sends, with the original read back in `size`-byte chunks. */
async function release(raw: Buffer, rules: RuleSet, redact: boolean, size: number) {
  const held = await scan(raw, rules);
  const source = () => Readable.from(chunks(raw, size), { objectMode: false });
  const ctx = await releaseContext('GOLDEN', held.verdict.rules, { config: loadConfig(undefined), rules, pseudonyms: KEY, redact }, source);
  await trialRun(ctx, source);
  return { held, ctx, out: await collect(releasedStream(ctx, source)) };
}

const headerEnd = (b: Buffer) => b.indexOf('\r\n\r\n') + 4;
const unstuff = (b: Buffer) => Buffer.from(b.toString('latin1').replace(/(^|\r\n)\.\./g, '$1.'), 'latin1');
const fields = (header: string, name: string) => header.split(/\r\n(?![ \t])/).filter((f) => f.toLowerCase().startsWith(name.toLowerCase() + ':'));

const cases = existsSync(CASES)
  ? readdirSync(CASES, { withFileTypes: true })
      .filter((d) => d.isDirectory())
      .map((d) => d.name)
      .sort()
  : [];

test('every planned golden release case is there, and only those', () => {
  assert.deepEqual(cases, Object.keys(EXPECTED).sort());
});

for (const name of cases) {
  test(`golden release/${name}`, async () => {
    const c = EXPECTED[name];
    assert.ok(c, `case ${name} has no entry in EXPECTED`);
    const dir = join(CASES, name);
    const input = readFileSync(join(dir, 'in.eml'));
    const rules = ruleSetFromYaml(readFileSync(join(dir, 'rules.yaml'), 'utf8'));
    const { held, ctx, out } = await release(input, rules, c.redact, input.length);
    assert.equal(held.verdict.action, 'quarantine', `${name}: in.eml must be held`);
    for (const size of [1, 3, 17]) {
      const again = (await release(input, rules, c.redact, size)).out;
      assert.ok(again.equals(out), `${name}: ${size}-byte chunks gave different output`);
    }
    const verdict = { verdict: held.verdict.action, rules: held.verdict.rules, release: { redact: c.redact, header: verdictHeaderValue(ctx) } };

    const outFile = join(dir, 'out.eml');
    const verdictFile = join(dir, 'verdict.json');
    if (UPDATE) {
      writeFileSync(outFile, out);
      writeFileSync(verdictFile, JSON.stringify(verdict, null, 2) + '\n');
    } else {
      assert.ok(existsSync(outFile), `${outFile} missing; run with UPDATE_GOLDEN=1 and review it`);
      const want = readFileSync(outFile);
      assert.equal(out.toString('latin1'), want.toString('latin1'), `${name}: output differs from out.eml`);
      assert.ok(out.equals(want), `${name}: output differs from out.eml`);
      assert.deepEqual(verdict, JSON.parse(readFileSync(verdictFile, 'utf8')), `${name}: differs from verdict.json`);
    }

    // The header section: one verdict line, then exactly what delivery's anonymisation gives.
    const inHeader = input.subarray(0, headerEnd(input));
    const outHeader = out.subarray(0, headerEnd(out)).toString('latin1');
    const line = `X-Mailveil-Verdict: ${verdict.release.header}\r\n`;
    assert.match(verdict.release.header, /^released; rules=[a-z0-9,-]*$/);
    assert.ok(outHeader.startsWith(line), outHeader);
    assert.equal(fields(outHeader, 'X-Mailveil-Verdict').length, 1, 'the forged verdict header is gone');
    const forgedGone = Buffer.from(inHeader.toString('latin1').replace(/^X-Mailveil-Verdict:[^\r\n]*\r\n/im, ''), 'latin1');
    assert.equal(outHeader.slice(line.length), anonymiseHeaderBlock(forgedGone, rules.headers, KEY).toString('latin1'), 'headers as a delivered message gets them');
    assert.equal(fields(outHeader, 'Received').length, fields(inHeader.toString('latin1'), 'Received').length, 'the count of Received fields is kept');
    assert.ok(fields(outHeader, 'Received').every((f) => /^Received: from hop-[0-9a-f]{8} /.test(f)), outHeader);
    for (const n of c.internal) assert.ok(!outHeader.toLowerCase().includes(n.toLowerCase()), `${name}: ${n} left in the header`);
    assert.equal(fields(outHeader, 'X-Originating-IP').length, 0);

    // The body: the held one, or the held one with the redact rules' values replaced.
    const inBody = input.subarray(headerEnd(input)).toString('latin1');
    const outBody = unstuff(out.subarray(headerEnd(out))).toString('latin1');
    assert.ok(out.includes('\r\n..a line that starts with a dot\r\n'), 'dot-stuffed');
    for (const v of c.kept) assert.ok(outBody.includes(v), `${name}: ${v} missing from the body`);
    for (const v of c.gone) assert.ok(!out.includes(v), `${name}: ${v} left in the message`);
    if (!c.redact) assert.equal(outBody, inBody, 'without redact, the body leaves as held');
    else assert.equal(outBody, inBody.replace('123-45-6789', '[SSN]'), 'with redact, only the value changes');
  });
}

test('a redaction that cannot be applied (a redact rule hit in a header field) fails before anything is produced', async () => {
  const rules = ruleSetFromYaml(
    `rules:\n  - id: t-hold\n    pattern: '\\bHOLDME-[0-9]{4}\\b'\n    scope: [body]\n    action: quarantine\n` +
      `  - id: us-ssn\n    detector: us_ssn\n    scope: [headers, body]\n    action: redact\n    replacement: "[SSN]"\n`,
  );
  const raw = Buffer.from('Subject: x\r\nComments: SSN 123-45-6789\r\n\r\nHOLDME-1234 and 123-45-6789\r\n');
  const held = await scan(raw, rules);
  assert.equal(held.verdict.action, 'quarantine');
  const source = () => Readable.from([raw], { objectMode: false });
  const o = { config: loadConfig(undefined), rules, pseudonyms: KEY, redact: true };
  const ctx = await releaseContext('GOLDEN', held.verdict.rules, o, source);
  await assert.rejects(trialRun(ctx, source), (err) => err instanceof ReleaseRewriteError && /redaction could not be applied/.test(err.message));
  // Without redact, the reviewer's release goes ahead as held.
  const plain = await releaseContext('GOLDEN', held.verdict.rules, { ...o, redact: false }, source);
  await trialRun(plain, source);
});

test('redact on content pass 1 cannot scan is refused; --redact with no redact rule firing leaves the body as held', async () => {
  const rules = ruleSetFromYaml(`rules:\n  - id: t-hold\n    pattern: '\\bHOLDME-[0-9]{4}\\b'\n    scope: [body]\n    action: quarantine\n`);
  const o = { config: loadConfig(undefined), rules, pseudonyms: KEY, redact: true };
  const bad = Buffer.from('Subject: x\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!not base64 at all!!!\r\n');
  await assert.rejects(
    releaseContext('GOLDEN', ['t-hold'], o, () => Readable.from([bad], { objectMode: false })),
    (err) => err instanceof ReleaseRewriteError && /cannot be scanned/.test(err.message),
  );
  const raw = Buffer.from('Subject: x\r\n\r\nHOLDME-1234\r\n');
  const source = () => Readable.from([raw], { objectMode: false });
  const ctx = await releaseContext('GOLDEN', ['t-hold'], o, source);
  const out = await collect(releasedStream(ctx, source));
  assert.equal(out.toString('latin1'), 'X-Mailveil-Verdict: released; rules=t-hold\r\nSubject: x\r\n\r\nHOLDME-1234\r\n');
});
