/*
 * The kinds of stage (after zone-mta): analyzers see the raw bytes of pass 1
 * and record into the context; rewriters transform the bytes of pass 2 on
 * their way to the next hop.
 *
 * Rewriters are Transform streams, so pass 2 is one stream.pipeline() call,
 * which propagates errors and cleans up. Analyzers only read, so they are
 * plain synchronous objects that one pass-1 stream drives (run.ts): a
 * Transform per analyzer cost more per message than the analysis of a small
 * message itself (stream setup, an AbortController and its DOMException per
 * pipeline, a buffer hop per stage).
 */
import type { Transform } from 'node:stream';
import type { MessageContext } from './context';

/** One message's analysis: every byte of pass 1 in order, then end. An exception fails the pass. */
export interface ByteAnalysis {
  write(chunk: Buffer): void;
  end(): void;
}

export interface Analyzer {
  readonly name: string;
  readonly kind: 'analyzer';
  create(ctx: MessageContext): ByteAnalysis;
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
