/*
 * Attachment text extraction for ZIP, OOXML (DOCX, XLSX, PPTX) and
 * OpenDocument (ODT, ODS, ODP): issue 11, point 4. One entry point,
 * extractDocument(), which never throws: whatever cannot be read is an
 * `unscannable` entry with a precise reason (limits.ts), and the caller
 * applies the configured `unscannable` action (README, Guarantees, 5).
 *
 * What a file is comes from its bytes: a ZIP is opened when it starts like
 * one or the hint (Content-Type, file name) says it is one of these formats;
 * inside, ODF's `mimetype` entry and OOXML's [Content_Types].xml decide.
 * A hint that promises one of these formats over bytes that are no ZIP is
 * `corrupt`; bytes that are no ZIP without such a hint are kind 'none'.
 *
 * Inside a plain ZIP each entry is sniffed from its first bytes, not its name:
 *   - a ZIP (an archive, or an OOXML/ODF document) is read recursively, to
 *     maxDepth levels (`depth` beyond);
 *   - text (no NUL, few control bytes) is returned whole, decoded as UTF-8
 *     (or UTF-16 after a BOM), else Latin-1;
 *   - anything else (images, PDFs, executables) is listed in `unextracted`.
 *
 * Everything runs in memory; memory is bounded by maxExpandedBytes (bytes
 * inflated) and maxTextChars (text kept), time by maxTimeMs, checked per
 * inflated chunk and per batch of XML tokens, with a timer as a safety net.
 */
import { ExtractContext, ExtractStop, joinPath, settlePart, type ExtractKind, type ExtractResult } from './context';
import { DEFAULT_EXTRACT_LIMITS, type ExtractLimits } from './limits';
import { detectOdf, readOdf } from './odf';
import { detectOoxml, readOoxml } from './ooxml';
import { looksLikeZip, ZipArchive, type ZipEntry } from './zip';

export { DEFAULT_EXTRACT_LIMITS, type ExtractLimits, type UnscannableReason } from './limits';
export type { ExtractKind, ExtractResult, ExtractedText, Unscannable } from './context';

export interface ExtractHint {
  contentType?: string;
  filename?: string;
}

/** Bytes of an entry looked at to tell text from binary. */
const SNIFF_BYTES = 4096;

const TYPE_HINTS: [RegExp, ExtractKind][] = [
  [/^(application\/(x-)?zip(-compressed)?|multipart\/x-zip)$/, 'zip'],
  [/^application\/vnd\.openxmlformats-officedocument\.wordprocessingml\.|^application\/vnd\.ms-word\.(document|template)\.macroenabled/, 'docx'],
  [/^application\/vnd\.openxmlformats-officedocument\.spreadsheetml\.|^application\/vnd\.ms-excel\.(sheet|template)\.macroenabled/, 'xlsx'],
  [/^application\/vnd\.openxmlformats-officedocument\.presentationml\.|^application\/vnd\.ms-powerpoint\.(presentation|slideshow|template)\.macroenabled/, 'pptx'],
  [/^application\/vnd\.oasis\.opendocument\.text/, 'odt'],
  [/^application\/vnd\.oasis\.opendocument\.spreadsheet/, 'ods'],
  [/^application\/vnd\.oasis\.opendocument\.presentation/, 'odp'],
];

const NAME_HINTS: [RegExp, ExtractKind][] = [
  [/\.zip$/, 'zip'],
  [/\.(docx|docm|dotx|dotm)$/, 'docx'],
  [/\.(xlsx|xlsm|xltx|xltm)$/, 'xlsx'],
  [/\.(pptx|pptm|ppsx|ppsm|potx|potm)$/, 'pptx'],
  [/\.(odt|ott|odm)$/, 'odt'],
  [/\.(ods|ots)$/, 'ods'],
  [/\.(odp|otp)$/, 'odp'],
];

/** The kind a Content-Type or file name promises, if it is one of ours. */
export function kindFromHint(hint: ExtractHint): ExtractKind | undefined {
  const type = (hint.contentType ?? '').split(';')[0].trim().toLowerCase();
  for (const [re, kind] of TYPE_HINTS) if (re.test(type)) return kind;
  const name = (hint.filename ?? '').trim().toLowerCase();
  for (const [re, kind] of NAME_HINTS) if (re.test(name)) return kind;
  return undefined;
}

/** True when extractDocument() has something to read in this attachment: route it here. */
export function canExtract(input: Buffer, hint: ExtractHint = {}): boolean {
  return looksLikeZip(input) || kindFromHint(hint) !== undefined;
}

