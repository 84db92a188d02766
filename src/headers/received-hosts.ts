/*
 * Internal hosts anywhere in the Received block, not only in from-clauses
 * (RFC 5321 4.4: "from" From-domain, "by" By-domain with its TCP-info
 * comment, then via/with/id/for and comments). received.ts replaces an
 * internal hop's whole from-clause; this file finds the same hosts wherever
 * else the block names them (the next hop's by-clause, Postfix/amavis
 * comments, Exim's "helo=", "for <a@host>", "id <x@[addr]>") and gives each
 * one the pseudonym its hop got, so hops still line up:
 *
 *   from relay1.example.com (... [10.0.0.25]) by mx-out.example.com ...
 *   from laptop.lan (unknown [192.168.10.44]) by relay1.example.com ...
 * becomes
 *   from hop-b80b20cf ([redacted]) by mx-out.example.com ...
 *   from hop-9784d33f ([redacted]) by hop-b80b20cf ...
 *
 * Two passes over the block, each linear in its size:
 *  1. learn: every address in an internal hop's from-clause, and every name
 *     it was known by (HELO, rDNS, helo=), is hidden, keyed on that hop's
 *     key. Then each by-clause: its host is internal if it is an internal or
 *     hidden address or name, a single-label name, or its TCP-info comment
 *     (a name, then addresses) holds such an address; the names and
 *     addresses in that comment are hidden with it.
 *  2. rewrite, token by token, keeping every other byte:
 *     - a by-host (name or address literal) becomes "hop-<8 hex>";
 *     - a hidden or internal name elsewhere becomes "hop-<8 hex>";
 *     - an internal or hidden address elsewhere becomes "[redacted]"
 *       ("redacted" inside brackets it already has), as in from-clauses.
 *     A name takes the key of the first internal from-clause that named it,
 *     else of an internal address in its own TCP-info, else itself.
 * What counts as a name: a dotted name whose last label is not all digits
 * (so "TLSv1.3", "Exim 4.97.1" and Exchange's "id 15.2.1258.28" are not
 * hosts), and a single-label name only where a host stands (by-clause, the
 * HELO slot, after "helo=", "HELO " or "@"). Queue ids, "with" protocols and
 * dates are never touched. Pseudonyms already in the block ("hop-…",
 * "redacted", "h-….invalid") are left alone, so a second pass changes
 * nothing.
 * Limits: every loop walks a field once; the block is bounded by
 * limits.max_header_size, and no token longer than MAX_TOKEN is looked up.
 */
import { hostName, normaliseIp, type InternalHosts } from './internal';
import { parseFromClause, classifyHop, pseudonymiseClause, isPseudonymName, type FromClause, type Hop } from './received';

/** RFC 1035 2.3.4: a longer token is no name, and an address is shorter still. */
export const MAX_TOKEN = 255;

export type TopologyMode = 'pseudonymise' | 'strip-internal';

export interface ReceivedOutcome {
  /** strip-internal: the whole field goes (an internal hop, or a from-less stamp by an internal host). */
  drop: boolean;
  /** The field's new text; undefined keeps its bytes. */
  text?: string;
}

export interface ReceivedPlan {
  /** One per input text, in order. */
  outcomes: ReceivedOutcome[];
  /** Every name the block treats as internal: a msg-id naming one of them names an internal host. */
  names: Set<string>;
  /** True if any outcome drops or rewrites its field. */
  changed: boolean;
}

/** Where a token stands, which decides whether a single-label name there is a host. */
const enum Slot {
  Other,
  /** The first token after a top-level "by". */
  By,
  /** The first token after a top-level "from", "helo=" or "HELO ". */
  Helo,
  /** Right after "@". */
  Domain,
}

interface Token {
  start: number;
  end: number;
  slot: Slot;
  /** Inside the comment that directly follows the by-host (its TCP-info). */
  info: boolean;
  /** "[" just before and "]" just after. */
  bracketed: boolean;
}

const isBlank = (c: number): boolean => c === 0x20 || c === 0x09 || c === 0x0d || c === 0x0a;
/** Separators: blanks, comment and literal brackets, quotes, "=" (helo=, port=), "@" and "/". */
const DELIM = new Uint8Array(128);
for (const ch of ' \t\r\n()[],;=<>"\'@/') DELIM[ch.charCodeAt(0)] = 1;
const isDelim = (c: number): boolean => c < 128 && DELIM[c] === 1;

function isWord(text: string, s: number, e: number, word: string): boolean {
  return e - s === word.length && text.slice(s, e).toLowerCase() === word;
}

/**
 * Calls `visit` for each token of text[from, to) in order. Comments nest
 * (RFC 5322 3.2.2) and a quoted-pair in one is skipped, as findClauseEnd in
 * received.ts does, so both agree on what is top-level.
 */
