/*
 * An operations context (src/operations/context.ts) over a fresh state dir,
 * for tests that call the operations directly: the repo's shipped rules, an
 * empty local layer, a fixed clock and a test actor. Reads the audit log back.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { AuditLog, type AuditEvent } from '../../src/audit/log';
import { loadConfig, type ConfigOverrides } from '../../src/config/load';
import type { OperationContext } from '../../src/operations/context';
import { QuarantineStore } from '../../src/quarantine/store';
import { REPO_ROOT } from './paths';

export const TEST_ACTOR = 'os:ops-tester';
/** The fixed "now" of a test context: two days after the fixtures' receivedAt (2026-11-22). */
export const TEST_NOW = new Date('2026-11-24T12:00:00.000Z');

export function testContext(stateDir: string, overrides: ConfigOverrides = {}, now: Date = TEST_NOW): OperationContext {
  const local = join(stateDir, 'rules.local.d');
  mkdirSync(local, { recursive: true });
  const config = loadConfig(undefined, { state_dir: stateDir, rules_dir: join(REPO_ROOT, 'rules.d'), local_rules_dir: local, ...overrides });
  const clock = () => now;
  return { config, store: new QuarantineStore(stateDir, { now: clock }), audit: new AuditLog(stateDir, { now: clock }), actor: TEST_ACTOR, now: clock };
}

export async function auditEvents(ctx: OperationContext): Promise<AuditEvent[]> {
  const out: AuditEvent[] = [];
  for await (const e of ctx.audit.read()) out.push(e);
  return out;
}
