/*
 * The two kinds of stage (after zone-mta): analyzers see the raw bytes of
 * pass 1 and record into the context; rewriters transform the bytes of pass 2
 * on their way to the next hop. Both are Transform streams so a pass is one
 * stream.pipeline() call, which propagates errors and cleans up.
 */
import type { Transform } from 'node:stream';
import type { MessageContext } from './context';

export interface Analyzer {
  readonly name: string;
  readonly kind: 'analyzer';
  /** A pass-through Transform: it must push every byte it receives, unchanged. */
  create(ctx: MessageContext): Transform;
}

export interface Decider {
  readonly name: string;
  readonly kind: 'decider';
  decide(ctx: MessageContext): void;
}

export interface Rewriter {
  readonly name: string;
  readonly kind: 'rewriter';
  create(ctx: MessageContext): Transform;
}
