/*
 * Unit tests for the built-in detector catalogue (src/detectors/*): every
 * pattern compiles with RE2 and never matches the empty string, the whole
 * catalogue fits in one RE2.Set, each detector finds its HIT samples and
 * rejects its MISS samples (near misses: failing checksums, wrong lengths,
 * invalid prefixes, dates, versions), maxLength really bounds the matches,
 * validators are bounded, the named validators check known vectors, and
 * every detector has a HIT and a MISS .eml fixture under
 * test/fixtures/detectors/<name>/ that behaves accordingly.
 *
 * "Found" here means what the scanner (src/rules/scanner.ts) counts: a
 * pattern match that passes validate and, when requiresKeyword says so, has
 * one of the detector's keywords (case-insensitive, not glued to letters or
 * digits) within `within` characters. All values are synthetic.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import RE2 from 're2';
import { DETECTORS, VALIDATORS } from '../../src/detectors';
import { foldForDetection } from '../../src/detectors/fold';
import { keywordMatcher } from '../../src/rules/compile';
import type { Detector } from '../../src/detectors/types';
import { TEST_DIR } from '../helpers/paths';

const FIXTURES = join(TEST_DIR, 'fixtures', 'detectors');

function compile(d: Detector): RE2 {
  try {
    return new RE2(d.pattern, 'gu' + (d.flags ?? ''));
  } catch (err) {
    throw new Error(`detector ${d.name}: pattern does not compile with RE2: ${(err as Error).message}`);
  }
}

interface Found {
  value: string;
  index: number;
}

function matches(d: Detector, text: string): Found[] {
  const re = compile(d);
  const out: Found[] = [];
  for (let m = re.exec(text); m; m = re.exec(text)) {
    assert.ok(m[0].length > 0, `${d.name}: empty match at ${m.index}`);
    out.push({ value: m[0], index: m.index });
  }
  return out;
}

const keywordRes = new Map<string, RE2>();
/** The scanner's own keyword matcher (src/rules/compile.ts) for the detector's keywords. */
function keywordRe(d: Detector): RE2 {
  let re = keywordRes.get(d.name);
  if (!re) {
    re = keywordMatcher(d.keywords)!;
    keywordRes.set(d.name, re);
  }
  return re;
}

function keywordNear(d: Detector, text: string, f: Found): boolean {
  if (!d.keywords.length) return false;
  const from = Math.max(0, f.index - d.within);
  const to = Math.min(text.length, f.index + f.value.length + d.within);
  return keywordRe(d).test(text.slice(from, to));
}

/** What the scanner would count (it scans the folded text, src/detectors/fold.ts). */
function hits(d: Detector, original: string): Found[] {
  const text = foldForDetection(original);
  return matches(d, text).filter((f) => d.validate(f.value) && (!d.requiresKeyword?.(f.value) || keywordNear(d, text, f)));
}

function sentence(d: Detector, value: string, withContext: boolean): string {
  return `${withContext && d.samples.context ? d.samples.context + ' ' : ''}${value} is what the form says.`;
}

const all = [...DETECTORS.values()];

describe('detector catalogue', () => {
  test('has every detector DESIGN.md names', () => {
    const want = [
      'us_ssn', 'credit_card', 'iban', 'email_address', 'phone_number', 'ipv4', 'ipv6', 'uk_nino', 'nl_bsn',
      'es_dni_nie', 'fr_nir', 'it_codice_fiscale', 'de_steuer_id', 'pl_pesel', 'se_personnummer', 'private_key',
      'aws_access_key',
    ];
    assert.deepEqual([...DETECTORS.keys()].sort(), [...want].sort());
    for (const [name, d] of DETECTORS) assert.equal(d.name, name);
  });

  test('the whole catalogue goes into one RE2.Set', () => {
    const set = new RE2.Set(all.map((d) => d.pattern), 'u');
    assert.equal(set.size, all.length);
    // Each detector's first hit sample lights up its own entry.
    all.forEach((d, i) => {
      const text = sentence(d, d.samples.hit[0], true);
      assert.ok(set.match(text).includes(i), `${d.name}: RE2.Set misses ${d.samples.hit[0]}`);
    });
    assert.deepEqual(set.match('Nothing personal here, just a friendly note about lunch.'), []);
  });

  test('built-ins set no flags, so one Set with the u flag runs them all as written', () => {
    for (const d of all) assert.ok(!d.flags, `${d.name} sets flags '${d.flags}': use inline (?i:...) instead`);
  });

  test('compile() names the detector when RE2 refuses a pattern', () => {
    const bad: Detector = { ...all[0], name: 'broken_one', pattern: '(?<=x)y' };
    assert.throws(() => compile(bad), /detector broken_one: pattern does not compile with RE2/);
  });
});

