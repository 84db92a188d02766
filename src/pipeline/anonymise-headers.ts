/*
 * Pass 2 rewriter: header anonymisation (data minimisation, GDPR Art. 5(1)(c)).
 *  - `remove`: drops every field whose name matches a pattern, folds included.
 *  - `received: pseudonymise`: an internal hop's from-clause (RFC 5321 4.4)
 *    becomes "from hop-<8 hex> ([redacted])"; the count and order of
 *    Received fields never change. `strip-internal` drops those fields
 *    instead; `keep` leaves every Received field alone.
 *  - msg-ids (RFC 5322 3.6.4) in Message-ID, In-Reply-To and References
 *    lose internal host names, consistently, so threads still thread. This
 *    runs whenever `received` is not `keep`: `keep` is the "touch no
 *    topology" setting, and a Message-ID host is topology as much as a hop.
 * Only the header section is held (bounded by limits.max_header_size; over
 * it the stream fails, so the message is never sent un-anonymised). Fields
 * nothing changed keep their bytes, line ends and folds; if nothing changed
 * at all the section is passed on as the very same Buffer.
 * Limits: by-clauses, and stamps with no from-clause (Postfix pickup's "by
 * host (Postfix, from userid N)"), are kept as written, so an internal host
 * that stamped a hop is still named there; hosts are only looked for in
 * from-clauses and inside "<...>" of the three msg-id fields.
 */
import type { HeaderPolicy } from '../rules/types';
import type { Pseudonymiser } from '../observability/pseudonym';
import type { Rewriter } from './stage';
import { HeaderBlockTransform } from './header-block';
import { compilePolicy } from '../headers/policy';
import { splitFields, joinFields, fieldText, type Field } from '../headers/fields';
import { parseFromClause, classifyHop, pseudonymiseClause } from '../headers/received';
import { MSG_ID_FIELDS, internalHostKey, rewriteMsgIds } from '../headers/message-id';

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

  const kept: Field[] = [];
  for (const field of section.fields) {
    let drop = p.remove.matches(field.name);
    if (touchTopology && field.name === 'received') {
      const text = fieldText(section, field);
      const clause = parseFromClause(text);
      const hop = clause && classifyHop(text, clause, p.internal);
      if (clause && hop?.internal) {
        // Names of removed hops still count: their Message-IDs name the same machines.
        for (const n of hop.names) hopNames.add(n);
        if (p.received === 'strip-internal') drop = true;
        else if (!drop) field.text = pseudonymiseClause(text, clause, hopToken(hop.key));
        changed = true;
      }
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
