/*
 * A HeaderPolicy compiled once: remove patterns, CIDR set and domain suffixes.
 * Cached by the policy object's identity; a RuleSet is immutable and a reload
 * builds a new one, so a cache entry never goes stale and dies with its set.
 */
import type { HeaderPolicy, ReceivedMode } from '../rules/types';
import { NamePattern } from './name-pattern';
import { InternalHosts } from './internal';

export interface CompiledPolicy {
  readonly remove: NamePattern;
  readonly received: ReceivedMode;
  readonly internal: InternalHosts;
  /** False when the policy can change nothing, so the header is not even split. */
  readonly active: boolean;
}

const cache = new WeakMap<HeaderPolicy, CompiledPolicy>();

export function compilePolicy(policy: HeaderPolicy): CompiledPolicy {
  let c = cache.get(policy);
  if (!c) {
    const remove = new NamePattern(policy.remove ?? []);
    const received = policy.received ?? 'keep';
    c = {
      remove,
      received,
      internal: new InternalHosts(policy.internal_networks ?? [], policy.internal_domains ?? []),
      active: !remove.empty || received !== 'keep',
    };
    cache.set(policy, c);
  }
  return c;
}
