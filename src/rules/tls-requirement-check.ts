/*
 * A rule set that asks for verified TLS where the configuration cannot give
 * it (issue 10 point 4). In relay mode a message a `require_tls: verified`
 * rule fires on leaves only over the mirrored next hop at tls.next_hop
 * level verify/secure, or over tls.secure_next_hop; with neither, every
 * such message is deferred (or bounced) by step `escalate`. That is a
 * configuration mistake an operator should hear about before the first
 * message, so `serve` logs it at start and on every reload, and
 * `rules check` prints it. A warning, not an error: defer is the safe
 * outcome, and a rule may be loaded before its secure path is wired.
 *
 * `monitor` rules never bite (pipeline/tls-requirement.ts), so they do not
 * count. mx mode has its own per-domain policy and is not checked here.
 */
import type { Config } from '../config/load';
import type { RuleSet } from './types';

/** The one-line warning, or undefined when every `require_tls` rule has a verified path (or there is none). */
export function tlsRequirementWarning(
  rules: Pick<RuleSet, 'rules'>,
  config: { delivery: Pick<Config['delivery'], 'mode'>; tls: { next_hop: Pick<Config['tls']['next_hop'], 'level'>; secure_next_hop: unknown; escalation_failure: Config['tls']['escalation_failure'] } },
): string | undefined {
  if (config.delivery.mode !== 'relay') return undefined;
  const ids = rules.rules.filter((r) => r.require_tls === 'verified' && r.action !== 'monitor').map((r) => r.id);
  if (!ids.length) return undefined;
  const level = config.tls.next_hop.level;
  if (config.tls.secure_next_hop !== null && config.tls.secure_next_hop !== undefined) return undefined;
  if (level === 'verify' || level === 'secure') return undefined;
  const outcome = config.tls.escalation_failure === 'bounce' ? 'bounced (550 5.7.10)' : 'deferred (451 4.7.5)';
  return (
    `rule${ids.length === 1 ? '' : 's'} ${ids.join(', ')} require${ids.length === 1 ? 's' : ''} verified TLS (require_tls: verified), ` +
    `but there is no verified path: tls.secure_next_hop is not set and tls.next_hop.level is ${level}; ` +
    `every message ${ids.length === 1 ? 'it fires' : 'they fire'} on will be ${outcome}. ` +
    'Set tls.secure_next_hop, or tls.next_hop.level to verify or secure'
  );
}

/**
 * For `serve`, at start and after each successful reload: logs the warning
 * once (event `rules_tls_requirement`), if there is one. Returns it.
 */
export function logTlsRequirementWarning(
  log: { warn(obj: object, msg: string): void },
  rules: Pick<RuleSet, 'rules'>,
  config: Parameters<typeof tlsRequirementWarning>[1],
): string | undefined {
  const warning = tlsRequirementWarning(rules, config);
  if (warning) log.warn({ event: 'rules_tls_requirement', tls: 'verified-required' }, warning);
  return warning;
}
