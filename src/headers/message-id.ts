/*
 * Internal host names in msg-ids (RFC 5322 3.6.4: "<" id-left "@" id-right
 * ">") in Message-ID, In-Reply-To and References. An internal id-right is
 * replaced by "h-<8 hex>.invalid" (RFC 2606: .invalid never resolves); the
 * id-left is kept, and the same host always gets the same name, so threading
 * across the three fields (and across messages) survives. Internal means: an
 * address inside internal_networks (literal or bare), a single-label name, a
 * name in internal_domains, or a name an internal Received hop went by.
 * An id-right that is neither a name nor an address literal is left alone, as
 * is anything outside "<...>" (obsolete phrases, comments).
 */
import { hostName, normaliseIp, type InternalHosts } from './internal';

export const MSG_ID_FIELDS: ReadonlySet<string> = new Set(['message-id', 'in-reply-to', 'references']);

const PSEUDONYM_RE = /^h-[0-9a-f]{8}\.invalid$/;
const PSEUDONYM_LEN = 'h-.invalid'.length + 8;

/**
 * The lookup key for an internal id-right, or undefined if it is not internal.
 * Keys are canonical (lower-case, no root dot, bare address) so spellings of one host agree.
 */
export function internalHostKey(host: string, internal: InternalHosts, hopNames: ReadonlySet<string>): string | undefined {
  if (host.length === PSEUDONYM_LEN && PSEUDONYM_RE.test(host)) return undefined;
  const literal = host.length > 2 && host.charCodeAt(0) === 0x5b && host.charCodeAt(host.length - 1) === 0x5d;
  const ip = normaliseIp(literal ? host.slice(1, -1) : host);
  if (ip) return internal.hasAddress(ip) ? ip : undefined;
  if (literal) return undefined;
  const name = hostName(host);
  if (!name) return undefined;
  return !name.includes('.') || internal.inDomains(name) || hopNames.has(name) ? name : undefined;
}

/**
 * Rewrites every msg-id in a field's text; returns undefined when nothing changed.
 * `replace` maps an id-right to its new text, or undefined to keep it.
 */
export function rewriteMsgIds(text: string, replace: (host: string) => string | undefined): string | undefined {
  const out: string[] = [];
  let copied = 0;
  let pos = text.indexOf(':') + 1;
  if (pos === 0) return undefined;
  while (pos < text.length) {
    const lt = text.indexOf('<', pos);
    if (lt < 0) break;
    const gt = text.indexOf('>', lt + 1);
    if (gt < 0) break;
    // "<<a@b>": the msg-id starts at the last "<" before ">".
    const open = text.lastIndexOf('<', gt);
    pos = gt + 1;
    // Searched within the id only, so the scan never runs back over earlier text.
    const at = text.slice(open + 1, gt).lastIndexOf('@');
    if (at < 1) continue;
    const hostStart = open + 2 + at;
    const repl = replace(text.slice(hostStart, gt));
    if (repl === undefined) continue;
    out.push(text.slice(copied, hostStart), repl);
    copied = gt;
  }
  if (copied === 0) return undefined;
  out.push(text.slice(copied));
  return out.join('');
}