function scan(text: string, from: number, to: number, visit: (t: Token) => void): void {
  let depth = 0;
  let inInfo = false;
  /** The by-host was the last thing seen: a "(" now opens its TCP-info. */
  let armed = false;
  /** What the previous token announced for the next one. */
  let next: Slot = Slot.Other;
  let k = from;
  while (k < to) {
    const c = text.charCodeAt(k);
    if (c === 0x28) {
      if (depth === 0 && armed) inInfo = true;
      armed = false;
      depth++;
      k++;
    } else if (c === 0x29) {
      if (depth > 0 && --depth === 0) inInfo = false;
      k++;
    } else if (c === 0x5c && depth > 0) {
      k += 2;
    } else if (isDelim(c)) {
      if (c === 0x3b) armed = false;
      k++;
    } else {
      const s = k;
      while (k < to && !isDelim(text.charCodeAt(k))) k++;
      let slot = Slot.Other;
      if (next === Slot.By && depth === 0) slot = Slot.By;
      else if (next === Slot.Helo) slot = Slot.Helo;
      else if (text.charCodeAt(s - 1) === 0x40) slot = Slot.Domain;
      const bracketed = text.charCodeAt(s - 1) === 0x5b && text.charCodeAt(k) === 0x5d;
      visit({ start: s, end: k, slot, info: inInfo, bracketed });
      armed = slot === Slot.By;
      next = Slot.Other;
      if (depth === 0 && isWord(text, s, k, 'by')) next = Slot.By;
      else if (depth === 0 && isWord(text, s, k, 'from')) next = Slot.Helo;
      else if (isWord(text, s, k, 'helo') && k < to && (text.charCodeAt(k) === 0x3d || isBlank(text.charCodeAt(k)))) next = Slot.Helo;
    }
  }
}

interface Read {
  ip?: string;
  name?: string;
  /** Where the address or name ends: before ":port" on "10.1.2.3:25". */
  end: number;
}

/** A dotted name a host could have: the last label is not all digits (RFC 3696 2), so no version or queue number. */
function hostShaped(name: string): boolean {
  const dot = name.lastIndexOf('.');
  if (dot < 0) return false;
  for (let i = dot + 1; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (c < 0x30 || c > 0x39) return true;
  }
  return false;
}

function read(text: string, t: Token): Read | undefined {
  if (t.end - t.start > MAX_TOKEN) return undefined;
  const tok = text.slice(t.start, t.end);
  const ip = normaliseIp(tok);
  if (ip) return { ip, end: t.end };
  const colon = tok.indexOf(':');
  if (colon > 0 && colon === tok.lastIndexOf(':')) {
    // "10.1.2.3:25": an address with a port.
    const v4 = normaliseIp(tok.slice(0, colon));
    if (v4 && /^\d{1,5}$/.test(tok.slice(colon + 1))) return { ip: v4, end: t.start + colon };
  }
  const name = hostName(tok);
  if (!name || isPseudonymName(name)) return undefined;
  if (name.includes('.') ? hostShaped(name) : t.slot !== Slot.Other) return { name, end: t.end };
  return undefined;
}

/** The MTA placeholder for "no name" (qmail's HELO slot, Postfix's rDNS): never a host of ours. */
const NO_NAME = 'unknown';

class Book {
  readonly names = new Set<string>();
  readonly addrs = new Set<string>();
  /** What a hidden name's pseudonym is keyed on. */
  readonly keys = new Map<string, string>();

  constructor(private readonly internal: InternalHosts) {}

  hideName(name: string, key: string): void {
    if (name === NO_NAME) return;
    this.names.add(name);
    if (!this.keys.has(name)) this.keys.set(name, key);
  }

  addrInternal(ip: string): boolean {
    return this.internal.hasAddress(ip) || this.addrs.has(ip);
  }

  /** A name anywhere but the by-host: a dotted one in internal_domains or hidden; a single-label one only if hidden. */
  nameInternal(name: string): boolean {
    return this.names.has(name) || (name.includes('.') && this.internal.inDomains(name));
  }

  keyOf(name: string): string {
    return this.keys.get(name) ?? name;
  }
}

interface ByHost {
  token: Token;
  read: Read;
  /** The addresses and names in its TCP-info comment. */
  info: Read[];
}

/** TCP-info is a host name and an address or two; more is not TCP-info. */
const MAX_INFO = 8;

/**
 * The by-host of text[from, to) and its TCP-info, if the field has a
 * top-level "by". The comment right after the host counts as TCP-info only
 * in that shape: at most one name, then addresses ("(10.1.2.5)", amavis's
 * "(mail.example.com [127.0.0.1])"). "(Postfix)", "(8.17.1/8.17.1)" or
 * "(from 10.1.2.3 via ...)" say nothing about the host (their internal
 * addresses are still hidden where they stand).
 */
function findBy(text: string, from: number, to: number): ByHost | undefined {
  let by: ByHost | undefined;
  let seen = false;
  let notInfo = false;
  scan(text, from, to, (t) => {
    if (t.slot === Slot.By && !seen) {
      seen = true;
      const r = read(text, t);
      if (r) by = { token: t, read: r, info: [] };
    } else if (t.info && by && !notInfo) {
      // A name first (any name: "localhost" too), then addresses only.
      const r = read(text, { ...t, slot: Slot.Helo });
      if (r && by.info.length < MAX_INFO && (r.ip !== undefined || by.info.length === 0)) by.info.push(r);
      else notInfo = true;
    }
  });
  if (by && notInfo) by.info = [];
  return by;
}

