/*
 * The limits of attachment text extraction (issue 11, point 4), named so
 * that the config can set them and a hit can be counted
 * (`unscannable{reason}`). Modelled on amavisd-new's archive-bomb quotas
 * ($MAXLEVELS 14, $MAXFILES 3000, $MIN_EXPANSION_QUOTA 100 KiB,
 * $MAX_EXPANSION_QUOTA 500 MiB, $MIN/MAX_EXPANSION_FACTOR 5/500) and on
 * rspamd's lua_content limits (PDF: max_extraction_size 512 KiB of text,
 * max_pdf_objects 10000, pdf_process_timeout 10 s). mailveil extracts in
 * memory, inside the relay, so the byte quotas are lower than amavisd's
 * (which unpacks to disk) and the text quota higher than rspamd's (a DLP scan
 * must read the whole payroll sheet, not a sample of it).
 *
 * Every limit applies to one extractDocument() call, i.e. one attachment with
 * everything nested in it, unless its comment says "per archive" or "per
 * entry". A limit hit is never a silent truncation: it is an `unscannable`
 * entry with the limit's reason.
 */

export interface ExtractLimits {
  /** Archives opened inside one another; the attachment itself is depth 1 (amavisd $MAXLEVELS). Reason `depth`. */
  maxDepth: number;
  /** Entries in one archive's central directory, checked before anything is read (per archive). Reason `entries`. */
  maxEntries: number;
  /** Entries over all nested archives of the attachment (amavisd $MAXFILES). Reason `entries`. */
  maxTotalEntries: number;
  /** Bytes inflated from all entries of all archives, declared or real (amavisd $MAX_EXPANSION_QUOTA). Reason `expanded_size`. */
  maxExpandedBytes: number;
  /** Inflated ÷ compressed size of one entry (per entry; deflate cannot exceed ~1032). Reason `ratio`. */
  maxEntryRatio: number;
  /** Bytes inflated from one archive ÷ that archive's size (per archive; amavisd $MAX_EXPANSION_FACTOR). Reason `ratio`. */
  maxArchiveRatio: number;
  /** The ratios are only enforced above this many inflated bytes, so that a tiny, very compressible file is read (amavisd $MIN_EXPANSION_QUOTA). */
  ratioFloorBytes: number;
  /** Open XML elements at one time (libxml2's default is 256). Reason `xml_depth`. */
  maxXmlDepth: number;
  /** XML elements, text nodes and materialised table cells over all XML parts. Reason `xml_tokens`. */
  maxXmlTokens: number;
  /** Characters of extracted text (rspamd max_extraction_size, larger: DLP reads it all). Reason `text_size`. */
  maxTextChars: number;
  /** Wall-clock milliseconds for the whole attachment (rspamd pdf_process_timeout). Reason `time`. */
  maxTimeMs: number;
}

export const DEFAULT_EXTRACT_LIMITS: Readonly<ExtractLimits> = Object.freeze({
  maxDepth: 8,
  maxEntries: 3000,
  maxTotalEntries: 10_000,
  maxExpandedBytes: 64 * 1024 * 1024,
  maxEntryRatio: 500,
  maxArchiveRatio: 200,
  ratioFloorBytes: 1024 * 1024,
  maxXmlDepth: 256,
  maxXmlTokens: 4_000_000,
  maxTextChars: 8 * 1024 * 1024,
  maxTimeMs: 10_000,
});

/** The reasons an extraction gives for content it could not read whole. */
export type UnscannableReason =
  | 'depth'
  | 'entries'
  | 'expanded_size'
  | 'ratio'
  | 'xml_depth'
  | 'xml_tokens'
  | 'text_size'
  | 'time'
  | 'encrypted'
  | 'corrupt';

/** Entries kept in ExtractResult.unscannable; a hostile archive can have thousands of encrypted entries. */
export const MAX_UNSCANNABLE_LISTED = 100;
