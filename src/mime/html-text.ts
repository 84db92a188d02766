/*
 * Streaming HTML to text, for scanning (not for display): a small state
 * machine after the HTML5 tokenizer (WHATWG HTML 13.2.5), fed text in pieces
 * of any size; a tag, comment or entity may be split anywhere.
 *
 *   - Tags are dropped. Only block elements separate text ("\n"; " " for table
 *     cells): inline tags join with nothing, as a browser renders them, so
 *     "123-<b>45</b>-6789" gives "123-45-6789".
 *   - Comments, <script> and <style> content are dropped from that visible
 *     text. Downlevel-hidden conditional comments ("<!--[if mso]> ...
 *     <![endif]-->") are not: Outlook shows what is inside, so it is parsed.
 *   - Named and numeric character references are decoded with `entities`
 *     (HTML5 named character references, legacy ones without ";" included);
 *     &nbsp; becomes a plain space.
 *   - What is dropped still leaves with the message, so it is scanned too, as
 *     "hidden" text: comments, script and style content, bogus comments
 *     (<!DOCTYPE>, <![CDATA[...]]>) and every attribute value (alt, href,
 *     data-*...), one item per line. It is held aside and written out at the
 *     next block boundary (or the end), so it never splits visible inline
 *     text. Beyond MAX_HIDDEN_TEXT characters between two block boundaries
 *     it is dropped, and `problem` says 'part_size' (fail closed).
 * Memory: a tag name and an entity are capped; hidden text is bounded.
 *
 * Pass 2 (src/redact/html.ts) runs this same tokenizer with an HtmlTrace, to
 * learn where each character of the text came from: whatever pass 1 scans
 * can then be found again and replaced in the raw HTML.
 */
import { decodeHTML, decodeHTMLAttribute } from 'entities';

/** Hidden text held between two block boundaries (see above). */
export const MAX_HIDDEN_TEXT = 1024 * 1024;
const MAX_ENTITY = 32;
const MAX_NAME = 16;

const BLOCK = new Set(
  (
    'address article aside blockquote body br caption center dd details dialog dir div dl dt fieldset figcaption figure ' +
    'footer form frameset h1 h2 h3 h4 h5 h6 head header hgroup hr html iframe legend li listing main menu nav noscript ' +
    'ol optgroup option p pre section summary table tbody textarea tfoot thead title tr ul xmp'
  ).split(' '),
);
const CELL = new Set(['td', 'th']);

const DATA = 0;
const TAG_OPEN = 1; // after "<"
const END_TAG_OPEN = 2; // after "</"
const TAG_NAME = 3;
const BEFORE_ATTR = 4;
const ATTR_NAME = 5;
const AFTER_ATTR_NAME = 6;
const BEFORE_VALUE = 7;
const VALUE_DQ = 8;
const VALUE_SQ = 9;
const VALUE_UQ = 10;
const MARKUP = 11; // after "<!"
const MARKUP_DASH = 12; // after "<!-"
const COMMENT_START = 13; // after "<!--", looking for "[if"
const COMMENT = 14;
const BOGUS = 15; // skip to ">"
const RAWTEXT = 16; // inside <script> or <style>
const ENTITY = 17;

/** The kind of raw HTML an output character came from, so pass 2 can escape a replacement for it. */
export const HtmlContext = { TEXT: 0, ATTR_DQ: 1, ATTR_SQ: 2, ATTR_UQ: 3, COMMENT: 4, BOGUS: 5, RAWTEXT: 6 } as const;
export type HtmlContext = (typeof HtmlContext)[keyof typeof HtmlContext];
const { TEXT, ATTR_DQ, ATTR_SQ, ATTR_UQ, COMMENT: IN_COMMENT, BOGUS: IN_BOGUS, RAWTEXT: IN_RAWTEXT } = HtmlContext;

/**
 * Told where each output character came from. `at` counts characters of all
 * the input written so far; `hidden` says the characters went to the held
 * hidden text, which flush() then appends to the output.
 */
