/*
 * What the quarantine knows about an entry besides the message itself, and
 * the checks it applies at both ends: put() refuses metadata that breaks the
 * shape (a caller bug fails loudly as a 4xx, never as an unreadable entry
 * later), and reading refuses decrypted JSON that does not fit it.
 *
 * Only the known fields are stored, rebuilt field by field: an extra property
 * a caller added by mistake (a finding's matched value, say) never reaches
 * disk, even encrypted (guarantee 6).
 */
import { QuarantineError } from './errors';

export interface QuarantineFinding {
  rule: string;
  detector: string;
  count: number;
  part: string;
  offset: number;
  /** Where the rule looked (subject, headers, body, attachments); absent in entries written before it was stored. */
  scope?: string;
}

/** SMTP parameters as the client gave them: name (upper case) to value, `true` for a bare keyword. */
export type SmtpParams = Record<string, string | true>;

/**
 * The envelope as received, so `quarantine release` can deliver the held
 * original exactly as it would have gone (guarantee 4). It holds addresses,
 * which is why it lives only in the encrypted metadata section; list() and
 * every summary leave it out.
 */
export interface QuarantineEnvelope {
  /** MAIL FROM address; '' for the null sender. */
  from: string;
  rcpts: string[];
  /** MAIL parameters (SIZE, BODY, SMTPUTF8, RET, ENVID). */
  params?: SmtpParams;
  /** RCPT parameters (NOTIFY, ORCPT), index-aligned with rcpts. */
  rcptParams?: SmtpParams[];
  /** XFORWARD attributes of the original client (NAME, ADDR, PORT, PROTO, HELO, IDENT, SOURCE); false = unavailable. */
  client?: Record<string, string | false>;
}

/**
 * The message may leave only over verified TLS (issue 10; RFC 8689), so a
 * release must keep to a verified path too. `why` in words, never values;
 * `esmtp`: REQUIRETLS came on MAIL FROM, so the hop must also advertise
 * REQUIRETLS (RFC 8689 section 4.2.1).
 */
export interface QuarantineTlsRequirement {
  why: 'rule' | 'requiretls';
  esmtp: boolean;
}

export interface QuarantineMeta {
  /** Given by the caller (mailveil's message id, [0-9A-Z]+). */
  id: string;
  /** ISO time. */
  receivedAt: string;
  /** Bytes of the original message. */
  size: number;
  /** 'quarantine' or e.g. 'unscannable'. */
  verdict: string;
  /** Rule ids that fired (never values). */
  rules: string[];
  /** Unscannable reasons, if any. */
  reasons: string[];
  /** Pseudonym of the envelope sender (already pseudonymised by the caller). */
  from: string;
  /** Pseudonyms of the recipients. */
  rcpts: string[];
  findings: QuarantineFinding[];
  /** Keyed-HMAC index of normalised addresses involved (for subject access later); opaque strings provided by the caller. */
  subjects: string[];
  /** The original envelope; absent in entries written before release existed (those cannot be released). */
  envelope?: QuarantineEnvelope;
  /** Set when the message needed verified TLS at hold time; absent otherwise, and in entries written before it was stored. */
  requireTls?: QuarantineTlsRequirement;
}

/** One readable entry in list(): the metadata minus findings, subjects and envelope, plus the key it is encrypted under. */
export interface QuarantineEntrySummary extends Omit<QuarantineMeta, 'findings' | 'subjects' | 'envelope'> {
  keyId: string;
  error?: undefined;
}

/** An entry list() could not read; listed so an operator sees it, instead of the listing failing. */
export interface QuarantineUnreadableEntry {
  id: string;
  /** One line: why (corrupt, key missing, ...). */
  error: string;
  /** The file's modification time, as receivedAt is unknown. */
  receivedAt: string;
  /** Bytes of the entry file. */
  fileSize: number;
  /** If the header could be read. */
  keyId?: string;
}

export type QuarantineSummary = QuarantineEntrySummary | QuarantineUnreadableEntry;

export const ENTRY_ID_RE = /^[0-9A-Z]{1,64}$/;

export function checkEntryId(id: unknown): string {
  if (typeof id !== 'string' || !ENTRY_ID_RE.test(id)) throw new QuarantineError('MV_QUARANTINE_BAD_ID', `invalid quarantine id ${JSON.stringify(id)}`);
  return id;
}

function fail(where: string, field: string): never {
  if (where === 'put') throw new QuarantineError('MV_QUARANTINE_INVALID', `quarantine metadata: ${field} is missing or has the wrong type`);
  throw new QuarantineError('MV_QUARANTINE_CORRUPT', `corrupt entry: metadata field ${field} is missing or has the wrong type`);
}

/**
 * A clean copy of `v` if it has the QuarantineMeta shape; otherwise throws
 * INVALID (where = 'put') or CORRUPT (where = 'read').
 */
