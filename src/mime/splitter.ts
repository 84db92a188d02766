/*
 * mailsplit's Splitter with its header parsing made safe. mailsplit parses
 * every MIME header section with its Headers class, which is super-linear on
 * hostile input (a run of bare CRs backtracks a regex; many continuation lines
 * splice an array), and then runs regexes over whole field values. So each
 * node's section is read here first, in one linear pass (header-words.ts),
 * and mailsplit is handed a reduced section: only Content-Type,
 * Content-Transfer-Encoding and Content-Disposition, unfolded, bare CRs made
 * spaces, each capped at MAX_MIME_FIELD characters. The fields we scan
 * (Subject, From...) are kept on the node for the message parser.
 *
 * A Content-Type or Content-Transfer-Encoding given twice is noted: readers
 * disagree on which one counts, and that is a way to hide a part's content.
 */
import { Splitter } from 'mailsplit';
import { HEADER_TEXT_FIELDS, parseHeaderSection, type HeaderSection } from './header-words';

/** A boundary is at most 70 characters (RFC 2046 5.1.1); 4 KiB leaves room for long file names. */
export const MAX_MIME_FIELD = 4 * 1024;
const MIME_FIELDS = new Set(['content-type', 'content-transfer-encoding', 'content-disposition']);

/** The parts of mailsplit's MimeNode we read (lib/mime-node.js). */
export interface MimeNode {
  parentNode: MimeNode | false;
  multipart: string | false;
  _boundary: Buffer | false;
  contentType: string | false;
  charset: string | false;
  encoding: string | false;
  disposition: string | false;
  filename: string | false;
  flowed: boolean;
  delSp: boolean;
  _headersLines: Buffer[];
  _headerlen: number;
  headers: unknown;
  parseHeaders(): void;
  addHeaderChunk(line: Buffer): void;
}

export interface NodeHeaders extends HeaderSection {
  /** Content-Type or Content-Transfer-Encoding given more than once. */
  duplicateMimeField: boolean;
}

const kHeaders = Symbol('mailveil.headers');
const kError = Symbol('mailveil.headerError');
const kSplit = Symbol('mailveil.lineSplit');

type Tagged = MimeNode & { [kHeaders]?: NodeHeaders; [kError]?: unknown; [kSplit]?: boolean };

/** The node's own header section as we parsed it (empty before its headers end). */
export function nodeHeaders(node: MimeNode): NodeHeaders {
  return (node as Tagged)[kHeaders] ?? { fields: [], badLines: [], duplicateMimeField: false };
}

/** An exception our parsing threw inside mailsplit's callbacks: a bug, to be rethrown by the caller. */
export function nodeError(node: MimeNode): unknown {
  return (node as Tagged)[kError];
}

export function markLineSplit(node: MimeNode): void {
  (node as Tagged)[kSplit] = true;
}

export function hasLineSplit(node: MimeNode): boolean {
  return (node as Tagged)[kSplit] === true;
}

/**
 * Does `line`, from `at` (just after the leading "--"), hold `boundary` and
 * then only "--", blanks and a line end? 1: a delimiter, 2: the close
 * delimiter, false: neither.
 */
function delimiter(line: Buffer, at: number, boundary: Buffer): 1 | 2 | false {
  if (line.length < at + boundary.length) return false;
  for (let i = 0; i < boundary.length; i++) if (line[at + i] !== boundary[i]) return false;
  let i = at + boundary.length;
  let kind: 1 | 2 = 1;
  if (line[i] === 0x2d && line[i + 1] === 0x2d) {
    kind = 2;
    i += 2;
  }
  while (line[i] === 0x20 || line[i] === 0x09) i++;
  if (line[i] === 0x0d) i++;
  if (line[i] === 0x0a) i++;
  return i === line.length ? kind : false;
}

/** RFC 5322 comments out, first token, lower case: all mailsplit needs of the encoding. */
function encodingToken(value: string): string {
  let depth = 0;
  let token = '';
  for (let i = 0; i < value.length && token.length <= 64; i++) {
    const c = value[i];
    if (c === '(') depth++;
    else if (c === ')' && depth > 0) depth--;
    else if (depth === 0) {
      if (c === ' ' || c === '\t' || c === '\r') {
        if (token) break;
      } else token += c;
    }
  }
  return token.toLowerCase();
}

function reduce(section: HeaderSection): { block: string; duplicate: boolean } {
  const seen = new Map<string, string>();
  let duplicate = false;
  for (const f of section.fields) {
    if (!MIME_FIELDS.has(f.name)) continue;
    if (seen.has(f.name)) {
      if (f.name !== 'content-disposition') duplicate = true;
      continue; // mailsplit reads the first one too
    }
    const value = f.value.length > MAX_MIME_FIELD ? f.value.slice(0, MAX_MIME_FIELD) : f.value;
    seen.set(f.name, f.name === 'content-transfer-encoding' ? encodingToken(value) : value.replace(/\r/g, ' '));
  }
  let block = '';
  for (const [name, value] of seen) block += `${name}: ${value}\r\n`;
  return { block: block + '\r\n', duplicate };
}