export interface HtmlTrace {
  /** `length` characters copied as they are from the input at `at`. */
  copy(hidden: boolean, at: number, length: number, ctx: HtmlContext): void;
  /** `text`, decoded from `raw` (character references), which is in the input at `at`. */
  decoded(hidden: boolean, text: string, raw: string, at: number, ctx: HtmlContext): void;
  /** `length` characters that are in no input: separators. */
  gap(hidden: boolean, length: number): void;
  flush(): void;
}

function isSpace(c: number): boolean {
  return c === 0x20 || c === 0x0a || c === 0x09 || c === 0x0d || c === 0x0c;
}
function isLetter(c: number): boolean {
  return (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a);
}
function isEntityChar(c: number): boolean {
  return isLetter(c) || (c >= 0x30 && c <= 0x39) || c === 0x23;
}
/** The references most mail HTML is made of, decoded without a call into `entities` (values as nbspToSpace(decodeHTML(...)) gives them). */
const COMMON_ENTITIES = new Map([
  ['&nbsp;', ' '],
  ['&amp;', '&'],
  ['&lt;', '<'],
  ['&gt;', '>'],
  ['&quot;', '"'],
  ['&#39;', "'"],
  ['&#160;', ' '],
]);

function nbspToSpace(s: string): string {
  return s.indexOf('\u00a0') < 0 ? s : s.replace(/\u00a0/g, ' ');
}

export class HtmlText {
  problem?: string;
  private state = DATA;
  private out = '';
  private tagName = '';
  private isEnd = false;
  private attrName = '';
  private attrValue = '';
  private keepValue = false;
  /** Dropped from the visible text, still scanned (see above). */
  private hidden = '';
  private rawName = '';
  private rawMatch = 0;
  /** The characters of a possible "</script" seen so far: content if the match fails. */
  private rawPending = '';
  private commentStart = '';
  private dashes = 0;
  /** Leading dashes that belong to the "<!--" opener ("<!-->" closes at once). */
  private openerDashes = 0;
  private bang = false;
  private entity = '';
  /** Input offset of s[0] in the current write, and of the end of the input so far. */
  private at = 0;
  private seen = 0;
  /** Input offsets of: the last '<' or '&' in text, the current attribute value, a held "</script". */
  private mark = 0;
  private valueAt = 0;
  private valueCtx: HtmlContext = ATTR_DQ;
  private rawPendingAt = 0;

  constructor(private readonly trace?: HtmlTrace) {}

  write(s: string): string {
    let i = 0;
    const len = s.length;
    this.at = this.seen;
    this.seen += len;
    while (i < len) {
      // Fast paths over the long runs: text, tag names, quoted values, comments, scripts.
      switch (this.state) {
        case TAG_NAME: {
          let j = i;
          while (j < len) {
            const c = s.charCodeAt(j);
            if (isSpace(c) || c === 0x2f || c === 0x3e) break;
            j++;
          }
          if (j > i) {
            // As step() does it character by character: capped, a name too long to be one we know ends in '~'.
            const name = this.tagName + s.slice(i, j).toLowerCase();
            this.tagName = name.length > MAX_NAME ? name.slice(0, MAX_NAME - 1) + '~' : name;
          }
          if (j === len) return this.take();
          i = j;
          break;
        }
        case DATA: {
          let j = i;
          while (j < len) {
            const c = s.charCodeAt(j);
            if (c === 0x3c || c === 0x26) break;
            j++;
          }
          if (j > i) {
            this.out += s.slice(i, j);
            this.trace?.copy(false, this.at + i, j - i, TEXT);
          }
          if (j === len) return this.take();
          this.mark = this.at + j;
          this.state = s.charCodeAt(j) === 0x3c ? TAG_OPEN : ENTITY;
          this.entity = '&';
          i = j + 1;
          continue;
        }
        case BOGUS: {
          const j = s.indexOf('>', i);
          this.addHidden(s.slice(i, j < 0 ? len : j), this.at + i, IN_BOGUS);
          if (j < 0) return this.take();
          this.endHiddenItem();
          this.state = DATA;
          i = j + 1;
          continue;
        }
        case VALUE_DQ:
        case VALUE_SQ: {
          const j = s.indexOf(this.state === VALUE_DQ ? '"' : "'", i);
          this.addValue(s.slice(i, j < 0 ? len : j));
          if (j < 0) return this.take();
          this.endAttr();
          this.state = BEFORE_ATTR;
          i = j + 1;
          continue;
        }
        case RAWTEXT:
          if (this.rawMatch === 0) {
            const j = s.indexOf('<', i);
            this.addHidden(s.slice(i, j < 0 ? len : j), this.at + i, IN_RAWTEXT);
            if (j < 0) return this.take();
            i = j;
          }
          break;
        case COMMENT:
          if (this.dashes === 0 && !this.bang) {
            const j = s.indexOf('-', i);
            this.addHidden(s.slice(i, j < 0 ? len : j), this.at + i, IN_COMMENT);
            if (j < 0) return this.take();
            i = j;
          }
          break;
      }
      if (this.step(s, i)) i++;
    }
    return this.take();
  }

