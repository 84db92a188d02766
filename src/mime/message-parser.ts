/*
 * One message's MIME tree (RFC 2045, 2046), split by mailsplit's own line
 * parser: gives each node its IMAP-style path (see types.ts), decides what it
 * is, feeds its body to a text decoder or, for message/rfc822 and
 * message/global, to a nested MessageParser; reports limits and broken
 * structure to the sink.
 *
 * Driving mailsplit: its Splitter stream handles one line per setImmediate
 * and groups lines by chunk (with bugs at chunk edges), so it is not used as
 * a stream. This parser calls the Splitter's processLine itself,
 * synchronously, for exactly the lines that can change its state: boundary
 * lines (SafeSplitter.isBoundary, the test processLine makes first) and the
 * empty line that ends a header section. Every other line is handled in
 * bulk, a run of lines as one span found with Buffer.indexOf, with no
 * per-line work: body lines are plain data of the current node, and header
 * lines are added to the node's header section as processLine would. The
 * result is what
 * mailsplit gives when fed one line per write, which is what the old
 * stream-driven code gave for every chunking:
 *   - a body line's line end is held back ("carry") and goes to the next
 *     line, so the line end before a boundary line belongs to the boundary
 *     (except for a message's root node, as in mailsplit);
 *   - the last, unterminated line is read at the end, with final=true.
 * Everything is synchronous: a write returns once every part event it made
 * has been handled, nested parsers included. Results do not depend on
 * chunking, and nothing is queued: memory stays bounded however large a
 * part is (at most one line, MAX_LINE, is held).
 *
 * Malformed structure: a missing closing boundary is common and harmless (the
 * parts found are extracted, nothing is reported). A multipart without a
 * boundary parameter is read as text and reported 'bad_multipart'; so is a
 * multipart in which no boundary ever appears (its text sits in the preamble,
 * which is not extracted). A mailsplit failure (header section over the
 * limit, too many nodes) ends this message's parsing: unscannable, with the
 * path of the node being parsed.
 * Cost: a message/rfc822 part in 7bit is parsed again by its nested parser,
 * so the work grows with size x nesting depth; maxMimeDepth bounds it.
 */
import type { ExtractLimits, PartInfo, Scope, TextSink } from './types';
import { SafeSplitter, hasLineSplit, markLineSplit, nodeError, nodeHeaders, type MimeNode, type NodeHeaders } from './splitter';
import { LineFeeder, type Piece } from './line-feeder';
import { PartText, TextLeaf } from './part-text';
import { partKind } from './part-kind';
import { transferDecoder, type ByteDecoder } from './transfer-decode';
import { HEADER_TEXT_FIELDS, decodeHeaderValue, decodeRawHeader } from './header-words';

/** State shared by a message's parser and all its nested parsers. */
export interface ParseContext {
  readonly sink: TextSink;
  readonly limits: ExtractLimits;
  /** MIME nodes seen so far, all levels together. */
  parts: number;
  /** Set once the message is past saving (too many parts): parsing stops everywhere, bytes still flow. */
  stopped: boolean;
}

/** Where a parser's message sits: the path of its message/rfc822 part ('' at the top), its depth, and whether it is inside an attachment. */
export interface ParserPlace {
  path: string;
  depth: number;
  attachment: boolean;
}

/** mailsplit counts nodes too (per splitter, its own way); ours is the limit, its is only a backstop. */
const SPLITTER_NODE_SLACK = 16;
const UNKNOWN_TYPE = 'application/octet-stream';

interface NodeState {
  info: PartInfo;
  /** Nothing under this node is looked at (cut off by a limit, or not text). */
  skip: boolean;
  children: number;
  reported: Set<string>;
}

type Leaf =
  | { kind: 'text'; node: MimeNode; state: NodeState; text: TextLeaf }
  | { kind: 'message'; node: MimeNode; state: NodeState; transfer: ByteDecoder; child: MessageParser };

interface SplitterData {
  type: 'body' | 'data';
  node: MimeNode;
  value: Buffer;
}

/** A multipart with a boundary: its children are parts, its own lines are preamble, delimiters and epilogue. */
function isContainer(node: MimeNode): boolean {
  return Boolean(node.multipart && node._boundary);
}

function join(path: string, n: string): string {
  return path ? `${path}.${n}` : n;
}

const LF = 0x0a;
const CR = 0x0d;
const DASHES = Buffer.from('--');

