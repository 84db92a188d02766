/*
 * The Art. 30 record of processing (`mailveil gdpr report`, GET
 * /api/gdpr/report): Markdown describing this instance, made by
 * gdpr/report.ts from its config and the rule set given (the CLI loads
 * rules_dir, the API passes the live set). It reads nothing under state_dir,
 * so it needs neither the store nor the audit log.
 */
import type { RuleSet } from '../rules/types';
import { gdprReport } from '../gdpr/report';
import type { OperationContext } from './context';
import { packageVersion } from './version';

/** `configFile`: the absolute path the config came from, when there was one (the report names it). */
export function art30Report(ctx: Pick<OperationContext, 'config' | 'now'>, rules: RuleSet, configFile?: string): string {
  return gdprReport({ config: ctx.config, rules, version: packageVersion(), generatedAt: ctx.now(), configFile });
}
