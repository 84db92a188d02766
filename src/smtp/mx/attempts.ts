/*
 * The order MX addresses are tried in (RFC 5321 5.1): lowest preference
 * first, hosts of equal preference in random order (so load spreads as the
 * domain intends), and each host's IPv6 and IPv4 addresses in random order
 * (Postfix's smtp_address_preference = any). Hosts tls/policy.ts marked
 * `skip` are not tried. At most MAX_ADDRESSES addresses in all (Postfix's
 * smtp_mx_address_limit is 5; a domain with many MX hosts on several
 * addresses each must not keep a client's RCPT waiting for minutes).
 */
import type { MxTarget } from '../../tls/policy';

export const MAX_ADDRESSES = 10;

export interface Attempt {
  target: MxTarget;
  ip: string;
}

function shuffle<T>(xs: T[], random: () => number): T[] {
  for (let i = xs.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [xs[i], xs[j]] = [xs[j], xs[i]];
  }
  return xs;
}

export function attemptOrder(targets: readonly MxTarget[], random: () => number = Math.random): Attempt[] {
  const live = targets.filter((t) => !t.skip);
  const prefs = [...new Set(live.map((t) => t.preference))].sort((a, b) => a - b);
  const out: Attempt[] = [];
  for (const p of prefs) {
    for (const target of shuffle(live.filter((t) => t.preference === p), random)) {
      for (const ip of shuffle([...target.ipv6, ...target.ipv4], random)) out.push({ target, ip });
    }
  }
  return out.slice(0, MAX_ADDRESSES);
}
