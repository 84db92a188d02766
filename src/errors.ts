/*
 * The one error catalogue (after fastify's lib/errors.js): every stable
 * `MV_*` code mailveil gives, and what it means on each surface.
 *
 *  - smtp: the reply a client gets when mailveil makes the reply up itself
 *    (RFC 5321 code, RFC 3463 enhanced status code, text). Replies never
 *    carry a matched value, an address or a host name. A next hop's own
 *    refusal is passed back as it came, and has no entry here.
 *  - http: the admin API's status for the error.
 *  - exit: the CLI's exit status; `line` says the operator fixes it, so the
 *    CLI prints one line (the message) instead of "internal error" and a
 *    stack.
 *
 * The SMTP side (smtp/errors.ts), the admin API (admin/routes.ts,
 * admin/server.ts) and the CLI (cli/main.ts) all read this table, so a code
 * means the same everywhere. This file is the lowest layer: it imports
 * nothing from src/. test/unit/error-catalogue.test.ts checks that no code
 * is listed twice and that each is used; test/unit/readme-coverage.test.ts
 * that README.md lists each.
 */

export interface SmtpReplySpec {
  code: number;
  /** RFC 3463: its class digit is the reply code's first digit. */
  enhanced: string;
  text: string;
}

export interface CatalogueEntry {
  /** One line for the README table: when the code is given. */
  summary: string;
  smtp?: SmtpReplySpec;
  http: number;
  exit: number;
  /** True: the operator's to fix; the CLI prints the message alone. */
  line: boolean;
}

const USAGE = 2;
const FAIL = 1;

/** Fields every entry without a client-visible reply shares. */
const internal = { http: 500, exit: FAIL, line: false } as const;
/** An error of the stores an operator works on (quarantine, release, audit, export): the message says what to do, so one line. */
const operator = { http: 500, exit: FAIL, line: true } as const;
/** An SMTP-only reply: through the API or CLI it could only be a bug. */
const reply = (code: number, enhanced: string, text: string) => ({ smtp: { code, enhanced, text }, ...internal });