export class MessageParser {
  private readonly splitter: SafeSplitter;
  private readonly feeder = new LineFeeder();
  /** States of the nodes that have a boundary (any parent has one), and of the last node without. */
  private readonly states = new Map<MimeNode, NodeState>();
  private lastState: { node: MimeNode; state: NodeState } | undefined;
  private readonly containers: NodeState[] = [];
  private current: Leaf | undefined;
  private firstTextSeen = false;
  private failed = false;
  private ended = false;
  /** The line end of the last body line, held back for the next line (see above). */
  private carry: Buffer | undefined;
  /** The start of a line that a split piece left open (line-feeder.ts): read with the next piece. */
  private partial: Buffer | undefined;

  constructor(
    private readonly ctx: ParseContext,
    private readonly place: ParserPlace,
  ) {
    this.splitter = new SafeSplitter({
      maxHeadSize: ctx.limits.maxHeaderSize,
      maxChildNodes: ctx.limits.maxParts + SPLITTER_NODE_SLACK,
      maxBoundaryAncestors: ctx.limits.maxMimeDepth + 1,
    });
    this.splitter.onPush = (event) => this.handle(event as MimeNode | SplitterData);
  }

  /** Returns once every event the bytes made has been handled (or parsing has stopped). */
  write(bytes: Buffer): void {
    if (this.failed || this.ctx.stopped) return;
    for (const piece of this.feeder.push(bytes)) {
      if (this.failed || this.ctx.stopped) return;
      this.feed(piece);
    }
  }

  /** Returns once every part, nested ones included, has been given to the sink. */
  end(): void {
    if (this.ended) return;
    this.ended = true;
    if (!this.failed && !this.ctx.stopped) {
      let last = this.partial;
      this.partial = undefined;
      for (const piece of this.feeder.end()) last = last ? Buffer.concat([last, piece.data]) : piece.data;
      this.flush(last);
    }
    if (this.failed) return; // closed when it failed
    this.closeCurrent();
    this.checkContainers();
  }

  private feed(piece: Piece): void {
    if (piece.split) this.noteSplit();
    let data = piece.data;
    if (this.partial) {
      data = Buffer.concat([this.partial, data]);
      this.partial = undefined;
    }
    // Only whole lines now; a split piece ends inside a line (the space after SPLIT).
    let end = data.length;
    if (data[end - 1] !== LF) {
      end = data.lastIndexOf(LF) + 1;
      this.partial = data.subarray(end);
    }
    this.lines(data, end);
  }

  /** data[0, end) is whole lines. */
  private lines(data: Buffer, end: number): void {
    const splitter = this.splitter;
    let pos = 0;
    while (pos < end) {
      if (this.failed || this.ctx.stopped) return;
      if (splitter.inBody) {
        const at = this.nextBoundaryLine(data, pos, end);
        if (at > pos) this.body(data.subarray(pos, at));
        pos = at;
        if (pos >= end) return;
      } else if (splitter.inHeaders && !this.carry && splitter.nodeCounter <= splitter.maxChildNodes) {
        // Header lines before the empty line that ends the section, none a boundary line: one chunk.
        const at = this.nextBoundaryLine(data, pos, this.nextEmptyLine(data, pos, end));
        if (at > pos) {
          this.headerLines(data.subarray(pos, at));
          pos = at;
          continue;
        }
      }
      const lf = data.indexOf(LF, pos);
      const next = lf < 0 || lf >= end ? end : lf + 1;
      this.line(data.subarray(pos, next));
      pos = next;
    }
  }

  /** Start of the first line in data[pos, end) that is a boundary line for the splitter as it stands, or end. */
  private nextBoundaryLine(data: Buffer, pos: number, end: number): number {
    let from = pos;
    while (from < end) {
      const dashes = data.indexOf(DASHES, from);
      if (dashes < 0 || dashes >= end) return end;
      // A boundary line is "--..." or a bare CR and "--..." (SafeSplitter.checkBoundary).
      let lineStart = -1;
      if (dashes === pos || data[dashes - 1] === LF) lineStart = dashes;
      else if (data[dashes - 1] === CR && (dashes - 1 === pos || data[dashes - 2] === LF)) lineStart = dashes - 1;
      const lf = data.indexOf(LF, dashes);
      const lineEnd = lf < 0 || lf >= end ? end : lf + 1;
      if (lineStart >= 0 && this.splitter.isBoundary(data.subarray(lineStart, lineEnd))) return lineStart;
      from = lineEnd;
    }
    return end;
  }

  /** Start of the first empty line ("\n" or "\r\n") in data[pos, end), or end. */
  private nextEmptyLine(data: Buffer, pos: number, end: number): number {
    // Line by line (a search for "\n\r\n" could run far past a short header section, once per part).
    let at = pos;
    while (at < end) {
      if (data[at] === LF || (data[at] === CR && data[at + 1] === LF)) return at;
      const lf = data.indexOf(LF, at);
      if (lf < 0 || lf >= end) return end;
      at = lf + 1;
    }
    return end;
  }

