/*
 * The text side of one extracted part: the decoding chain for a text or HTML
 * leaf (transfer encoding -> charset -> format=flowed -> HTML to text) and
 * the gate to the sink that enforces the per-part limit.
 *
 *   - At most maxPartText characters reach the sink; then 'part_size' once,
 *     and decoding stops (the bytes still pass through the stream).
 *   - U+0000 is dropped: never meaningful in mail text (HTML5 drops it too),
 *     and a NUL between digits must not hide a number.
 *   - Each problem is reported once per part, when first seen.
 */
import type { PartInfo, TextSink } from './types';
import { transferDecoder, type ByteDecoder } from './transfer-decode';
import { charsetDecoder, type TextDecoderLike } from './charset';
import { FlowedText } from './flowed';
import { HtmlText } from './html-text';

export class PartText {
  private length = 0;
  private ended = false;
  private readonly reported = new Set<string>();
  full = false;

  constructor(
    private readonly sink: TextSink,
    readonly info: PartInfo,
    private readonly maxText: number,
  ) {}

  text(s: string): void {
    if (this.full || this.ended || !s) return;
    if (s.indexOf('\0') >= 0) s = s.replace(/\0/g, '');
    if (this.length + s.length > this.maxText) {
      s = s.slice(0, this.maxText - this.length);
      this.full = true;
    }
    this.length += s.length;
    if (s) this.sink.text(this.info, s);
    if (this.full) this.problem('part_size');
  }

  problem(reason: string | undefined): void {
    if (!reason || this.reported.has(reason)) return;
    this.reported.add(reason);
    this.sink.unscannable(this.info, reason);
  }

  end(): void {
    if (this.ended) return;
    this.ended = true;
    this.sink.endPart(this.info);
  }
}

export interface LeafOptions {
  html: boolean;
  /** format=flowed text/plain: whether DelSp=yes. */
  flowed?: { delSp: boolean };
}

/** Bytes of a text or HTML part in, text to a PartText out. */
export class TextLeaf {
  private readonly transfer: ByteDecoder;
  private readonly charset: TextDecoderLike;
  private readonly flowed?: FlowedText;
  private readonly html?: HtmlText;

  constructor(
    readonly out: PartText,
    options: LeafOptions,
  ) {
    const t = transferDecoder(out.info.transferEncoding);
    const c = charsetDecoder(out.info.charset);
    this.transfer = t.decoder;
    this.charset = c.decoder;
    out.problem(t.problem);
    out.problem(c.problem);
    if (options.flowed) this.flowed = new FlowedText(options.flowed.delSp);
    if (options.html) this.html = new HtmlText();
  }

  write(bytes: Buffer): void {
    // Past the size limit the transfer decoding still runs (it is cheap), so
    // that its problems are reported the same however the input was chunked.
    const decoded = this.transfer.write(bytes);
    this.out.problem(this.transfer.problem);
    if (decoded.length && !this.out.full) this.text(this.charset.write(decoded));
  }

  end(): void {
    const rest = this.transfer.end();
    this.out.problem(this.transfer.problem);
    if (!this.out.full) {
      let s = this.charset.write(rest) + this.charset.end();
      if (this.flowed) s = this.flowed.write(s) + this.flowed.end();
      if (this.html) s = this.html.write(s) + this.html.end();
      this.out.text(s);
      this.out.problem(this.html?.problem);
    }
    this.out.end();
  }

  private text(s: string): void {
    if (!s) return;
    if (this.flowed) s = this.flowed.write(s);
    if (this.html) {
      s = this.html.write(s);
      this.out.problem(this.html.problem);
    }
    this.out.text(s);
  }
}