  end(): string {
    if (this.state === ENTITY) this.flushEntity();
    else if (this.state === TAG_OPEN) this.lessThanIsText();
    else if (this.state === COMMENT) this.heldDashesAreText(this.seen);
    else if (this.state === RAWTEXT) this.addHidden(this.rawPending, this.rawPendingAt, IN_RAWTEXT);
    else if (this.state >= VALUE_DQ && this.state <= VALUE_UQ) this.endAttr();
    // An unterminated tag, comment or script is not visible text, as in a browser.
    this.state = DATA;
    if (this.hidden) {
      this.out += '\n' + this.hidden;
      this.trace?.gap(false, 1);
      this.trace?.flush();
    }
    this.hidden = '';
    return this.take();
  }

  private take(): string {
    const s = this.out;
    this.out = '';
    return s;
  }

  /** One character in the current state; false when it must be looked at again in the new state. */
  private step(s: string, i: number): boolean {
    const c = s.charCodeAt(i);
    switch (this.state) {
      case TAG_OPEN:
        if (c === 0x21) this.state = MARKUP;
        else if (c === 0x2f) this.state = END_TAG_OPEN;
        else if (c === 0x3f) this.state = BOGUS;
        else if (isLetter(c)) this.startTag(s[i], false);
        else {
          // "a < b": not a tag, the "<" is text.
          this.lessThanIsText();
          this.state = DATA;
          return false;
        }
        return true;
      case END_TAG_OPEN:
        if (isLetter(c)) this.startTag(s[i], true);
        else this.state = c === 0x3e ? DATA : BOGUS;
        return true;
      case TAG_NAME:
        if (isSpace(c) || c === 0x2f) this.state = BEFORE_ATTR;
        else if (c === 0x3e) this.finishTag();
        else if (this.tagName.length < MAX_NAME) this.tagName += s[i].toLowerCase();
        else this.tagName = this.tagName.slice(0, MAX_NAME - 1) + '~'; // too long to be a name we know
        return true;
      case BEFORE_ATTR:
        if (c === 0x3e) this.finishTag();
        else if (!isSpace(c) && c !== 0x2f) this.startAttr(s[i]);
        return true;
      case ATTR_NAME:
        if (isSpace(c)) this.state = AFTER_ATTR_NAME;
        else if (c === 0x2f) this.state = BEFORE_ATTR;
        else if (c === 0x3d) this.state = BEFORE_VALUE;
        else if (c === 0x3e) this.finishTag();
        else if (this.attrName.length < MAX_NAME) this.attrName += s[i].toLowerCase();
        else this.attrName += '~';
        return true;
      case AFTER_ATTR_NAME:
        if (c === 0x2f) this.state = BEFORE_ATTR;
        else if (c === 0x3d) this.state = BEFORE_VALUE;
        else if (c === 0x3e) this.finishTag();
        else if (!isSpace(c)) this.startAttr(s[i]);
        return true;
      case BEFORE_VALUE:
        this.attrValue = '';
        this.keepValue = true;
        if (c === 0x22 || c === 0x27) {
          this.state = c === 0x22 ? VALUE_DQ : VALUE_SQ;
          this.valueCtx = c === 0x22 ? ATTR_DQ : ATTR_SQ;
          this.valueAt = this.at + i + 1;
        } else if (c === 0x3e) this.finishTag();
        else if (!isSpace(c)) {
          this.state = VALUE_UQ;
          this.valueCtx = ATTR_UQ;
          this.valueAt = this.at + i;
          return false;
        }
        return true;
      case VALUE_UQ:
        if (isSpace(c)) {
          this.endAttr();
          this.state = BEFORE_ATTR;
        } else if (c === 0x3e) {
          this.endAttr();
          this.finishTag();
        } else this.addValue(s[i]);
        return true;
      case MARKUP:
        if (c === 0x2d) {
          this.state = MARKUP_DASH;
          return true;
        }
        this.state = BOGUS; // <!DOCTYPE ...>, <![endif]>, <![CDATA[...
        return false;
      case MARKUP_DASH:
        if (c === 0x2d) {
          this.state = COMMENT_START;
          this.commentStart = '';
          return true;
        }
        this.state = BOGUS;
        return false;
      case COMMENT_START: {
        const next = this.commentStart + s[i].toLowerCase();
        if ('[if'.startsWith(next)) {
          this.commentStart = next;
          // Downlevel-hidden conditional comment: skip the condition, keep the content.
          if (next === '[if') this.state = BOGUS;
          return true;
        }
        // "<!-->" and "<!--->" close at once (HTML5); after "[" or "[i" they don't.
        this.state = COMMENT;
        this.addHidden(this.commentStart, this.at + i - this.commentStart.length, IN_COMMENT);
        this.dashes = this.openerDashes = this.commentStart ? 0 : 2;
        this.bang = false;
        return false;
      }
      case COMMENT:
        // Dashes (and "!") are held until we know whether they close the comment.
        if (c === 0x3e && this.dashes >= 2) {
          this.state = DATA;
          this.dashes = this.openerDashes = 0;
          this.bang = false;
          this.endHiddenItem();
        } else if (c === 0x2d) {
          if (this.bang) this.heldDashesAreText(this.at + i);
          this.dashes++;
        } else if (c === 0x21 && this.dashes >= 2 && !this.bang) this.bang = true; // "--!>" also closes
        else {
          this.heldDashesAreText(this.at + i);
          this.addHidden(s[i], this.at + i, IN_COMMENT);
        }
        return true;
      case RAWTEXT:
        return this.stepRaw(c, s[i], this.at + i);
      case ENTITY:
        if (isEntityChar(c) && this.entity.length < MAX_ENTITY) {
          this.entity += s[i];
          return true;
        }
        if (c === 0x3b) {
          this.entity += ';';
          this.flushEntity();
          this.state = DATA;
          return true;
        }
        this.flushEntity();
        this.state = DATA;
        return false;
    }
    throw new Error(`html-text: no step for state ${this.state}`);
  }

