/*
 * The checks that make redaction fail closed: redacted content is decoded
 * again by pass 1's own extractor (the same transfer decoding, charsets, HTML
 * text and hidden-content rules) and scanned with the redact rules. Any
 * match left means pass 2 missed something pass 1 can see, so the message
 * must not leave; the caller turns that into quarantine.
 *   - remainingMatches: one redacted part, before it is passed on;
 *   - messageCheck: the whole message as it leaves the redact stage. It
 *     catches what the first cannot: a part the redactor never met because
 *     mailsplit read the MIME structure differently than pass 1 did. It
 *     fails at the end of the stream, before the final "." reaches the next
 *     hop (README, Guarantees, 2).
 */
import { Readable, Transform, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { MimeTextExtractor, type ExtractLimits, type PartInfo, type TextSink } from '../mime/extract';
import { PartScanner } from '../rules/scanner';
import { buildCompiled, type CompiledRule } from '../rules/compile';
import { RedactionError } from './error';

const ALL_SCOPES = new Set(['subject', 'headers', 'body', 'attachments'] as const);

/** How many values of `rules` pass 1 would still find in this part (header block + body), read under pass 1's `limits`. */
export async function remainingMatches(header: Buffer, body: Buffer, rules: readonly CompiledRule[], limits: ExtractLimits): Promise<number> {
  const compiled = buildCompiled(rules.map((r) => ({ ...r, scope: ALL_SCOPES })));
  let found = 0;
  const scanners = new Map<string, PartScanner>();
  const sink: TextSink = {
    text(part: PartInfo, text: string) {
      // Only the part's own text: its header pseudo-part ("0") is not what was redacted.
      if (part.path === '0') return;
      const key = part.path + '\0' + part.scope;
      let s = scanners.get(key);
      if (!s) scanners.set(key, (s = new PartScanner(compiled, part.scope, () => found++)));
      s.push(text);
    },
    endPart(part: PartInfo) {
      // A part can come in more than one run (a multipart's preamble, then its epilogue).
      scanners.get(part.path + '\0' + part.scope)?.end();
      scanners.delete(part.path + '\0' + part.scope);
    },
    unscannable() {},
    notExtracted() {},
  };
  const message = Buffer.concat([header, body]);
  await pipeline(Readable.from([message], { objectMode: false }), new MimeTextExtractor(sink, limits), new Writable({ write: (_c, _e, cb) => cb() }));
  for (const s of scanners.values()) s.end();
  return found;
}

/** Streams that pass the message through and fail at its end if pass 1 would still find a value of `rules` in it (each in its own scopes). */
export function messageCheck(rules: readonly CompiledRule[], limits: ExtractLimits): Transform[] {
  const compiled = buildCompiled([...rules]);
  let found = 0;
  const scanners = new Map<string, PartScanner>();
  const key = (part: PartInfo) => part.path + '\0' + part.scope;
  const sink: TextSink = {
    text(part, text) {
      let s = scanners.get(key(part));
      if (!s) scanners.set(key(part), (s = new PartScanner(compiled, part.scope, () => found++)));
      s.push(text);
    },
    endPart(part) {
      scanners.get(key(part))?.end();
      scanners.delete(key(part));
    },
    unscannable() {},
    notExtracted() {},
  };
  const verdict = new Transform({
    transform: (chunk, _e, cb) => cb(null, chunk),
    flush(cb) {
      for (const s of scanners.values()) s.end();
      cb(found ? new RedactionError(`${found} value(s) pass 1 can see are still in the redacted message`) : null);
    },
  });
  return [new MimeTextExtractor(sink, limits), verdict];
}