function patch(node: Tagged): void {
  const parse = node.parseHeaders;
  node.parseHeaders = function (this: Tagged): void {
    if (!this.headers) {
      try {
        const raw = Buffer.concat(this._headersLines, this._headerlen).toString('latin1');
        const root = !this.parentNode;
        const section = parseHeaderSection(raw, (name) => MIME_FIELDS.has(name) || (root && (name === 'subject' || HEADER_TEXT_FIELDS.has(name))));
        const { block, duplicate } = reduce(section);
        this[kHeaders] = { ...section, duplicateMimeField: duplicate };
        const reduced = Buffer.from(block, 'latin1');
        this._headersLines = [reduced];
        this._headerlen = reduced.length;
      } catch (err) {
        // Thrown here it would escape through setImmediate and end the process.
        this[kError] = err;
        this._headersLines = [];
        this._headerlen = 0;
      }
    }
    parse.call(this);
  };
}

export interface SplitterOptions {
  maxHeadSize: number;
  maxChildNodes: number;
  /** How far up the tree a boundary line is looked for (see checkBoundary). */
  maxBoundaryAncestors: number;
}

export class SafeSplitter extends Splitter {
  declare node: MimeNode;
  declare state: number;
  declare tree: MimeNode[];
  /** mailsplit's partial line: prepended to the next line processLine reads. */
  declare line: Buffer | false;
  declare nodeCounter: number;
  declare maxChildNodes: number;
  declare maxHeadSize: number;
  declare processLine: (line: Buffer | false, final: boolean, next: (err?: unknown, data?: unknown, flush?: boolean) => void) => void;
  private readonly maxAncestors: number;

  constructor(options: SplitterOptions) {
    // ignoreEmbedded: message/rfc822 parts are parsed by a nested parser of
    // ours, whatever their encoding or disposition, so paths stay uniform.
    super({ ignoreEmbedded: true, maxHeadSize: options.maxHeadSize, maxChildNodes: options.maxChildNodes });
    this.maxAncestors = options.maxBoundaryAncestors;
  }

  /**
   * Replaces mailsplit's boundary test, for three reasons:
   *   - mailsplit carries the line end of a body line over to the next chunk
   *     and skips it here with a test that is loose ("\r" + any byte counts as
   *     a line end), so a line like "\r\x0e--b" was a boundary or not
   *     depending on where a chunk ended. Here a carried "\r\n" or "\n" is
   *     skipped, then one bare CR: the same answer whatever the chunking.
   *   - Transport padding (RFC 2046 5.1.1: blanks after the delimiter) is
   *     allowed, as MUAs allow it; mailsplit missed such a boundary and read
   *     the following parts, base64 and all, as text of the previous one.
   *   - mailsplit only knew the current node's and its parent's boundaries,
   *     so after an inner multipart that is never closed the outer parts were
   *     all text of the inner part's last child. Readers such as Python's
   *     email package take an ancestor's boundary as closing the inner
   *     multiparts; so do we: the tree is unwound to that ancestor and
   *     mailsplit carries on as if it were the parent's boundary.
   * Returns mailsplit's codes: 1 next part of the current node, 2 its end,
   * 3 next part of the parent, 4 the parent's end.
   */
  checkBoundary(line: Buffer): number | false {
    return this.match(line, true);
  }

  /** Would checkBoundary(line) find a boundary? The same test, without unwinding the tree. */
  isBoundary(line: Buffer): boolean {
    return this.match(line, false) !== false;
  }

  private match(line: Buffer, unwind: boolean): number | false {
    let start = 0;
    if (line[0] === 0x0d && line[1] === 0x0a) start = 2;
    else if (line[0] === 0x0a) start = 1;
    if (line[start] === 0x0d) start++;
    if (line.length < start + 3 || line[start] !== 0x2d || line[start + 1] !== 0x2d) return false;
    const node = this.node;
    let kind = node._boundary ? delimiter(line, start + 2, node._boundary) : false;
    if (kind) return kind;
    const parent = node.parentNode;
    if (!parent) return false;
    kind = parent._boundary ? delimiter(line, start + 2, parent._boundary) : false;
    if (kind) return kind + 2;
    let child: MimeNode = parent;
    for (let up = 0; child.parentNode && up < this.maxAncestors; up++) {
      const ancestor: MimeNode = child.parentNode;
      kind = ancestor._boundary ? delimiter(line, start + 2, ancestor._boundary) : false;
      if (kind) {
        if (unwind) {
          while (this.tree.length && this.tree[this.tree.length - 1] !== ancestor) this.tree.pop();
          this.node = child;
        }
        return kind + 2;
      }
      child = ancestor;
    }
    return false;
  }

  /**
   * mailsplit pushes a node from inside processLine in one case (a boundary
   * closing a part that had only a header section). The message parser drives
   * processLine itself, synchronously, and never reads this stream: what is
   * pushed goes to `onPush`.
   */
  onPush: ((event: unknown) => void) | undefined;

  override push(chunk: unknown): boolean {
    if (this.onPush && chunk !== null) this.onPush(chunk);
    return true;
  }

  /** Called by mailsplit for every node, the first one from its constructor. */
  newNode(parent?: MimeNode): void {
    super.newNode(parent);
    patch(this.node as Tagged);
  }

  /** mailsplit's parser state: reading a node's header section. */
  get inHeaders(): boolean {
    return this.state === 0x01;
  }

  /** mailsplit's parser state: reading a node's body (or a multipart's preamble/epilogue). */
  get inBody(): boolean {
    return this.state === 0x02;
  }
}
