/* Config: defaults from DESIGN.md, and one-line errors that name the key. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../src/config/load';

function withFile(text: string): string {
  const f = join(mkdtempSync(join(tmpdir(), 'mv-cfg-')), 'mailveil.yaml');
  writeFileSync(f, text);
  return f;
}

test('config: defaults match DESIGN.md', () => {
  const c = loadConfig(undefined, {}, '/srv');
  assert.deepEqual(c.listen, { host: '127.0.0.1', port: 10025 });
  assert.deepEqual(c.next_hop, { host: '127.0.0.1', port: 10026 });
  assert.deepEqual(c.metrics, { host: '127.0.0.1', port: 9464 });
  assert.deepEqual(c.admin, { host: '127.0.0.1', port: 9465 });
  assert.deepEqual(c.clients, ['127.0.0.0/8', '::1/128']);
  assert.equal(c.rules_dir, '/srv/rules.d');
  assert.equal(c.state_dir, '/srv/var');
  assert.equal(c.unscannable, 'quarantine');
  assert.equal(c.limits.max_message_size, 50 * 1024 * 1024);
  assert.equal(c.limits.max_header_size, 1024 * 1024);
  assert.equal(c.limits.max_mime_depth, 32);
  assert.equal(c.limits.max_parts, 1000);
  assert.equal(c.verdict_header, 'X-Mailveil-Verdict');
});

test('config: file values, paths relative to the file, flags override the file', () => {
  const f = withFile('listen: "[::1]:2525"\nstate_dir: state\nlimits: { max_message_size: 10MB }\nverdict_header: false\n');
  const c = loadConfig(f, { next_hop: '127.0.0.1:2626' }, '/elsewhere');
  assert.deepEqual(c.listen, { host: '::1', port: 2525 });
  assert.deepEqual(c.next_hop, { host: '127.0.0.1', port: 2626 });
  assert.equal(c.state_dir, join(f, '..', 'state'));
  assert.equal(c.limits.max_message_size, 10_000_000);
  assert.equal(c.verdict_header, false);
});

test('config: errors are one line naming the file and the key', () => {
  const cases: [string, RegExp][] = [
    ['lisen: 127.0.0.1:25\n', /mailveil\.yaml: lisen: unknown key$/],
    ['listen: localhost\n', /mailveil\.yaml: listen: must be HOST:PORT/],
    ['next_hop: 127.0.0.1:99999\n', /next_hop: must be HOST:PORT/],
    ['limits: { max_message_size: 12 parsecs }\n', /limits\.max_message_size: must be a size/],
    ['limits: { max_header_sise: 1MiB }\n', /limits\.max_header_sise: unknown key/],
    ['clients: [10.0.0.0/33]\n', /clients\.0: must be an address or CIDR/],
    ['unscannable: ignore\n', /unscannable: must be equal to one of/],
    ['listen: [unclosed\n', /mailveil\.yaml: /],
  ];
  for (const [text, want] of cases) {
    assert.throws(() => loadConfig(withFile(text)), (e: Error) => {
      assert.match(e.message, want);
      assert.ok(!e.message.includes('\n'), 'error is one line');
      return true;
    });
  }
  assert.throws(() => loadConfig(undefined, { listen: 'nonsense' }), /config: listen: must be HOST:PORT/);
  assert.throws(() => loadConfig('/nonexistent/mailveil.yaml'), /cannot read: ENOENT/);
});