export const CATALOGUE = {
  // Replies mailveil makes up on the SMTP side (reply text byte-identical to
  // what clients and tests have always seen).
  MV_CLIENT_REJECTED: { summary: 'the client address is not in `clients`', ...reply(554, '5.7.1', 'Client host rejected: access denied') },
  MV_TOO_BIG: { summary: 'the message is over `limits.max_message_size` (SIZE, enforced during DATA)', ...reply(552, '5.3.4', 'Message size exceeds fixed limit') },
  MV_HEADER_TOO_LARGE: {
    summary: 'the header section is over `limits.max_header_size`; it cannot be anonymised whole (a release of such a message fails with MV_RELEASE_REWRITE)',
    ...reply(552, '5.3.4', 'Message header size exceeds limit'),
  },
  MV_NEXT_HOP_DOWN: { summary: 'the next hop refused the connection', ...reply(451, '4.4.1', 'Next hop unavailable, try again later') },
  MV_NEXT_HOP_TIMEOUT: { summary: 'the next hop did not answer in time', ...reply(451, '4.4.2', 'Next hop timed out, try again later') },
  // The next hop's own 4xx (or a reply that makes no sense) after the dot: its reply is appended after a colon, and its enhanced code replaces 4.4.0 when it has a 4.x.x one.
  MV_NEXT_HOP_DEFERRED: { summary: "the next hop deferred the message (its reply follows the text); the client keeps it and retries", ...reply(451, '4.4.0', 'Next hop deferred the message') },
  MV_NEXT_HOP_LOST: { summary: 'the next-hop connection failed or closed mid-transaction', ...reply(451, '4.4.2', 'Next hop connection lost, try again later') },
  MV_INTERNAL: { summary: 'anything unexpected while filtering (a bug): the client retries', ...reply(451, '4.3.0', 'Internal error while filtering, try again later') },
  MV_NO_SPACE: { summary: 'the spool or quarantine file system is full (ENOSPC, EDQUOT)', ...reply(452, '4.3.1', 'Insufficient system storage, try again later') },
  MV_CLIENT_TIMEOUT: { summary: 'the client sent DATA slower than `timeouts.client_min_data_rate` once `timeouts.client_idle` had passed', ...reply(421, '4.4.2', 'Error: timeout exceeded') },
  MV_ENVELOPE_SYNTAX: { summary: 'a control character in MAIL FROM or RCPT TO', ...reply(501, '5.5.2', 'Syntax error: control character in command') },
  MV_SMTPUTF8_REQUIRED: { summary: 'the message needs SMTPUTF8 and the next hop does not offer it', ...reply(553, '5.6.7', 'SMTPUTF8 is required, but was not offered by the next hop') },
  MV_SHUTTING_DOWN: { summary: 'mailveil is draining (SIGTERM): idle sessions, new MAIL, and what is still open at `timeouts.drain`', ...reply(421, '4.3.2', 'Service shutting down, try again later') },
  MV_POLICY_REJECT: { summary: 'a `reject` rule fired (the rule may give its own reply)', ...reply(550, '5.7.1', 'Message blocked by data-protection policy') },
  MV_POLICY_TEMPFAIL: { summary: 'a `tempfail` rule fired (the rule may give its own reply)', ...reply(451, '4.7.1', 'Message deferred by data-protection policy') },
  // The next hop's TLS does not meet tls.next_hop.level (smtp/next-hop-tls.ts): RFC 3463 4.7.4 at encrypt, 4.7.5 at verify/secure.
  MV_TLS_ENCRYPT_NOT_OFFERED: { summary: 'level encrypt: the next hop does not offer STARTTLS (RFC 8460 starttls-not-supported)', ...reply(451, '4.7.4', 'Next hop does not offer STARTTLS, which TLS policy requires, try again later') },
  MV_TLS_ENCRYPT_FAILED: { summary: 'level encrypt: the TLS handshake with the next hop failed (validation-failure)', ...reply(451, '4.7.4', 'TLS handshake with next hop failed, try again later') },
  MV_TLS_NOT_OFFERED: { summary: 'level verify or secure: the next hop does not offer STARTTLS (starttls-not-supported)', ...reply(451, '4.7.5', 'Next hop does not offer STARTTLS, which TLS policy requires, try again later') },
  MV_TLS_FAILED: { summary: 'level verify or secure: the TLS handshake with the next hop failed (validation-failure)', ...reply(451, '4.7.5', 'TLS handshake with next hop failed, try again later') },
  MV_TLS_CERT_UNTRUSTED: { summary: 'level verify or secure: the next hop\'s certificate chain does not lead to a trusted CA (certificate-not-trusted)', ...reply(451, '4.7.5', 'Next hop TLS certificate not trusted, try again later') },
  MV_TLS_CERT_EXPIRED: { summary: 'level verify or secure: the next hop\'s certificate has expired (certificate-expired)', ...reply(451, '4.7.5', 'Next hop TLS certificate expired, try again later') },
  MV_TLS_CERT_MISMATCH: { summary: 'level verify or secure: the next hop\'s certificate does not name `tls.next_hop.servername` or the next_hop host (certificate-host-mismatch)', ...reply(451, '4.7.5', 'Next hop TLS certificate does not match its name, try again later') },
  // A message that needs verified TLS (require_tls rule, REQUIRETLS) finds no verified path (tls.escalation_failure): RFC 8689 section 5.
  MV_MX_NULL: { summary: 'mx mode: the recipient domain publishes a null MX (RFC 7505): it takes no mail', ...reply(556, '5.1.10', 'Recipient domain does not accept mail (null MX)') },
  MV_MX_NO_DOMAIN: { summary: 'mx mode: the recipient domain does not exist, or has neither MX nor address records', ...reply(550, '5.4.4', 'Recipient domain not found') },
  MV_MX_DNS: { summary: 'mx mode: the MX or address lookup of the recipient domain failed for now (SERVFAIL, timeout)', ...reply(451, '4.4.3', 'DNS lookup for the recipient domain failed, try again later') },
  MV_MX_TLS_POLICY: { summary: 'mx mode: every MX host of the recipient domain is excluded by its TLS policy before connecting (bogus TLSA, dane-only without TLSA, MTA-STS enforce with no matching MX, an unreadable MTA-STS cache)', ...reply(451, '4.7.5', 'No MX host of the recipient domain meets its TLS policy, try again later') },
  MV_MX_UNREACHABLE: { summary: 'mx mode: no MX host of the recipient domain answered', ...reply(451, '4.4.1', 'No MX host of the recipient domain answered, try again later') },
  MV_MX_BUSY: { summary: 'mx mode: `delivery.destination_concurrency` transactions to the recipient domain are open and none was freed in time', ...reply(451, '4.4.5', 'Too many deliveries to the recipient domain at once, try again later') },
  MV_MX_ONE_DOMAIN: { summary: 'mx mode over SMTP: an RCPT for a second recipient domain in one transaction; the client sends it in a new one', ...reply(452, '4.5.3', 'One recipient domain per transaction, send the rest in a new one') },
  MV_TLS_DANE_FAILED: { summary: 'level dane or dane-only: the MX host\'s certificate matches none of its usable TLSA records, or its TLSA data is bogus (tlsa-invalid, dane-required)', ...reply(451, '4.7.5', 'DANE authentication of the next hop failed, try again later') },
  MV_TLS_REQUIRED_DEFER: { summary: 'verified TLS is required for the message (a `require_tls: verified` rule fired, or REQUIRETLS) and no verified path exists: `tls.escalation_failure: defer`', ...reply(451, '4.7.5', 'Verified TLS to the next hop is required for this message and not available, try again later') },
  MV_TLS_REQUIRED_BOUNCE: { summary: 'as MV_TLS_REQUIRED_DEFER with `tls.escalation_failure: bounce` (RFC 8689 5.7.10)', ...reply(550, '5.7.10', 'REQUIRETLS support required: no verified TLS path to the next hop for this message') },
  MV_QUARANTINE_UNAVAILABLE: { summary: 'a message to hold could not be written to the quarantine', ...reply(451, '4.3.0', 'Quarantine is not available, try again later') },

  // Configuration and the state directory: the operator's to fix.
  MV_USAGE: { summary: 'a command line commander cannot parse (unknown option, missing argument)', http: 400, exit: USAGE, line: true },
  MV_USER: { summary: 'a command given something it cannot act on (its message says what)', http: 400, exit: FAIL, line: true },
  MV_CONFIG: { summary: 'the config file or a flag is invalid: the message names the file, the key and the fix', http: 500, exit: FAIL, line: true },
  MV_ACCESS: { summary: 'a file mailveil needs cannot be used: no permission, read-only, full, or missing', http: 500, exit: FAIL, line: true },
  MV_STATE_DIR: { summary: '`state_dir` cannot be used: not a directory, missing, unreadable, or a marker this version cannot read', http: 500, exit: FAIL, line: true },
  MV_STATE_DIR_FOREIGN: { summary: '`state_dir` holds files mailveil did not create (`serve --init` adopts it)', http: 500, exit: FAIL, line: true },
  MV_ADMIN_BIND: { summary: '`admin` is not a loopback address and `admin_tls` is not set', http: 500, exit: FAIL, line: true },
  MV_ADMIN_TOKEN: { summary: '`state_dir/admin.token` cannot be created, or is not one line of 16+ characters', http: 500, exit: FAIL, line: true },
  MV_RULES: { summary: 'the rule set does not load: one `file:line:col: message` per error', ...internal },
  MV_RULE_PATTERN: { summary: 'one rule\'s pattern, detector, validator or replacement is invalid (reported through MV_RULES)', ...internal },

  // The admin API's own refusals.
  MV_API_BAD_REQUEST: { summary: 'an admin API request that is not valid JSON, or has a bad target', http: 400, exit: FAIL, line: false },
  MV_API_UNAUTHORIZED: { summary: 'an admin API request without the right bearer token', http: 401, exit: FAIL, line: false },
  MV_API_BODY_TOO_LARGE: { summary: 'an admin API request body over 64 KiB', http: 413, exit: FAIL, line: false },

  // The quarantine store.
  MV_QUARANTINE_BAD_ID: { summary: 'an entry id outside `[0-9A-Z]{1,64}`', http: 400, exit: FAIL, line: true },
  MV_QUARANTINE_NOT_FOUND: { summary: 'no quarantine entry has that id', http: 404, exit: FAIL, line: true },
  MV_QUARANTINE_EXISTS: { summary: 'an entry with that id is already stored (a bug: ids are unique)', ...operator },
  MV_QUARANTINE_CORRUPT: { summary: 'an entry fails to decrypt or parse (bad header, GCM tag, truncated file, metadata)', ...operator },
  MV_QUARANTINE_KEY_MISSING: { summary: 'an entry names a key id no key file provides', ...operator },
  MV_QUARANTINE_KEY_INVALID: { summary: 'a key file or the `current` key pointer is malformed (`keys rotate` repairs the pointer)', ...operator },
  MV_QUARANTINE_INVALID: { summary: 'a write to the quarantine breaks an invariant (a bug)', ...operator },

  // Releasing a held message (quarantine release, POST /api/quarantine/<id>/release).
  MV_RELEASE_BUSY: { summary: 'the entry is being released by another process', http: 409, exit: FAIL, line: true },
  MV_RELEASE_NO_ENVELOPE: { summary: 'the entry has no stored envelope or no recipients', http: 409, exit: FAIL, line: true },
  MV_RELEASE_NEXT_HOP: { summary: 'the next hop could not be reached, or failed during the release; the entry is kept', http: 502, exit: FAIL, line: true },
  MV_RELEASE_REFUSED: { summary: 'the next hop refused the released message; the entry is kept', http: 502, exit: FAIL, line: true },
  MV_RELEASE_CORRUPT: { summary: 'the entry could not be read during the release; nothing was delivered', ...operator },
  MV_RELEASE_CLEANUP: { summary: 'the message was released but removing the entry failed (`quarantine delete` it)', ...operator },
  MV_RELEASE_TLS_REQUIRED: {
    summary: 'the held message may leave only over verified TLS (a `require_tls: verified` rule fired, or REQUIRETLS) and there is no verified path: `tls.next_hop.level` is not verify/secure and `tls.secure_next_hop` is unset, fails verification, or lacks REQUIRETLS the message arrived with; nothing sent, the entry is kept',
    http: 409,
    exit: FAIL,
    line: true,
  },
  MV_RELEASE_REWRITE: { summary: 'the released message cannot be produced (redaction or header anonymisation cannot be applied); nothing sent', http: 409, exit: FAIL, line: true },

  // Everything else.
  MV_NEXT_HOP: { summary: 'a next-hop connection or command failed (its kind: connect, timeout, closed, ...); becomes MV_NEXT_HOP_* on the SMTP side', ...internal },
  MV_DNS: { summary: 'a DNS query got no usable answer from any server in `dns.servers` (timeout, refused, malformed), or a name is not a valid host name; delivery defers', ...internal },
  MV_REDACT: { summary: 'a value found in pass 1 cannot be removed: the message is quarantined (`redact_failed`), never delivered', ...internal },
  MV_AUDIT: { summary: 'the audit log cannot be written, or an event would hold an address', ...operator },
  MV_SAR_NOTHING_FOUND: { summary: 'a subject-access export found nothing for the address; the request is audited, no archive is made', http: 404, exit: FAIL, line: true },
  MV_SAR: { summary: 'a subject-access export cannot be written (the file exists, or the export is incomplete)', http: 409, exit: FAIL, line: true },
} as const satisfies Record<string, CatalogueEntry>;

