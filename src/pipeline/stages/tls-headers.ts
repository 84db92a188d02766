/*
 * Pass 1 analyzer: reads the two RFC 8689 header fields from the top-level
 * header section into ctx.requireTls:
 *  - `Require-TLS-ESMTP: yes`: how Postfix 3.11 carries a received
 *    REQUIRETLS through a content filter; the message then needs verified
 *    TLS as if REQUIRETLS had been on our own MAIL FROM;
 *  - `TLS-Required: No` (section 5): the sender relaxes recipient-side TLS
 *    policy. It never relaxes a `require_tls` rule nor REQUIRETLS.
 * Both fields stay in the message (anonymise-headers never removes them).
 * Limit: the header section is kept only up to limits.max_header_size; a
 * longer one is never delivered anyway (header-scan.ts).
 */
import { HeaderEndFinder } from '../header-block';
import type { Analyzer, ByteAnalysis } from '../stage';
import type { MessageContext } from '../context';

/** The two fields and their values as one record each: unfolded, compared without case. */
export function readTlsFields(header: string): { header: boolean; relaxed: boolean } {
  const unfolded = header.replace(/\r?\n(?=[ \t])/g, '');
  let requireEsmtp = false;
  let relaxed = false;
  for (const line of unfolded.split(/\r?\n/)) {
    const m = /^([!-9;-~]+)[ \t]*:(.*)$/.exec(line);
    if (!m) continue;
    const name = m[1].toLowerCase();
    const value = m[2].trim().toLowerCase();
    if (name === 'require-tls-esmtp' && value === 'yes') requireEsmtp = true;
    if (name === 'tls-required' && value === 'no') relaxed = true;
  }
  return { header: requireEsmtp, relaxed };
}

class TlsHeaders implements ByteAnalysis {
  private readonly finder = new HeaderEndFinder();
  private readonly chunks: Buffer[] = [];
  private kept = 0;
  private done = false;

  constructor(private readonly ctx: MessageContext) {}

  write(chunk: Buffer): void {
    if (this.done) return;
    const end = this.finder.feed(chunk);
    const part = end < 0 ? chunk : chunk.subarray(0, end);
    this.kept += part.length;
    if (this.kept > this.ctx.config.limits.max_header_size) {
      this.done = true;
      this.chunks.length = 0;
      return;
    }
    this.chunks.push(part);
    if (end >= 0) this.finish();
  }

  end(): void {
    if (!this.done) this.finish();
  }

  private finish(): void {
    this.done = true;
    const f = readTlsFields(Buffer.concat(this.chunks).toString('latin1'));
    this.chunks.length = 0;
    this.ctx.requireTls.header = f.header;
    this.ctx.requireTls.relaxed = f.relaxed;
  }
}

export const tlsHeaders: Analyzer = {
  name: 'tls-headers',
  kind: 'analyzer',
  create: (ctx) => new TlsHeaders(ctx),
};
