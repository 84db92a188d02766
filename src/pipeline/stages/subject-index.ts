/*
 * Pass 1 analyzer: the subject index (gdpr/subjects.ts) of the message, from
 * the header section as it streams by, so the spool is read once. The
 * envelope's tokens are set as pass 1 starts (a message that fails in pass 1
 * is still indexed by its envelope); the header's addresses are added at the
 * end. The index is best effort: a header it cannot read
 * leaves the envelope tokens and sets ctx.subjectsPartial for the log.
 */
import { HeaderEndFinder } from '../header-block';
import { subjectTokens } from '../../gdpr/subjects';
import type { Analyzer, ByteAnalysis } from '../stage';
import type { MessageContext } from '../context';

class SubjectIndex implements ByteAnalysis {
  private readonly finder = new HeaderEndFinder();
  private readonly parts: Buffer[] = [];
  private size = 0;
  private done: boolean;

  constructor(private readonly ctx: MessageContext) {
    // Nothing to index without an envelope (`rules test`, a release).
    this.done = ctx.envelope === undefined;
    // The envelope's people first, so a message that fails in pass 1 is still found by `sar`.
    if (ctx.envelope) ctx.subjects = subjectTokens(ctx.pseudonyms, ctx.envelope);
  }

  write(chunk: Buffer): void {
    if (this.done) return;
    const end = this.finder.feed(chunk);
    const limit = this.ctx.config.limits.max_header_size;
    const take = Math.min(end < 0 ? chunk.length : end, limit - this.size);
    if (take > 0) {
      // A copy: the chunk belongs to the stream and is reused after the spool write.
      this.parts.push(Buffer.from(chunk.subarray(0, take)));
      this.size += take;
    }
    if (end >= 0 || this.size >= limit) this.done = true;
  }

  end(): void {
    const env = this.ctx.envelope;
    if (env === undefined) return;
    try {
      this.ctx.subjects = subjectTokens(this.ctx.pseudonyms, env, Buffer.concat(this.parts, this.size));
    } catch {
      this.ctx.subjectsPartial = true;
    }
  }
}

export const subjectIndex: Analyzer = {
  name: 'subject-index',
  kind: 'analyzer',
  create: (ctx) => new SubjectIndex(ctx),
};
