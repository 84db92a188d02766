/*
 * Key rotation (operations/keys.ts) and the Art. 30 report
 * (operations/art30.ts) called directly: typed results, the key_rotate event
 * naming the context's actor, and the report made from the context's config,
 * clock and the rule set given, reading nothing under state_dir.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { art30Report } from '../../src/operations/art30';
import { rotateKeys } from '../../src/operations/keys';
import { CURRENT_KEY_FILE, keysDir } from '../../src/quarantine/keys';
import { loadRuleSet } from '../../src/rules/load';
import { auditEvents, testContext, TEST_ACTOR, TEST_NOW } from '../helpers/operations';
import { SMALL_MESSAGE, chunked, removeTempDirs, sampleMeta, tempDir } from '../fixtures/quarantine/sample';

after(removeTempDirs);

test('rotateKeys: a new current key, the previous one named, keys and keys in use listed; one key_rotate event', async () => {
  const ctx = testContext(tempDir('mv-ops-k-'));
  const first = await rotateKeys(ctx);
  assert.deepEqual(Object.keys(first), ['keyId', 'previous', 'keys', 'inUse']);
  assert.match(first.keyId, /^[0-9a-f]{16}$/);
  assert.equal(first.previous, null);
  assert.deepEqual(first.keys, [first.keyId]);
  assert.deepEqual(first.inUse, []);

  await ctx.store.put(sampleMeta('HELD1', SMALL_MESSAGE.length), chunked(SMALL_MESSAGE, 64));
  const second = await rotateKeys(ctx);
  assert.equal(second.previous, first.keyId);
  assert.notEqual(second.keyId, first.keyId);
  assert.deepEqual(second.keys, [first.keyId, second.keyId].sort());
  assert.deepEqual(second.inUse, [first.keyId]);

  const events = await auditEvents(ctx);
  assert.deepEqual(
    events.map((e) => [e.event, e.actor, e.details]),
    [
      ['key_rotate', TEST_ACTOR, { new_key: first.keyId, previous_key: null, keys: 1, keys_in_use: 0 }],
      ['key_rotate', TEST_ACTOR, { new_key: second.keyId, previous_key: first.keyId, keys: 2, keys_in_use: 1 }],
    ],
  );
});

test('rotateKeys: a `current` that holds no key id is repaired (previous is null), not an error', async () => {
  const ctx = testContext(tempDir('mv-ops-k-'));
  await rotateKeys(ctx);
  writeFileSync(join(keysDir(ctx.config.state_dir), CURRENT_KEY_FILE), 'garbage\n');
  const r = await rotateKeys(ctx);
  assert.equal(r.previous, null);
  assert.equal(r.keys.length, 2);
});

test('art30Report: Markdown from the context config, clock and the rules given; names the config file; writes nothing', () => {
  const dir = tempDir('mv-ops-a30-');
  const ctx = testContext(dir);
  const rules = loadRuleSet(ctx.config.rules_dir, ctx.config.local_rules_dir);
  const text = art30Report(ctx, rules, '/etc/mailveil/test.yaml');
  assert.match(text, /^# /);
  assert.match(text, /Art\. 30/);
  assert.ok(text.includes(TEST_NOW.toISOString().slice(0, 10)), 'dated by the context clock');
  assert.ok(text.includes('/etc/mailveil/test.yaml'));
  assert.ok(art30Report(ctx, rules).includes('built-in defaults (no config file)'));
  for (const r of rules.rules) assert.ok(text.includes(r.id), `rule ${r.id} is listed`);
  assert.ok(!existsSync(join(dir, 'audit')) && !existsSync(keysDir(dir)));
});
