/*
 * Pass-1 MIME text extraction: a pass-through Transform that pushes every
 * input byte unchanged and, as the bytes arrive, gives a TextSink the decoded
 * text of each MIME part, so detectors cannot be dodged by encoding:
 * transfer encodings (RFC 2045 6), charsets incl. UTF-16 (RFC 2046 4.1.2,
 * RFC 2781), HTML to text with HTML5 named character references, RFC 2047
 * encoded words in Subject and address fields, RFC 2231 file names, nested
 * message/rfc822 and message/global (RFC 2046 5.2.1, RFC 6532), text
 * attachments. HTML that is not shown (comments, script, style, attribute
 * values) still leaves with the message, so it is scanned too, kept apart
 * from the visible text (html-text.ts).
 *
 * Fail closed (README, Guarantees, 5): bad content is a sink call
 * (unscannable / notExtracted), never a stream error; the stream errors only
 * on an internal bug (including an exception thrown by the sink).
 * Parsing is synchronous: a chunk is parsed, and every sink call it makes is
 * done, before write() returns (see message-parser.ts). TextExtraction is
 * that synchronous core, for pass 1 (which drives it without a stream of its
 * own); MimeTextExtractor wraps it as a pass-through Transform.
 * Limits: ExtractLimits, plus MAX_LINE (line-feeder.ts), MAX_MIME_FIELD
 * (splitter.ts) and MAX_HIDDEN_TEXT (html-text.ts). Memory is bounded: no part
 * is ever buffered whole.
 * Paths, scopes and the order of sink calls: see types.ts.
 */
import { Transform, type TransformCallback } from 'node:stream';
import { MessageParser, type ParseContext } from './message-parser';
import type { ExtractLimits, TextSink } from './types';

export type { ExtractLimits, PartInfo, Scope, TextSink, UnscannableReason } from './types';

function asError(err: unknown): Error {
  return err instanceof Error ? err : new Error(`mime extraction failed: ${String(err)}`);
}

function checkLimits(limits: ExtractLimits): void {
  for (const key of ['maxMimeDepth', 'maxParts', 'maxHeaderSize', 'maxPartText'] as const) {
    const v = limits[key];
    if (!(Number.isInteger(v) && v >= 1)) throw new RangeError(`MimeTextExtractor: limits.${key} must be a positive integer, got ${String(v)}`);
  }
}

/** The message's bytes in, in any chunking; the sink hears about every part before write() or end() returns. An exception is an internal bug (or the sink's). */
export class TextExtraction {
  private readonly root: MessageParser;
  private readonly ctx: ParseContext;

  constructor(sink: TextSink, limits: ExtractLimits) {
    checkLimits(limits);
    this.ctx = { sink, limits, parts: 0, stopped: false };
    this.root = new MessageParser(this.ctx, { path: '', depth: 0, attachment: false });
  }

  write(chunk: Buffer): void {
    this.root.write(chunk);
  }

  end(): void {
    this.root.end();
  }

  /** Given up on: the sink hears nothing more that matters. */
  stop(): void {
    this.ctx.stopped = true;
  }
}

export class MimeTextExtractor extends Transform {
  private readonly extraction: TextExtraction;

  constructor(sink: TextSink, limits: ExtractLimits) {
    super();
    this.extraction = new TextExtraction(sink, limits);
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.push(chunk);
    try {
      this.extraction.write(chunk);
    } catch (err) {
      callback(asError(err));
      return;
    }
    callback();
  }

  override _flush(callback: TransformCallback): void {
    try {
      this.extraction.end();
    } catch (err) {
      callback(asError(err));
      return;
    }
    callback();
  }

  /** Torn down (an error, or the pipeline gave up): stop parsing. */
  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    this.extraction.stop();
    callback(err);
  }
}
