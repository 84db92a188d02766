/*
 * Runs the stages of PIPELINE for one message. Each pass is one
 * stream.pipeline() so an error anywhere tears the whole pass down and
 * reaches the caller; nothing forwards errors by hand. Time spent inside each
 * stage's transform is accumulated per stage for the stage_duration metric.
 */
import { pipeline } from 'node:stream/promises';
import { pipeline as pipelineCb, Writable, type Readable, type Transform } from 'node:stream';
import { PIPELINE } from './order';
import type { MessageContext } from './context';
import type { Spool } from './spool';

export type StageTimings = Map<string, number>;

/** Wraps a stage's transform and flush to add up the time spent in them (seconds). */
function timed(stream: Transform, name: string, timings: StageTimings): Transform {
  const t = stream as Transform & { _transform: Function; _flush?: Function };
  const add = (start: bigint) => timings.set(name, (timings.get(name) ?? 0) + Number(process.hrtime.bigint() - start) / 1e9);
  const transform = t._transform;
  t._transform = function (chunk: unknown, enc: unknown, cb: Function) {
    const start = process.hrtime.bigint();
    try {
      return transform.call(this, chunk, enc, cb);
    } finally {
      add(start);
    }
  };
  const flush = t._flush;
  if (flush) {
    t._flush = function (cb: Function) {
      const start = process.hrtime.bigint();
      try {
        return flush.call(this, cb);
      } finally {
        add(start);
      }
    };
  }
  return stream;
}

/** Pass 1: the client's bytes through every analyzer into the spool. */
export async function runPass1(ctx: MessageContext, input: Readable, spool: Spool, timings: StageTimings): Promise<void> {
  const stages = PIPELINE.pass1.map((s) => timed(s.create(ctx), s.name, timings));
  await pipeline([input, ...stages, spool] as unknown as NodeJS.ReadWriteStream[]);
}

/** Pass 1 and decide without a spool, for `mailveil rules test`: nothing is kept. */
export async function analyse(ctx: MessageContext, input: Readable, timings: StageTimings = new Map()): Promise<void> {
  const stages = PIPELINE.pass1.map((s) => timed(s.create(ctx), s.name, timings));
  const sink = new Writable({ write: (chunk: Buffer, _e, cb) => ((ctx.size += chunk.length), cb()) });
  await pipeline([input, ...stages, sink] as unknown as NodeJS.ReadWriteStream[]);
  runDecide(ctx, timings);
}

export function runDecide(ctx: MessageContext, timings: StageTimings): void {
  for (const d of PIPELINE.decide) {
    const start = process.hrtime.bigint();
    d.decide(ctx);
    timings.set(d.name, Number(process.hrtime.bigint() - start) / 1e9);
  }
}

/**
 * Pass 2: the spooled original through every rewriter. The returned stream
 * fails if any stage fails, so a consumer that stops on error never commits.
 */
export function pass2Stream(ctx: MessageContext, spool: Spool, timings: StageTimings): Readable & AsyncIterable<Buffer> {
  const stages = PIPELINE.pass2.map((s) => timed(s.create(ctx), s.name, timings));
  const streams: NodeJS.ReadWriteStream[] = [spool.read() as unknown as NodeJS.ReadWriteStream, ...stages];
  return pipelineCb(streams, () => undefined) as unknown as Readable & AsyncIterable<Buffer>;
}
