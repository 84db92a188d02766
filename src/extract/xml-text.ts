/*
 * Streaming XML for OOXML and ODF parts: bytes in (as they inflate), element
 * and text events out, through saxes (a non-validating, well-formedness
 * checking parser that never loads anything external).
 *
 * Choices, so that a hostile part costs bounded work:
 *   - Entities: only XML's five predefined ones and character references are
 *     decoded (saxes's default). A DTD is refused as soon as it is seen:
 *     OOXML (ECMA-376 Part 2) and ODF forbid them, Word and LibreOffice
 *     refuse them, and a billion-laughs part must not be given a reading no
 *     office program shares. Refused means `corrupt` for that part.
 *   - Any well-formedness error ends the part: `corrupt`. The text read
 *     until then is kept, so it is still scanned.
 *   - maxXmlDepth open elements (`xml_depth`, this part) and maxXmlTokens
 *     elements plus text nodes over the whole attachment (`xml_tokens`).
 *   - Encoding: UTF-8, or UTF-16 when the part starts with its BOM (the two
 *     encodings XML processors must read, XML 1.0 4.3.3).
 *
 * TextCollector turns the events into text under a few per-format rules:
 * which elements hold text, which end a line, which stand for a character.
 * Runs (<w:r>, <a:r>, <text:span>) add nothing, so a value split across runs
 * comes out whole.
 */
import { SaxesParser } from 'saxes';
import { ExtractStop, type ExtractContext } from './context';

export interface XmlHandlers {
  /** Element start; names are local (prefix removed), attribute names too. */
  open?(name: string, attrs: Readonly<Record<string, string>>): void;
  close?(name: string): void;
  /** Character data (entities decoded), CDATA included. */
  text?(data: string): void;
}

/** Tokens are added to the attachment-wide count in batches, and the deadline is checked with each batch. */
const TOKEN_BATCH = 256;

function localName(qname: string): string {
  const i = qname.indexOf(':');
  return i < 0 ? qname : qname.slice(i + 1);
}

export class XmlStream {
  private readonly parser = new SaxesParser({ position: false });
  private decoder: TextDecoder | undefined;
  private depth = 0;
  private pending = 0;

  constructor(
    private readonly ctx: ExtractContext,
    handlers: XmlHandlers,
  ) {
    const p = this.parser;
    p.on('error', () => {
      throw new ExtractStop('corrupt', 'part');
    });
    p.on('doctype', () => {
      throw new ExtractStop('corrupt', 'part');
    });
    p.on('opentag', (tag) => {
      if (++this.depth > ctx.limits.maxXmlDepth) throw new ExtractStop('xml_depth', 'part');
      this.token();
      if (handlers.open === undefined) return;
      const attrs: Record<string, string> = {};
      for (const [k, v] of Object.entries(tag.attributes as Record<string, string>)) attrs[localName(k)] = v;
      handlers.open(localName(tag.name), attrs);
    });
    p.on('closetag', (tag) => {
      this.depth--;
      handlers.close?.(localName(tag.name));
    });
    const onText = (data: string): void => {
      this.token();
      handlers.text?.(data);
    };
    p.on('text', onText);
    p.on('cdata', onText);
  }

  private token(): void {
    if (++this.pending < TOKEN_BATCH) return;
    this.ctx.addTokens(this.pending);
    this.pending = 0;
    this.ctx.checkAlive();
  }

  write(chunk: Buffer): void {
    if (this.decoder === undefined) {
      // The first chunk of a part is never empty in practice; a 1-byte first chunk cannot hold a BOM and is UTF-8.
      const le = chunk.length >= 2 && chunk[0] === 0xff && chunk[1] === 0xfe;
      const be = chunk.length >= 2 && chunk[0] === 0xfe && chunk[1] === 0xff;
      this.decoder = new TextDecoder(le ? 'utf-16le' : be ? 'utf-16be' : 'utf-8');
    }
    const s = this.decoder.decode(chunk, { stream: true });
    if (s.length > 0) this.parser.write(s);
  }

  close(): void {
    if (this.decoder !== undefined) {
      const s = this.decoder.decode();
      if (s.length > 0) this.parser.write(s);
    }
    this.parser.close();
    this.ctx.addTokens(this.pending);
    this.pending = 0;
  }
}

export interface TextRules {
  /** Elements whose character data is text; undefined: all character data is. */
  textIn?: ReadonlySet<string>;
  /** Elements whose whole content is left out (tab-stop lists, phonetic guides, field codes). */
  skip?: ReadonlySet<string>;
  /** Elements whose end ends a line of text. */
  lineAfter: ReadonlySet<string>;
  /** Empty elements that stand for a character (a tab, a line break). */
  chars?: ReadonlyMap<string, string>;
  /** ODF `<text:s text:c="n"/>`: the element that stands for n spaces. */
  spaces?: string;
  /** Only text inside one of these counts (styles.xml: headers and footers). */
  within?: ReadonlySet<string>;
}

/** Collects the text of one XML part under TextRules; its size is checked against maxTextChars as it grows. */
export class TextCollector implements XmlHandlers {
  private readonly parts: string[] = [];
  private size = 0;
  private inText = 0;
  private inSkip = 0;
  private inWithin = 0;

  constructor(
    private readonly ctx: ExtractContext,
    private readonly rules: TextRules,
  ) {}

  private active(): boolean {
    return this.inSkip === 0 && (this.rules.within === undefined || this.inWithin > 0);
  }

  private push(s: string): void {
    this.size += s.length;
    this.ctx.checkRoom(this.size);
    this.parts.push(s);
  }

  open(name: string, attrs: Readonly<Record<string, string>>): void {
    if (this.rules.skip?.has(name)) this.inSkip++;
    if (this.rules.within?.has(name)) this.inWithin++;
    if (this.rules.textIn?.has(name)) this.inText++;
    if (!this.active()) return;
    const ch = this.rules.chars?.get(name);
    if (ch !== undefined) this.push(ch);
    if (name === this.rules.spaces) {
      const n = Math.max(1, Number.parseInt(attrs.c ?? '1', 10) || 1);
      this.ctx.checkRoom(this.size + n);
      this.push(' '.repeat(n));
    }
  }

  close(name: string): void {
    if (this.active() && this.rules.lineAfter.has(name)) this.push('\n');
    if (this.rules.skip?.has(name)) this.inSkip--;
    if (this.rules.within?.has(name)) this.inWithin--;
    if (this.rules.textIn?.has(name)) this.inText--;
  }

  text(data: string): void {
    if (!this.active()) return;
    if (this.rules.textIn !== undefined && this.inText === 0) return;
    this.push(data);
  }

  /** The text so far, blank lines and trailing space removed. */
  result(): string {
    const lines = this.parts.join('').split('\n');
    const kept: string[] = [];
    for (const line of lines) {
      const l = line.trimEnd();
      if (l.trim().length > 0) kept.push(l);
    }
    return kept.join('\n');
  }
}

/** Feeds one part's bytes (given chunk by chunk by `read`) through XmlStream into `handlers`. */
export async function parseXml(
  ctx: ExtractContext,
  read: (onChunk: (chunk: Buffer) => void) => Promise<void>,
  handlers: XmlHandlers,
): Promise<void> {
  const xml = new XmlStream(ctx, handlers);
  await read((chunk) => xml.write(chunk));
  xml.close();
}
