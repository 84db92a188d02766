/*
 * What a released message goes through on its way out: the pass-2 rewriters
 * every delivered message gets (PIPELINE.pass2: redact, anonymise-headers,
 * verdict-header, smtp-encode), over the held original read back from the
 * quarantine. The entry itself is only read, never changed.
 *
 *  - Always: header anonymisation under the current rule set's `headers:`
 *    policy and the instance's pseudonym key (so a hop gets the pseudonym it
 *    gets on every other message), and the verdict header
 *    `released; rules=<the entry's rule ids>`.
 *  - Without `redact`: the redact stage passes the body through. The
 *    message was held as a whole, and the reviewer let it go as it is.
 *  - With `redact`: pass 1 and decide run again on the held original with
 *    the current rule set, so the redact stage has findings to act on; every
 *    `redact` rule that fires is applied (whatever else fired: the reviewer
 *    has overruled the hold). Redaction fails closed as it does for
 *    delivered mail (pipeline/stages/redact.ts), and content pass 1 cannot scan
 *    refuses the release: a value could hide there.
 *
 * A failure is a ReleaseRewriteError (nothing is sent, the entry is kept);
 * a tampered entry surfaces as the quarantine's own MV_QUARANTINE_CORRUPT.
 */
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Config } from '../config/load';
import type { Pseudonymiser } from '../privacy/pseudonym';
import { newContext, type MessageContext } from '../pipeline/context';
import { HeaderTooLargeError } from '../pipeline/header-block';
import { analyse, pass2FromSource } from '../pipeline/run';
import { RedactionError } from '../redact/error';
import type { RuleSet } from '../rules/types';
import type { MvCode } from '../errors';

export interface ReleaseRewriteOptions {
  config: Config;
  /** The rule set live now: its header policy, and its redact rules with `redact`. */
  rules: RuleSet;
  /** The instance's key (<state_dir>/pseudonym.key), the one serve uses. */
  pseudonyms: Pseudonymiser;
  /** Apply the rules' redaction (CLI --redact, API {"redact": true}). */
  redact: boolean;
}

/** Why the released message could not be produced; nothing was sent. */
export class ReleaseRewriteError extends Error {
  readonly code: MvCode = 'MV_RELEASE_REWRITE';
}

/** The held original, read afresh (each pass decrypts and authenticates it again). */
export type HeldSource = () => AsyncIterable<Buffer>;

/**
 * The context pass 2 runs with for entry `id`, held for `heldRules`. With
 * `redact`, the held original is analysed again first.
 */
export async function releaseContext(id: string, heldRules: readonly string[], o: ReleaseRewriteOptions, source: HeldSource): Promise<MessageContext> {
  const ctx = newContext(id, o.config, o.rules, o.pseudonyms);
  if (!o.redact) {
    // No findings, a verdict that is not `redact`: the redact stage passes everything through.
    ctx.released = { rules: [...heldRules] };
    return ctx;
  }
  await analyse(ctx, source());
  if (ctx.unscannable.length) {
    throw new ReleaseRewriteError(`part of it cannot be scanned (${ctx.unscannable.join(', ')}), so redaction cannot be complete`);
  }
  const redactRules = new Set(o.rules.rules.filter((r) => r.action === 'redact').map((r) => r.id));
  const applied = ctx.verdict.rules.filter((r) => redactRules.has(r));
  // The hold is overruled: only the redact rules' part of the verdict is carried out.
  ctx.verdict = { action: applied.length ? 'redact' : 'pass', rules: ctx.verdict.rules };
  // The header names every rule that changed the message, even one added since the hold.
  ctx.released = { rules: [...heldRules, ...applied.filter((r) => !heldRules.includes(r))] };
  return ctx;
}

/** The released message as it goes on the wire (CRLF, dot-stuffed, without the final dot). */
export function releasedStream(ctx: MessageContext, source: HeldSource): Readable & AsyncIterable<Buffer> {
  return pass2FromSource(ctx, Readable.from(source(), { objectMode: false }), new Map());
}

/**
 * Runs pass 2 to nowhere, so a redaction that cannot be applied, a header
 * section too large to anonymise or a corrupt entry is found before the next
 * hop is contacted. Pass 2 is deterministic, so the real run gives the same.
 */
export async function trialRun(ctx: MessageContext, source: HeldSource): Promise<void> {
  try {
    await pipeline(releasedStream(ctx, source), new Writable({ write: (_c, _e, cb) => cb() }));
  } catch (err) {
    throw rewriteFailure(err);
  }
}

/** A stage's failure as a ReleaseRewriteError; anything else (a corrupt entry) as it is. */
export function rewriteFailure(err: unknown): unknown {
  if (err instanceof RedactionError) return new ReleaseRewriteError(`redaction could not be applied (${err.message})`);
  if (err instanceof HeaderTooLargeError) return new ReleaseRewriteError(`its header section cannot be anonymised (${err.message})`);
  return err;
}
