/*
 * The RFC 8460 report (src/tlsrpt/report.ts), validated with ajv against a
 * JSON Schema transcribed from RFC 8460 section 4.4
 * (test/fixtures/tlsrpt/rfc8460-report.schema.json): success only,
 * failures only, mixed, DANE and MTA-STS policies, no-policy-found, the
 * failure-row cap, and what a report must never carry (a user's address).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DayCounts, MAX_FAILURE_ROWS, normalise } from '../../src/tlsrpt/counts';
import { buildReport, reportDomains, type Rfc8460Report } from '../../src/tlsrpt/report';
import type { ResultType, TlsRptRecord } from '../../src/tlsrpt/types';
import type { TlsRptFailureType } from '../../src/mta-sts/types';
import type { DaneFailure } from '../../src/tls/dane';
import { validateRfc8460 } from '../helpers/rfc8460-schema';

// The failure types the DANE and MTA-STS code give are result types of the report.
const _sts: ResultType = '' as TlsRptFailureType;
const _dane: ResultType = '' as DaneFailure;
void _sts;
void _dane;

const validate = validateRfc8460;

function assertValid(report: unknown): void {
  const ok = validate(report);
  assert.ok(ok, JSON.stringify(validate.errors, null, 2));
}

const DAY = '2026-01-31';
const ID = { organization: 'Example Org', contact: 'tlsrpt@ours.example', reporter: 'mx-out.ours.example' };
const STS = { type: 'sts' as const, strings: ['version: STSv1', 'mode: enforce', 'mx: *.mail.company-y.example', 'max_age: 86400'], mxHosts: ['*.mail.company-y.example'] };
const TLSA = { type: 'tlsa' as const, strings: ['3 1 1 1f850a337e6db9c609c522d136a475638cc43e1ed424f8eec8513d747d1d085d'], mxHosts: ['mx1.dane.example'] };
const NONE = { type: 'no-policy-found' as const, strings: [], mxHosts: [] };

function counts(records: Omit<TlsRptRecord, 'day'>[], times = 1): DayCounts {
  const c = new DayCounts(DAY);
  for (const r of records) {
    const n = normalise({ ...r, day: DAY }, new Date());
    for (let i = 0; i < times; i++) c.add(n.domain, n.policy, n.failure);
  }
  return c;
}

function report(c: DayCounts, domain: string): Rfc8460Report {
  const r = buildReport(c, domain, ID);
  assert.ok(r, `a report for ${domain}`);
  assertValid(r);
  return r;
}

test('the schema accepts RFC 8460 Appendix B\'s example and refuses a misspelt key or an unknown result type', () => {
  const example = {
    'organization-name': 'Company-X',
    'date-range': { 'start-datetime': '2016-04-01T00:00:00Z', 'end-datetime': '2016-04-01T23:59:59Z' },
    'contact-info': 'sts-reporting@company-x.example',
    'report-id': '5065427c-23d3-47ca-b6e0-946ea0e8c4be',
    policies: [
      {
        policy: { 'policy-type': 'sts', 'policy-string': ['version: STSv1', 'mode: testing', 'mx: *.mail.company-y.example', 'max_age: 86400'], 'policy-domain': 'company-y.example', 'mx-host': ['*.mail.company-y.example'] },
        summary: { 'total-successful-session-count': 5326, 'total-failure-session-count': 303 },
        'failure-details': [
          { 'result-type': 'certificate-expired', 'sending-mta-ip': '2001:db8:abcd:12::1', 'receiving-mx-hostname': 'mx1.mail.company-y.example', 'failed-session-count': 100 },
          { 'result-type': 'starttls-not-supported', 'sending-mta-ip': '2001:db8:abcd:13::1', 'receiving-mx-hostname': 'mx2.mail.company-y.example', 'receiving-ip': '203.0.113.56', 'failed-session-count': 200, 'additional-information': 'https://reports.company-x.example/report_info?id=5065427c-23d3#StarttlsNotSupported' },
          { 'result-type': 'validation-failure', 'sending-mta-ip': '198.51.100.62', 'receiving-ip': '203.0.113.58', 'receiving-mx-hostname': 'mx-backup.mail.company-y.example', 'failed-session-count': 3, 'failure-reason-code': 'X509_V_ERR_PROXY_PATH_LENGTH_EXCEEDED' },
        ],
      },
    ],
  };
  assertValid(example);
  const misspelt = structuredClone(example) as Record<string, unknown>;
  misspelt['organisation-name'] = misspelt['organization-name'];
  delete misspelt['organization-name'];
  assert.equal(validate(misspelt), false);
  const badType = structuredClone(example);
  (badType.policies[0]['failure-details'][0] as Record<string, unknown>)['result-type'] = 'certificate-revoked';
  assert.equal(validate(badType), false);
  const notIp = structuredClone(example);
  notIp.policies[0]['failure-details'][0]['sending-mta-ip'] = 'mx.example';
  assert.equal(validate(notIp), false);
});

test('success only, MTA-STS: the summary, no failure-details; date-range, report-id, who reports', () => {
  const c = counts([{ policyDomain: 'company-y.example', policy: STS, result: 'success' }], 7);
  const r = report(c, 'company-y.example');
  assert.deepEqual(r, {
    'organization-name': 'Example Org',
    'date-range': { 'start-datetime': '2026-01-31T00:00:00Z', 'end-datetime': '2026-01-31T23:59:59Z' },
    'contact-info': 'tlsrpt@ours.example',
    'report-id': '2026-01-31T00:00:00Z_company-y.example@mx-out.ours.example',
    policies: [
      {
        policy: { 'policy-type': 'sts', 'policy-string': STS.strings, 'policy-domain': 'company-y.example', 'mx-host': ['*.mail.company-y.example'] },
        summary: { 'total-successful-session-count': 7, 'total-failure-session-count': 0 },
      },
    ],
  });
  // The JSON key order is the RFC's.
  assert.deepEqual(Object.keys(r), ['organization-name', 'date-range', 'contact-info', 'report-id', 'policies']);
});

test('failures only, DANE: one failure-detail per distinct session, most sessions first', () => {
  const fail = (type: ResultType, ip: string) => ({ policyDomain: 'dane.example', policy: TLSA, result: { type, sendingMtaIp: '192.0.2.10', receivingMxHostname: 'MX1.dane.example.', receivingMxHelo: 'mx1.dane.example', receivingIp: ip, failureReasonCode: 'tlsa: no usable record matched' } });
  const c = counts([fail('tlsa-invalid', '198.51.100.1'), fail('tlsa-invalid', '198.51.100.1'), fail('dnssec-invalid', '2001:DB8:0:0::25'), fail('tlsa-invalid', '198.51.100.1')]);
  const r = report(c, 'dane.example');
  const p = r.policies[0];
  assert.deepEqual(p.policy, { 'policy-type': 'tlsa', 'policy-string': TLSA.strings, 'policy-domain': 'dane.example', 'mx-host': ['mx1.dane.example'] });
  assert.deepEqual(p.summary, { 'total-successful-session-count': 0, 'total-failure-session-count': 4 });
  assert.deepEqual(p['failure-details'], [
    { 'result-type': 'tlsa-invalid', 'sending-mta-ip': '192.0.2.10', 'receiving-mx-hostname': 'mx1.dane.example', 'receiving-mx-helo': 'mx1.dane.example', 'receiving-ip': '198.51.100.1', 'failed-session-count': 3, 'failure-reason-code': 'tlsa: no usable record matched' },
    { 'result-type': 'dnssec-invalid', 'sending-mta-ip': '192.0.2.10', 'receiving-mx-hostname': 'mx1.dane.example', 'receiving-mx-helo': 'mx1.dane.example', 'receiving-ip': '2001:db8::25', 'failed-session-count': 1, 'failure-reason-code': 'tlsa: no usable record matched' },
  ]);
});

test('mixed: DANE and MTA-STS policies of one domain are two entries of policies[], each with its own counts', () => {
  const c = counts([
    { policyDomain: 'mixed.example', policy: STS, result: 'success' },
    { policyDomain: 'mixed.example', policy: STS, result: { type: 'certificate-expired', sendingMtaIp: '192.0.2.10', receivingMxHostname: 'mx2.mail.company-y.example', receivingIp: '203.0.113.56' } },
    { policyDomain: 'mixed.example', policy: TLSA, result: 'success' },
    { policyDomain: 'mixed.example', policy: TLSA, result: 'success' },
    // An MTA-STS fetch failure reaches no MX: only the result type.
    { policyDomain: 'mixed.example', policy: NONE, result: { type: 'sts-policy-fetch-error' } },
  ]);
  const r = report(c, 'mixed.example');
  const byType = Object.fromEntries(r.policies.map((p) => [p.policy['policy-type'], p]));
  assert.equal(r.policies.length, 3);
  assert.deepEqual(byType.sts.summary, { 'total-successful-session-count': 1, 'total-failure-session-count': 1 });
  assert.deepEqual(byType.tlsa.summary, { 'total-successful-session-count': 2, 'total-failure-session-count': 0 });
  assert.equal(byType.tlsa['failure-details'], undefined);
  assert.deepEqual(byType['no-policy-found']['failure-details'], [{ 'result-type': 'sts-policy-fetch-error', 'failed-session-count': 1 }]);
});

test('no-policy-found: no policy-string, no mx-host', () => {
  const c = counts([{ policyDomain: 'plain.example', policy: NONE, result: 'success' }, { policyDomain: 'plain.example', policy: NONE, result: { type: 'starttls-not-supported', sendingMtaIp: '192.0.2.10', receivingMxHostname: 'mx.plain.example', receivingIp: '203.0.113.9' } }]);
  const r = report(c, 'plain.example');
  assert.deepEqual(r.policies[0].policy, { 'policy-type': 'no-policy-found', 'policy-domain': 'plain.example' });
  assert.deepEqual(r.policies[0].summary, { 'total-successful-session-count': 1, 'total-failure-session-count': 1 });
});

test(`past ${MAX_FAILURE_ROWS} distinct failure details a domain's sessions go to a row per result type; the totals stay exact`, () => {
  const recs: Omit<TlsRptRecord, 'day'>[] = [];
  for (let i = 0; i < MAX_FAILURE_ROWS + 20; i++) {
    recs.push({ policyDomain: 'many.example', policy: STS, result: { type: i % 2 ? 'certificate-expired' : 'validation-failure', sendingMtaIp: '192.0.2.10', receivingMxHostname: `mx${i}.many.example`, receivingIp: `203.0.113.${i % 250}` } });
  }
  const c = counts(recs);
  const r = report(c, 'many.example');
  const details = r.policies[0]['failure-details']!;
  assert.equal(details.length, MAX_FAILURE_ROWS + 2);
  assert.deepEqual(details.slice(-2), [
    { 'result-type': 'certificate-expired', 'failed-session-count': 10 },
    { 'result-type': 'validation-failure', 'failed-session-count': 10 },
  ]);
  assert.equal(r.policies[0].summary['total-failure-session-count'], MAX_FAILURE_ROWS + 20);
  assert.equal(details.reduce((n, d) => n + d['failed-session-count'], 0), MAX_FAILURE_ROWS + 20);
});

test('a report never carries a user address: address-like text in the HELO or failure code is scrubbed', () => {
  const c = counts([
    {
      policyDomain: 'leaky.example',
      policy: STS,
      result: { type: 'validation-failure', sendingMtaIp: '::ffff:192.0.2.10', receivingMxHostname: 'mx.leaky.example', receivingMxHelo: 'mx.leaky.example hello <alice@leaky.example>', receivingIp: '203.0.113.7', failureReasonCode: '550 5.1.1 <bob.smith@leaky.example>: unknown\r\nX' },
    },
  ]);
  const r = report(c, 'leaky.example');
  const text = JSON.stringify(r.policies);
  assert.doesNotMatch(text, /@|alice|bob\.smith/);
  const d = r.policies[0]['failure-details']![0];
  assert.equal(d['receiving-mx-helo'], 'mx.leaky.example hello <[address]>');
  assert.equal(d['failure-reason-code'], '550 5.1.1 <[address]>: unknown  X');
  assert.equal(d['sending-mta-ip'], '192.0.2.10', 'an IPv4-mapped address is reported as IPv4');
});

test('IDN policy domains are reported as A-labels; reportDomains lists domains with sessions, in order', () => {
  const c = counts([
    { policyDomain: 'bücher.example', policy: NONE, result: 'success' },
    { policyDomain: 'a.example', policy: NONE, result: 'success' },
  ]);
  assert.deepEqual(reportDomains(c), ['a.example', 'xn--bcher-kva.example']);
  assert.equal(report(c, 'xn--bcher-kva.example').policies[0].policy['policy-domain'], 'xn--bcher-kva.example');
  assert.equal(buildReport(c, 'nothing.example', ID), undefined);
});

test('invalid input is a TypeError naming the field (a bug in the caller), never a silent count', () => {
  const ok: TlsRptRecord = { policyDomain: 'x.example', policy: NONE, result: 'success' };
  const now = new Date();
  assert.throws(() => normalise({ ...ok, day: '2026-02-30' }, now), /invalid day/);
  assert.throws(() => normalise({ ...ok, policyDomain: 'user@x.example' }, now), /invalid policyDomain/);
  assert.throws(() => normalise({ ...ok, policy: { ...NONE, type: 'dane' as never } }, now), /invalid policy.type/);
  assert.throws(() => normalise({ ...ok, result: { type: 'oops' as never } }, now), /invalid result.type/);
  assert.throws(() => normalise({ ...ok, result: { type: 'validation-failure', receivingIp: 'mx.example' } }, now), /invalid result.receivingIp/);
  assert.equal(normalise({ ...ok, day: new Date('2026-01-31T23:59:59.999Z') }, now).day, '2026-01-31');
});
