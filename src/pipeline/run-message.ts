/*
 * Runs lifecycle.ts for one message: each step from FIRST_STEP on, checking
 * every transition against STEPS (a step that goes somewhere the table does
 * not list is a bug, and the message ends `internal` rather than taking an
 * undeclared path), then the AFTER steps in order, whatever the outcome.
 *
 * An exception out of a step ends the message too: as `client_gone` when the
 * client has left (its data stream fails when its connection goes), else as
 * `internal`, logged without content. The spool is disposed before the
 * `after` steps, so a message never outlives its log line on disk.
 */
import { AFTER, FIRST_STEP, STEPS, type AfterName, type Outcome, type StepName } from './lifecycle';
import { runDecide } from './run';
import { receive } from './stages/receive';
import { checkSize } from './stages/check-size';
import { route } from './stages/route';
import { hold } from './stages/hold';
import { deliver } from './stages/deliver';
import { escalate } from './stages/escalate';
import { afterCount } from './stages/after-count';
import { afterLog } from './stages/after-log';
import { afterAudit } from './stages/after-audit';
import type { AfterStep, Message, Step } from './message';

const decideStep: Step = async (m) => {
  runDecide(m.ctx, m.timings);
  return { next: 'route' };
};

/** Every declared step's implementation: the type makes a declared step without one a compile error. */
const IMPL: Record<StepName, Step> = { receive, 'check-size': checkSize, decide: decideStep, route, escalate, hold, deliver };
const AFTER_IMPL: Record<AfterName, AfterStep> = { count: afterCount, log: afterLog, audit: afterAudit };

async function runSteps(m: Message): Promise<Outcome> {
  let name: StepName = FIRST_STEP;
  for (;;) {
    m.trail.push(name);
    let result;
    try {
      result = await IMPL[name](m);
    } catch (err) {
      if (m.client.hasGone()) return { kind: 'client_gone' };
      m.services.log.error({ id: m.ctx.id, step: name, err: { message: (err as Error).message, code: (err as { code?: string }).code } }, 'message handling failed');
      return { kind: 'internal' };
    }
    const spec: { next: readonly string[]; ends: readonly string[] } = STEPS[name];
    if ('end' in result) {
      if (spec.ends.includes(result.end.kind)) return result.end;
      m.services.log.error({ id: m.ctx.id, step: name, end: result.end.kind }, 'lifecycle: undeclared outcome');
      return { kind: 'internal' };
    }
    if (!spec.next.includes(result.next) || m.trail.includes(result.next)) {
      m.services.log.error({ id: m.ctx.id, step: name, next: result.next }, 'lifecycle: undeclared transition');
      return { kind: 'internal' };
    }
    name = result.next;
  }
}

/** The message's outcome, once every `after` step has run. */
export async function runMessage(m: Message): Promise<Outcome> {
  let outcome: Outcome;
  try {
    outcome = await runSteps(m);
  } finally {
    m.spool.destroy();
    await m.spool.dispose();
  }
  for (const name of Object.keys(AFTER) as AfterName[]) {
    try {
      await AFTER_IMPL[name](m, outcome);
    } catch (err) {
      // An `after` step must not change the reply; its failure is only logged.
      m.services.log.error({ id: m.ctx.id, after: name, err: { message: (err as Error).message } }, 'after step failed');
    }
  }
  return outcome;
}
