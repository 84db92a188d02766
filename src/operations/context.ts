/*
 * What every operation acts on, passed in explicitly: the instance's config,
 * its quarantine store and audit log, who is acting, and the clock. The CLI
 * builds one per command (actor `os:<user>`, cli/instance.ts), the admin API
 * one per request (actor `token:admin`, admin/routes.ts), and the review page
 * will build its own; the operations themselves never look at process state.
 */
import type { AuditLog } from '../audit/log';
import type { Config } from '../config/load';
import type { QuarantineStore } from '../quarantine/store';

export interface OperationContext {
  config: Config;
  store: QuarantineStore;
  audit: AuditLog;
  /** Who every audit event an operation writes names: 'os:<user>' or 'token:<name>' (audit/actor.ts). */
  actor: string;
  /** The clock: list's --older-than, purge, the time an export or report is made. */
  now: () => Date;
}
