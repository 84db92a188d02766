/*
 * Whether a message may leave only over verified TLS (issue 10; RFC 8689):
 * a fired rule with `require_tls: verified` (monitor rules never bite), or
 * REQUIRETLS received (on MAIL FROM, or as Postfix 3.11's
 * `Require-TLS-ESMTP: yes`). `TLS-Required: No` relaxes neither. Read by
 * route (the branch), escalate, the verdict header and the log line, which
 * say `tls=verified-required`, never why.
 */
import type { MessageContext } from './context';

/** Why the message needs verified TLS, or undefined. Words only, never values: the log and the verdict header say `tls=verified-required`. */
export function tlsRequirement(ctx: MessageContext): 'rule' | 'requiretls' | undefined {
  const fired = new Set(ctx.verdict.rules);
  if (ctx.rules.rules.some((r) => r.require_tls === 'verified' && r.action !== 'monitor' && fired.has(r.id))) return 'rule';
  if (ctx.requireTls.esmtp || ctx.requireTls.header) return 'requiretls';
  return undefined;
}