  /**
   * Header lines that neither end the section nor are boundary lines: what
   * processLine does with each (mailsplit's HEAD state), for all at once.
   */
  private headerLines(lines: Buffer): void {
    const splitter = this.splitter;
    const node = splitter.node;
    node.addHeaderChunk(lines);
    if (node._headerlen > splitter.maxHeadSize) {
      this.splitterFailed(Object.assign(new Error('Max header size for a MIME node exceeded'), { code: 'EMAXLEN' }));
    }
  }

  /**
   * Whole lines of the current node's body (or a multipart's preamble or
   * epilogue), none of them a boundary line: what processLine would have
   * returned line by line, as one span.
   */
  private body(span: Buffer): void {
    const node = this.splitter.node;
    const leaf = this.current && this.current.node === node ? this.current : undefined;
    if (node.multipart || !node.parentNode) {
      // 'data' lines (a multipart's preamble or epilogue), or a root node's body: mailsplit keeps the line ends.
      const target = leaf ?? this.containerText(node);
      if (target) this.data(target, span);
      return;
    }
    const carry = this.carry;
    let cut = span.length;
    if (span[cut - 1] === LF) {
      cut--;
      if (cut > 0 && span[cut - 1] === CR) cut--;
    }
    this.carry = span.subarray(cut);
    if (!leaf) return;
    if (carry) this.data(leaf, carry);
    if (cut > 0) this.data(leaf, span.subarray(0, cut));
  }

  /** One line through mailsplit (a header line, or a boundary line), with the carried line end in front. */
  private line(line: Buffer): void {
    const splitter = this.splitter;
    if (this.carry) {
      splitter.line = this.carry;
      this.carry = undefined;
    }
    splitter.processLine(line, false, (err, data) => this.result(err, data, false));
  }

  /** The end: the last line (no line end), or what is carried, read with final=true (mailsplit's _flush). */
  private flush(last: Buffer | undefined): void {
    const carry = this.carry;
    this.carry = undefined;
    const line = carry && last ? Buffer.concat([carry, last]) : (carry ?? last);
    this.splitter.line = line && line.length ? line : false;
    this.splitter.processLine(false, true, (err, data) => this.result(err, data, true));
  }

  /** What processLine gave, as mailsplit's stream would have pushed it (one line per write, or its _flush). */
  private result(err: unknown, data: unknown, final: boolean): void {
    if (err) {
      this.splitterFailed(err);
      return;
    }
    if (!data) return;
    const event = data as MimeNode | SplitterData;
    if ((event as { type: string }).type === 'node') return this.handle(event);
    const d = event as SplitterData;
    if (!d.value || !d.value.length) return;
    if (!final && d.type === 'body' && d.node.parentNode && d.value[d.value.length - 1] === LF) {
      // As mailsplit does for a body line: its line end waits for the next line.
      let cut = d.value.length - 1;
      if (cut > 0 && d.value[cut - 1] === CR) cut--;
      this.carry = d.value.subarray(cut);
      if (cut === 0) return;
      d.value = d.value.subarray(0, cut);
    }
    this.handle(d, final);
  }

  /**
   * A line was split (line-feeder.ts). Every line before it has been read,
   * so the splitter's current node is the one the line belongs to. Inside
   * base64, or a multipart's preamble, the split changes nothing we extract.
   */
  private noteSplit(): void {
    const node = this.splitter.node;
    const harmless = !this.splitter.inHeaders && (Boolean(node.multipart && node._boundary) || node.encoding === 'base64');
    if (!harmless) markLineSplit(node);
  }

  private handle(event: MimeNode | SplitterData, final = false): void {
    if (this.ctx.stopped) return;
    if ((event as { type: string }).type === 'node') return this.onNode(event as MimeNode);
    const { node, value } = event as SplitterData;
    if (isContainer(node)) {
      // A multipart's own lines arrive here one by one: boundary lines (which
      // end its preamble or a part), and at the very end an unterminated last
      // line of the epilogue (final), which is text like the rest of it.
      // A nested message's closing delimiter comes last this way too (its line end went to the outer boundary).
      if (!final || this.splitter.isBoundary(value)) return this.closeCurrent();
      const leaf = this.current && this.current.node === node ? this.current : this.containerText(node);
      if (leaf) this.data(leaf, value);
      return;
    }
    // Any event of another node ends the open leaf.
    if (this.current && this.current.node !== node) this.closeCurrent();
    const leaf = this.current;
    if (!leaf) return; // parts not extracted
    this.data(leaf, value);
  }