/** Text, not binary: a UTF-16 BOM, or no NUL and under 1% control bytes other than whitespace and ESC. */
export function looksLikeText(head: Buffer): boolean {
  if (head.length >= 2 && ((head[0] === 0xff && head[1] === 0xfe) || (head[0] === 0xfe && head[1] === 0xff))) return true;
  let control = 0;
  for (const b of head) {
    if (b === 0) return false;
    if (b < 0x20 && b !== 0x09 && b !== 0x0a && b !== 0x0c && b !== 0x0d && b !== 0x1b) control++;
  }
  return control * 100 <= head.length;
}

/** UTF-8 (BOM stripped), UTF-16 after its BOM, else Latin-1. */
export function decodeText(bytes: Buffer): string {
  if (bytes.length >= 2 && bytes[0] === 0xff && bytes[1] === 0xfe) return new TextDecoder('utf-16le').decode(bytes);
  if (bytes.length >= 2 && bytes[0] === 0xfe && bytes[1] === 0xff) return new TextDecoder('utf-16be').decode(bytes);
  try {
    return new TextDecoder('utf-8', { fatal: true, ignoreBOM: false }).decode(bytes);
  } catch {
    return bytes.toString('latin1');
  }
}

/** One entry of an archive (or a file embedded in a document): sniffed, then read as archive, text, or not at all. */
async function readEntry(ctx: ExtractContext, zip: ZipArchive, entry: ZipEntry, prefix: string, depth: number): Promise<void> {
  const path = joinPath(prefix, entry.name);
  if (entry.raw.uncompressedSize === 0 && entry.raw.compressedSize === 0) return;
  const head = await zip.readHead(entry, SNIFF_BYTES);
  if (looksLikeZip(head)) {
    if (depth >= ctx.limits.maxDepth) throw new ExtractStop('depth', 'part');
    await extractArchive(ctx, await zip.readAll(entry), path, depth + 1);
  } else if (looksLikeText(head)) {
    ctx.addText(path, decodeText(head.length < SNIFF_BYTES ? head : await zip.readAll(entry)));
  } else {
    ctx.unextracted.push(path);
  }
}

/** A ZIP at `depth` (the attachment is 1): an ODF or OOXML document, or an archive read entry by entry. */
async function extractArchive(ctx: ExtractContext, buf: Buffer, prefix: string, depth: number, hinted: ExtractKind = 'zip'): Promise<ExtractKind> {
  let kind = hinted;
  let zip: ZipArchive | undefined;
  const nested = async (entry: ZipEntry): Promise<void> => readEntry(ctx, zip as ZipArchive, entry, prefix, depth);
  try {
    zip = await ZipArchive.open(ctx, buf);
    kind = 'zip'; // it is a ZIP; which kind of ZIP comes next
    const odf = await detectOdf(zip);
    if (odf !== undefined) {
      kind = odf;
      await readOdf(ctx, zip, odf, prefix);
      return kind;
    }
    const pkg = await detectOoxml(ctx, zip);
    if (pkg !== undefined) {
      kind = pkg.kind;
      await readOoxml(ctx, zip, pkg, prefix, nested);
      return kind;
    }
    for (const entry of zip.entries) {
      if (entry.name.endsWith('/')) continue;
      try {
        ctx.checkAlive();
        await nested(entry);
      } catch (err) {
        settlePart(ctx, err, joinPath(prefix, entry.name));
      }
    }
  } catch (err) {
    ctx.fail(err, prefix === '' ? undefined : prefix);
    if (err instanceof ExtractStop && err.scope === 'all') throw err;
  } finally {
    zip?.close();
  }
  return kind;
}

/**
 * The text of a ZIP, OOXML or ODF attachment. Never throws, and never takes
 * much longer than limits.maxTimeMs. Kind 'none' with nothing else: not a
 * format read here (hand it to another extractor, or count it unextracted).
 */
export async function extractDocument(
  input: Buffer,
  hint: ExtractHint = {},
  limits: Partial<ExtractLimits> = DEFAULT_EXTRACT_LIMITS,
): Promise<ExtractResult> {
  const ctx = new ExtractContext({ ...DEFAULT_EXTRACT_LIMITS, ...limits });
  const hinted = kindFromHint(hint);
  let kind: ExtractKind = 'none';
  if (looksLikeZip(input) || hinted !== undefined) {
    kind = hinted ?? 'zip';
    let timer: NodeJS.Timeout | undefined;
    const work = extractArchive(ctx, input, '', 1, kind).then(
      (k) => {
        kind = k;
      },
      () => undefined, // recorded where it was thrown
    );
    const late = new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        ctx.record('time', undefined, 'all');
        resolve();
      }, ctx.limits.maxTimeMs + 100);
      timer.unref();
    });
    try {
      await Promise.race([work, late]);
    } finally {
      clearTimeout(timer);
    }
  }
  // Copies: after a timeout the abandoned work may still append before it sees the stop.
  return { kind, texts: [...ctx.texts], unscannable: [...ctx.unscannable], unextracted: [...ctx.unextracted] };
}
