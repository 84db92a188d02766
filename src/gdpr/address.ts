/*
 * Addresses for the subject index: a tolerant parser of the address-list
 * grammar (RFC 5322 3.4, with the obsolete forms of 4.4) that returns only
 * the addr-specs, and the normalisation every index token is computed from.
 *
 * Parsing. One pass of a tokenizer (atoms, quoted strings, domain literals,
 * the specials < > , : ; @ .; comments and folding white space dropped),
 * then items are cut at top-level "," and ";". A ":" outside angle brackets
 * starts a group when nothing address-like came before it in the item (its
 * display name is dropped). Within an item, an angle-addr wins (its source
 * route "@a,@b:" is dropped); otherwise every "word(.word)*@domain" run of
 * the item is taken, so a missing comma or an unquoted display name loses no
 * address. Display names, encoded or not, are never decoded: only addr-specs
 * matter. Malformed input never throws; unterminated comments, quotes and
 * literals run to the end of the text. Every loop is linear in the input.
 *
 * Normalisation (normaliseAddress):
 *  - local part: the value of its words (quotes and quoted-pairs removed,
 *    obsolete spaces around dots dropped), NFC, lower case; re-quoted only
 *    when it is not a dot-atom, so "john"@x and john@x are one address.
 *    A "+tag" (sub-address) is kept: a+news@x and a@x are separate
 *    addresses, as the mail system itself may treat them;
 *  - domain: lower case, trailing dot dropped, IDN to ASCII (punycode) with
 *    url.domainToASCII, so bücher.example and xn--bcher-kva.example are one
 *    address; a domain domainToASCII refuses makes the address invalid;
 *  - domain literal ([192.0.2.1], [IPv6:...]): white space removed, lower case.
 */
import { domainToASCII } from 'node:url';

/*
 * Tokens live in three parallel typed arrays (kind, start, end) over the
 * field's text, not as one object each: a 1 MiB field of tiny addresses is
 * half a million tokens, and as objects their garbage collection made the
 * parse super-linear. Values are sliced out only for candidate addresses.
 */
const ATOM = 0;
const QUOTED = 1; // start/end: the content between the quotes (escapes still in)
const LITERAL = 2; // start/end: "[" ... "]" inclusive (or to the end of the text)
/** The specials < > , : ; @ . are kinds SPECIAL_BASE + 0..6. */
const SPECIAL_BASE = 3;
const LT = SPECIAL_BASE + 0;
const GT = SPECIAL_BASE + 1;
const COMMA = SPECIAL_BASE + 2;
const COLON = SPECIAL_BASE + 3;
const SEMI = SPECIAL_BASE + 4;
const AT = SPECIAL_BASE + 5;
const DOT = SPECIAL_BASE + 6;

