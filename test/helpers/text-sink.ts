/*
 * A TextSink that records what a MimeTextExtractor gives it, for tests: the
 * text per part (keyed by path and scope), the unscannable reasons, the parts
 * not extracted, and any breach of the call order types.ts promises (text
 * after endPart, endPart twice; a container's epilogue is its one allowed
 * second run), so every test checks the contract for free.
 * `extractText` runs an extractor over an input cut into chunks of a given
 * size and returns the sink and the bytes that came out.
 */
import { MimeTextExtractor, type ExtractLimits, type PartInfo, type Scope, type TextSink } from '../../src/mime/extract';
import { runChunked } from './chunks';

export interface RecordedPart {
  info: PartInfo;
  text: string;
  ended: boolean;
  /** A container's second run (its epilogue) has begun. */
  reopened?: boolean;
}

export const TEST_LIMITS: ExtractLimits = { maxMimeDepth: 32, maxParts: 1000, maxHeaderSize: 1024 * 1024, maxPartText: 32 * 1024 * 1024 };

function key(path: string, scope: Scope): string {
  return `${path}|${scope}`;
}

export class RecordingSink implements TextSink {
  readonly parts = new Map<string, RecordedPart>();
  readonly unscannables: Array<{ path: string; scope: Scope; reason: string }> = [];
  readonly notExtractedParts: PartInfo[] = [];
  readonly violations: string[] = [];

  text(part: PartInfo, text: string): void {
    const k = key(part.path, part.scope);
    let p = this.parts.get(k);
    if (!p) this.parts.set(k, (p = { info: part, text: '', ended: false }));
    // A multipart's own text comes in two runs (preamble, epilogue); any other part in one.
    if (p.ended && part.contentType.startsWith('multipart/') && !p.reopened) {
      p.ended = false;
      p.reopened = true;
    }
    if (p.ended) this.violations.push(`text after endPart for ${k}`);
    if (typeof text !== 'string' || !text) this.violations.push(`empty or non-string text for ${k}`);
    p.text += text;
  }

  endPart(part: PartInfo): void {
    const k = key(part.path, part.scope);
    let p = this.parts.get(k);
    if (!p) this.parts.set(k, (p = { info: part, text: '', ended: false }));
    if (p.ended) this.violations.push(`endPart twice for ${k}`);
    p.ended = true;
  }

  unscannable(part: PartInfo, reason: string): void {
    if (!/^[a-z][a-z0-9_]*$/.test(reason)) this.violations.push(`reason not snake_case: ${reason}`);
    this.unscannables.push({ path: part.path, scope: part.scope, reason });
  }

  notExtracted(part: PartInfo): void {
    this.notExtractedParts.push(part);
  }

  /** The text of a part, or undefined if it got no calls; scope defaults to any scope at that path (first found). */
  textOf(path: string, scope?: Scope): string | undefined {
    if (scope) return this.parts.get(key(path, scope))?.text;
    for (const p of this.parts.values()) if (p.info.path === path) return p.text;
    return undefined;
  }

  info(path: string, scope?: Scope): PartInfo | undefined {
    for (const p of this.parts.values()) if (p.info.path === path && (!scope || p.info.scope === scope)) return p.info;
    return undefined;
  }

  reasons(path?: string): string[] {
    return this.unscannables.filter((u) => path === undefined || u.path === path).map((u) => u.reason);
  }

  /** Everything recorded, in a form independent of call interleaving, for comparing runs. */
  summary(): unknown {
    return {
      parts: [...this.parts.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([k, p]) => ({ key: k, info: p.info, text: p.text, ended: p.ended })),
      unscannable: this.unscannables.map((u) => `${u.path}|${u.scope}|${u.reason}`).sort(),
      notExtracted: this.notExtractedParts.map((p) => `${p.path}|${p.scope}|${p.contentType}`).sort(),
      violations: this.violations,
    };
  }
}

/** Runs a fresh extractor over `input` in chunks of `chunkSize` bytes (Infinity: one chunk). */
export async function extractText(input: Buffer, chunkSize = Infinity, limits: Partial<ExtractLimits> = {}): Promise<{ sink: RecordingSink; output: Buffer }> {
  const sink = new RecordingSink();
  const extractor = new MimeTextExtractor(sink, { ...TEST_LIMITS, ...limits });
  const output = await runChunked(extractor, input, Number.isFinite(chunkSize) ? chunkSize : Math.max(1, input.length));
  return { sink, output };
}
