/*
 * `mailveil gdpr report`: the record of processing activities (GDPR Art. 30)
 * for this instance, as Markdown, derived from the live config and rule set:
 * what is inspected, which actions keep data, where, how it is protected,
 * for how long, who can reach it, and where mail goes. What mailveil cannot
 * know (the controller, the legal basis, third-country transfers) is left
 * as "_to fill in_".
 *
 * Deterministic: the same config and rules give the same text, apart from
 * the one "Generated at" line, so it can be golden-tested and diffed between
 * reviews.
 */
import { isIP } from 'node:net';
import type { Config } from '../config/load';
import { formatEndpoint, type Endpoint } from '../config/address';
import { DETECTORS } from '../detectors';
import { DEFAULT_SCOPE } from '../rules/compile';
import { ACTIONS, type Action, type RuleDefinition, type RuleSet } from '../rules/types';
import { formatBytes, formatDuration } from './format';
import { SUBJECT_FIELD_LABELS } from './subjects';
import { adminTokenFile, auditDir, keysDir, pseudonymKeyFile, quarantineDir, spoolDir } from '../state-layout';

export interface ReportInput {
  config: Config;
  rules: RuleSet;
  version: string;
  generatedAt: Date;
  /** The config file read, if any. */
  configFile?: string;
}

const FILL = '_to fill in_';

const ACTION_EFFECT: Record<Action, { effect: string; keeps: string }> = {
  monitor: { effect: 'counted only (metrics, log line, audit event); delivered unchanged', keeps: 'no message data' },
  tag: { effect: 'delivered with the verdict header naming the rule', keeps: 'no message data' },
  redact: { effect: 'each matched value replaced in the delivered message', keeps: 'no message data (the original is not kept)' },
  quarantine: { effect: 'not delivered; the original is held for review', keeps: 'the whole original message, encrypted' },
  reject: { effect: 'refused with a 5xx reply; the sender is told', keeps: 'no message data' },
  tempfail: { effect: 'deferred with a 4xx reply; the sender retries', keeps: 'no message data' },
};

/** Retention in ms from the config, if it has the key (older configs do not). */
function retention(config: Config, key: 'quarantine' | 'audit'): number | undefined {
  const r = (config as unknown as Record<string, { retention?: unknown } | undefined>)[key]?.retention;
  return typeof r === 'number' ? r : undefined;
}

