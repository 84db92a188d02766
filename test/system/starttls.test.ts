/* Optional inbound STARTTLS: offered only with a configured certificate, and mail flows over it. */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startSink, systemSkipReason } from '../helpers/sink';
import { startMailveil, type Mailveil } from '../helpers/mailveil';
import { RawSmtp } from '../helpers/smtp-client';

const skip = systemSkipReason(['smtp-sink', 'swaks', 'openssl']);
const running: { stop(): Promise<unknown> }[] = [];
after(async () => {
  for (const r of running.splice(0).reverse()) await r.stop().catch(() => undefined);
});

async function ehlo(mv: Mailveil): Promise<string> {
  const { client } = await RawSmtp.open(mv.port);
  const r = await client.cmd('EHLO client.example.org');
  client.close();
  return r.text;
}

test('STARTTLS is offered with inbound_tls and mail is relayed over it; not offered without', { skip }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'mv-tls-'));
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=mailveil.test.example',
    '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')], { stdio: 'ignore' });
  const cfg = join(dir, 'mailveil.yaml');
  writeFileSync(cfg, 'inbound_tls: { cert: cert.pem, key: key.pem }\n');
  const sink = await startSink();
  running.push(sink);
  const plain = await startMailveil({ nextHop: sink.address });
  running.push(plain);
  assert.doesNotMatch(await ehlo(plain), /STARTTLS/);
  const mv = await startMailveil({ nextHop: sink.address, config: cfg });
  running.push(mv);
  const features = await ehlo(mv);
  for (const f of ['PIPELINING', '8BITMIME', 'SMTPUTF8', 'SIZE', 'DSN', 'ENHANCEDSTATUSCODES', 'STARTTLS']) assert.match(features, new RegExp(`^${f}`, 'm'));
  const out = execFileSync('swaks', ['--server', `127.0.0.1:${mv.port}`, '--tls', '--from', 'sender@example.com', '--to', 'rcpt@example.net',
    '--header', 'Subject: over tls', '--body', 'encrypted hop'], { encoding: 'utf8', timeout: 30_000 });
  assert.match(out, /TLS started/);
  assert.match(out, /<~ {1,2}250 2\.0\.0 Ok: queued as/);
  const [m] = await sink.waitForMessages(1);
  assert.match(m.body, /encrypted hop/);
});
