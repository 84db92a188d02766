/* Step `escalate` (issue 10, require_tls / REQUIRETLS in relay mode): the decision, the headers it reads, and the lifecycle branch it takes. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable, type Readable } from 'node:stream';
import { loadConfig } from '../../src/config/load';
import { newContext } from '../../src/pipeline/context';
import { replyFor } from '../../src/pipeline/outcome-reply';
import { runMessage } from '../../src/pipeline/run-message';
import { Spool } from '../../src/pipeline/spool';
import { planEscalation, tlsRequirement } from '../../src/pipeline/stages/escalate';
import { readTlsFields } from '../../src/pipeline/stages/tls-headers';
import { verdictHeaderValue } from '../../src/pipeline/stages/verdict-header';
import type { Delivery, DeliveryResult, Escalation, EscalationFacts, Message, Services } from '../../src/pipeline/message';
import { Metrics } from '../../src/observability/metrics';
import { createLogger } from '../../src/observability/log';
import { Pseudonymiser } from '../../src/privacy/pseudonym';
import { ruleSetFromYaml } from '../helpers/dlp';

const KEY = new Pseudonymiser(Buffer.alloc(32, 7));
const RULES = ruleSetFromYaml(
  'rules:\n  - id: card\n    detector: credit_card\n    scope: [body]\n    action: redact\n    replacement: "[CARD]"\n    require_tls: verified\n  - id: iban-watch\n    detector: iban\n    scope: [body]\n    action: monitor\n    require_tls: verified\n',
);
const CLEAN = 'From: a@example.com\r\nSubject: hi\r\n\r\nnothing to see\r\n';
const CARD = 'From: a@example.com\r\nSubject: pay\r\n\r\ncard 4111 1111 1111 1111\r\n';
const IBAN = 'From: a@example.com\r\nSubject: pay\r\n\r\nIBAN DE89 3704 0044 0532 0130 00\r\n';

const facts = (o: Partial<EscalationFacts & { esmtpRequireTls: boolean }> = {}) => ({ mirroredVerified: false, mirroredOffersRequireTls: false, secureNextHop: false, esmtpRequireTls: false, ...o });

test('planEscalation: a verified mirrored hop serves; else secure_next_hop; else no path', () => {
  assert.deepEqual(planEscalation(facts({ mirroredVerified: true })), { path: 'mirrored', requireTls: 'if-offered' });
  assert.deepEqual(planEscalation(facts({ mirroredVerified: true, secureNextHop: true })), { path: 'mirrored', requireTls: 'if-offered' });
  assert.deepEqual(planEscalation(facts({ secureNextHop: true })), { path: 'secure_next_hop', requireTls: 'if-offered' });
  assert.deepEqual(planEscalation(facts()), { path: 'none' });
  // REQUIRETLS received: the hop must advertise it (RFC 8689 4.2.1).
  assert.deepEqual(planEscalation(facts({ esmtpRequireTls: true, mirroredVerified: true })), { path: 'none' });
  assert.deepEqual(planEscalation(facts({ esmtpRequireTls: true, mirroredVerified: true, mirroredOffersRequireTls: true })), { path: 'mirrored', requireTls: 'required' });
  assert.deepEqual(planEscalation(facts({ esmtpRequireTls: true, mirroredVerified: true, secureNextHop: true })), { path: 'secure_next_hop', requireTls: 'required' });
  // Advertised but not verified is not enough.
  assert.deepEqual(planEscalation(facts({ mirroredOffersRequireTls: true })), { path: 'none' });
  // mx mode: verify over an insecure MX answer serves a require_tls rule, never REQUIRETLS (RFC 8689 4.2.1).
  assert.deepEqual(planEscalation(facts({ mirroredVerified: true, mirroredNameVouched: false })), { path: 'mirrored', requireTls: 'if-offered' });
  assert.deepEqual(planEscalation(facts({ esmtpRequireTls: true, mirroredVerified: true, mirroredOffersRequireTls: true, mirroredNameVouched: false })), { path: 'none' });
});

test('readTlsFields: Require-TLS-ESMTP: yes and TLS-Required: No, any case, folded; near misses do not count', () => {
  assert.deepEqual(readTlsFields('Subject: x\r\nRequire-TLS-ESMTP: yes\r\n\r\n'), { header: true, relaxed: false });
  assert.deepEqual(readTlsFields('require-tls-esmtp:\r\n  YES\r\nTLS-Required: No\r\n'), { header: true, relaxed: true });
  assert.deepEqual(readTlsFields('Require-TLS-ESMTP: no\r\nTLS-Required: yes\r\nX-Require-TLS-ESMTP: yes\r\nSubject: Require-TLS-ESMTP: yes\r\n'), { header: false, relaxed: false });
});

interface Run {
  kind: string;
  reply: { code: number; text: string };
  sent?: string;
  via?: string;
  logs: Record<string, unknown>[];
  metrics: Metrics;
}

async function run(raw: string, o: { facts?: Partial<EscalationFacts>; open?: 'ok' | 'tls' | 'no_requiretls'; bounce?: boolean; esmtp?: boolean; noPort?: boolean } = {}): Promise<Run> {
  const dir = mkdtempSync(join(tmpdir(), 'mv-escalate-'));
  const logs: Record<string, unknown>[] = [];
  const config = loadConfig(undefined);
  if (o.bounce) config.tls.escalation_failure = 'bounce';
  const metrics = new Metrics();
  const services = {
    config,
    pseudonyms: KEY,
    metrics,
    log: createLogger('info', new Writable({ write: (c, _e, cb) => (logs.push(JSON.parse(String(c))), cb()) })),
    quarantine: { put: async () => undefined },
    audit: { append: async () => undefined },
  } as unknown as Services;
  let sent: string | undefined;
  let via: string | undefined;
  const delivery = (name: string): Delivery => ({
    usable: () => true,
    async send(body: Readable & AsyncIterable<Buffer>): Promise<DeliveryResult> {
      const parts: Buffer[] = [];
      for await (const c of body) parts.push(c);
      sent = Buffer.concat(parts).toString();
      via = name;
      return { ok: true, reply: { code: 250, enhanced: '2.0.0', text: 'Ok' }, bytes: 1 };
    },
  });
  const escalation: Escalation = {
    facts: () => ({ mirroredVerified: false, mirroredOffersRequireTls: false, secureNextHop: false, ...o.facts }),
    async open(path) {
      if (o.open === 'tls' || o.open === 'no_requiretls') return { ok: false, failure: o.open };
      return { ok: true, delivery: path === 'mirrored' ? delivery('mirrored') : delivery('secure') };
    },
  };
  const ctx = newContext('ESC1', config, RULES, KEY);
  ctx.requireTls.esmtp = Boolean(o.esmtp);
  const m: Message = {
    ctx,
    services,
    client: { data: (async function* () { yield Buffer.from(raw); })(), gone: new AbortController().signal, hasGone: () => false, facts: () => ({ client: 'c', rcptCount: 1 }) },
    delivery: delivery('mirrored'),
    ...(o.noPort ? {} : { escalation }),
    spool: new Spool(dir, 'ESC1', 1024),
    timings: new Map(),
    trail: [],
    tooBig: false,
  };
  try {
    const outcome = await runMessage(m);
    return { kind: outcome.kind, reply: replyFor(outcome, ctx), sent, via, logs, metrics };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const escalations = async (r: Run) => (await r.metrics.registry.getSingleMetric('mailveil_tls_escalations_total')!.get()).values.map((v) => `${v.labels.result}=${v.value}`);

test('a clean message is not flagged: route -> deliver on the mirrored hop, no tls field', async () => {
  const r = await run(CLEAN, { facts: { secureNextHop: true } });
  assert.equal(r.kind, 'delivered');
  assert.equal(r.via, 'mirrored');
  assert.match(r.sent!, /^X-Mailveil-Verdict: pass; rules=\r\n/);
  const line = r.logs.find((l) => l.event === 'message')!;
  assert.equal(line.tls, undefined);
});

test('a require_tls hit with secure_next_hop: escalate -> deliver on the secure hop; header and log say tls=verified-required only', async () => {
  const r = await run(CARD, { facts: { secureNextHop: true } });
  assert.equal(r.kind, 'delivered');
  assert.equal(r.via, 'secure');
  assert.match(r.sent!, /^X-Mailveil-Verdict: redact; rules=card; tls=verified-required\r\n/);
  assert.ok(!r.sent!.includes('4111'));
  const line = r.logs.find((l) => l.event === 'message')!;
  assert.equal(line.tls, 'verified-required');
  assert.equal(line.tls_path, 'secure_next_hop');
  assert.deepEqual(await escalations(r), ['secure_next_hop=1']);
});

test('a require_tls hit over a verified mirrored hop stays on it', async () => {
  const r = await run(CARD, { facts: { mirroredVerified: true, secureNextHop: true } });
  assert.equal(r.via, 'mirrored');
  assert.deepEqual(await escalations(r), ['mirrored=1']);
});

test('no verified path: 451 4.7.5 with escalation_failure defer, 550 5.7.10 with bounce; nothing sent', async () => {
  const d = await run(CARD);
  assert.equal(d.kind, 'tls_required_deferred');
  assert.equal(d.reply.code, 451);
  assert.match(d.reply.text, /^4\.7\.5 /);
  assert.equal(d.sent, undefined);
  const b = await run(CARD, { bounce: true });
  assert.equal(b.kind, 'tls_required_bounced');
  assert.equal(b.reply.code, 550);
  assert.match(b.reply.text, /^5\.7\.10 /);
  // secure_next_hop whose TLS fails verification, or no escalation port at all (a release): no path either.
  assert.equal((await run(CARD, { facts: { secureNextHop: true }, open: 'tls' })).kind, 'tls_required_deferred');
  assert.equal((await run(CARD, { noPort: true })).kind, 'tls_required_deferred');
  const line = d.logs.find((l) => l.event === 'message')!;
  assert.equal(line.tls, 'verified-required');
  assert.equal(line.tls_path, null);
});

test('a monitor rule with require_tls never escalates (it is counted, not enforced)', async () => {
  const r = await run(IBAN);
  assert.equal(r.kind, 'delivered');
  assert.equal(r.via, 'mirrored');
});

test('REQUIRETLS received, or Require-TLS-ESMTP: yes, flags a clean message; TLS-Required: No relaxes neither it nor a require_tls rule', async () => {
  assert.equal((await run(CLEAN, { esmtp: true })).kind, 'tls_required_deferred');
  assert.equal((await run('Require-TLS-ESMTP: yes\r\n' + CLEAN)).kind, 'tls_required_deferred');
  const kept = await run('Require-TLS-ESMTP: yes\r\n' + CLEAN, { facts: { secureNextHop: true } });
  assert.equal(kept.via, 'secure');
  assert.match(kept.sent!, /\r\nRequire-TLS-ESMTP: yes\r\n/, 'never stripped');
  assert.equal((await run('TLS-Required: No\r\n' + CARD)).kind, 'tls_required_deferred');
  assert.equal((await run('TLS-Required: No\r\n' + CLEAN, { esmtp: true })).kind, 'tls_required_deferred');
  assert.equal((await run('TLS-Required: No\r\n' + CLEAN)).kind, 'delivered');
});

test('verdictHeaderValue: the tls flag only when required, never on a release', () => {
  const ctx = newContext('V1', loadConfig(undefined), RULES, KEY);
  ctx.verdict = { action: 'redact', rules: ['card'] };
  assert.equal(verdictHeaderValue(ctx), 'redact; rules=card; tls=verified-required');
  ctx.released = { rules: ['card'] };
  assert.equal(verdictHeaderValue(ctx), 'released; rules=card');
});
