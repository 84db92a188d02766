/*
 * The from-clause of a Received field (RFC 5321 4.4: "from" From-domain
 * TCP-info, then "by"): finding it, judging whether the hop is internal, and
 * replacing it with a keyed pseudonym. Only the clause's own text changes;
 * "by", "with", "id", "for", the date and every fold after the clause keep
 * their bytes. The clause runs from `from` to the first top-level (outside
 * comments) `by`; older stamps that omit `by` end it at via/with/id/for or
 * ";". Comments inside the clause go with it, which is the point: Postfix's
 * "(Authenticated sender: ...)" and Sendmail's "(authenticated bits=0)" are
 * data about a person too. A field with no from-clause has none to replace.
 * One pass over the field; no RegExp runs on unbounded text.
 * Internal hosts in the rest of the field (the by-clause, comments, for/id)
 * are received-hosts.ts's job.
 */
import { hostName, normaliseIp, type InternalHosts } from './internal';

export interface FromClause {
  /** Offset of `from` in the field text. */
  start: number;
  /** Offset just past the clause's last non-blank character. */
  end: number;
  /** Every address anywhere in the clause, in order (HELO literal, rDNS bracket, Exim's helo=...). */
  ips: string[];
  /** The HELO name, if it is a name and not a literal. */
  helo?: string;
  /** Every dotted name in the clause (HELO, rDNS), canonical form. */
  names: string[];
  /** An address was there and has been replaced by "[redacted]" (received-hosts.ts hides an address seen in an internal hop). */
  redacted: boolean;
}

export interface Hop {
  internal: boolean;
  /** What the pseudonym is keyed on: the first internal address, else the first address, else the HELO name. */
  key: string;
  /** Names this hop was known by; a Message-ID naming one of them names an internal host. */
  names: string[];
}

const HOP_PREFIX = 'from hop-';
const HOP_SUFFIX = ' ([redacted])';
const HOP_LEN = HOP_PREFIX.length + 8 + HOP_SUFFIX.length;
const HOP_RE = /^from hop-[0-9a-f]{8} \(\[redacted\]\)$/;
const END_WORDS = new Set(['by', 'via', 'with', 'id', 'for']);
const PSEUDONYM_RE = /^(?:hop-[0-9a-f]{8}|redacted|h-[0-9a-f]{8}\.invalid)$/;

/** A name mailveil itself wrote ("hop-3f9a2c1e", "[redacted]", "h-3f9a2c1e.invalid"): never a host to hide again. */
export function isPseudonymName(name: string): boolean {
  return name.length <= 18 && PSEUDONYM_RE.test(name);
}

const isBlank = (c: number): boolean => c === 0x20 || c === 0x09 || c === 0x0d || c === 0x0a;
const isLetter = (c: number): boolean => (c | 0x20) >= 0x61 && (c | 0x20) <= 0x7a;
/** Separators between the tokens of TCP-info: blanks, comment and literal brackets, Exim's "helo=". */
const DELIM = new Uint8Array(128);
for (const ch of ' \t\r\n()[],;=<>"\'') DELIM[ch.charCodeAt(0)] = 1;
const isDelim = (c: number): boolean => c < 128 && DELIM[c] === 1;

export function parseFromClause(text: string): FromClause | undefined {
  const colon = text.indexOf(':');
  if (colon < 0) return undefined;
  let i = colon + 1;
  while (i < text.length && isBlank(text.charCodeAt(i))) i++;
  if (text.slice(i, i + 4).toLowerCase() !== 'from' || !isBlank(text.charCodeAt(i + 4))) return undefined;
  const start = i;
  const body = i + 4;
  let end = findClauseEnd(text, body);
  while (end > body && isBlank(text.charCodeAt(end - 1))) end--;
  return { start, end, ...tokens(text, body, end) };
}

function findClauseEnd(text: string, from: number): number {
  let depth = 0;
  let k = from;
  while (k < text.length) {
    const c = text.charCodeAt(k);
    if (depth > 0) {
      if (c === 0x5c) k++; // quoted-pair inside a comment
      else if (c === 0x28) depth++;
      else if (c === 0x29) depth--;
      k++;
    } else if (c === 0x28) {
      depth = 1;
      k++;
    } else if (c === 0x3b) {
      return k;
    } else if (isBlank(c)) {
      const blankStart = k;
      while (k < text.length && isBlank(text.charCodeAt(k))) k++;
      let w = k;
      while (w < text.length && w - k < 5 && isLetter(text.charCodeAt(w))) w++;
      if ((w === text.length || isBlank(text.charCodeAt(w))) && END_WORDS.has(text.slice(k, w).toLowerCase())) return blankStart;
    } else {
      k++;
    }
  }
  return text.length;
}

function tokens(text: string, from: number, to: number): Pick<FromClause, 'ips' | 'names' | 'helo' | 'redacted'> {
  const ips: string[] = [];
  const names: string[] = [];
  let helo: string | undefined;
  let redacted = false;
  let k = from;
  while (k < to && isBlank(text.charCodeAt(k))) k++;
  // The HELO name is the token right after "from"; "[...]" or "(...)" there is not a name.
  const heloAt = k;
  while (k < to) {
    while (k < to && isDelim(text.charCodeAt(k))) k++;
    const s = k;
    while (k < to && !isDelim(text.charCodeAt(k))) k++;
    if (k === s) break;
    const tok = text.slice(s, k);
    const ip = normaliseIp(tok);
    if (ip) ips.push(ip);
    else if (tok.length === 8 && tok.toLowerCase() === 'redacted') redacted = true;
    else {
      const name = hostName(tok);
      if (name && s === heloAt) helo = name;
      if (name && name.includes('.')) names.push(name);
    }
  }
  return { ips, names, helo, redacted };
}

export function classifyHop(text: string, clause: FromClause, internal: InternalHosts): Hop {
  const notInternal: Hop = { internal: false, key: '', names: [] };
  // Already a pseudonym (a message passing a second mailveil): leave it as it is.
  if (clause.end - clause.start === HOP_LEN && HOP_RE.test(text.slice(clause.start, clause.end))) return notInternal;
  const names = clause.helo && !clause.names.includes(clause.helo) ? [clause.helo, ...clause.names] : clause.names;
  const inside = clause.ips.find((ip) => internal.hasAddress(ip));
  if (inside) return { internal: true, key: inside, names };
  if (names.some((n) => internal.inDomains(n))) return { internal: true, key: clause.ips[0] ?? clause.helo ?? names[0], names };
  // A bare single-label HELO with no address at all ("from laptop by ..."): a LAN machine name.
  // With a public address it stays: public hops are left alone, also once that address is "[redacted]".
  if (clause.helo && !clause.helo.includes('.') && clause.ips.length === 0 && !clause.redacted && !isPseudonymName(clause.helo)) return { internal: true, key: clause.helo, names };
  return notInternal;
}

export function pseudonymiseClause(text: string, clause: FromClause, token: string): string {
  return text.slice(0, clause.start) + HOP_PREFIX + token + HOP_SUFFIX + text.slice(clause.end);
}
