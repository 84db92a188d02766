/*
 * Golden tests for the header anonymisation stage. Each folder under
 * test/golden/headers/ holds in.eml, rules.yaml (a `headers:` section as in
 * DESIGN.md) and out.eml. The stage Transform runs over in.eml with a fixed
 * pseudonym key and must give out.eml byte for byte, whole and in 7-byte
 * chunks. UPDATE_GOLDEN=1 rewrites out.eml instead: review the diff by eye.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { anonymiseHeaders } from '../../src/pipeline/stages/anonymise-headers';
import { newContext } from '../../src/pipeline/context';
import { Pseudonymiser } from '../../src/privacy/pseudonym';
import type { HeaderPolicy, RuleSet } from '../../src/rules/types';
import type { Config } from '../../src/config/load';
import { TEST_DIR } from '../helpers/paths';
import { runChunked } from '../helpers/chunks';

const CASES = join(TEST_DIR, 'golden', 'headers');
const UPDATE = process.env.UPDATE_GOLDEN === '1';
const KEY = Buffer.alloc(32, 7);
const DEFAULTS: HeaderPolicy = { remove: [], received: 'keep', internal_networks: [], internal_domains: [] };

function readPolicy(file: string): HeaderPolicy {
  const doc = (parseYaml(readFileSync(file, 'utf8')) ?? {}) as { headers?: Partial<HeaderPolicy> };
  const headers = doc.headers ?? {};
  // A typo in a fixture would otherwise test the defaults and pass quietly.
  for (const k of Object.keys(headers)) assert.ok(k in DEFAULTS, `${file}: unknown key headers.${k}`);
  return { ...DEFAULTS, ...headers };
}

const cases = readdirSync(CASES, { withFileTypes: true })
  .filter((d) => d.isDirectory())
  .map((d) => d.name)
  .sort();

test('there are golden cases', () => {
  assert.ok(cases.length >= 6, `only ${cases.length} cases in ${CASES}`);
});

for (const name of cases) {
  test(`golden headers/${name}`, async () => {
    const dir = join(CASES, name);
    const input = readFileSync(join(dir, 'in.eml'));
    const policy = readPolicy(join(dir, 'rules.yaml'));
    const config = { limits: { max_header_size: 1024 * 1024 } } as unknown as Config;
    const ctx = newContext(`golden-${name}`, config, { headers: policy } as RuleSet, new Pseudonymiser(KEY));
    const out = await runChunked(anonymiseHeaders.create(ctx), input, input.length || 1);
    const chunked = await runChunked(anonymiseHeaders.create(ctx), input, 7);
    assert.ok(chunked.equals(out), `${name}: 7-byte chunks gave different output`);

    const outFile = join(dir, 'out.eml');
    if (UPDATE) {
      writeFileSync(outFile, out);
      return;
    }
    assert.ok(existsSync(outFile), `${outFile} missing; run with UPDATE_GOLDEN=1 and review it`);
    const want = readFileSync(outFile);
    // Compare as text first for a readable diff, then as bytes for the line ends.
    assert.equal(out.toString('latin1'), want.toString('latin1'), `${name}: output differs from out.eml`);
    assert.ok(out.equals(want), `${name}: output differs from out.eml`);
  });
}
