/*
 * Runs the stages of PIPELINE for one message. Pass 1's analyzers are
 * synchronous and see each chunk of the client's data on its way into the
 * spool (stage.ts says why); runPass1 says why that loop reads its input to
 * the end whatever happens. Pass 2 is one stream.pipeline(), so an error
 * anywhere tears the whole pass down and reaches the caller; nothing forwards
 * errors by hand. Time spent inside each stage is accumulated per stage for
 * the stage_duration metric.
 */
import { finished } from 'node:stream/promises';
import { pipeline as pipelineCb, Transform, type Readable, type TransformCallback } from 'node:stream';
import { PIPELINE } from './lifecycle';
import type { MessageContext } from './context';
import type { ByteAnalysis } from './stage';
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

/** Every analyzer of pass 1 over the same bytes, in PIPELINE order. */
class Analysis implements ByteAnalysis {
  private readonly stages: { name: string; run: ByteAnalysis; ns: bigint }[];

  constructor(
    ctx: MessageContext,
    private readonly timings: StageTimings,
  ) {
    this.stages = PIPELINE.pass1.map((s) => ({ name: s.name, run: s.create(ctx), ns: 0n }));
  }

  write(chunk: Buffer): void {
    for (const s of this.stages) {
      const start = process.hrtime.bigint();
      s.run.write(chunk);
      s.ns += process.hrtime.bigint() - start;
    }
  }

  end(): void {
    for (const s of this.stages) {
      const start = process.hrtime.bigint();
      s.run.end();
      s.ns += process.hrtime.bigint() - start;
      this.timings.set(s.name, (this.timings.get(s.name) ?? 0) + Number(s.ns) / 1e9);
    }
  }
}

/** A pass-through Transform that shows every byte to `analysis`. */
export class AnalysisStream extends Transform {
  constructor(private readonly analysis: ByteAnalysis) {
    super();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    try {
      this.analysis.write(chunk);
    } catch (err) {
      cb(err as Error);
      return;
    }
    cb(null, chunk);
  }

  override _flush(cb: TransformCallback): void {
    try {
      this.analysis.end();
    } catch (err) {
      cb(err as Error);
      return;
    }
    cb();
  }
}

/** How pass 1 ended, once the client's data has ended. */
export interface Pass1Result {
  /** More than `maxBytes` arrived: the spool stopped at the limit, the rest was read and dropped. */
  tooBig: boolean;
  /** The spool or an analyzer failed; the rest was read and dropped. */
  failure?: Error;
}

/**
 * Pass 1: the client's bytes through every analyzer into the spool.
 *
 * The input is always read to its end, even after the size limit or a
 * failure (a full disk): smtp-server answers only once the client's data has
 * ended, and a reply before the client's final dot would be read by the
 * client as the answer to commands it has not sent yet. So this loop does
 * not use stream.pipeline(), which would destroy the input on the first
 * error. A client that goes away makes the input fail, and that failure is
 * thrown.
 */
export async function runPass1(
  ctx: MessageContext,
  input: AsyncIterable<Buffer>,
  spool: Spool,
  timings: StageTimings,
  opts: { maxBytes: number; onBytes?(n: number): void },
): Promise<Pass1Result> {
  const analysis = new Analysis(ctx, timings);
  let failure: Error | undefined;
  let tooBig = false;
  spool.on('error', (err) => (failure ??= err));
  for await (const chunk of input) {
    ctx.size += chunk.length;
    opts.onBytes?.(chunk.length);
    if (tooBig || failure) continue;
    if (ctx.size > opts.maxBytes) {
      tooBig = true;
      continue;
    }
    try {
      analysis.write(chunk);
    } catch (err) {
      failure = err as Error;
      continue;
    }
    if (!spool.write(chunk)) await settledWrite(spool);
  }
  if (!tooBig && !failure) {
    try {
      analysis.end();
      await finished(spool.end());
    } catch (err) {
      failure ??= err as Error;
    }
  }
  return { tooBig, failure };
}

/** Resolves on drain, or on the error/close that means the writes failed (the 'error' listener records it). */
function settledWrite(w: NodeJS.WritableStream & { destroyed: boolean }): Promise<void> {
  if (w.destroyed) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      w.off('drain', done);
      w.off('close', done);
      w.off('error', done);
      resolve();
    };
    w.on('drain', done);
    w.on('close', done);
    w.on('error', done);
  });
}

/** Pass 1 and decide without a spool (`mailveil rules test`, the scan benchmark): nothing is kept. */
export async function analyse(ctx: MessageContext, input: Iterable<Buffer> | AsyncIterable<Buffer>, timings: StageTimings = new Map()): Promise<void> {
  const analysis = new Analysis(ctx, timings);
  for await (const chunk of input) {
    ctx.size += chunk.length;
    analysis.write(chunk);
  }
  analysis.end();
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

/**
 * Pass 2 over an original that is not in a spool (a release reads it back
 * from the quarantine): the same rewriters as pass2Stream, in PIPELINE order.
 */
export function pass2FromSource(ctx: MessageContext, source: Readable, timings: StageTimings): Readable & AsyncIterable<Buffer> {
  const stages = PIPELINE.pass2.map((s) => timed(s.create(ctx), s.name, timings));
  return pipelineCb([source as unknown as NodeJS.ReadWriteStream, ...stages], () => undefined) as unknown as Readable & AsyncIterable<Buffer>;
}