export function checkMeta(v: unknown, where: 'put' | 'read'): QuarantineMeta {
  if (typeof v !== 'object' || v === null) fail(where, '(the whole object)');
  const o = v as Record<string, unknown>;
  const str = (k: string): string => (typeof o[k] === 'string' ? (o[k] as string) : fail(where, k));
  const strs = (k: string): string[] => {
    const a = o[k];
    return Array.isArray(a) && a.every((s) => typeof s === 'string') ? [...(a as string[])] : fail(where, k);
  };
  const nat = (x: unknown, k: string): number => (Number.isSafeInteger(x) && (x as number) >= 0 ? (x as number) : fail(where, k));
  if (typeof o.id !== 'string' || !ENTRY_ID_RE.test(o.id)) fail(where, 'id');
  const receivedAt = str('receivedAt');
  if (Number.isNaN(Date.parse(receivedAt))) fail(where, 'receivedAt');
  if (!Array.isArray(o.findings)) fail(where, 'findings');
  const findings = (o.findings as unknown[]).map((f, i): QuarantineFinding => {
    const r = (typeof f === 'object' && f !== null ? f : fail(where, `findings[${i}]`)) as Record<string, unknown>;
    const s = (k: string) => (typeof r[k] === 'string' ? (r[k] as string) : fail(where, `findings[${i}].${k}`));
    const out: QuarantineFinding = { rule: s('rule'), detector: s('detector'), count: nat(r.count, `findings[${i}].count`), part: s('part'), offset: nat(r.offset, `findings[${i}].offset`) };
    if (r.scope !== undefined) out.scope = s('scope');
    return out;
  });
  const meta: QuarantineMeta = {
    id: o.id as string,
    receivedAt,
    size: nat(o.size, 'size'),
    verdict: str('verdict'),
    rules: strs('rules'),
    reasons: strs('reasons'),
    from: str('from'),
    rcpts: strs('rcpts'),
    findings,
    subjects: strs('subjects'),
  };
  if (o.envelope !== undefined) meta.envelope = checkEnvelope(o.envelope, where);
  if (o.requireTls !== undefined) {
    const t = (typeof o.requireTls === 'object' && o.requireTls !== null ? o.requireTls : fail(where, 'requireTls')) as Record<string, unknown>;
    if (t.why !== 'rule' && t.why !== 'requiretls') fail(where, 'requireTls.why');
    if (typeof t.esmtp !== 'boolean') fail(where, 'requireTls.esmtp');
    meta.requireTls = { why: t.why, esmtp: t.esmtp };
  }
  return meta;
}

function checkParams(v: unknown, where: 'put' | 'read', field: string): SmtpParams {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) fail(where, field);
  const out: SmtpParams = {};
  for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
    if (!/^[A-Z0-9-]{1,32}$/.test(k) || !(x === true || typeof x === 'string')) fail(where, `${field}.${k}`);
    out[k] = x as string | true;
  }
  return out;
}

function checkEnvelope(v: unknown, where: 'put' | 'read'): QuarantineEnvelope {
  if (typeof v !== 'object' || v === null) fail(where, 'envelope');
  const o = v as Record<string, unknown>;
  // A line break in an address would let a release inject SMTP commands.
  const addr = (x: unknown, k: string): string => (typeof x === 'string' && !/[\r\n]/.test(x) ? x : fail(where, k));
  if (!Array.isArray(o.rcpts)) fail(where, 'envelope.rcpts');
  const env: QuarantineEnvelope = { from: addr(o.from, 'envelope.from'), rcpts: (o.rcpts as unknown[]).map((r, i) => addr(r, `envelope.rcpts[${i}]`)) };
  if (o.params !== undefined) env.params = checkParams(o.params, where, 'envelope.params');
  if (o.rcptParams !== undefined) {
    if (!Array.isArray(o.rcptParams) || o.rcptParams.length !== env.rcpts.length) fail(where, 'envelope.rcptParams');
    env.rcptParams = (o.rcptParams as unknown[]).map((p, i) => checkParams(p, where, `envelope.rcptParams[${i}]`));
  }
  if (o.client !== undefined) {
    if (typeof o.client !== 'object' || o.client === null || Array.isArray(o.client)) fail(where, 'envelope.client');
    const client: Record<string, string | false> = {};
    for (const [k, x] of Object.entries(o.client as Record<string, unknown>)) {
      if (!/^[A-Z]{1,16}$/.test(k) || !(x === false || (typeof x === 'string' && !/[\r\n]/.test(x)))) fail(where, `envelope.client.${k}`);
      client[k] = x as string | false;
    }
    env.client = client;
  }
  return env;
}

export function summarize(meta: QuarantineMeta, keyId: string): QuarantineEntrySummary {
  const { findings: _f, subjects: _s, envelope: _e, ...rest } = meta;
  return { ...rest, keyId };
}