  /** Looks for "</" + the raw element's name + a delimiter, across pieces; everything else is hidden text. */
  private stepRaw(c: number, ch: string, at: number): boolean {
    const m = this.rawMatch;
    if (m >= 2 && m - 2 === this.rawName.length) {
      if (isSpace(c) || c === 0x2f || c === 0x3e) {
        this.endHiddenItem();
        this.rawPending = '';
        this.rawMatch = 0;
        this.tagName = this.rawName;
        this.isEnd = true;
        this.state = BEFORE_ATTR;
        return false;
      }
    } else if ((m === 0 && c === 0x3c) || (m === 1 && c === 0x2f) || (m >= 2 && (c | 0x20) === this.rawName.charCodeAt(m - 2))) {
      if (m === 0) this.rawPendingAt = at;
      this.rawPending += ch;
      this.rawMatch = m + 1;
      return true;
    }
    // Not the end tag: what looked like its start is content.
    this.addHidden(this.rawPending, this.rawPendingAt, IN_RAWTEXT);
    this.rawPending = '';
    this.rawMatch = 0;
    if (c === 0x3c) {
      this.rawPending = ch;
      this.rawPendingAt = at;
      this.rawMatch = 1;
    } else this.addHidden(ch, at, IN_RAWTEXT);
    return true;
  }