function code(s: string): string {
  return '`' + s.replace(/`/g, "'") + '`';
}

/** A table cell: no pipes or line breaks. */
function cell(s: string): string {
  return s.replace(/\|/g, '\\|').replace(/\s*\n\s*/g, ' ');
}

function isLoopback(e: Endpoint): boolean {
  return e.host === 'localhost' || (isIP(e.host) === 4 && e.host.startsWith('127.')) || e.host === '::1';
}

/** What a rule looks for: its own description (else the detector's), and the detector or pattern behind it. */
function detects(r: RuleDefinition): string {
  if (r.detector) {
    const d = DETECTORS.get(r.detector);
    return `${r.description ?? d?.description ?? 'built-in detector'} (${code(r.detector)})`;
  }
  return `${r.description ?? 'custom pattern'} (RE2 pattern${r.validator ? `, checked with ${code(r.validator)}` : ''})`;
}

function ruleRow(r: RuleDefinition): string {
  const scope = (r.scope ?? DEFAULT_SCOPE).join(', ');
  let action: string = r.action;
  if (r.action === 'redact' && r.replacement !== undefined) action += ` (with ${code(r.replacement)})`;
  const evidence = [`at least ${r.min_count ?? 1}`];
  if (r.keywords?.length) evidence.push(`with a keyword (${r.keywords.join(', ')}) within ${r.within ?? 'the detector default'} characters`);
  return `| ${cell(code(r.id))} | ${cell(detects(r))} | ${cell(scope)} | ${cell(action)} | ${cell(evidence.join(', '))} | ${r.source.layer ?? 'shipped'} |`;
}

function keptFor(ms: number | undefined, key: string, fallback: string): string {
  return ms !== undefined ? `${formatDuration(ms)} (${code(`${key}.retention`)})` : fallback;
}

export function gdprReport(i: ReportInput): string {
  const { config, rules } = i;
  const state = config.state_dir;
  const qRet = retention(config, 'quarantine');
  const aRet = retention(config, 'audit');
  const byAction = new Map<Action, RuleDefinition[]>();
  for (const a of ACTIONS) byAction.set(a, []);
  for (const r of rules.rules) byAction.get(r.action)!.push(r);
  const quarantining = byAction.get('quarantine')!;
  const holdsUnscannable = config.unscannable === 'quarantine';
  const quarantineUsed = quarantining.length > 0 || holdsUnscannable;
  const h = rules.headers;
  const L: string[] = [];
  const p = (...lines: string[]) => L.push(...lines);

  p(
    '# Record of processing activities: e-mail data-protection filter (mailveil)',
    '',
    'GDPR Art. 30(1). Derived from the live configuration and rule set of this mailveil instance.',
    `Items marked ${FILL} are the controller's to complete.`,
    '',
    `Generated at: ${i.generatedAt.toISOString()}`,
    '',
    '| | |',
    '|---|---|',
    `| Software | mailveil ${i.version} |`,
    `| Configuration | ${cell(i.configFile ? code(i.configFile) : 'built-in defaults (no config file)')} |`,
    `| Rules | ${cell(code(config.rules_dir))}: ${rules.files.length} ${rules.files.length === 1 ? 'file' : 'files'}, ${rules.rules.length} ${rules.rules.length === 1 ? 'rule' : 'rules'} |`,
    ...(rules.layers?.local.dir ? [`| Local rules | ${cell(code(rules.layers.local.dir))}: ${rules.layers.local.files.length} ${rules.layers.local.files.length === 1 ? 'file' : 'files'} (a rule here replaces the shipped rule of its id) |`] : []),
    `| State directory | ${cell(code(state))} |`,
    `| SMTP listener | ${code(formatEndpoint(config.listen))}, host name ${code(config.hostname)} |`,
    '',
    '## 1. Controller',
    '',
    `- Name and contact details of the controller: ${FILL}`,
    `- Joint controller, or representative in the Union (Art. 27), if any: ${FILL}`,
    `- Data protection officer and contact: ${FILL}`,
    `- Team operating this mail relay: ${FILL}`,
    '',
    '## 2. Purposes of the processing',
    '',
    '1. Preventing personal data and credentials from leaving by e-mail without need: data loss prevention (integrity and confidentiality, Art. 5(1)(f); security of processing, Art. 32).',
    '2. Data minimisation in message headers: internal host names, client addresses and client software are removed or pseudonymised before mail leaves (Art. 5(1)(c), Art. 25).',
    '3. Holding messages that a rule or an incomplete inspection flags, for review by an administrator, instead of delivering them.',
    '4. Accountability: an audit trail of decisions and administrative actions (Art. 5(2)).',
    '5. Answering data subject requests for access (Art. 15) and erasure (Art. 17).',
    '',
    `Legal basis (Art. 6): ${FILL} (commonly Art. 6(1)(f), a legitimate interest in the security of processing, or Art. 6(1)(c), a legal obligation).`,
    '',
    '## 3. Categories of data subjects',
    '',
    '- Senders and recipients of e-mail passing through this relay (staff, customers, correspondents).',
    '- People named in or identified by the content of those messages.',
    '',
    '## 4. Categories of personal data',
    '',
    '### 4.1 Read for every message',
    '',
    '- Envelope: sender and recipient addresses; the connecting client\'s IP address and host name (XFORWARD).',
    '- The whole message (headers, body, attachments), read once to inspect it: in memory, or in an encrypted spool file for large messages.',
    '',
    '### 4.2 Looked for by the rules',
    '',
  );
  if (rules.rules.length) {
    p('| Rule | Detects | Where it looks | Action | Counts when | Layer |', '|---|---|---|---|---|---|', ...rules.rules.map(ruleRow), '');
    const off = rules.disabled ?? [];
    if (off.length) p(`Switched off (\`enabled: false\`): ${off.map((d) => `${code(d.id)} (${d.source.layer ?? 'shipped'})`).join(', ')}.`, '');
  } else {
    p('The rule set has no rules: content is not inspected for personal data.', '');
  }
  p('Detectors in use, by action:', '');
  for (const a of ACTIONS) {
    const list = byAction.get(a)!;
    if (!list.length) continue;
    const names = [...new Set(list.map((r) => (r.detector ? code(r.detector) : `custom pattern (${code(r.id)})`)))];
    p(`- ${a}: ${names.join(', ')}`);
  }
  if (!rules.rules.length) p('- none');
  p(
    '',
    `Special categories of data (Art. 9) and data on criminal convictions (Art. 10): ${FILL} (no rule looks for them as such; messages may still contain them).`,
    '',
    '### 4.3 Header anonymisation (data minimisation)',
    '',
    `- Header fields removed: ${h.remove.length ? h.remove.map(code).join(', ') : 'none'}`,
    `- ${code('Received')} fields: ${h.received}${
      h.received === 'pseudonymise'
        ? ' (hops from internal networks keep their place, their host names and IP addresses become keyed pseudonyms)'
        : h.received === 'strip-internal'
          ? ' (host names and IP addresses of internal hops are removed)'
          : ' (kept as received)'
    }`,
    `- Internal networks: ${h.internal_networks.length ? h.internal_networks.map(code).join(', ') : 'none'}`,
    `- Internal domains: ${h.internal_domains.length ? h.internal_domains.map(code).join(', ') : 'none'}`,
    `- Verdict header: ${config.verdict_header ? `${code(config.verdict_header)}, carrying the action and rule ids only` : 'switched off'}`,
    '',
    '### 4.4 Content that cannot be inspected',
    '',
    `Content that cannot be decoded or scanned completely is never treated as clean: it takes the action ${code(config.unscannable)}.`,
    `Limits: message ${formatBytes(config.limits.max_message_size)}, header ${formatBytes(config.limits.max_header_size)}, MIME depth ${config.limits.max_mime_depth}, ${config.limits.max_parts} parts.`,
    '',
    '## 5. What is kept, where, how it is protected, for how long',
    '',
    '### 5.1 By action',
    '',
    '| Action | Effect on the message | Message data kept | Rules |',
    '|---|---|---|---|',
  );
  for (const a of ACTIONS) {
    const ids = byAction.get(a)!.map((r) => code(r.id));
    if (a === config.unscannable) ids.push('content that cannot be inspected');
    p(`| ${a} | ${ACTION_EFFECT[a].effect} | ${ACTION_EFFECT[a].keeps} | ${ids.length ? ids.join(', ') : '-'} |`);
  }
  p(
    '',
    '### 5.2 Stores',
    '',
    '| Data | When | Where | Protection | Kept for |',
    '|---|---|---|---|---|',
    `| Held messages, with their envelope, rule hits (never the matched values) and a subject index of keyed pseudonyms | ${
      quarantineUsed
        ? cell([quarantining.length ? `rules ${quarantining.map((r) => code(r.id)).join(', ')}` : '', holdsUnscannable ? 'content that cannot be inspected' : ''].filter(Boolean).join('; '))
        : 'no rule currently quarantines'
    } | ${code(quarantineDir(state))} | AES-256-GCM, a key per entry (HKDF-SHA256) from a data key in ${code(keysDir(state))} (directory 0700, files 0600); metadata encrypted too | ${
      qRet !== undefined ? `at most ${keptFor(qRet, 'quarantine', '')}; less if released or deleted` : 'until released or deleted (no retention set)'
    } |`,
    `| Audit log: verdicts and administrative actions | every message and every admin action | ${code(auditDir(state))}, one file per day (0600) | identities are keyed pseudonyms (HMAC-SHA256), never addresses or matched values | ${aRet !== undefined ? `${keptFor(aRet, 'audit', '')}, in whole days` : 'until deleted (no retention set)'} |`,
    `| Spool | while a message is being handled | ${code(spoolDir(state))} | AES-256-GCM under a key that exists only in the process's memory | deleted once the message is handled; leftovers removed at start |`,
    `| Keys | always | ${code(pseudonymKeyFile(state))}, ${code(keysDir(state))}, ${code(adminTokenFile(state))} | files 0600 | until rotated; an old data key stays while an entry needs it |`,
    `| Operational log, one line per message | every message | standard output (JSON), then your log system | addresses and IP addresses pseudonymised; no matched values | ${FILL} (set by your log system) |`,
    '| Metrics | always | process memory, served on `/metrics` | no personal data: labels are verdict, rule id, action, stage | not stored by mailveil |',
    '',
    '## 6. Who can reach the data (recipients)',
    '',
    `- OS users who can read ${code(state)} (the service account and root), through the command line: ${code('mailveil quarantine')}, ${code('mailveil sar')}, ${code('mailveil keys')}.`,
    `- Admin API on ${code(formatEndpoint(config.admin))}${isLoopback(config.admin) ? ' (loopback only)' : ''}, under ${code('/api/')}: requests need the bearer token in ${code(adminTokenFile(state))} (0600); failed attempts are audited.`,
    `- Metrics endpoint ${code(formatEndpoint(config.metrics))}${isLoopback(config.metrics) ? ' (loopback only)' : ''}: ${code('/metrics')}, ${code('/healthz')}, ${code('/readyz')}, read-only, no personal data.`,
    '- The original recipients of a message an administrator releases, through the next hop.',
    `- Processors (hosting, backups of ${code(state)}): ${FILL}`,
    '',
    '## 7. Transfers',
    '',
    `- Every delivered or released message goes to the next hop ${code(formatEndpoint(config.next_hop))}, which delivers it to the recipients' mail servers, wherever they are.`,
    `- Transfers to third countries or international organisations (Art. 44-49), and their safeguards: ${FILL}`,
    '',
    '## 8. Technical and organisational measures (Art. 32)',
    '',
    `- Pseudonymised records: addresses and IP addresses in logs and the audit log are keyed HMAC-SHA256 pseudonyms; the key is ${code(pseudonymKeyFile(state))} (0600).`,
    '- Encryption at rest: held messages and their metadata are AES-256-GCM encrypted and authenticated; a tampered entry is refused.',
    `- Encryption in transit, inbound: ${
      config.inbound_tls ? `STARTTLS offered (certificate ${code(config.inbound_tls.cert)})` : 'STARTTLS not configured: clients reach the relay unencrypted, acceptable on loopback or a trusted network only'
    }.`,
    `- Access control: SMTP accepted only from ${config.clients.map(code).join(', ')}; the admin API requires a token; state files are readable by their owner only.`,
    `- Fail-closed inspection: content that cannot be decoded or scanned takes the action ${code(config.unscannable)}, and the reason is counted.`,
    '- No values in side channels: findings record rule, detector, count and position, never the matched value; replies, added headers, metrics and logs carry rule ids only.',
    '- Durability: a message is acknowledged only once delivered by the next hop or stored in quarantine and synced to disk.',
    `- Bounded retention: held messages ${keptFor(qRet, 'quarantine', 'not set')}, audit log ${keptFor(aRet, 'audit', 'not set')}; expired data is purged by ${code('mailveil serve')} on a timer and on demand (${code('mailveil quarantine purge')}), and every purge is audited.`,
    `- Further organisational measures (access reviews, training, backup encryption): ${FILL}`,
    '',
    '## 9. Data subject rights',
    '',
    `- Access (Art. 15): ${code('mailveil sar find ADDRESS')} lists a person's held messages and audit events; ${code('mailveil sar export ADDRESS --out FILE')} writes them to one archive.`,
    `- Erasure (Art. 17): ${code('mailveil sar erase ADDRESS')} deletes their held messages and erases their pseudonym from the audit log.`,
    `- A person is found by address: the envelope sender and recipients, and the ${SUBJECT_FIELD_LABELS.join(', ')} header fields, after normalisation (lower case, IDN domains in ASCII). A person with several addresses is searched once per address.`,
    '',
  );
  return L.join('\n');
}
