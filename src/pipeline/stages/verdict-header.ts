/*
 * Pass 2: adds `X-Mailveil-Verdict: <action>; rules=<id,...>` at the top of
 * the header (`released; rules=<id,...>` on a release from quarantine; the
 * name comes from config.verdict_header; false switches it off). Any copy
 * of that header already in the message is removed first, so a sender
 * cannot forge a verdict that a later filter would trust. The value carries
 * rule ids only, never a matched value; `; tls=verified-required` follows
 * when the message may leave only over verified TLS (escalate.ts), never why.
 */
import { HeaderBlockTransform } from '../header-block';
import type { Rewriter } from '../stage';
import type { MessageContext } from '../context';
import { PassThrough } from 'node:stream';
import { tlsRequirement } from '../tls-requirement';

/**
 * `monitor` rules are for trying a rule before it bites (Postfix's WARN):
 * they are counted and logged but leave no trace in the message. A message
 * released from quarantine says `released` with the rule ids it was held
 * for (ctx.released), not the verdict its pass 2 runs under.
 */
export function verdictHeaderValue(ctx: MessageContext): string {
  const monitorOnly = new Set(ctx.rules.rules.filter((r) => r.action === 'monitor').map((r) => r.id));
  const action = ctx.released ? 'released' : ctx.verdict.action === 'monitor' ? 'pass' : ctx.verdict.action;
  const rules = ctx.released ? ctx.released.rules : ctx.verdict.rules;
  const tls = (ctx.released ? ctx.released.tlsRequired : tlsRequirement(ctx)) ? '; tls=verified-required' : '';
  return `${action}; rules=${rules.filter((id) => !monitorOnly.has(id)).join(',')}${tls}`;
}

/** Drops every field named `name` (and its folded lines) from a header block. */
function withoutField(header: Buffer, name: string): Buffer {
  const text = header.toString('latin1');
  const lines = text.split(/(?<=\n)/);
  const wanted = name.toLowerCase();
  let dropping = false;
  const kept = lines.filter((line) => {
    if (line[0] === ' ' || line[0] === '\t') return !dropping;
    const colon = line.indexOf(':');
    dropping = colon > 0 && line.slice(0, colon).trimEnd().toLowerCase() === wanted;
    return !dropping;
  });
  return kept.length === lines.length ? header : Buffer.from(kept.join(''), 'latin1');
}

export const verdictHeader: Rewriter = {
  name: 'verdict-header',
  kind: 'rewriter',
  create(ctx) {
    const name = ctx.config.verdict_header;
    if (name === false) return new PassThrough();
    return new HeaderBlockTransform(ctx.config.limits.max_header_size, (header) =>
      Buffer.concat([Buffer.from(`${name}: ${verdictHeaderValue(ctx)}\r\n`, 'latin1'), withoutField(header, name)]),
    );
  },
};