interface Parsed {
  text: string;
  clause?: FromClause;
  hop?: Hop;
  /** Where the scan for the rest of the field starts: after an internal from-clause, else after the colon. */
  restFrom: number;
  /** The by-host is internal. */
  byInternal: boolean;
}

/**
 * Plans the Received block: `texts` are the Received fields in order;
 * `hopToken` gives the 8-hex pseudonym for a key (the caller memoises it).
 */
export function planReceived(texts: readonly string[], mode: TopologyMode, internal: InternalHosts, hopToken: (key: string) => string): ReceivedPlan {
  const book = new Book(internal);
  const names = new Set<string>();
  const parsed: Parsed[] = [];

  // Pass 1a: internal from-clauses, all of them before any by-clause, so a
  // by-host takes the key of the hop that names it wherever that hop stands.
  for (const text of texts) {
    const colon = text.indexOf(':');
    const clause = parseFromClause(text);
    const hop = clause && classifyHop(text, clause, internal);
    const p: Parsed = { text, clause, hop, restFrom: colon + 1, byInternal: false };
    parsed.push(p);
    if (!clause || !hop?.internal) continue;
    p.restFrom = clause.end;
    for (const n of hop.names) names.add(n);
    for (const ip of clause.ips) book.addrs.add(ip);
    scan(text, clause.start, clause.end, (t) => {
      const r = read(text, t);
      // An address domain ("Authenticated sender: a@example.com") is a mail domain, not this host.
      if (r?.name && t.slot !== Slot.Domain) book.hideName(r.name, hop.key);
    });
  }

  // Pass 1b: by-clauses. Where there is no from-clause, or a public one, the by-host still follows it.
  for (const p of parsed) {
    const by = findBy(p.text, p.clause ? p.clause.end : p.restFrom, p.text.length);
    if (!by) continue;
    const infoIp = by.info.find((r) => r.ip !== undefined && book.addrInternal(r.ip))?.ip;
    const { ip, name } = by.read;
    const inside = ip !== undefined ? book.addrInternal(ip) : name !== undefined && (!name.includes('.') || book.nameInternal(name) || infoIp !== undefined);
    if (!inside) continue;
    p.byInternal = true;
    const key = name !== undefined ? (book.keys.get(name) ?? infoIp ?? name) : (ip as string);
    if (name !== undefined) book.hideName(name, key);
    for (const r of by.info) {
      if (r.ip !== undefined) book.addrs.add(r.ip);
      else if (r.name !== undefined && r.name.includes('.')) book.hideName(r.name, key);
    }
  }
  for (const n of book.names) names.add(n);

  // Pass 2: rewrite.
  let changed = false;
  const outcomes = parsed.map((p): ReceivedOutcome => {
    const internalHop = p.clause !== undefined && p.hop?.internal === true;
    if (mode === 'strip-internal' && (internalHop || (p.clause === undefined && p.byInternal))) {
      changed = true;
      return { drop: true };
    }
    const head = internalHop ? pseudonymiseClause(p.text.slice(0, p.restFrom), p.clause as FromClause, hopToken((p.hop as Hop).key)) : p.text.slice(0, p.restFrom);
    const rest = rewriteRest(p.text, p.restFrom, book, hopToken);
    if (!internalHop && rest === undefined) return { drop: false };
    changed = true;
    return { drop: false, text: head + (rest ?? p.text.slice(p.restFrom)) };
  });
  return { outcomes, names, changed };
}

/** text[from..] with every internal host and address replaced; undefined if there was none. */
function rewriteRest(text: string, from: number, book: Book, hopToken: (key: string) => string): string | undefined {
  const out: string[] = [];
  let copied = from;
  scan(text, from, text.length, (t) => {
    const r = read(text, t);
    if (!r) return;
    let start = t.start;
    let end = r.end;
    let repl: string | undefined;
    if (r.ip !== undefined) {
      if (!book.addrInternal(r.ip)) return;
      if (t.slot === Slot.By) {
        // The by-host itself: its pseudonym, in place of the whole literal.
        if (t.bracketed) {
          start--;
          end = t.end + 1;
        }
        repl = 'hop-' + hopToken(r.ip);
      } else {
        repl = t.bracketed ? 'redacted' : '[redacted]';
      }
    } else if (r.name !== undefined) {
      if (!(t.slot === Slot.By && !r.name.includes('.')) && !book.nameInternal(r.name)) return;
      repl = 'hop-' + hopToken(book.keyOf(r.name));
    }
    if (repl === undefined) return;
    out.push(text.slice(copied, start), repl);
    copied = end;
  });
  if (out.length === 0) return undefined;
  out.push(text.slice(copied));
  return out.join('');
}
