/*
 * Pass 2 rewriter: header anonymisation (data minimisation, GDPR Art. 5(1)(c)).
 *  - `remove`: drops every field whose name matches a pattern, folds included.
 *  - `received: pseudonymise`: an internal hop's from-clause (RFC 5321 4.4)
 *    becomes "from hop-<8 hex> ([redacted])", and every other mention of an
 *    internal host in any Received field (the next hop's by-clause, comments,
 *    for/id) gets the same pseudonym (src/headers/received-hosts.ts); the
 *    count and order of Received fields never change. `strip-internal` drops
 *    internal hops (and from-less stamps by an internal host) instead, and
 *    pseudonymises internal hosts left in the public hops it keeps; `keep`
 *    leaves every Received field alone.
 *  - msg-ids (RFC 5322 3.6.4) in Message-ID, In-Reply-To and References
 *    lose internal host names, consistently, so threads still thread. This
 *    runs whenever `received` is not `keep`: `keep` is the "touch no
 *    topology" setting, and a Message-ID host is topology as much as a hop.
 * Only the header section is held (bounded by limits.max_header_size; over
 * it the stream fails, so the message is never sent un-anonymised). Fields
 * nothing changed keep their bytes, line ends and folds; if nothing changed
 * at all the section is passed on as the very same Buffer.
 * Limits: hosts are looked for in Received fields and inside "<...>" of the
 * three msg-id fields only; other fields are kept or removed, never edited.
 */
import type { HeaderPolicy } from '../../rules/types';
import type { Pseudonymiser } from '../../privacy/pseudonym';
import type { Rewriter } from '../stage';
import { HeaderBlockTransform } from '../header-block';
import { compilePolicy } from '../../headers/policy';
import { splitFields, joinFields, fieldText, type Field } from '../../mime/header-fields';
import { planReceived } from '../../headers/received-hosts';
import { MSG_ID_FIELDS, internalHostKey, rewriteMsgIds } from '../../headers/message-id';

/** Header fields that carry a TLS requirement (RFC 8689): `headers.remove` never drops them, whatever its patterns say. */
export const TLS_REQUIREMENT_FIELDS: ReadonlySet<string> = new Set(['require-tls-esmtp', 'tls-required']);

export function anonymiseHeaderBlock(block: Buffer, policy: HeaderPolicy, pseudonyms: Pseudonymiser): Buffer {
  const p = compilePolicy(policy);
  if (!p.active) return block;
  const section = splitFields(block.toString('latin1'));
  const touchTopology = p.received !== 'keep';
  const hopNames = new Set<string>();
  // One HMAC per distinct hop or host, however often the section repeats it.
  const hopTokens = new Map<string, string>();
  const hopToken = (key: string): string => {
    let t = hopTokens.get(key);
    if (t === undefined) hopTokens.set(key, (t = pseudonyms.token('hop', key, 8)));
    return t;
  };
  let changed = false;

  // The whole Received block is planned at once: a by-clause takes the pseudonym of a hop named anywhere in it.
  const receivedTexts = touchTopology ? section.fields.filter((f) => f.name === 'received').map((f) => fieldText(section, f)) : [];
  const received = p.received === 'keep' ? undefined : planReceived(receivedTexts, p.received, p.internal, hopToken);
  if (received) {
    // Names of removed hops still count: their Message-IDs name the same machines.
    for (const n of received.names) hopNames.add(n);
    if (received.changed) changed = true;
  }

  const kept: Field[] = [];
  let nth = 0;
  for (const field of section.fields) {
    // RFC 8689: the TLS requirement travels with the message (Postfix 3.11 carries REQUIRETLS as Require-TLS-ESMTP); never removed.
    let drop = !TLS_REQUIREMENT_FIELDS.has(field.name) && p.remove.matches(field.name);
    if (received && field.name === 'received') {
      const outcome = received.outcomes[nth++];
      if (outcome.drop) drop = true;
      else if (!drop && outcome.text !== undefined) field.text = outcome.text;
    }
    if (drop) changed = true;
    else kept.push(field);
  }

  if (touchTopology) {
    const memo = new Map<string, string | undefined>();
    const replace = (host: string): string | undefined => {
      if (memo.has(host)) return memo.get(host);
      const key = internalHostKey(host, p.internal, hopNames);
      const r = key === undefined ? undefined : `h-${pseudonyms.token('host', key, 8)}.invalid`;
      memo.set(host, r);
      return r;
    };
    for (const field of kept) {
      if (!MSG_ID_FIELDS.has(field.name)) continue;
      const text = rewriteMsgIds(fieldText(section, field), replace);
      if (text !== undefined) {
        field.text = text;
        changed = true;
      }
    }
  }

  if (!changed) return block;
  return Buffer.from(joinFields(section, kept), 'latin1');
}

export const anonymiseHeaders: Rewriter = {
  name: 'anonymise-headers',
  kind: 'rewriter',
  create(ctx) {
    const policy = ctx.rules.headers;
    const pseudonyms = ctx.pseudonyms;
    return new HeaderBlockTransform(ctx.config.limits.max_header_size, (block) => anonymiseHeaderBlock(block, policy, pseudonyms));
  },
};