for (const d of all) {
  describe(`detector ${d.name}`, () => {
    test('pattern compiles with RE2 and never matches the empty string', () => {
      compile(d);
      assert.equal(new RE2(`^(?:${d.pattern})$`, 'u' + (d.flags ?? '')).test(''), false);
      const probes = ['', ' ', 'a', '1', '-', '+', ':', '.', '@', 'a b', '1 2', '(+', '::', '\r\n', 'é', 'x'.repeat(50)];
      for (const p of probes) matches(d, p); // asserts no zero-length match
    });

    test('header comment, description and keywords', () => {
      assert.ok(d.description.length > 10);
      for (const k of d.keywords) assert.equal(k, k.toLowerCase());
      assert.ok(d.within > 0 && d.maxLength > 0);
    });

    for (const hit of d.samples.hit) {
      test(`HIT ${hit}`, () => {
        const needsKeyword = d.requiresKeyword?.(hit) ?? false;
        assert.equal(d.validate(hit), true, 'validate');
        assert.ok(hit.length <= d.maxLength, `longer than maxLength ${d.maxLength}`);
        const text = sentence(d, hit, needsKeyword);
        const found = hits(d, text).map((f) => f.value);
        assert.ok(found.includes(hit), `not found as a whole match in ${JSON.stringify(text)}: ${JSON.stringify(matches(d, text))}`);
        if (needsKeyword) {
          assert.ok(d.samples.context, 'requiresKeyword without samples.context');
          assert.ok(keywordNear(d, text, { value: hit, index: text.indexOf(hit) }), 'samples.context holds no keyword');
          // Without the keyword the same value does not count.
          assert.deepEqual(hits(d, sentence(d, hit, false)), [], 'counted without a keyword');
        } else {
          // Counts alone, even with the context keyword far away.
          assert.ok(hits(d, sentence(d, hit, false)).some((f) => f.value === hit));
        }
      });
    }

    for (const miss of d.samples.miss) {
      test(`MISS ${miss}`, () => {
        // Hardest case: the context keyword stands right next to it.
        const text = sentence(d, miss, true);
        assert.deepEqual(hits(d, text), [], `found in ${JSON.stringify(text)}`);
        assert.deepEqual(hits(d, `${d.samples.context ?? ''}\n${miss}\n`), []);
      });
    }

    test('maxLength bounds every match, even on adversarial input', () => {
      // email_address uses unbounded repetition (see its pattern comment): there only counted matches are bounded.
      const bounded = (f: Found) => d.name !== 'email_address' || d.validate(f.value);
      const glue = [' ', '-', '.', ':', '', '@', '\n', ' 1 ', 'A'];
      const texts = [
        ...glue.map((g) => d.samples.hit.join(g)),
        ...glue.map((g) => d.samples.hit.map((h) => h + g + h).join(g)),
        '1'.repeat(300), '1 '.repeat(300), '1-'.repeat(300), '1.'.repeat(300), 'a1:'.repeat(300), 'A'.repeat(300),
        'a.'.repeat(300) + '@' + 'b.'.repeat(300) + 'com', 'x'.repeat(100) + '@' + 'example.'.repeat(40) + 'com',
        '+' + '1 '.repeat(100), '-----BEGIN ' + 'RSA '.repeat(30) + 'PRIVATE KEY-----',
        'a'.repeat(64) + '@' + ('b'.repeat(63) + '.').repeat(3) + 'c'.repeat(61),
      ];
      for (const t of texts) for (const f of matches(d, t).filter(bounded)) assert.ok(f.value.length <= d.maxLength, `${f.value.length} > ${d.maxLength}: ${f.value}`);
    });

    test('validate is bounded and rejects junk', () => {
      for (const junk of ['', ' ', 'x', '9'.repeat(1_000_000), 'A'.repeat(1_000_000), '@'.repeat(10_000), '1.'.repeat(100_000)]) {
        assert.equal(d.validate(junk), false, `accepted ${junk.slice(0, 20)}...`);
      }
    });

    test('HIT and MISS fixtures', () => {
      for (const kind of ['hit', 'miss'] as const) {
        const file = join(FIXTURES, d.name, `${kind}.eml`);
        assert.ok(existsSync(file), `missing ${file}`);
        const raw = readFileSync(file, 'utf8');
        assert.ok(!/(?<!\r)\n/.test(raw), `${file}: bare LF`);
        const split = raw.indexOf('\r\n\r\n');
        assert.ok(split > 0, `${file}: no header/body separator`);
        const head = raw.slice(0, split);
        assert.match(head, /^Content-Type: text\/plain/im);
        for (const addr of head.match(/[^\s<>"]+@[^\s<>"]+/g) ?? []) assert.match(addr, /@example\.(com|org|net)$/, `${file}: ${addr}`);
        const body = raw.slice(split + 4);
        const found = hits(d, body);
        if (kind === 'hit') assert.ok(found.length >= 1, `${file}: no hit`);
        else assert.deepEqual(found.map((f) => f.value), [], `${file}: unexpected hit`);
      }
    });
  });
}

