/*
 * The message lifecycle (src/pipeline/lifecycle.ts) as a user meets it: the
 * reply each outcome gives (unchanged from before the lifecycle was data),
 * the branches a message can take, and the `after` steps that run once per
 * message whatever happens. The lifecycle runs here behind fake ports (no
 * smtp-server), with the real quarantine-free services it needs.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable, type Readable } from 'node:stream';
import { loadConfig } from '../../src/config/load';
import { newContext, type MessageContext } from '../../src/pipeline/context';
import { FIRST_STEP, OUTCOMES, STEPS, type Outcome, type OutcomeKind } from '../../src/pipeline/lifecycle';
import { replyFor, verdictLabel } from '../../src/pipeline/outcome-reply';
import { runMessage } from '../../src/pipeline/run-message';
import { Spool } from '../../src/pipeline/spool';
import type { Delivery, DeliveryResult, Message, Services } from '../../src/pipeline/message';
import { Metrics } from '../../src/observability/metrics';
import { createLogger } from '../../src/observability/log';
import { Pseudonymiser } from '../../src/privacy/pseudonym';
import { RedactionError } from '../../src/redact/error';
import { ruleSetFromYaml } from '../helpers/dlp';

const KEY = new Pseudonymiser(Buffer.alloc(32, 7));
const CARD_RULES = ruleSetFromYaml(
  'rules:\n  - id: card-redact\n    detector: credit_card\n    scope: [body]\n    action: redact\n    replacement: "[CARD]"\n  - id: iban-hold\n    detector: iban\n    scope: [body]\n    action: quarantine\n',
);
const CLEAN = Buffer.from('From: a@example.com\r\nTo: b@example.org\r\nSubject: hi\r\n\r\nnothing to see\r\n');
const CARD = Buffer.from('From: a@example.com\r\nTo: b@example.org\r\nSubject: pay\r\n\r\ncard 4111 1111 1111 1111\r\n');
const IBAN = Buffer.from('From: a@example.com\r\nTo: b@example.org\r\nSubject: pay\r\n\r\nIBAN DE89 3704 0044 0532 0130 00\r\n');

function ctxFor(): MessageContext {
  const ctx = newContext('LIFECYCLE1', loadConfig(undefined), CARD_RULES, KEY);
  ctx.envelope = { from: 'a@example.com', rcpts: ['b@example.org'] };
  return ctx;
}

test('every outcome is declared as the end of some step, and every step is reachable', () => {
  const ends = new Set(Object.values(STEPS).flatMap((s) => [...s.ends]));
  for (const kind of Object.keys(OUTCOMES) as OutcomeKind[]) assert.ok(ends.has(kind), `${kind} is no step's end`);
  const seen = new Set<string>([FIRST_STEP]);
  const queue: string[] = [FIRST_STEP];
  while (queue.length) for (const n of STEPS[queue.shift() as keyof typeof STEPS].next) if (!seen.has(n)) seen.add(n), queue.push(n);
  assert.deepEqual([...seen].sort(), Object.keys(STEPS).sort());
});

test('each outcome answers exactly what mailveil answered before the lifecycle was data', () => {
  const ctx = ctxFor();
  const hop = { code: 250, enhanced: '2.0.0', text: 'Ok: queued as 4Xyz' };
  const cases: [Outcome, number, string][] = [
    [{ kind: 'delivered', reply: hop }, 250, '2.0.0 Ok: queued as LIFECYCLE1; next hop said: 250 2.0.0 Ok: queued as 4Xyz'],
    [{ kind: 'held' }, 250, '2.0.0 Ok: held in quarantine as LIFECYCLE1'],
    [{ kind: 'policy_reject' }, 550, '5.7.1 Message blocked by data-protection policy'],
    [{ kind: 'policy_reject', ruleReply: '554 5.7.0 No cards please' }, 554, '5.7.0 No cards please'],
    [{ kind: 'policy_tempfail' }, 451, '4.7.1 Message deferred by data-protection policy'],
    [{ kind: 'too_big' }, 552, '5.3.4 Message size exceeds fixed limit'],
    [{ kind: 'header_too_big' }, 552, '5.3.4 Message header size exceeds limit'],
    [{ kind: 'next_hop_refused', reply: { code: 550, enhanced: '5.1.1', text: 'User unknown' } }, 550, '5.1.1 User unknown'],
    [{ kind: 'next_hop_refused', reply: { code: 554, text: 'no' } }, 554, '5.0.0 no'],
    [{ kind: 'next_hop_deferred', reply: { code: 450, enhanced: '4.2.0', text: 'busy' } }, 451, '4.2.0 Next hop deferred the message: 450 4.2.0 busy'],
    [{ kind: 'next_hop_deferred', reply: { code: 299, text: 'odd' } }, 451, '4.4.0 Next hop deferred the message: 299 odd'],
    [{ kind: 'next_hop_lost' }, 451, '4.4.2 Next hop connection lost, try again later'],
    [{ kind: 'next_hop_timeout' }, 451, '4.4.2 Next hop timed out, try again later'],
    [{ kind: 'no_space' }, 452, '4.3.1 Insufficient system storage, try again later'],
    [{ kind: 'quarantine_unavailable' }, 451, '4.3.0 Quarantine is not available, try again later'],
    [{ kind: 'internal' }, 451, '4.3.0 Internal error while filtering, try again later'],
  ];
  for (const [outcome, code, text] of cases) assert.deepEqual(replyFor(outcome, ctx), { code, text }, outcome.kind);
  ctx.verdict.action = 'redact';
  assert.equal(verdictLabel({ kind: 'delivered', reply: hop }, ctx), 'redact');
  assert.equal(verdictLabel({ kind: 'held' }, ctx), 'quarantine');
  assert.equal(verdictLabel({ kind: 'client_gone' }, ctx), 'aborted');
});

interface Run {
  outcome: Outcome;
  m: Message;
  sent: Buffer;
  logs: Record<string, unknown>[];
  held: string[];
  audit: Record<string, unknown>[];
  spoolLeft: string[];
}

async function run(raw: Buffer, answer: (body: Buffer) => DeliveryResult, opts: { gone?: boolean } = {}): Promise<Run> {
  const dir = mkdtempSync(join(tmpdir(), 'mv-lifecycle-'));
  const logs: Record<string, unknown>[] = [];
  const sink = new Writable({ write: (c, _e, cb) => (logs.push(JSON.parse(String(c))), cb()) });
  const held: string[] = [];
  const audit: Record<string, unknown>[] = [];
  const services = {
    config: loadConfig(undefined),
    pseudonyms: KEY,
    metrics: new Metrics(),
    log: createLogger('debug', sink),
    quarantine: { put: async (meta: { id: string }) => void held.push(meta.id) },
    audit: { append: async (e: Record<string, unknown>) => void audit.push(e) },
  } as unknown as Services;
  let sent = Buffer.alloc(0);
  const delivery: Delivery = {
    usable: () => true,
    async send(body: Readable & AsyncIterable<Buffer>): Promise<DeliveryResult> {
      const parts: Buffer[] = [];
      try {
        for await (const c of body) parts.push(c);
      } catch (err) {
        return { ok: false, failure: 'pass2', cause: err };
      }
      sent = Buffer.concat(parts);
      return answer(sent);
    },
  };
  const gone = new AbortController();
  const m: Message = {
    ctx: ctxFor(),
    services,
    client: {
      data: (async function* () {
        yield raw.subarray(0, 7);
        if (opts.gone) {
          gone.abort();
          throw new Error('client connection closed');
        }
        yield raw.subarray(7);
      })(),
      gone: gone.signal,
      hasGone: () => gone.signal.aborted,
      facts: () => ({ client: 'c-1', rcptCount: 1 }),
    },
    delivery,
    spool: new Spool(dir, 'LIFECYCLE1', 1024),
    timings: new Map(),
    trail: [],
    tooBig: false,
  };
  try {
    const outcome = await runMessage(m);
    await new Promise((r) => setImmediate(r));
    return { outcome, m, sent, logs, held, audit, spoolLeft: readdirSync(dir) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const OK: DeliveryResult = { ok: true, reply: { code: 250, enhanced: '2.0.0', text: 'Ok' }, bytes: 1 };

test('a clean message: receive -> check-size -> decide -> route -> deliver, then one log line and one audit event', async () => {
  const r = await run(CLEAN, () => OK);
  assert.equal(r.outcome.kind, 'delivered');
  assert.deepEqual(r.m.trail, ['receive', 'check-size', 'decide', 'route', 'deliver']);
  assert.match(r.sent.toString(), /^X-Mailveil-Verdict: pass/m);
  assert.equal(r.logs.filter((l) => l.event === 'message').length, 1);
  assert.equal(r.audit.length, 1);
  assert.deepEqual(r.spoolLeft, []);
  // The subject index came from pass 1: envelope and header addresses (here the same two people).
  assert.equal(r.m.ctx.subjects.length, 2);
});

test('a redaction that fails in pass 2 moves deliver -> hold: the original is held, never delivered', async () => {
  const failing = await run(CARD, () => ({ ok: false, failure: 'pass2', cause: new RedactionError('verification found a remaining match') }));
  assert.equal(failing.outcome.kind, 'held');
  assert.deepEqual(failing.m.trail, ['receive', 'check-size', 'decide', 'route', 'deliver', 'hold']);
  assert.deepEqual(failing.held, ['LIFECYCLE1']);
  assert.ok(failing.m.ctx.unscannable.includes('redact_failed'));
  const line = failing.logs.find((l) => l.event === 'message')!;
  assert.equal(line.verdict, 'quarantine');
  assert.equal(line.outcome, 'quarantined');
});

test('quarantine routes to hold without touching the next hop', async () => {
  let asked = false;
  const r = await run(IBAN, () => ((asked = true), OK));
  assert.equal(r.outcome.kind, 'held');
  assert.equal(asked, false);
  assert.deepEqual(r.m.trail, ['receive', 'check-size', 'decide', 'route', 'hold']);
});

test('a client that leaves in DATA ends as client_gone: nothing delivered or held, the after steps still run', async () => {
  const r = await run(CARD, () => OK, { gone: true });
  assert.equal(r.outcome.kind, 'client_gone');
  assert.deepEqual(r.m.trail, ['receive']);
  assert.equal(r.sent.length, 0);
  assert.deepEqual(r.held, []);
  const line = r.logs.find((l) => l.event === 'message')!;
  assert.equal(line.outcome, 'aborted');
  assert.equal(line.reply, null);
  assert.equal(r.audit.length, 1);
  assert.deepEqual(r.spoolLeft, []);
});

test('the log line and the audit event carry no address, only pseudonyms', async () => {
  const r = await run(CARD, () => OK);
  const text = JSON.stringify(r.logs) + JSON.stringify(r.audit);
  assert.doesNotMatch(text, /example\.(com|org)/);
  assert.doesNotMatch(text, /4111/);
});

test('rule hits are counted under the action of the rule set the message was judged by, whatever is live by then', async () => {
  const r = await run(CARD, () => OK);
  // The services hold no rule set at all: the count step can only read ctx.rules.
  assert.equal('rules' in r.m.services, false);
  const hits = (await r.m.services.metrics.ruleHits.get()).values;
  assert.deepEqual(
    hits.map((v) => [v.labels.rule, v.labels.action, v.value]),
    [['card-redact', 'redact', 1]],
  );
});
