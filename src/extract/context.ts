/*
 * What one extractDocument() call shares across every archive, entry and XML
 * part it reads: the result being built, the counters the limits are checked
 * against, and the deadline.
 *
 * A limit hit is an ExtractStop thrown from wherever the counter is bumped
 * (an XML handler, a chunk loop) and caught by the reader that owns that unit
 * of content, which records it as `unscannable`. `scope` says how far the
 * stop reaches: 'part' ends one XML part or entry, 'archive' one archive, and
 * 'all' the whole call (a document-wide quota is spent, or time is up).
 */
import type { ExtractLimits, UnscannableReason } from './limits';
import { MAX_UNSCANNABLE_LISTED } from './limits';

export type ExtractKind = 'zip' | 'docx' | 'xlsx' | 'pptx' | 'odt' | 'ods' | 'odp' | 'none';

export interface ExtractedText {
  /** Where the text came from: entry names, nested archives joined by '!' (`a.zip!b.xlsx!xl/worksheets/sheet1.xml`). */
  path: string;
  text: string;
  /** Spreadsheets: the cells, row by row, each at its column index ('' where a row has no cell). */
  table?: string[][];
}

export interface Unscannable {
  reason: UnscannableReason;
  path?: string;
}

export interface ExtractResult {
  kind: ExtractKind;
  texts: ExtractedText[];
  unscannable: Unscannable[];
  /** Entries read from no angle (images, unknown binaries, PDFs inside a ZIP): for the `unextracted` decision. */
  unextracted: string[];
}

export type StopScope = 'part' | 'archive' | 'all';

export class ExtractStop extends Error {
  constructor(
    readonly reason: UnscannableReason,
    readonly scope: StopScope,
  ) {
    super(`extraction stopped: ${reason}`);
  }
}

export class ExtractContext {
  readonly texts: ExtractedText[] = [];
  readonly unscannable: Unscannable[] = [];
  readonly unextracted: string[] = [];
  expandedBytes = 0;
  totalEntries = 0;
  xmlTokens = 0;
  textChars = 0;
  /** Set once a stop of scope 'all' happened: everything still running unwinds. */
  stopped: UnscannableReason | undefined;
  private readonly deadline: number;

  constructor(readonly limits: ExtractLimits) {
    this.deadline = performance.now() + limits.maxTimeMs;
  }

  /** Throws if the call is over time or already stopped. Cheap: call it per chunk and every few hundred tokens. */
  checkAlive(): void {
    if (this.stopped !== undefined) throw new ExtractStop(this.stopped, 'all');
    if (performance.now() > this.deadline) throw new ExtractStop('time', 'all');
  }

  /** Records a stop (or any other failure) for `path`; a stop of scope 'all' also ends the call. */
  record(reason: UnscannableReason, path: string | undefined, scope: StopScope = 'part'): void {
    if (scope === 'all') {
      if (this.stopped !== undefined) return; // recorded once, where it happened
      this.stopped = reason;
    }
    if (this.unscannable.length >= MAX_UNSCANNABLE_LISTED) return;
    if (this.unscannable.some((u) => u.reason === reason && u.path === path)) return;
    this.unscannable.push(path === undefined ? { reason } : { reason, path });
  }

  /** Records an error thrown while reading `path`: a stop keeps its reason, anything else is `corrupt`. */
  fail(err: unknown, path: string | undefined): void {
    if (err instanceof ExtractStop) this.record(err.reason, path, err.scope);
    else this.record('corrupt', path);
  }

  addInflated(n: number): void {
    this.expandedBytes += n;
    if (this.expandedBytes > this.limits.maxExpandedBytes) throw new ExtractStop('expanded_size', 'all');
  }

  addTokens(n: number): void {
    this.xmlTokens += n;
    if (this.xmlTokens > this.limits.maxXmlTokens) throw new ExtractStop('xml_tokens', 'all');
  }

  /**
   * Adds a text. Past maxTextChars, what fits is kept, `text_size` is
   * recorded, and the call stops: more text could not be scanned anyway.
   */
  addText(path: string, text: string, table?: string[][]): void {
    const room = this.limits.maxTextChars - this.textChars;
    const over = text.length > room;
    const kept = over ? text.slice(0, Math.max(0, room)) : text;
    this.textChars += kept.length;
    if (kept.length > 0 || table !== undefined) this.texts.push(table === undefined ? { path, text: kept } : { path, text: kept, table });
    if (over) throw new ExtractStop('text_size', 'all');
  }

  /** Checks text being built (a sheet's cells) before it is joined: `pending` chars would not fit. */
  checkRoom(pending: number): void {
    if (this.textChars + pending > this.limits.maxTextChars) throw new ExtractStop('text_size', 'all');
  }
}

/** Joins a nested path: the archive's own path, then the entry inside it. */
export function joinPath(prefix: string, name: string): string {
  return prefix === '' ? name : `${prefix}!${name}`;
}

/**
 * Settles an error caught around one entry or part: records it at `path`
 * and returns, unless it is a stop that reaches further: a stop of the
 * archive is thrown on unrecorded (the archive records it at its own path),
 * and a stop of everything is recorded here, where it happened, and thrown on.
 */
export function settlePart(ctx: ExtractContext, err: unknown, path: string | undefined): void {
  if (err instanceof ExtractStop && err.scope === 'archive') throw err;
  ctx.fail(err, path);
  if (err instanceof ExtractStop && err.scope === 'all') throw err;
}
