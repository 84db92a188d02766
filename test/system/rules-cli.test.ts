/*
 * `mailveil rules test` and `mailveil rules check` as an admin meets them
 * (Postfix's `postmap -q`: try a message against the rules before they bite):
 *  - rules test on every detector's HIT and MISS fixture with the shipped
 *    rules: the verdict the shipped rule's action implies, the hit lines,
 *    "below min_count" where the only rule needs more hits, the --json shape,
 *    and never a matched value in the output (guarantee 6);
 *  - rules test on bad input: a missing file, a directory, an empty file,
 *    binary garbage, a broken or missing rules dir;
 *  - rules check on every kind of broken rule file: each error is one line
 *    `file:line:col: message`, exit 1; an empty dir is fine, a missing one
 *    is not.
 * Runs the real bin/mailveil; no server, so it needs no tools and never skips.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BIN, REPO_ROOT, TEST_DIR } from '../helpers/paths';
import { DETECTORS } from '../../src/detectors';
import { loadRuleSet } from '../../src/rules/load';

const SHIPPED = join(REPO_ROOT, 'rules.d');
const FIXTURES = join(TEST_DIR, 'fixtures', 'detectors');
const ERROR_LINE = /^.+:\d+:\d+: .+$/;

const tempDirs: string[] = [];
after(() => {
  if (process.env.MAILVEIL_TEST_KEEP !== '1') for (const d of tempDirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
function tempDir(prefix = 'mv-rules-cli-'): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  tempDirs.push(d);
  return d;
}

interface Run { code: number | null; out: string; err: string; args: string[] }

/** Runs bin/mailveil; at most RUN_CONCURRENCY at a time, so many short runs finish fast on 2 cores. */
const RUN_CONCURRENCY = 3;
let active = 0;
const waiting: (() => void)[] = [];
async function run(...args: string[]): Promise<Run> {
  if (active >= RUN_CONCURRENCY) await new Promise<void>((r) => waiting.push(r));
  active++;
  try {
    return await new Promise<Run>((resolve, reject) => {
      const child = spawn(process.execPath, [BIN, ...args], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
      child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
      const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
      child.once('error', reject);
      child.once('close', (code) => {
        clearTimeout(timer);
        resolve({ code, out, err, args });
      });
    });
  } finally {
    active--;
    waiting.shift()?.();
  }
}

const show = (r: Run) => `mailveil ${r.args.join(' ')}\nexit ${r.code}\n--- stdout ---\n${r.out}--- stderr ---\n${r.err}`;

/** A user error: exit 1, nothing on stdout, exactly one line on stderr, no stack trace. */
function assertOneLineError(r: Run, pattern: RegExp): void {
  assert.equal(r.code, 1, show(r));
  assert.equal(r.out, '', show(r));
  assert.match(r.err, /^mailveil: [^\n]+\n$/, show(r));
  assert.doesNotMatch(r.err, /internal error|\n\s+at /, show(r));
  assert.match(r.err, pattern, show(r));
}

// ---- what the shipped rules imply ------------------------------------------------

/** DESIGN.md: reject > tempfail > quarantine > redact > tag > monitor. */
const PRECEDENCE = ['reject', 'tempfail', 'quarantine', 'redact', 'tag', 'monitor'];
const shipped = loadRuleSet(SHIPPED);

/** For a detector's HIT fixture (a couple of hits in a plain text body): the rules that fire without min_count, those that need more, and the verdict. */
function expectedForHit(detector: string) {
  // Rules that look at the body (the default scope does); not e.g. payment-card-in-headers.
  const rules = shipped.rules.filter((r) => r.detector === detector && (r.scope ?? ['body']).includes('body'));
  const firing = rules.filter((r) => (r.min_count ?? 1) <= 1);
  const needMore = rules.filter((r) => (r.min_count ?? 1) > 1);
  const verdict = firing.map((r) => r.action as string).sort((a, b) => PRECEDENCE.indexOf(a) - PRECEDENCE.indexOf(b))[0] ?? 'pass';
  return { rules, firing, needMore, verdict };
}

interface Json {
  verdict: string;
  rules: string[];
  hits: { rule: string; action: string; layer: string; file: string; count: number; parts: string[]; fired: boolean }[];
  disabled: { rule: string; layer: string; file: string }[];
  unscannable: string[];
  not_extracted: number;
  size: number;
}

function parseJson(r: Run): Json {
  assert.equal(r.code, 0, show(r));
  assert.equal(r.err, '', show(r));
  const j = JSON.parse(r.out) as Json;
  assert.deepEqual(Object.keys(j).sort(), ['disabled', 'hits', 'not_extracted', 'rules', 'size', 'unscannable', 'verdict']);
  assert.equal(typeof j.verdict, 'string');
  assert.ok(Array.isArray(j.rules) && j.rules.every((x) => typeof x === 'string'));
  assert.ok(Array.isArray(j.unscannable));
  assert.equal(typeof j.not_extracted, 'number');
  assert.equal(typeof j.size, 'number');
  for (const h of j.hits) {
    assert.deepEqual(Object.keys(h).sort(), ['action', 'count', 'file', 'fired', 'layer', 'parts', 'rule']);
    assert.ok(h.layer === 'shipped' || h.layer === 'local');
    assert.ok(h.count > 0 && Number.isInteger(h.count));
    assert.ok(h.parts.every((p) => /^[0-9.]*$/.test(p)), `part paths only: ${JSON.stringify(h.parts)}`);
  }
  return j;
}

/** The values a detector's samples hold, as written and with separators removed. */
function sampleValues(detector: string): string[] {
  const out = new Set<string>();
  for (const v of DETECTORS.get(detector)!.samples.hit) {
    out.add(v);
    const bare = v.replace(/[\s-]/g, '');
    if (bare.length >= 8) out.add(bare);
  }
  return [...out];
}

function assertNoValues(r: Run, values: string[]): void {
  for (const v of values) {
    assert.ok(!r.out.includes(v) && !r.err.includes(v), `"${v}" appears in the output of ${show(r)}`);
  }
}

const detectors = [...DETECTORS.keys()];

// ---- rules test on the fixtures ---------------------------------------------------

test('every detector has a HIT and a MISS fixture', () => {
  for (const d of detectors) {
    for (const f of ['hit.eml', 'miss.eml']) assert.ok(statSync(join(FIXTURES, d, f)).size > 0, `${d}/${f}`);
  }
});

test('rules test on each HIT fixture: the verdict the shipped rules imply, one line per rule hit, no value', async () => {
  await Promise.all(detectors.map(async (d) => {
    const file = join(FIXTURES, d, 'hit.eml');
    const want = expectedForHit(d);
    assert.ok(want.rules.length > 0, `no shipped rule uses detector ${d}`);
    const [text, json] = await Promise.all([run('rules', 'test', file, '--rules', SHIPPED), run('rules', 'test', file, '--rules', SHIPPED, '--json')]);

    assert.equal(text.code, 0, show(text));
    assert.equal(text.err, '', show(text));
    const lines = text.out.split('\n');
    assert.equal(lines.pop(), '', 'output ends with a newline');
    const firedIds = want.firing.map((r) => r.id);
    assert.equal(lines[0], firedIds.length ? `verdict: ${want.verdict} (rules: ${firedIds.join(', ')})` : 'verdict: pass', `${d}\n${text.out}`);
    for (const r of want.firing) {
      assert.ok(lines.some((l) => new RegExp(`^  ${r.id} \\[${r.action}, shipped\\]: \\d+ hits? in parts? 1$`).test(l)), `${d}: no hit line for ${r.id}\n${text.out}`);
    }
    for (const r of want.needMore) {
      // e.g. phone_number: the only rule wants 10 hits; the fixture has 2.
      assert.ok(lines.some((l) => new RegExp(`^  ${r.id} \\[${r.action}, shipped\\]: \\d+ hits? in parts? 1 \\(below min_count\\)$`).test(l)), `${d}: ${r.id} not shown as below min_count\n${text.out}`);
    }
    assert.ok(!/unscannable|not extracted/.test(text.out), `${d}: a plain text fixture is fully scanned\n${text.out}`);

    const j = parseJson(json);
    assert.equal(j.verdict, want.verdict, d);
    assert.deepEqual(j.rules, firedIds, d);
    assert.deepEqual(j.unscannable, []);
    assert.equal(j.not_extracted, 0);
    assert.equal(j.size, statSync(file).size);
    for (const r of want.rules) {
      const h = j.hits.find((x) => x.rule === r.id);
      assert.ok(h, `${d}: no hit for ${r.id}: ${json.out}`);
      assert.equal(h.action, r.action);
      assert.equal(h.fired, (r.min_count ?? 1) <= 1);
      assert.deepEqual(h.parts, ['1']);
    }
    assertNoValues(text, sampleValues(d));
    assertNoValues(json, sampleValues(d));
  }));
});

test('rules test on each MISS fixture: pass or monitor, never an action that bites', async () => {
  await Promise.all(detectors.map(async (d) => {
    const j = parseJson(await run('rules', 'test', join(FIXTURES, d, 'miss.eml'), '--rules', SHIPPED, '--json'));
    assert.ok(j.verdict === 'pass' || j.verdict === 'monitor', `${d}/miss.eml: verdict ${j.verdict} (${j.rules.join(', ')})`);
    assert.equal(j.hits.some((h) => expectedForHit(d).rules.some((r) => r.id === h.rule)), false, `${d}/miss.eml hits its own detector's rule: ${JSON.stringify(j.hits)}`);
  }));
});

test('rules test never prints a matched value: every detector sample, in text and --json output', async () => {
  const dir = tempDir();
  await Promise.all(detectors.map(async (d) => {
    const det = DETECTORS.get(d)!;
    const body = det.samples.hit.map((v) => `${det.samples.context ?? 'Value:'} ${v} end.`).join('\r\n\r\n');
    const file = join(dir, `${d}.eml`);
    writeFileSync(file, `From: <a@example.com>\r\nTo: <b@example.com>\r\nSubject: samples\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n${body}\r\n`);
    const [text, json] = await Promise.all([run('rules', 'test', file, '--rules', SHIPPED), run('rules', 'test', file, '--rules', SHIPPED, '--json')]);
    assert.equal(text.code, 0, show(text));
    const j = parseJson(json);
    // Every sample is a hit, so the detector's rules see them all (phone-bulk's min_count of 10 is reached too).
    for (const r of expectedForHit(d).rules) {
      const h = j.hits.find((x) => x.rule === r.id);
      assert.ok(h && h.count >= Math.min(det.samples.hit.length, r.min_count ?? 1), `${d}: ${r.id}: ${json.out}`);
    }
    assertNoValues(text, sampleValues(d));
    assertNoValues(json, sampleValues(d));
  }));
});

test('rules test --rules DIR uses that set: a card becomes a reject with a local rule', async () => {
  const dir = tempDir();
  writeFileSync(join(dir, '10-cards.yaml'), 'rules:\n  - id: no-cards\n    detector: credit_card\n    action: reject\n    reply: "550 5.7.1 No cards"\n');
  const r = await run('rules', 'test', join(FIXTURES, 'credit_card', 'hit.eml'), '--rules', dir);
  assert.equal(r.code, 0, show(r));
  assert.equal(r.out, 'verdict: reject (rules: no-cards)\n  no-cards [reject, shipped]: 2 hits in part 1\n');
});

// ---- rules test on bad input ------------------------------------------------------

test('rules test: a missing file is one line, exit 1', async () => {
  const f = join(tempDir(), 'nope.eml');
  assertOneLineError(await run('rules', 'test', f, '--rules', SHIPPED), new RegExp(`^mailveil: ${f}: cannot read: ENOENT\\n$`));
  assertOneLineError(await run('rules', 'test', f, '--rules', SHIPPED, '--json'), /ENOENT/);
});

test('rules test: a directory given as FILE is one line, exit 1', async () => {
  const d = tempDir();
  assertOneLineError(await run('rules', 'test', d, '--rules', SHIPPED), new RegExp(`^mailveil: ${d}: .*EISDIR`));
});

test('rules test: an empty file is a message with nothing in it (verdict pass, size 0)', async () => {
  const f = join(tempDir(), 'empty.eml');
  writeFileSync(f, '');
  const j = parseJson(await run('rules', 'test', f, '--rules', SHIPPED, '--json'));
  assert.deepEqual(j, { verdict: 'pass', rules: [], hits: [], disabled: [], unscannable: [], not_extracted: 0, size: 0 });
  const r = await run('rules', 'test', f, '--rules', SHIPPED);
  assert.equal(r.out, 'verdict: pass\n');
});

/** Deterministic bytes (xorshift32), so a failure can be reproduced from the seed. */
function garbage(seed: number, n: number): Buffer {
  const b = Buffer.alloc(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    b[i] = x & 0xff;
  }
  return b;
}

test('rules test: binary garbage does not crash; it is unscannable, so the verdict is the unscannable action (quarantine)', async () => {
  const dir = tempDir();
  const cases: [string, Buffer][] = [
    ...[[1, 16], [2, 512], [3, 4096], [4, 65536], [5, 1 << 20]].map(([seed, n]): [string, Buffer] => [`random seed=${seed} n=${n}`, garbage(seed, n)]),
    ['NUL bytes', Buffer.alloc(4096)],
    ['one line without a colon', Buffer.from('just one line, no field name')],
  ];
  await Promise.all(cases.map(async ([name, bytes], i) => {
    const f = join(dir, `g${i}.bin`);
    writeFileSync(f, bytes);
    const r = await run('rules', 'test', f, '--rules', SHIPPED, '--json');
    assert.doesNotMatch(r.err, /internal error|\n\s+at /, `${name}\n${show(r)}`);
    const j = parseJson(r);
    assert.equal(j.size, bytes.length, name);
    assert.equal(j.verdict, 'quarantine', `${name}: ${r.out}`);
    assert.ok(j.unscannable.includes('bad_header'), `${name}: ${r.out}`);
  }));
  const text = await run('rules', 'test', join(dir, 'g2.bin'), '--rules', SHIPPED);
  assert.equal(text.out, 'verdict: quarantine\n  unscannable: bad_header\n');
});

test('rules test: a broken rules dir is exit 1 naming file:line:col; a missing one is exit 1 too', async () => {
  const dir = tempDir();
  writeFileSync(join(dir, '10-bad.yaml'), "rules:\n  - id: bad\n    pattern: '(?<=x)y'\n    action: tag\n");
  const eml = join(FIXTURES, 'iban', 'hit.eml');
  assertOneLineError(await run('rules', 'test', eml, '--rules', dir), new RegExp(`^mailveil: rules: ${dir}/10-bad\\.yaml:3:14: pattern is not valid RE2: .+\\n$`));
  assertOneLineError(await run('rules', 'test', eml, '--rules', join(dir, 'missing')), /^mailveil: rules: .+\/missing: cannot read rules directory: ENOENT\n$/);
});

// ---- rules check on broken rule sets --------------------------------------------------

/** Writes `files` into a fresh rules dir and runs `rules check` on it. */
async function check(files: Record<string, string>): Promise<Run & { dir: string; lines: string[] }> {
  const dir = tempDir('mv-rules-check-');
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  const r = await run('rules', 'check', '--rules', dir);
  return { ...r, dir, lines: r.out.split('\n').filter(Boolean) };
}

const rule = (body: string) => `rules:\n  - id: x\n${body}`;

const BROKEN: [string, Record<string, string>, RegExp[]][] = [
  ['bad YAML (unclosed quote)', { 'a.yaml': 'rules:\n  - id: "x\n    action: tag\n' }, [/a\.yaml:\d+:\d+: Missing closing "quote/]],
  ['bad YAML (tab indentation)', { 'a.yaml': 'rules:\n\t- id: x\n' }, [/a\.yaml:2:1: Tabs are not allowed as indentation/]],
  ['bad YAML (duplicate key)', { 'a.yaml': rule('    id: y\n    detector: us_ssn\n    action: tag\n') }, [/a\.yaml:3:5: Map keys must be unique/]],
  ['a file that is not a mapping', { 'a.yaml': '- just a list\n' }, [/a\.yaml:1:1: file must be object/]],
  ['unknown key', { 'a.yaml': rule('    detector: us_ssn\n    acton: tag\n    action: tag\n') }, [/a\.yaml:4:5: unknown key 'acton'/]],
  ['bad action', { 'a.yaml': rule('    detector: us_ssn\n    action: block\n') }, [/a\.yaml:4:13: action must be one of: monitor, tag, redact, quarantine, reject, tempfail$/]],
  ['RE2 refuses a lookbehind', { 'a.yaml': rule("    pattern: '(?<=x)y'\n    action: tag\n") }, [/a\.yaml:3:14: pattern is not valid RE2: .*\(\?<=/]],
  ['RE2 refuses a backreference', { 'a.yaml': rule("    pattern: '(a)\\1'\n    action: tag\n") }, [/a\.yaml:3:14: pattern is not valid RE2: .*\\1/]],
  ['a pattern that matches the empty string', { 'a.yaml': rule("    pattern: 'a*'\n    action: tag\n") }, [/a\.yaml:3:14: pattern matches the empty string/]],
  ['both detector and pattern', { 'a.yaml': rule("    detector: us_ssn\n    pattern: '[0-9]+'\n    action: tag\n") }, [/a\.yaml:2:5: a rule needs exactly one of detector or pattern/]],
  ['unknown detector', { 'a.yaml': rule('    detector: us_sin\n    action: tag\n') }, [/a\.yaml:3:15: unknown detector 'us_sin' \(known: us_ssn, /]],
  ['unknown validator', { 'a.yaml': rule("    pattern: '[0-9]{8}'\n    validator: crc32\n    action: tag\n") }, [/a\.yaml:4:16: unknown validator 'crc32' \(known: luhn, /]],
  [
    'duplicate id across two files',
    { 'a.yaml': rule('    detector: us_ssn\n    action: tag\n'), 'b.yaml': 'rules:\n  - id: y\n    detector: iban\n    action: tag\n  - id: x\n    detector: iban\n    action: tag\n' },
    [/b\.yaml:5:9: duplicate rule id 'x' \(first defined at .+a\.yaml:2\)/],
  ],
  [
    'a non-ASCII reply text',
    { 'a.yaml': rule('    detector: us_ssn\n    action: reject\n    reply: "550 5.7.1 Nachricht blockiert – bitte prüfen"\n') },
    [/a\.yaml:5:12: reply must look like "550 5\.7\.1 text" \(4xx\/5xx with an enhanced code, ASCII\)/],
  ],
  [
    'several errors in several files: all of them, in file order',
    { 'a.yaml': rule("    pattern: '(?<=x)y'\n    action: tag\n"), 'b.yaml': rule('    detector: nope\n    action: tag\n').replace('id: x', 'id: z') },
    [/a\.yaml:3:14: pattern is not valid RE2/, /b\.yaml:3:15: unknown detector 'nope'/],
  ],
];

for (const [name, files, want] of BROKEN) {
  test(`rules check: ${name} -> exit 1, one file:line:col line per error`, async () => {
    const r = await check(files);
    assert.equal(r.code, 1, show(r));
    assert.equal(r.err, '', show(r));
    assert.equal(r.lines.length, want.length, show(r));
    want.forEach((re, i) => {
      assert.match(r.lines[i], ERROR_LINE);
      assert.ok(r.lines[i].startsWith(r.dir + '/'), `names the file by its path: ${r.lines[i]}`);
      assert.match(r.lines[i], re);
    });
  });
}

test('rules check: an empty rules dir is fine (exit 0, "ok: 0 files")', async () => {
  const r = await check({});
  assert.equal(r.code, 0, show(r));
  assert.equal(r.out.split('\n')[0], 'ok: 0 files, 0 rules');
});

test('rules check: only *.yaml / *.yml files count; other files are ignored', async () => {
  const r = await check({ 'a.yml': rule('    detector: us_ssn\n    action: tag\n'), 'README.txt': 'not: [yaml', '.hidden.yaml': 'bogus: 1\n' });
  assert.equal(r.code, 0, show(r));
  assert.equal(r.out.split('\n')[0], 'ok: 1 files, 1 rules');
});

test('rules check: a rules dir that does not exist, or is a file, is exit 1 with "dir: message" (no line:col)', async () => {
  const base = tempDir();
  let r = await run('rules', 'check', '--rules', join(base, 'missing'));
  assert.equal(r.code, 1, show(r));
  assert.equal(r.out, `${join(base, 'missing')}: cannot read rules directory: ENOENT\n`);
  writeFileSync(join(base, 'file'), 'x');
  r = await run('rules', 'check', '--rules', join(base, 'file'));
  assert.equal(r.code, 1, show(r));
  assert.equal(r.out, `${join(base, 'file')}: cannot read rules directory: ENOTDIR\n`);
});

test('rules check: a directory named *.yaml inside the rules dir is a file:line:col error, not an internal error', {
}, async () => {
  const dir = tempDir('mv-rules-check-');
  mkdirSync(join(dir, 'sub.yaml'));
  const r = await run('rules', 'check', '--rules', dir);
  assert.equal(r.code, 1, show(r));
  assert.doesNotMatch(r.err, /internal error|\n\s+at /, show(r));
  assert.match(r.out.trim(), ERROR_LINE, show(r));
  assert.match(r.out, /sub\.yaml:1:1: /, show(r));
});

test('rules check: a reply whose code class contradicts the action is refused (reject needs 5xx, tempfail 4xx, enhanced class = code class)', {
}, async () => {
  const cases: [string, string][] = [
    ['reject', '451 4.7.1 Deferred'],
    ['tempfail', '550 5.7.1 Blocked'],
    ['reject', '550 4.7.1 Blocked'],
  ];
  for (const [action, reply] of cases) {
    const r = await check({ 'a.yaml': rule(`    detector: us_ssn\n    action: ${action}\n    reply: "${reply}"\n`) });
    assert.equal(r.code, 1, `${action} with "${reply}" was accepted: ${show(r)}`);
    assert.match(r.lines[0] ?? '', /a\.yaml:5:12: /);
  }
});

test('rules check: `reply` on a non-reject/tempfail rule and `replacement` on a non-redact rule are refused, not ignored', {
}, async () => {
  for (const extra of ['    reply: "550 5.7.1 Blocked"\n', '    replacement: "[X]"\n']) {
    const r = await check({ 'a.yaml': rule(`    detector: us_ssn\n    action: tag\n${extra}`) });
    assert.equal(r.code, 1, show(r));
    assert.match(r.lines[0] ?? '', /a\.yaml:5:\d+: /);
  }
});

test('rules check: the shipped rules.d passes', async () => {
  const r = await run('rules', 'check', '--rules', SHIPPED);
  assert.equal(r.code, 0, show(r));
  assert.equal(r.out.split('\n')[0], `ok: ${shipped.files.length} files, ${shipped.rules.length} rules`);
  // One line per rule, each with its layer and file:line.
  for (const rule of shipped.rules) assert.match(r.out, new RegExp(`^  ${rule.id} +${rule.action} +shipped +${SHIPPED}/[^:]+\\.yaml:${rule.source.line}$`, 'm'));
});

// ---- the local layer (--local-rules) ---------------------------------------------------

const LOCAL_OVERRIDES = 'rules:\n  - id: us-ssn\n    detector: us_ssn\n    action: quarantine\n  - id: iban\n    enabled: false\n';

test('rules check --local-rules: each rule with its layer (text and --json); an override names the rule it replaces', async () => {
  const local = tempDir('mv-rules-local-');
  writeFileSync(join(local, '50-site.yaml'), LOCAL_OVERRIDES);
  const text = await run('rules', 'check', '--rules', SHIPPED, '--local-rules', local);
  assert.equal(text.code, 0, show(text));
  const lines = text.out.split('\n');
  assert.equal(lines[0], `ok: ${shipped.files.length + 1} files, ${shipped.rules.length - 1} rules`);
  assert.ok(lines.includes(`  shipped: ${SHIPPED} (${shipped.files.length} files)`), show(text));
  assert.ok(lines.includes(`  local:   ${local} (1 file)`), show(text));
  const ssn = shipped.rules.find((r) => r.id === 'us-ssn')!;
  const iban = shipped.rules.find((r) => r.id === 'iban')!;
  assert.match(text.out, new RegExp(`^  us-ssn +quarantine +local +${local}/50-site\\.yaml:2 \\(replaces ${ssn.source.file}:${ssn.source.line}\\)$`, 'm'));
  assert.match(text.out, new RegExp(`^  iban +off +local +${local}/50-site\\.yaml:5 \\(switches off ${iban.source.file}:${iban.source.line}\\)$`, 'm'));
  assert.match(text.out, /^ {2}payment-card +redact +shipped +/m);

  const json = await run('rules', 'check', '--rules', SHIPPED, '--local-rules', local, '--json');
  assert.equal(json.code, 0, show(json));
  const j = JSON.parse(json.out) as { ok: boolean; rules: { id: string; action: string; layer: string; file: string; line: number; replaces?: string }[]; disabled: { id: string; layer: string }[] };
  assert.equal(j.ok, true);
  assert.deepEqual(j.rules.find((r) => r.id === 'us-ssn'), { id: 'us-ssn', action: 'quarantine', layer: 'local', file: join(local, '50-site.yaml'), line: 2, replaces: `${ssn.source.file}:${ssn.source.line}` });
  assert.equal(j.rules.find((r) => r.id === 'payment-card')?.layer, 'shipped');
  assert.equal(j.rules.find((r) => r.id === 'iban'), undefined);
  assert.deepEqual(j.disabled.map((d) => [d.id, d.layer]), [['iban', 'local']]);

  // A local dir that does not exist is fine: no local rules.
  const none = await run('rules', 'check', '--rules', SHIPPED, '--local-rules', join(local, 'missing'));
  assert.equal(none.code, 0, show(none));
  assert.ok(none.out.split('\n').includes(`  local:   ${join(local, 'missing')} (not present)`), show(none));
  // An error in the local layer is a file:line:col line like any other.
  writeFileSync(join(local, '60-bad.yaml'), 'rules:\n  - id: Bad_ID\n    detector: iban\n    action: tag\n');
  const bad = await run('rules', 'check', '--rules', SHIPPED, '--local-rules', local, '--json');
  assert.equal(bad.code, 1, show(bad));
  assert.deepEqual(JSON.parse(bad.out), { ok: false, errors: [{ file: join(local, '60-bad.yaml'), line: 2, col: 9, message: 'id must match [a-z0-9-]+ (lower-case letters, digits and hyphens)' }] });
});

test('rules test --local-rules: the override decides, its hits say "local", a switched-off rule does not fire', async () => {
  const local = tempDir('mv-rules-local-');
  writeFileSync(join(local, '50-site.yaml'), LOCAL_OVERRIDES);
  const ssnHit = join(FIXTURES, 'us_ssn', 'hit.eml');
  const [text, json] = await Promise.all([
    run('rules', 'test', ssnHit, '--rules', SHIPPED, '--local-rules', local),
    run('rules', 'test', ssnHit, '--rules', SHIPPED, '--local-rules', local, '--json'),
  ]);
  assert.equal(text.code, 0, show(text));
  assert.match(text.out, /^verdict: quarantine \(rules: us-ssn\)$/m);
  assert.match(text.out, /^ {2}us-ssn \[quarantine, local\]: \d+ hits? in parts? 1$/m);
  assert.match(text.out, /^ {2}off: iban \(local\)$/m);
  const j = parseJson(json);
  assert.equal(j.verdict, 'quarantine');
  const hit = j.hits.find((h) => h.rule === 'us-ssn')!;
  assert.equal(hit.layer, 'local');
  assert.equal(hit.file, join(local, '50-site.yaml'));
  assert.deepEqual(j.disabled, [{ rule: 'iban', layer: 'local', file: join(local, '50-site.yaml') }]);
  const iban = parseJson(await run('rules', 'test', join(FIXTURES, 'iban', 'hit.eml'), '--rules', SHIPPED, '--local-rules', local, '--json'));
  assert.equal(iban.hits.find((h) => h.rule === 'iban'), undefined);
  assert.ok(!iban.rules.includes('iban'));
});

test('rules check lists tls_policy entries with their level, layer and file:line; a local entry shows what it replaces', async () => {
  const shipped = tempDir();
  const local = tempDir();
  writeFileSync(join(shipped, '10-tls.yaml'), 'tls_policy:\n  example.com: secure\n  .partner.example: { level: verify, match: [mx1.partner.example] }\n');
  writeFileSync(join(local, '10-tls.yaml'), 'tls_policy:\n  example.com: dane-only\n');
  const r = await run('rules', 'check', '--rules', shipped, '--local-rules', local);
  assert.equal(r.code, 0, show(r));
  assert.match(r.out, /^tls_policy: 2 entries$/m);
  assert.match(r.out, new RegExp(`^  example\\.com +dane-only +local +${local}/10-tls\\.yaml:2 \\(replaces ${shipped}/10-tls\\.yaml:2\\)$`, 'm'));
  assert.match(r.out, new RegExp(`^  \\.partner\\.example +verify match=mx1\\.partner\\.example +shipped +${shipped}/10-tls\\.yaml:3$`, 'm'));
  const j = await run('rules', 'check', '--rules', shipped, '--local-rules', local, '--json');
  const tls = JSON.parse(j.out).tls_policy;
  assert.deepEqual(tls[0], { domain: 'example.com', level: 'dane-only', layer: 'local', file: join(local, '10-tls.yaml'), line: 2, replaces: `${join(shipped, '10-tls.yaml')}:2` });
});

test('rules check: a require_tls rule with no verified path (relay mode) is one warning on stderr, still exit 0; with secure_next_hop none', async () => {
  const dir = tempDir('mv-rules-tls-');
  writeFileSync(join(dir, '10-card.yaml'), 'rules:\n  - id: card\n    detector: credit_card\n    action: redact\n    require_tls: verified\n');
  const local = join(dir, 'no-local');
  let r = await run('rules', 'check', '--rules', dir, '--local-rules', local);
  assert.equal(r.code, 0, show(r));
  assert.match(r.out, /^ok: 1 files, 1 rules\n/);
  assert.match(r.err, /^mailveil: warning: rule card requires verified TLS \(require_tls: verified\), but there is no verified path: .*tls\.next_hop\.level is may; .*\n$/);
  const json = await run('rules', 'check', '--rules', dir, '--local-rules', local, '--json');
  assert.equal(json.err, '');
  assert.match(JSON.parse(json.out).warnings[0], /^rule card requires verified TLS/);
  const cfgDir = tempDir('mv-rules-tls-cfg-');
  writeFileSync(join(cfgDir, 'mailveil.yaml'), 'tls:\n  secure_next_hop: 127.0.0.1:10027\n');
  r = await run('rules', 'check', '--config', join(cfgDir, 'mailveil.yaml'), '--rules', dir, '--local-rules', local);
  assert.equal(r.code, 0, show(r));
  assert.equal(r.err, '', 'a verified path exists: no warning');
});
