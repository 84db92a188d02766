/*
 * Pass 1 analyzer: DLP detection. A TextExtraction decodes every part
 * (transfer encoding, charset, HTML, RFC 2047, nested messages) and a
 * PartScanner per part runs the rules over the decoded text as it arrives. What is recorded is detector, count, part
 * and offset: never the value (guarantee 6).
 *
 * Content that could not be decoded, or hit a limit, is marked unscannable
 * (guarantee 5); parts that are not text are counted as not extracted.
 */
import { TextExtraction, type ExtractLimits, type PartInfo, type TextSink } from '../../mime/extract';
import { PartScanner } from '../../rules/scanner';
import type { Analyzer } from '../stage';
import type { MessageContext } from '../context';

/** Decoded text per part beyond which the part counts as unscannable. */
export const MAX_PART_TEXT = 32 * 1024 * 1024;

class ScanSink implements TextSink {
  private readonly scanners = new Map<string, PartScanner>();
  /** rule id + part path -> index into ctx.findings */
  private readonly found = new Map<string, number>();

  constructor(private readonly ctx: MessageContext) {}

  text(part: PartInfo, text: string): void {
    this.scanner(part).push(text);
  }

  endPart(part: PartInfo): void {
    const key = `${part.path}\0${part.scope}`;
    this.scanners.get(key)?.end();
    this.scanners.delete(key);
  }

  unscannable(_part: PartInfo, reason: string): void {
    if (!this.ctx.unscannable.includes(reason)) this.ctx.unscannable.push(reason);
  }

  notExtracted(_part: PartInfo): void {
    this.ctx.notExtracted++;
  }

  private scanner(part: PartInfo): PartScanner {
    const key = `${part.path}\0${part.scope}`;
    let s = this.scanners.get(key);
    if (!s) {
      s = new PartScanner(this.ctx.rules.compiled, part.scope, (m) => {
        const id = `${m.rule.def.id}\0${part.path}\0${part.scope}`;
        const at = this.found.get(id);
        if (at !== undefined) this.ctx.findings[at].count++;
        else {
          this.found.set(id, this.ctx.findings.length);
          this.ctx.findings.push({ rule: m.rule.def.id, detector: m.rule.detectorName, count: 1, part: part.path, scope: part.scope, offset: m.start });
        }
      });
      this.scanners.set(key, s);
    }
    return s;
  }
}

/** The extraction limits of pass 1; redaction's re-checks use the same, so they read the message as pass 1 did. */
export function scanLimits(limits: MessageContext['config']['limits']): ExtractLimits {
  return { maxMimeDepth: limits.max_mime_depth, maxParts: limits.max_parts, maxHeaderSize: limits.max_header_size, maxPartText: MAX_PART_TEXT };
}

export const dlpScan: Analyzer = {
  name: 'dlp-scan',
  kind: 'analyzer',
  create: (ctx) => new TextExtraction(new ScanSink(ctx), scanLimits(ctx.config.limits)),
};
