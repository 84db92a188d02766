/*
 * The contract between MIME text extraction and whoever reads the text (the
 * DLP scanner). Part paths are IMAP section numbers (RFC 3501 6.4.5):
 *   - "0": the top-level header fields (two pseudo-parts, one per scope:
 *     'subject' and 'headers'; a consumer keys parts by path AND scope);
 *   - a single-part message body is "1"; the children of a multipart body are
 *     "1", "2", ...; grandchildren "2.1", ...; the top-level multipart
 *     container itself is "" (its own text, the preamble and epilogue, is
 *     given as that part, contentType 'multipart/...');
 *   - a message/rfc822 part "2" has its header fields at "2.0", a single-part
 *     body at "2.1", or a multipart body whose container is "2" and whose
 *     children are "2.1", "2.2", ...
 *
 * Per part, the sink sees:
 *   - extracted part (text, HTML, header pseudo-part): text* then endPart once,
 *     with unscannable calls possibly in between (each reason at most once);
 *   - part not extracted (image, PDF, zip...): notExtracted once, nothing else;
 *   - containers: their own text, in up to two runs of text* then endPart:
 *     the preamble (before the first part) and the epilogue (after the
 *     closing delimiter); nothing for an empty one; and unscannable;
 *   - message/rfc822 parts: nothing, unless unscannable;
 *   - a subtree cut off by a limit: unscannable on its top node only.
 * Unscannable always means "this message is not clean" (README, Guarantees,
 * 5); the text already given before it is still worth scanning.
 */

export type Scope = 'subject' | 'headers' | 'body' | 'attachments';

export interface PartInfo {
  /** IMAP-style section number, see above. */
  path: string;
  scope: Scope;
  /** Lower case, e.g. 'text/plain'; header pseudo-parts are 'text/rfc822-headers'. */
  contentType: string;
  /** As declared, if declared. */
  charset?: string;
  /** Lower case, as declared (7bit, 8bit, quoted-printable, base64, binary), if declared. */
  transferEncoding?: string;
  filename?: string;
  /** Nesting depth: the top-level message and its header pseudo-parts are 0, children of a multipart are one deeper, the inside of a message/rfc822 part one deeper than the part. */
  depth: number;
}

export interface TextSink {
  /** Decoded text of a part, in order, in pieces of any size (may split anywhere, even inside a word). */
  text(part: PartInfo, text: string): void;
  /** No more text for this part. */
  endPart(part: PartInfo): void;
  /** The part could not be decoded or exceeded a limit: it is NOT clean. reason is a short snake_case metric label. */
  unscannable(part: PartInfo, reason: string): void;
  /** A part that is not text and is not extracted (images, PDFs, zips...): counted as not scanned, never reported clean. */
  notExtracted(part: PartInfo): void;
}

export interface ExtractLimits {
  maxMimeDepth: number;
  maxParts: number;
  /** Bytes of one header section (top-level, MIME part or nested message). */
  maxHeaderSize: number;
  /** Decoded characters per part before it's unscannable. */
  maxPartText: number;
}

/**
 * Every reason label the extractor can give, for metrics (low cardinality).
 * bad_base64: invalid characters or a truncated quantum; bad_charset: an
 * unknown charset (text is still decoded by sniffing); bad_transfer_encoding:
 * an unknown Content-Transfer-Encoding (decoded as 8bit); bad_multipart: a
 * multipart with no usable boundary or no parts; bad_header: a header line
 * that is not a field; line_size: a line too long to parse (split); decode_error:
 * the MIME parser gave up on the rest of the message.
 */
export const EXTRACT_REASONS = [
  'bad_base64',
  'bad_charset',
  'bad_transfer_encoding',
  'bad_multipart',
  'bad_header',
  'line_size',
  'mime_depth',
  'too_many_parts',
  'part_size',
  'header_size',
  'decode_error',
] as const;

export type UnscannableReason = (typeof EXTRACT_REASONS)[number];
