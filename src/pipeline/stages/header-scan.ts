/*
 * Pass 1 analyzer: measures the header section as it streams by and marks
 * the message unscannable when the section exceeds limits.max_header_size,
 * because pass 2 could then not see the whole header to anonymise it.
 */
import { HeaderEndFinder } from '../header-block';
import type { Analyzer, ByteAnalysis } from '../stage';
import type { MessageContext } from '../context';

export const HEADER_SIZE_REASON = 'header_size';

class HeaderScan implements ByteAnalysis {
  private readonly finder = new HeaderEndFinder();
  private done = false;

  constructor(private readonly ctx: MessageContext) {}

  write(chunk: Buffer): void {
    if (!this.done) {
      const end = this.finder.feed(chunk);
      this.ctx.headerBytes += end < 0 ? chunk.length : end;
      if (end >= 0) this.done = true;
      if (this.ctx.headerBytes > this.ctx.config.limits.max_header_size && !this.ctx.unscannable.includes(HEADER_SIZE_REASON)) {
        this.ctx.unscannable.push(HEADER_SIZE_REASON);
        this.done = true;
      }
    }
  }

  end(): void {}
}

export const headerScan: Analyzer = {
  name: 'header-scan',
  kind: 'analyzer',
  create: (ctx) => new HeaderScan(ctx),
};