describe('boundaries', () => {
  const cc = DETECTORS.get('credit_card')!;
  const ssn = DETECTORS.get('us_ssn')!;
  const bsn = DETECTORS.get('nl_bsn')!;
  const ip = DETECTORS.get('ipv4')!;

  test('a card number is not found inside a longer digit run', () => {
    assert.deepEqual(hits(cc, 'ref 4111111111111111 ok').map((f) => f.value), ['4111111111111111']);
    assert.deepEqual(hits(cc, 'ref 41111111111111110000 ok'), []);
    assert.deepEqual(hits(cc, 'ref 0004111111111111111 ok'), []);
    assert.deepEqual(hits(cc, 'ref x4111111111111111 ok'), []);
  });

  test('adjacent values are each found', () => {
    assert.equal(hits(cc, '4111 1111 1111 1111, 5555 5555 5555 4444').length, 2);
    assert.equal(hits(ssn, '123-45-6789 and 321-54-9876').length, 2);
    assert.equal(hits(ip, '192.0.2.1,198.51.100.2 203.0.113.3').length, 3);
  });

  test('a 9-digit run inside a 10-digit run is no BSN', () => {
    assert.deepEqual(hits(bsn, 'BSN 1111222333'), []);
    assert.deepEqual(hits(bsn, 'BSN 0111222333'), []);
  });

  test('a keyword glued into another word does not count', () => {
    assert.deepEqual(hits(ssn, 'classn 234567891'), []);
    assert.equal(hits(ssn, 'SSN#234567891').length, 1);
  });

  test('a keyword beyond `within` does not count', () => {
    const far = 'SSN' + ' filler'.repeat(Math.ceil(ssn.within / 7) + 1) + ' 234567891';
    assert.deepEqual(hits(ssn, far), []);
  });
});

describe('look-alike characters, keyword phrases, glued tokens', () => {
  const cc = DETECTORS.get('credit_card')!;
  const ssn = DETECTORS.get('us_ssn')!;
  const iban = DETECTORS.get('iban')!;
  const pnr = DETECTORS.get('se_personnummer')!;
  const values = (d: Detector, text: string) => hits(d, text).map((f) => f.value);

  test('fold keeps the length and returns the same string when there is nothing to fold', () => {
    const plain = 'Card 4111 1111 1111 1111, SSN 123-45-6789.';
    assert.equal(foldForDetection(plain), plain);
    const odd = 'a\u00a0b\u202fc\u2011d\u2013e\u2212f\uff14\uff11\uff20\u3000';
    const folded = foldForDetection(odd);
    assert.equal(folded.length, odd.length);
    assert.equal(folded, 'a b c-d-e-f41@ ');
  });

  test('no-break spaces, Unicode dashes and full-width digits inside a value', () => {
    assert.equal(hits(cc, 'Card 4111\u00a01111\u00a01111\u00a01111 ok').length, 1);
    assert.equal(hits(cc, 'Card 4111\u202f1111\u202f1111\u202f1111 ok').length, 1);
    assert.equal(hits(cc, 'Card 4111\u20131111\u20131111\u20131111 ok').length, 1);
    assert.equal(hits(cc, 'Card \uff14\uff11\uff11\uff11\uff11\uff11\uff11\uff11\uff11\uff11\uff11\uff11\uff11\uff11\uff11\uff11 ok').length, 1);
    assert.equal(hits(ssn, 'ID 123\u201145\u20116789 ok').length, 1);
    assert.equal(hits(ssn, 'ID 123\u201045\u20106789 ok').length, 1);
    assert.equal(hits(iban, 'IBAN DE89\u00a03704\u00a00044\u00a00532\u00a00130\u00a000').length, 1);
  });

  test('keyword phrases match across _, -, ., line breaks and camelCase', () => {
    for (const key of ['social_security_number', 'socialSecurityNumber', 'Social-Security-No', 'social\r\nsecurity', 'Social Sec. No.', 'S.S.N.']) {
      assert.deepEqual(values(ssn, `{"${key}": "234567891"}`), ['234567891'], key);
    }
    assert.deepEqual(values(ssn, '{"classification": "234567891"}'), []);
  });

  test('13-digit card numbers need a card keyword; EAN-13 barcodes alone are not cards', () => {
    for (const ean of ['5901234123457', '4000000000006', '4012888818888']) {
      assert.deepEqual(values(cc, `EAN ${ean}, 12 pcs`), [], ean);
      assert.deepEqual(values(cc, `Article ${ean} (barcode)`), [], ean);
    }
    assert.deepEqual(values(cc, 'Visa 4222222222222 exp 12/29'), ['4222222222222']);
    assert.deepEqual(values(cc, 'card number: 4012888818888'), ['4012888818888']);
    // 14-19 digits still count alone.
    assert.deepEqual(values(cc, 'ref 30569309025904 and 6011000000000000001'), ['30569309025904', '6011000000000000001']);
  });

  test('a personnummer glued to a word or file name is part of something else', () => {
    assert.deepEqual(values(pnr, 'Invoice INV-19850709-9805 attached'), []);
    assert.deepEqual(values(pnr, 'see backup_850709-9805.tar.gz'), []);
    assert.deepEqual(values(pnr, 'runs/19850709-9805/log'), []);
    assert.deepEqual(values(pnr, 'Kund 850709-9805, ort Stockholm.'), ['850709-9805']);
    assert.deepEqual(values(pnr, '(19850709-9805)'), ['19850709-9805']);
  });
});