  /**
   * The text leaf for a multipart's own text, its preamble or epilogue (RFC
   * 2046 5.1.1): readers hide it, but it leaves with the message and a
   * non-MIME reader shows it, so it is scanned as text of the container's
   * path, in two runs (types.ts): each ends when the next node or boundary
   * comes, so no scanner stays open behind the parser. Read as 8bit in any
   * charset: a Content-Transfer-Encoding or charset on a multipart (RFC 2045
   * forbids the first) says nothing about it. Undefined when the container
   * is cut off by a limit.
   */
  private containerText(node: MimeNode): Leaf | undefined {
    const state = isContainer(node) ? this.stateOf(node) : undefined;
    if (!state || state.skip) return undefined;
    this.closeCurrent();
    const { transferEncoding: _encoding, charset: _charset, ...info } = state.info;
    const out = new PartText(this.ctx.sink, info, this.ctx.limits.maxPartText);
    this.current = { kind: 'text', node, state, text: new TextLeaf(out, { html: false }) };
    return this.current;
  }

  private data(leaf: Leaf, value: Buffer): void {
    if (this.ctx.stopped) return;
    this.checkSplit(leaf.node, leaf.state);
    if (leaf.kind === 'text') {
      leaf.text.write(value);
      return;
    }
    const bytes = leaf.transfer.write(value);
    this.problem(leaf.state, leaf.transfer.problem);
    if (bytes.length) leaf.child.write(bytes);
  }

  private onNode(node: MimeNode): void {
    this.closeCurrent();
    const error = nodeError(node);
    if (error) throw error;
    const parent = node.parentNode ? this.stateOf(node.parentNode) : undefined;
    if (node.parentNode && !parent) throw new Error('mime: a MIME node arrived before its parent');

    const container = Boolean(node.multipart && node._boundary);
    const contentType = (node.contentType || (node.multipart ? `multipart/${node.multipart}` : 'text/plain')).toLowerCase();
    const filename = node.filename || undefined;
    // A multipart without a boundary has no parts mailsplit can find: its body is read as text.
    const kind = container ? 'container' : node.multipart ? 'text' : partKind(contentType, filename);
    const textual = kind === 'text' || kind === 'html';
    // An attachment: inside an attached message, said so, or named (unless it is the message's first text).
    const attachment = this.place.attachment || node.disposition === 'attachment' || (!!filename && !(textual && !this.firstTextSeen));
    if (textual && !attachment) this.firstTextSeen = true;

    let path: string;
    let depth: number;
    if (parent) {
      parent.children++;
      path = join(parent.info.path, String(parent.children));
      depth = parent.info.depth + 1;
    } else {
      path = container ? this.place.path : join(this.place.path, '1');
      depth = this.place.depth;
    }
    const info: PartInfo = { path, scope: attachment ? 'attachments' : 'body', contentType, depth };
    if (node.charset) info.charset = node.charset;
    if (node.encoding) info.transferEncoding = node.encoding;
    if (filename) info.filename = filename;
    const state: NodeState = { info, skip: false, children: 0, reported: new Set() };
    // Only a node with a boundary can become a parent (mailsplit's newNode);
    // the states of the others are dropped as the parser moves on, so memory
    // does not grow with the number of parts.
    if (node._boundary) this.states.set(node, state);
    else this.lastState = { node, state };
    this.ctx.parts++;

    if (parent?.skip) {
      state.skip = true;
      return;
    }
    if (this.ctx.parts > this.ctx.limits.maxParts) {
      this.ctx.sink.unscannable(info, 'too_many_parts');
      this.ctx.stopped = true;
      return;
    }
    if (depth > this.ctx.limits.maxMimeDepth) {
      this.problem(state, 'mime_depth');
      state.skip = true;
      return;
    }
    const headers = nodeHeaders(node);
    if (!node.parentNode) this.emitHeaders(headers, depth);
    if (headers.duplicateMimeField) this.problem(state, 'bad_header');
    this.checkSplit(node, state);
    if (container) {
      this.containers.push(state);
      return;
    }
    if (node.multipart) this.problem(state, 'bad_multipart');

    if (kind === 'none') {
      this.ctx.sink.notExtracted(info);
      state.skip = true;
    } else if (kind === 'message') {
      if (depth + 1 > this.ctx.limits.maxMimeDepth) {
        this.problem(state, 'mime_depth');
        state.skip = true;
        return;
      }
      const { decoder, problem } = transferDecoder(node.encoding || undefined);
      this.problem(state, problem);
      const child = new MessageParser(this.ctx, { path, depth: depth + 1, attachment });
      this.current = { kind: 'message', node, state, transfer: decoder, child };
    } else {
      const out = new PartText(this.ctx.sink, info, this.ctx.limits.maxPartText);
      const flowed = contentType === 'text/plain' && node.flowed ? { delSp: node.delSp } : undefined;
      this.current = { kind: 'text', node, state, text: new TextLeaf(out, { html: kind === 'html', flowed }) };
    }
  }