export type MvCode = keyof typeof CATALOGUE;

/** The codes that have an SMTP reply: the only ones a client can be given. */
export type ReplyCode = { [K in MvCode]: (typeof CATALOGUE)[K] extends { smtp: SmtpReplySpec } ? K : never }[MvCode];

export function isMvCode(code: unknown): code is MvCode {
  return typeof code === 'string' && Object.hasOwn(CATALOGUE, code);
}

export function catalogueEntry(code: MvCode): CatalogueEntry {
  return CATALOGUE[code];
}

/** The catalogue code an error carries, if any (a Node fs error's `code` is not one). */
export function codeOf(err: unknown): MvCode | undefined {
  const code = (err as { code?: unknown } | null | undefined)?.code;
  return isMvCode(code) ? code : undefined;
}

/** The admin API status for an error: the catalogue's, or 500. */
export function httpStatusOf(err: unknown): number {
  const code = codeOf(err);
  return code ? CATALOGUE[code].http : 500;
}

/** The CLI exit status for an error: the catalogue's, or 1. */
export function exitCodeOf(err: unknown): number {
  const code = codeOf(err);
  return code ? CATALOGUE[code].exit : FAIL;
}

/** True when the CLI reports the error as its one-line message, without a stack. */
export function isOperatorError(err: unknown): boolean {
  const code = codeOf(err);
  return code !== undefined && CATALOGUE[code].line;
}

/** A code's reply: the SMTP code and the text after it ("4.3.2 Service ..."). */
export function smtpReplyOf(code: ReplyCode): { code: number; text: string } {
  const s = CATALOGUE[code].smtp;
  return { code: s.code, text: `${s.enhanced} ${s.text}` };
}