describe('named validators', () => {
  test('the required names exist', () => {
    for (const name of ['luhn', 'mod97', 'iso7064_mod11_10', 'mod11', 'iso7064_mod97_10', 'verhoeff', 'elfproef']) {
      assert.equal(typeof VALIDATORS.get(name), 'function', name);
    }
    for (const name of DETECTORS.keys()) if (name !== 'private_key' && name !== 'aws_access_key') assert.ok(VALIDATORS.has(name), name);
  });

  const v = (name: string) => VALIDATORS.get(name)!;

  test('luhn', () => {
    assert.equal(v('luhn')('79927398713'), true);
    assert.equal(v('luhn')('7992 7398 713'), true);
    assert.equal(v('luhn')('79927398710'), false);
    assert.equal(v('luhn')('7992739871x'), false);
    assert.equal(v('luhn')('0'), false);
  });

  test('mod97 (IBAN-style)', () => {
    assert.equal(v('mod97')('GB82 WEST 1234 5698 7654 32'), true);
    assert.equal(v('mod97')('GB82WEST12345698765432'), true);
    assert.equal(v('mod97')('GB83WEST12345698765432'), false);
    assert.equal(v('mod97')('RF18539007547034'), true); // ISO 11649 creditor reference
    assert.equal(v('mod97')('GB82'), false);
  });

  test('iso7064_mod97_10', () => {
    const n = 123456789n;
    const check = (98n - ((n * 100n) % 97n)).toString().padStart(2, '0');
    assert.equal(v('iso7064_mod97_10')(`${n}${check}`), true);
    assert.equal(v('iso7064_mod97_10')(`${n}${check === '01' ? '02' : '01'}`), false);
  });

  test('iso7064_mod11_10', () => {
    assert.equal(v('iso7064_mod11_10')('86095742719'), true);
    assert.equal(v('iso7064_mod11_10')('86095742718'), false);
    assert.equal(v('iso7064_mod11_10')('69435151530'), true); // Croatian OIB test value
  });

  test('mod11 (ISBN-10 convention)', () => {
    assert.equal(v('mod11')('0-306-40615-2'), true);
    assert.equal(v('mod11')('080442957X'), true);
    assert.equal(v('mod11')('0306406153'), false);
    assert.equal(v('mod11')('X123'), false);
  });

  test('verhoeff and elfproef', () => {
    assert.equal(v('verhoeff')('2363'), true);
    assert.equal(v('verhoeff')('2364'), false);
    assert.equal(v('elfproef')('123456782'), true);
    assert.equal(v('elfproef')('123456789'), false);
  });

  test('detector validators are exposed under the detector name', () => {
    assert.equal(v('iban')('DE89 3704 0044 0532 0130 00'), true);
    assert.equal(v('credit_card')('4111 1111 1111 1112'), false);
  });
});