/** A local part that may be written without quotes (RFC 5322 dot-atom-text, plus UTF-8 per RFC 6532). */
const DOT_ATOM = /^[A-Za-z0-9!#$%&'*+/=?^_`{|}~\u0080-\u{10FFFF}-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~\u0080-\u{10FFFF}-]+)*$/u;
/** Longest normalised address considered (RFC 5321 4.5.3.1.3 path limit, generously). */
export const MAX_ADDRESS_LENGTH = 320;

function isWsp(c: number): boolean {
  return c === 0x20 || c === 0x09 || c === 0x0d || c === 0x0a;
}

function specialKind(c: number): number {
  switch (c) {
    case 0x3c:
      return LT;
    case 0x3e:
      return GT;
    case 0x2c:
      return COMMA;
    case 0x3a:
      return COLON;
    case 0x3b:
      return SEMI;
    case 0x40:
      return AT;
    case 0x2e:
      return DOT;
    default:
      return -1;
  }
}

class Tokens {
  n = 0;
  kind = new Uint8Array(64);
  start = new Uint32Array(64);
  end = new Uint32Array(64);

  constructor(readonly text: string) {}

  push(kind: number, start: number, end: number): void {
    if (this.n === this.kind.length) {
      const grow = <T extends Uint8Array | Uint32Array>(a: T): T => {
        const b = new (a.constructor as new (n: number) => T)(a.length * 2);
        b.set(a);
        return b;
      };
      this.kind = grow(this.kind);
      this.start = grow(this.start);
      this.end = grow(this.end);
    }
    this.kind[this.n] = kind;
    this.start[this.n] = start;
    this.end[this.n] = end;
    this.n++;
  }

  is(i: number, kind: number): boolean {
    return i >= 0 && i < this.n && this.kind[i] === kind;
  }

  isWord(i: number): boolean {
    return i >= 0 && i < this.n && (this.kind[i] === ATOM || this.kind[i] === QUOTED);
  }

  /** Characters of source text the tokens [from, to) span (an upper bound of their values' length). */
  span(from: number, to: number): number {
    return to > from ? this.end[to - 1] - this.start[from] : 0;
  }

  /** atom text; quoted-string content unescaped; literal with its brackets; the special character. */
  value(i: number): string {
    const k = this.kind[i];
    const raw = this.text.slice(this.start[i], this.end[i]);
    if (k !== QUOTED) return raw;
    // Unfolding already removed line breaks; stray CR/LF are not content.
    return raw.replace(/\\([\s\S])|[\r\n]/g, (_m, escaped: string | undefined) => escaped ?? '');
  }
}

/** Splits `text` into tokens; comments and white space are dropped. Never throws; one pass. */
function tokenize(text: string): Tokens {
  const out = new Tokens(text);
  let i = 0;
  const n = text.length;
  while (i < n) {
    const c = text.charCodeAt(i);
    if (isWsp(c)) {
      i++;
    } else if (c === 0x28 /* ( */) {
      let depth = 1;
      i++;
      while (i < n && depth > 0) {
        const d = text.charCodeAt(i);
        if (d === 0x5c /* \ */) i += 2;
        else {
          if (d === 0x28) depth++;
          else if (d === 0x29) depth--;
          i++;
        }
      }
    } else if (c === 0x22 /* " */) {
      const start = ++i;
      while (i < n && text.charCodeAt(i) !== 0x22) i += text.charCodeAt(i) === 0x5c ? 2 : 1;
      const end = Math.min(i, n);
      out.push(QUOTED, start, end);
      i = end + 1;
    } else if (c === 0x5b /* [ */) {
      const close = text.indexOf(']', i + 1);
      const end = close < 0 ? n : close + 1;
      out.push(LITERAL, i, end);
      i = end;
    } else if (specialKind(c) >= 0) {
      out.push(specialKind(c), i, i + 1);
      i++;
    } else {
      const start = i;
      while (i < n) {
        const d = text.charCodeAt(i);
        if (isWsp(d) || d === 0x28 || d === 0x22 || d === 0x5b || specialKind(d) >= 0) break;
        i++;
      }
      out.push(ATOM, start, i);
    }
  }
  return out;
}

function normaliseLocal(t: Tokens, from: number, to: number): string | undefined {
  if (t.span(from, to) > 2 * MAX_ADDRESS_LENGTH) return undefined;
  let value = '';
  for (let i = from; i < to; i++) value += t.value(i);
  value = value.normalize('NFC').toLowerCase();
  if (!value) return undefined;
  return DOT_ATOM.test(value) ? value : `"${value.replace(/(["\\])/g, '\\$1')}"`;
}

function normaliseDomain(t: Tokens, from: number, to: number): string | undefined {
  if (to - from === 1 && t.kind[from] === LITERAL) {
    const lit = t.value(from).replace(/\s+/g, '').toLowerCase();
    return lit.length > 2 && lit.length <= MAX_ADDRESS_LENGTH && lit.endsWith(']') ? lit : undefined;
  }
  if (t.span(from, to) > 2 * MAX_ADDRESS_LENGTH) return undefined;
  let name = '';
  for (let i = from; i < to; i++) name += t.value(i);
  name = name.normalize('NFC');
  if (name.endsWith('.')) name = name.slice(0, -1);
  if (!name || name.startsWith('.') || name.includes('..')) return undefined;
  const ascii = domainToASCII(name);
  return ascii ? ascii.toLowerCase() : undefined;
}

/** local = tokens [ls, le), domain = tokens [ds, de). */
function joinAddress(t: Tokens, ls: number, le: number, ds: number, de: number): string | undefined {
  const l = normaliseLocal(t, ls, le);
  const d = l === undefined ? undefined : normaliseDomain(t, ds, de);
  if (l === undefined || d === undefined) return undefined;
  const a = `${l}@${d}`;
  return a.length <= MAX_ADDRESS_LENGTH ? a : undefined;
}

/**
 * Every "word(.word)*@domain" in tokens [from, to), normalised. The local
 * part is the word chain just before an "@" (after what an earlier address
 * used); the domain is one literal or atom(.atom)*. Each token is looked at
 * a bounded number of times: chains are separated by "@" tokens.
 */
function extract(t: Tokens, from: number, to: number, out: string[]): void {
  let used = from;
  for (let i = from; i < to; i++) {
    if (t.kind[i] !== AT) continue;
    // Local part: backwards over word ("." word)*.
    let s = i - 1;
    if (s < used || !t.isWord(s)) continue;
    while (s - 2 >= used && t.is(s - 1, DOT) && t.isWord(s - 2)) s -= 2;
    // Domain: forwards.
    let e = i + 1;
    if (e < to && t.kind[e] === LITERAL) e++;
    else {
      if (!(e < to && t.kind[e] === ATOM)) continue;
      e++;
      while (e + 1 < to && t.kind[e] === DOT && t.kind[e + 1] === ATOM) e += 2;
      if (e < to && t.kind[e] === DOT) {
        // A trailing dot (absolute name) is fine; "a..b" is no domain at all.
        if (e + 1 < to && t.kind[e + 1] === DOT) continue;
        e++;
      }
    }
    const a = joinAddress(t, s, i, i + 1, e);
    if (a !== undefined) out.push(a);
    used = e;
    i = e - 1;
  }
}

/** The addresses of one list item: its angle-addr if it has one, else every bare addr-spec. */
function itemAddresses(t: Tokens, from: number, to: number, out: string[]): void {
  for (let i = from; i < to; i++) {
    if (t.kind[i] !== LT) continue;
    let end = i + 1;
    while (end < to && t.kind[end] !== GT) end++;
    // Source route (obs-route): keep what follows its last ":".
    let start = i + 1;
    for (let j = i + 1; j < end; j++) if (t.kind[j] === COLON) start = j + 1;
    extract(t, start, end, out);
    return;
  }
  extract(t, from, to, out);
}

/**
 * The addr-specs of an address-list field value (line breaks are white
 * space here). Tolerant: never throws, skips what it cannot read.
 */
export function parseAddressList(text: string): string[] {
  const t = tokenize(text);
  const out: string[] = [];
  let start = 0;
  let inAngle = false;
  let sawAddress = false;
  for (let i = 0; i < t.n; i++) {
    const k = t.kind[i];
    if (k === LT) {
      inAngle = true;
      sawAddress = true;
    } else if (k === GT) inAngle = false;
    // Inside <...>, a route's "," and ":" do not end the item.
    if (inAngle || k === LT || k === GT) continue;
    if (k === AT) sawAddress = true;
    else if (k === COMMA || k === SEMI) {
      itemAddresses(t, start, i, out);
      start = i + 1;
      sawAddress = false;
    } else if (k === COLON) {
      // A group's display name: drop it. After an address, a stray ":" separates.
      if (sawAddress) itemAddresses(t, start, i, out);
      start = i + 1;
      sawAddress = false;
    }
  }
  itemAddresses(t, start, t.n, out);
  return out;
}

/**
 * One address as an operator types it for `sar`: `user@example.com`,
 * `<user@example.com>` or `Name <user@example.com>`, strictly (one mailbox,
 * nothing left over). Returns the normalised address, or undefined when the
 * text is not exactly one valid address.
 */
export function parseAddressArgument(text: string): string | undefined {
  if (text.length > 4 * MAX_ADDRESS_LENGTH) return undefined;
  const t = tokenize(text);
  let from = 0;
  let to = t.n;
  let lt = -1;
  for (let i = 0; i < t.n && lt < 0; i++) if (t.kind[i] === LT) lt = i;
  if (lt >= 0) {
    // Display name: words only; then "<" addr-spec ">" and nothing after.
    for (let i = 0; i < lt; i++) if (!t.isWord(i)) return undefined;
    if (!t.is(to - 1, GT) || to - 1 <= lt + 1) return undefined;
    from = lt + 1;
    to = to - 1;
  }
  let at = -1;
  for (let i = from; i < to && at < 0; i++) if (t.kind[i] === AT) at = i;
  if (at < 0) return undefined;
  // Local part: word ("." word)* exactly.
  if (at === from || (at - from) % 2 === 0) return undefined;
  for (let i = from; i < at; i++) if ((i - from) % 2 === 0 ? !t.isWord(i) : t.kind[i] !== DOT) return undefined;
  // Domain: one literal, or atom ("." atom)* with an optional final dot.
  let ds = at + 1;
  let de = to;
  if (!(de - ds === 1 && t.kind[ds] === LITERAL)) {
    if (de - ds > 1 && t.kind[de - 1] === DOT && (de - ds) % 2 === 0) de--;
    if (de === ds || (de - ds) % 2 === 0) return undefined;
    for (let i = ds; i < de; i++) if ((i - ds) % 2 === 0 ? t.kind[i] !== ATOM : t.kind[i] !== DOT) return undefined;
  }
  return joinAddress(t, from, at, ds, de);
}

/**
 * The normalised form of one address as found in an SMTP envelope
 * (`local@domain`, the domain possibly in Unicode) or typed by an operator;
 * undefined when it is not exactly one valid address.
 */
export function normaliseAddress(address: string): string | undefined {
  return parseAddressArgument(address);
}