  /** Subject and address/text fields of this message's own header section, as pseudo-parts at "<path>.0" ("0" at the top). */
  private emitHeaders(headers: NodeHeaders, depth: number): void {
    const path = join(this.place.path, '0');
    const groups = new Map<Scope, PartText>();
    const group = (scope: Scope): PartText => {
      let part = groups.get(scope);
      if (!part) {
        part = new PartText(this.ctx.sink, { path, scope, contentType: 'text/rfc822-headers', depth }, this.ctx.limits.maxPartText);
        groups.set(scope, part);
      } else part.text('\n');
      return part;
    };
    // Inside an attached message everything is attachment text; one pseudo-part, so path and scope stay unique.
    const fixed: Scope | undefined = this.place.attachment ? 'attachments' : undefined;
    for (const field of headers.fields) {
      const subject = field.name === 'subject';
      if (!subject && !HEADER_TEXT_FIELDS.has(field.name)) continue;
      const part = group(fixed ?? (subject ? 'subject' : 'headers'));
      const { text, problems } = decodeHeaderValue(field.value);
      part.text(text);
      for (const p of problems) part.problem(p);
    }
    if (headers.badLines.length) {
      // Lines that are not fields: a reader may show them as text, so they are scanned, and the section is suspect.
      const part = group(fixed ?? 'headers');
      part.text(headers.badLines.map(decodeRawHeader).join('\n'));
      part.problem('bad_header');
    }
    for (const part of groups.values()) part.end();
  }

  private closeCurrent(): void {
    const leaf = this.current;
    if (!leaf) return;
    this.current = undefined;
    this.checkSplit(leaf.node, leaf.state);
    if (leaf.kind === 'text') {
      leaf.text.end();
      return;
    }
    const rest = leaf.transfer.end();
    this.problem(leaf.state, leaf.transfer.problem);
    if (rest.length) leaf.child.write(rest);
    leaf.child.end();
  }

  private stateOf(node: MimeNode): NodeState | undefined {
    return this.states.get(node) ?? (this.lastState?.node === node ? this.lastState.state : undefined);
  }

  private checkSplit(node: MimeNode, state: NodeState): void {
    if (hasLineSplit(node)) this.problem(state, 'line_size');
  }

  /** A multipart in which no boundary line ever appeared has hidden its content in the preamble. */
  private checkContainers(): void {
    if (this.ctx.stopped || this.failed) return;
    for (const state of this.containers) if (state.children === 0 && !state.skip) this.problem(state, 'bad_multipart');
  }

  private problem(state: NodeState, reason: string | undefined): void {
    if (!reason || state.reported.has(reason)) return;
    state.reported.add(reason);
    this.ctx.sink.unscannable(state.info, reason);
  }

  private splitterFailed(err: unknown): void {
    this.failed = true;
    if (!this.ctx.stopped) this.reportFailure(err); // once stopped, the message is unscannable already; what fails after that is noise
    this.closeCurrent();
  }

  private reportFailure(err: unknown): void {
    const e = (err ?? {}) as { code?: unknown; message?: unknown };
    const reason = e.code === 'EMAXLEN' ? (/child nodes/i.test(String(e.message)) ? 'too_many_parts' : 'header_size') : 'decode_error';
    if (reason === 'too_many_parts') this.ctx.stopped = true;
    this.ctx.sink.unscannable(this.failingNodeInfo(), reason);
  }

  /** The node mailsplit was reading when it gave up; it may not have a path yet (its header section was too big). */
  private failingNodeInfo(): PartInfo {
    const node = this.splitter.node;
    const known = node && this.stateOf(node);
    if (known) return known.info;
    const parent = node && node.parentNode ? this.stateOf(node.parentNode) : undefined;
    if (parent) {
      return { path: join(parent.info.path, String(parent.children + 1)), scope: parent.info.scope, contentType: UNKNOWN_TYPE, depth: parent.info.depth + 1 };
    }
    const scope: Scope = this.place.attachment ? 'attachments' : 'headers';
    return { path: join(this.place.path, '0'), scope, contentType: 'text/rfc822-headers', depth: this.place.depth };
  }
}
