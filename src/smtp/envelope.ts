/*
 * Rebuilds the envelope for the next hop exactly as our client sent it:
 * MAIL FROM with SIZE, BODY, SMTPUTF8, RET, ENVID; RCPT TO with NOTIFY and
 * ORCPT (RFC 3461, 6152, 6531, 1870); and XFORWARD (Postfix XFORWARD_README)
 * so the next hop logs the original client, not us.
 *
 * A parameter whose extension the next hop does not offer is left out, as
 * Postfix's smtp client does, except SMTPUTF8: a message that needs it
 * cannot be delivered without it, and that is reported, not hidden.
 */
import { isIP } from 'node:net';
import type { SMTPServerAddress, SMTPServerSession } from 'smtp-server';
import { smtpReplyOf, type ReplyCode } from '../errors';
import { encodeXtext } from './xtext';
import type { QuarantineEnvelope, SmtpParams } from '../quarantine/meta';

const MAIL_PARAMS: [param: string, extension: string, xtext: boolean][] = [
  ['SIZE', 'SIZE', false],
  ['BODY', '8BITMIME', false],
  ['SMTPUTF8', 'SMTPUTF8', false],
  ['RET', 'DSN', false],
  ['ENVID', 'DSN', true],
];
const RCPT_PARAMS: typeof MAIL_PARAMS = [
  ['NOTIFY', 'DSN', false],
  ['ORCPT', 'DSN', true],
];
const XFORWARD_ATTRS = ['NAME', 'ADDR', 'PORT', 'PROTO', 'HELO', 'IDENT', 'SOURCE'];
/** Postfix accepts XFORWARD lines of up to 512 bytes; stay well under. */
const XFORWARD_LINE_MAX = 400;

/** An envelope we cannot relay as received; its reply comes from the catalogue. */
export class EnvelopeError extends Error {
  readonly responseCode: number;
  constructor(readonly code: ReplyCode) {
    const r = smtpReplyOf(code);
    super(r.text);
    this.responseCode = r.code;
  }
}

function params(addr: SMTPServerAddress, table: typeof MAIL_PARAMS, supports: (ext: string) => boolean): string {
  const args = (addr.args || {}) as Record<string, string | boolean>;
  let out = '';
  for (const [name, ext, xtext] of table) {
    const value = args[name];
    if (value === undefined || value === false) continue;
    if (!supports(ext)) {
      if (name === 'SMTPUTF8') throw new EnvelopeError('MV_SMTPUTF8_REQUIRED');
      continue;
    }
    out += value === true ? ` ${name}` : ` ${name}=${xtext ? encodeXtext(value) : value}`;
  }
  return out;
}

export function mailFromCommand(addr: SMTPServerAddress, supports: (ext: string) => boolean): string {
  return `MAIL FROM:<${addr.address}>${params(addr, MAIL_PARAMS, supports)}`;
}

export function rcptToCommand(addr: SMTPServerAddress, supports: (ext: string) => boolean): string {
  return `RCPT TO:<${addr.address}>${params(addr, RCPT_PARAMS, supports)}`;
}

function xforwardValue(name: string, value: unknown): string {
  if (value === false || value === undefined || value === null || value === '') return '[UNAVAILABLE]';
  let v = String(value);
  if (name === 'ADDR') {
    // A dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d; Postfix wants them plain.
    v = v.replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/i, '');
    if (isIP(v) === 6) v = 'IPv6:' + v;
  }
  return encodeXtext(v);
}

/**
 * The attributes of the original client: as Postfix forwarded them to us, or,
 * if our client sent no XFORWARD, our client itself.
 */
export function clientAttributes(session: SMTPServerSession): Map<string, unknown> {
  const fwd = (session as SMTPServerSession & { xForward?: Map<string, unknown> }).xForward;
  const attrs = new Map<string, unknown>();
  if (fwd && [...fwd.keys()].some((k) => XFORWARD_ATTRS.includes(k))) {
    for (const k of XFORWARD_ATTRS) if (fwd.has(k)) attrs.set(k, fwd.get(k));
    return attrs;
  }
  attrs.set('ADDR', session.remoteAddress);
  attrs.set('NAME', false); // reverse lookups are off: the name is unknown
  attrs.set('HELO', session.hostNameAppearsAs || false);
  attrs.set('PROTO', /^ESMTP/i.test(session.transmissionType ?? '') ? 'ESMTP' : 'SMTP');
  return attrs;
}

/** Postfix's queue id: a short id is hex, a long one (enable_long_queue_ids) letters and digits. */
const QUEUE_ID_RE = /^[0-9A-Za-z]{1,64}$/;

/**
 * The queue id our client (Postfix) forwarded as XFORWARD IDENT, so a log
 * line can be matched to Postfix's own; undefined when none was sent or the
 * value does not have a queue id's syntax (it goes into logs as it is).
 * Postfix sends XFORWARD before every transaction, so the value is this
 * message's.
 */
export function forwardedQueueId(session: SMTPServerSession): string | undefined {
  const ident = (session as SMTPServerSession & { xForward?: Map<string, unknown> }).xForward?.get('IDENT');
  return typeof ident === 'string' && QUEUE_ID_RE.test(ident) ? ident : undefined;
}

/** XFORWARD command lines for the attributes the next hop announced. */
export function xforwardCommands(attrs: Map<string, unknown>, announced: string | undefined): string[] {
  if (announced === undefined) return [];
  const wanted = new Set(announced.toUpperCase().split(/\s+/).filter(Boolean));
  const lines: string[] = [];
  let line = 'XFORWARD';
  for (const [name, value] of attrs) {
    if (!wanted.has(name)) continue;
    const item = ` ${name}=${xforwardValue(name, value)}`;
    if (line.length + item.length > XFORWARD_LINE_MAX && line !== 'XFORWARD') {
      lines.push(line);
      line = 'XFORWARD';
    }
    line += item;
  }
  if (line !== 'XFORWARD') lines.push(line);
  return lines;
}

const MAIL_PARAM_NAMES = ['SIZE', 'BODY', 'SMTPUTF8', 'RET', 'ENVID'];
const RCPT_PARAM_NAMES = ['NOTIFY', 'ORCPT'];

function keepParams(args: unknown, names: string[]): SmtpParams {
  const out: SmtpParams = {};
  const a = (args && typeof args === 'object' ? args : {}) as Record<string, unknown>;
  for (const n of names) {
    const v = a[n];
    if (v === true || (typeof v === 'string' && !/[\r\n]/.test(v))) out[n] = v;
  }
  return out;
}

/** The envelope as received, for `quarantine release` (stored only inside the encrypted metadata). */
export function heldEnvelope(session: SMTPServerSession): QuarantineEnvelope {
  const env = session.envelope;
  const client: Record<string, string | false> = {};
  for (const [k, v] of clientAttributes(session)) client[k] = v === false || v === undefined || v === null || v === '' ? false : String(v);
  return {
    from: env.mailFrom ? env.mailFrom.address : '',
    rcpts: env.rcptTo.map((r) => r.address),
    params: env.mailFrom ? keepParams(env.mailFrom.args, MAIL_PARAM_NAMES) : {},
    rcptParams: env.rcptTo.map((r) => keepParams(r.args, RCPT_PARAM_NAMES)),
    client,
  };
}
