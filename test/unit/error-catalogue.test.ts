/*
 * The error catalogue (src/errors.ts), walked as fastify's errors test walks
 * lib/errors.js: each code is listed once, each SMTP reply is well formed
 * and unchanged, each code is used somewhere in src/, and each error class
 * carries a code the catalogue lists.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { CATALOGUE, catalogueEntry, codeOf, exitCodeOf, httpStatusOf, isMvCode, isOperatorError, smtpReplyOf, type MvCode, type ReplyCode } from '../../src/errors';
import { AccessError } from '../../src/access-error';
import { HttpError } from '../../src/admin/http';
import { AdminConfigError } from '../../src/admin/server';
import { AdminTokenError } from '../../src/admin/token';
import { AuditError } from '../../src/audit/log';
import { UserError } from '../../src/cli/errors';
import { ConfigError } from '../../src/config/load';
import { StateDirError } from '../../src/config/state-dir';
import { HeaderTooLargeError } from '../../src/pipeline/header-block';
import { QuarantineError } from '../../src/quarantine/errors';
import { RedactionError } from '../../src/redact/error';
import { ReleaseError, type ReleaseFailure } from '../../src/operations/release';
import { ReleaseRewriteError } from '../../src/operations/release-rewrite';
import { PatternError } from '../../src/rules/compile';
import { RuleSetError } from '../../src/rules/load';
import type { RuleDefinition } from '../../src/rules/types';
import { SarError } from '../../src/gdpr/export';
import { DnsError } from '../../src/dns/errors';
import { EnvelopeError } from '../../src/smtp/envelope';
import { replyError } from '../../src/smtp/errors';
import { NextHopError } from '../../src/smtp/next-hop';
import { TlsRptRequestError } from '../../src/operations/tlsrpt';
import { REPO_ROOT } from '../helpers/paths';

const SRC = join(REPO_ROOT, 'src');
const CODES = Object.keys(CATALOGUE) as MvCode[];

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    if (e.isDirectory()) return sourceFiles(p);
    return e.name.endsWith('.ts') ? [p] : [];
  });
}

/** Source text without comments, so a code named only in a comment is not "used". */
function code(file: string): string {
  return readFileSync(file, 'utf8')
    .replace(/\/\*[\s\S]*?\*\//g, '')
    .replace(/(^|\s)\/\/.*$/gm, '$1');
}

const FILES = sourceFiles(SRC).map((f) => ({ name: relative(REPO_ROOT, f), text: code(f) }));

test('error catalogue: each code is listed once, and is named MV_ plus upper-case words', () => {
  const text = readFileSync(join(SRC, 'errors.ts'), 'utf8');
  const listed = [...text.matchAll(/^\s+(MV_[A-Z0-9_]+): \{/gm)].map((m) => m[1]);
  assert.deepEqual(listed, CODES, 'every entry is found by the scan, in order');
  assert.equal(new Set(listed).size, listed.length, `duplicated: ${listed.filter((c, i) => listed.indexOf(c) !== i)}`);
  for (const c of CODES) assert.match(c, /^MV_[A-Z0-9]+(_[A-Z0-9]+)*$/);
});

test('error catalogue: every SMTP reply is well formed, its enhanced class matches its code, and no two are the same', () => {
  const seen = new Map<string, string>();
  for (const c of CODES) {
    const s = catalogueEntry(c).smtp;
    if (!s) continue;
    assert.ok(s.code >= 400 && s.code <= 599, `${c}: ${s.code} is a 4xx or 5xx`);
    assert.match(s.enhanced, /^[45]\.\d{1,3}\.\d{1,3}$/, `${c}: enhanced status code`);
    assert.equal(s.enhanced[0], String(s.code)[0], `${c}: ${s.code} with ${s.enhanced}: a 4xx takes 4.x.x, a 5xx 5.x.x`);
    assert.match(s.text, /^[\x20-\x7e]+$/, `${c}: printable ASCII, one line`);
    const key = `${s.code} ${s.enhanced} ${s.text}`;
    assert.ok(!seen.has(key), `${c} repeats the reply of ${seen.get(key)}`);
    seen.set(key, c);
  }
});

test('error catalogue: the replies are byte for byte the ones clients have always had', () => {
  const replies: Record<ReplyCode, string> = {
    MV_CLIENT_REJECTED: '554 5.7.1 Client host rejected: access denied',
    MV_TOO_BIG: '552 5.3.4 Message size exceeds fixed limit',
    MV_HEADER_TOO_LARGE: '552 5.3.4 Message header size exceeds limit',
    MV_NEXT_HOP_DOWN: '451 4.4.1 Next hop unavailable, try again later',
    MV_NEXT_HOP_TIMEOUT: '451 4.4.2 Next hop timed out, try again later',
    MV_NEXT_HOP_LOST: '451 4.4.2 Next hop connection lost, try again later',
    // Followed by ': ' and the next hop's reply; its own 4.x.x code replaces 4.4.0 (lifecycle test).
    MV_NEXT_HOP_DEFERRED: '451 4.4.0 Next hop deferred the message',
    MV_INTERNAL: '451 4.3.0 Internal error while filtering, try again later',
    MV_NO_SPACE: '452 4.3.1 Insufficient system storage, try again later',
    MV_CLIENT_TIMEOUT: '421 4.4.2 Error: timeout exceeded',
    MV_ENVELOPE_SYNTAX: '501 5.5.2 Syntax error: control character in command',
    MV_SMTPUTF8_REQUIRED: '553 5.6.7 SMTPUTF8 is required, but was not offered by the next hop',
    MV_SHUTTING_DOWN: '421 4.3.2 Service shutting down, try again later',
    MV_POLICY_REJECT: '550 5.7.1 Message blocked by data-protection policy',
    MV_POLICY_TEMPFAIL: '451 4.7.1 Message deferred by data-protection policy',
    MV_QUARANTINE_UNAVAILABLE: '451 4.3.0 Quarantine is not available, try again later',
    MV_TLS_ENCRYPT_NOT_OFFERED: '451 4.7.4 Next hop does not offer STARTTLS, which TLS policy requires, try again later',
    MV_TLS_ENCRYPT_FAILED: '451 4.7.4 TLS handshake with next hop failed, try again later',
    MV_TLS_NOT_OFFERED: '451 4.7.5 Next hop does not offer STARTTLS, which TLS policy requires, try again later',
    MV_TLS_FAILED: '451 4.7.5 TLS handshake with next hop failed, try again later',
    MV_TLS_CERT_UNTRUSTED: '451 4.7.5 Next hop TLS certificate not trusted, try again later',
    MV_TLS_CERT_EXPIRED: '451 4.7.5 Next hop TLS certificate expired, try again later',
    MV_TLS_CERT_MISMATCH: '451 4.7.5 Next hop TLS certificate does not match its name, try again later',
    MV_TLS_DANE_FAILED: '451 4.7.5 DANE authentication of the next hop failed, try again later',
    MV_MX_NULL: '556 5.1.10 Recipient domain does not accept mail (null MX)',
    MV_MX_NO_DOMAIN: '550 5.4.4 Recipient domain not found',
    MV_MX_DNS: '451 4.4.3 DNS lookup for the recipient domain failed, try again later',
    MV_MX_TLS_POLICY: '451 4.7.5 No MX host of the recipient domain meets its TLS policy, try again later',
    MV_MX_UNREACHABLE: '451 4.4.1 No MX host of the recipient domain answered, try again later',
    MV_MX_BUSY: '451 4.4.5 Too many deliveries to the recipient domain at once, try again later',
    MV_MX_ONE_DOMAIN: '452 4.5.3 One recipient domain per transaction, send the rest in a new one',
    MV_TLS_REQUIRED_DEFER: '451 4.7.5 Verified TLS to the next hop is required for this message and not available, try again later',
    MV_TLS_REQUIRED_BOUNCE: '550 5.7.10 REQUIRETLS support required: no verified TLS path to the next hop for this message',
  };
  assert.deepEqual(CODES.filter((c) => catalogueEntry(c).smtp).sort(), Object.keys(replies).sort(), 'a new reply is added here on purpose');
  for (const [c, want] of Object.entries(replies) as [ReplyCode, string][]) {
    const r = smtpReplyOf(c);
    assert.equal(`${r.code} ${r.text}`, want, c);
    const e = replyError(c);
    assert.equal(`${e.responseCode} ${e.message}`, want, `${c} through replyError`);
  }
});

test('error catalogue: statuses and exit codes are in range; only usage exits 2', () => {
  for (const c of CODES) {
    const e = catalogueEntry(c);
    assert.ok(e.http >= 400 && e.http <= 599, `${c}: http ${e.http}`);
    assert.ok(e.exit === 1 || e.exit === 2, `${c}: exit ${e.exit}`);
    assert.equal(e.exit === 2, c === 'MV_USAGE', `${c}: exit ${e.exit}`);
    assert.ok(e.summary.length > 10 && !e.summary.includes('\n'), `${c}: a one-line summary`);
  }
});

test('error catalogue: every code is used somewhere in src/ besides the catalogue', () => {
  const others = FILES.filter((f) => f.name !== join('src', 'errors.ts'));
  const unused = CODES.filter((c) => !others.some((f) => f.text.includes(`'${c}'`)));
  assert.deepEqual(unused, [], 'codes no source file gives (remove them, or use them)');
});

test('error catalogue: every MV_ code written in src/ is in the catalogue', () => {
  const unknown = new Set<string>();
  for (const f of FILES) for (const m of f.text.matchAll(/'(MV_[A-Z0-9_]+)'/g)) if (!isMvCode(m[1])) unknown.add(`${f.name}: ${m[1]}`);
  assert.deepEqual([...unknown], []);
});

test('error catalogue: every error class carries a catalogue code', () => {
  const rule = { id: 'r' } as RuleDefinition;
  const kinds: ReleaseFailure[] = ['no_envelope', 'busy', 'next_hop', 'refused', 'corrupt', 'cleanup', 'rewrite'];
  const instances: Record<string, Error[]> = {
    AccessError: [new AccessError('m', '/p', 'EACCES')],
    AdminConfigError: [new AdminConfigError('m')],
    AdminTokenError: [new AdminTokenError('m')],
    AuditError: [new AuditError('m')],
    ConfigError: [new ConfigError('m')],
    DnsError: [new DnsError('timeout', 'm')],
    EnvelopeError: [new EnvelopeError('MV_SMTPUTF8_REQUIRED')],
    HeaderTooLargeError: [new HeaderTooLargeError('m')],
    HttpError: [new HttpError('MV_API_BAD_REQUEST', 'm')],
    NextHopError: [new NextHopError('connect', 'm')],
    PatternError: [new PatternError(rule, 'pattern', 'm')],
    QuarantineError: [new QuarantineError('MV_QUARANTINE_CORRUPT', 'm')],
    RedactionError: [new RedactionError('m')],
    ReleaseError: kinds.map((k) => new ReleaseError(k, 'm')),
    ReleaseRewriteError: [new ReleaseRewriteError('m')],
    RuleSetError: [new RuleSetError([{ file: 'f', message: 'm' }])],
    SarError: [new SarError('m')],
    StateDirError: [new StateDirError('m'), new StateDirError('m', 'MV_STATE_DIR_FOREIGN')],
    TlsRptRequestError: [new TlsRptRequestError('m')],
    UserError: [new UserError('m')],
  };
  const declared = FILES.flatMap((f) => [...f.text.matchAll(/export class (\w+Error) extends Error/g)].map((m) => m[1])).sort();
  assert.deepEqual(Object.keys(instances).sort(), declared, 'a new error class is added to this table, with its code');
  for (const [name, list] of Object.entries(instances)) for (const e of list) assert.ok(codeOf(e), `${name}: code ${(e as { code?: unknown }).code} is in the catalogue`);
  const releaseCodes = instances.ReleaseError.map(codeOf);
  assert.equal(new Set(releaseCodes).size, kinds.length, 'each release failure has its own code');
});

test('error catalogue: the mappers read the catalogue, and anything else is a 500 / exit 1 with a stack', () => {
  assert.equal(httpStatusOf(new QuarantineError('MV_QUARANTINE_BAD_ID', 'm')), 400);
  assert.equal(httpStatusOf(new QuarantineError('MV_QUARANTINE_NOT_FOUND', 'm')), 404);
  assert.equal(httpStatusOf(new QuarantineError('MV_QUARANTINE_CORRUPT', 'm')), 500);
  assert.equal(httpStatusOf(new ReleaseError('busy', 'm')), 409);
  assert.equal(httpStatusOf(new ReleaseError('no_envelope', 'm')), 409);
  assert.equal(httpStatusOf(new ReleaseError('rewrite', 'm')), 409);
  assert.equal(httpStatusOf(new ReleaseError('refused', 'm')), 502);
  assert.equal(httpStatusOf(new ReleaseError('next_hop', 'm')), 502);
  assert.equal(httpStatusOf(new ReleaseError('corrupt', 'm')), 500);
  assert.equal(httpStatusOf(new SarError('m')), 409);
  assert.equal(new HttpError('MV_API_BODY_TOO_LARGE', 'm').status, 413);
  assert.equal(new HttpError('MV_API_UNAUTHORIZED', 'm').status, 401);
  // A Node fs error's code is not a catalogue code.
  const enoent = Object.assign(new Error('m'), { code: 'ENOENT' });
  for (const e of [enoent, new Error('m'), null, undefined, 'text']) {
    assert.equal(codeOf(e), undefined);
    assert.equal(httpStatusOf(e), 500);
    assert.equal(exitCodeOf(e), 1);
    assert.equal(isOperatorError(e), false);
  }
  // One line: config, access and user errors, and the errors of the stores an operator works on (quarantine,
  // release, audit, subject-access export), whose messages say what to do; everything else keeps its stack.
  const line = CODES.filter((c) => catalogueEntry(c).line).sort();
  const stores = CODES.filter((c) => (/^MV_(QUARANTINE|RELEASE)_/.test(c) && c !== 'MV_QUARANTINE_UNAVAILABLE') || c.startsWith('MV_SAR') || c === 'MV_AUDIT');
  assert.deepEqual(line, [...['MV_ACCESS', 'MV_ADMIN_BIND', 'MV_ADMIN_TOKEN', 'MV_CONFIG', 'MV_STATE_DIR', 'MV_STATE_DIR_FOREIGN', 'MV_USAGE', 'MV_USER'], ...stores].sort());
  for (const e of [new ConfigError('m'), new StateDirError('m'), new AdminConfigError('m'), new AdminTokenError('m'), new UserError('m'), new AccessError('m', '/p', 'EACCES')]) {
    assert.ok(isOperatorError(e), e.constructor.name);
    assert.equal(exitCodeOf(e), 1);
  }
  assert.equal(isOperatorError(new RuleSetError([])), false);
});