  private startTag(first: string, isEnd: boolean): void {
    this.tagName = first.toLowerCase();
    this.isEnd = isEnd;
    this.state = TAG_NAME;
  }

  private startAttr(first: string): void {
    this.attrName = first.toLowerCase();
    this.attrValue = '';
    this.keepValue = false;
    this.state = ATTR_NAME;
  }

  private addValue(text: string): void {
    if (!this.keepValue || !text) return;
    if (this.hidden.length + this.attrValue.length + text.length > MAX_HIDDEN_TEXT) {
      this.problem = 'part_size';
      this.keepValue = false;
      return;
    }
    this.attrValue += text;
  }

  private endAttr(): void {
    if (this.keepValue && this.attrValue) {
      const text = nbspToSpace(decodeHTMLAttribute(this.attrValue));
      if (this.roomFor(text.length + 1)) {
        this.hidden += text + '\n';
        this.trace?.decoded(true, text, this.attrValue, this.valueAt, this.valueCtx);
        this.trace?.gap(true, 1);
      }
    }
    this.attrValue = '';
    this.keepValue = false;
  }

  /** Appends to the hidden text: `text` is the input at `at`, or a separator (`at` -1). */
  private addHidden(text: string, at = -1, ctx: HtmlContext = TEXT): void {
    if (!text || !this.roomFor(text.length)) return;
    this.hidden += text;
    if (!this.trace) return;
    if (at < 0) this.trace.gap(true, text.length);
    else this.trace.copy(true, at, text.length, ctx);
  }

  private roomFor(length: number): boolean {
    if (this.hidden.length + length <= MAX_HIDDEN_TEXT) return true;
    this.problem = 'part_size';
    return false;
  }

  /** One item per line; an empty comment adds no empty line. */
  private endHiddenItem(): void {
    if (this.hidden && !this.hidden.endsWith('\n')) this.addHidden('\n');
  }

  /** The held dashes (and "!") are comment text after all; they end in the input at `end`. */
  private heldDashesAreText(end: number): void {
    const dashes = Math.max(0, this.dashes - this.openerDashes);
    const held = '-'.repeat(dashes) + (this.bang ? '!' : '');
    if (held) this.addHidden(held, end - held.length, IN_COMMENT);
    this.dashes = this.openerDashes = 0;
    this.bang = false;
  }

  private finishTag(): void {
    const name = this.tagName;
    if (!this.isEnd && (name === 'script' || name === 'style')) {
      this.state = RAWTEXT;
      this.rawName = name;
      this.rawMatch = 0;
      this.rawPending = '';
    } else this.state = DATA;
    const sep = BLOCK.has(name) ? '\n' : CELL.has(name) ? ' ' : '';
    if (sep) {
      this.out += sep;
      this.trace?.gap(false, 1);
      if (this.hidden) {
        this.out += this.hidden;
        this.hidden = '';
        this.trace?.flush();
      }
    }
  }

  private flushEntity(): void {
    if (this.entity.length > 1) {
      const text = COMMON_ENTITIES.get(this.entity) ?? nbspToSpace(decodeHTML(this.entity));
      this.out += text;
      this.trace?.decoded(false, text, this.entity, this.mark, TEXT);
    } else {
      this.out += '&';
      this.trace?.copy(false, this.mark, 1, TEXT);
    }
    this.entity = '';
  }

  private lessThanIsText(): void {
    this.out += '<';
    this.trace?.copy(false, this.mark, 1, TEXT);
  }
}
