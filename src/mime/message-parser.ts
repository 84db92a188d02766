/*
 * One message's MIME tree (RFC 2045, 2046), streamed through mailsplit: gives
 * each node its IMAP-style path (see types.ts), decides what it is, feeds its
 * body to a text decoder or, for message/rfc822 and message/global, to a
 * nested MessageParser; reports limits and broken structure to the sink.
 *
 * Flow control: a write resolves only once mailsplit has read it and every
 * event it made has been handled, and a nested parser is written from inside
 * the outer one's event handler, so the outer waits for the inner. All
 * parsers move in lock step with the byte order (results do not depend on
 * chunking), and nothing is queued beyond mailsplit's own small buffers:
 * memory stays bounded however large a part is.
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
import { LineFeeder, cutAfterEmptyLines, type Piece } from './line-feeder';
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
  /** An internal bug: the stream must error. */
  fatal(err: unknown): void;
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

/** Marks an exception thrown by our own handling, as opposed to mailsplit rejecting the content. */
class InternalError {
  constructor(readonly cause: unknown) {}
}

function join(path: string, n: string): string {
  return path ? `${path}.${n}` : n;
}

export class MessageParser {
  private readonly splitter: SafeSplitter;
  private readonly feeder = new LineFeeder();
  private readonly states = new Map<MimeNode, NodeState>();
  private readonly containers: NodeState[] = [];
  private readonly closed: Promise<void>;
  private readonly done: Promise<void>;
  private current: Leaf | undefined;
  private firstTextSeen = false;
  private failed = false;
  /** An event is being handled. */
  private busy = false;
  private idleWaiters: Array<() => void> = [];

  constructor(
    private readonly ctx: ParseContext,
    private readonly place: ParserPlace,
  ) {
    this.splitter = new SafeSplitter({
      maxHeadSize: ctx.limits.maxHeaderSize,
      maxChildNodes: ctx.limits.maxParts + SPLITTER_NODE_SLACK,
      maxBoundaryAncestors: ctx.limits.maxMimeDepth + 1,
    });
    // The async iterator below reports errors; this only keeps a late one from being unhandled.
    this.splitter.on('error', () => {});
    this.closed = new Promise((resolve) => this.splitter.once('close', () => resolve()));
    this.done = this.consume();
    this.done.catch(() => {}); // awaited by end(); ctx.fatal has been told already
  }

  /** Resolves when mailsplit has read the bytes (or parsing has stopped). */
  async write(bytes: Buffer): Promise<void> {
    if (this.failed || this.ctx.stopped) return;
    for (const piece of this.feeder.push(bytes)) await this.feed(piece);
  }

  /** Resolves when every part, nested ones included, has been given to the sink. */
  async end(): Promise<void> {
    for (const piece of this.feeder.end()) await this.feed(piece);
    if (!this.failed) this.splitter.end();
    await this.done;
  }

  /**
   * Resolves once mailsplit has read the piece AND every event it made has
   * been handled. Waiting for the events too keeps all parsers in lock step
   * with the byte order, so what is reported (and when a limit stops
   * everything) does not depend on how the input was chunked.
   */
  private async feed(piece: Piece): Promise<void> {
    if (this.failed || this.ctx.stopped) return;
    if (piece.split) this.noteSplit();
    const written = new Promise<void>((resolve) => {
      const writes = cutAfterEmptyLines(piece.data);
      for (let i = 0; i < writes.length - 1; i++) this.splitter.write(writes[i]);
      this.splitter.write(writes[writes.length - 1], () => resolve());
    });
    await Promise.race([written, this.closed]);
    if (this.busy || this.splitter.readableLength > 0) {
      await Promise.race([new Promise<void>((resolve) => this.idleWaiters.push(resolve)), this.closed]);
    }
  }

  private wakeIfIdle(): void {
    if (this.busy || this.splitter.readableLength > 0 || !this.idleWaiters.length) return;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const wake of waiters) wake();
  }

  /**
   * A line was split (line-feeder.ts). mailsplit has read everything before
   * it, so its current node is the one the line belongs to. Inside base64,
   * or a multipart's preamble, the split changes nothing we extract.
   */
  private noteSplit(): void {
    const node = this.splitter.node;
    const harmless = !this.splitter.inHeaders && (Boolean(node.multipart && node._boundary) || node.encoding === 'base64');
    if (!harmless) markLineSplit(node);
  }

  private async consume(): Promise<void> {
    try {
      await this.readAll();
      await this.closeCurrent();
      this.checkContainers();
    } catch (err) {
      this.failed = true;
      this.ctx.fatal(err);
      throw err;
    }
  }

  private async readAll(): Promise<void> {
    try {
      for await (const event of this.splitter) {
        this.busy = true;
        try {
          await this.handle(event as MimeNode | SplitterData);
        } catch (err) {
          throw new InternalError(err);
        }
        this.busy = false;
        this.wakeIfIdle();
      }
    } catch (err) {
      if (err instanceof InternalError) throw err.cause;
      this.splitterFailed(err);
    }
  }

  private async handle(event: MimeNode | SplitterData): Promise<void> {
    if (this.ctx.stopped) return;
    if ((event as { type: string }).type === 'node') return this.onNode(event as MimeNode);
    const { node, value } = event as SplitterData;
    // Any event of another node (a boundary line, the parent's epilogue) ends the open leaf.
    if (this.current && this.current.node !== node) await this.closeCurrent();
    const leaf = this.current;
    if (!leaf) return; // preamble, epilogue, boundary lines, parts not extracted
    this.checkSplit(leaf.node, leaf.state);
    if (leaf.kind === 'text') {
      leaf.text.write(value);
      return;
    }
    const bytes = leaf.transfer.write(value);
    this.problem(leaf.state, leaf.transfer.problem);
    if (bytes.length) await leaf.child.write(bytes);
  }

  private async onNode(node: MimeNode): Promise<void> {
    await this.closeCurrent();
    const error = nodeError(node);
    if (error) throw error;
    const parent = node.parentNode ? this.states.get(node.parentNode) : undefined;
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
    this.states.set(node, state);
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

  private async closeCurrent(): Promise<void> {
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
    if (rest.length) await leaf.child.write(rest);
    await leaf.child.end();
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
    if (this.ctx.stopped) return; // the message is unscannable already; what fails after that is noise
    const e = (err ?? {}) as { code?: unknown; message?: unknown };
    const reason = e.code === 'EMAXLEN' ? (/child nodes/i.test(String(e.message)) ? 'too_many_parts' : 'header_size') : 'decode_error';
    if (reason === 'too_many_parts') this.ctx.stopped = true;
    this.ctx.sink.unscannable(this.failingNodeInfo(), reason);
  }

  /** The node mailsplit was reading when it gave up; it may not have a path yet (its header section was too big). */
  private failingNodeInfo(): PartInfo {
    const node = this.splitter.node;
    const known = node && this.states.get(node);
    if (known) return known.info;
    const parent = node && node.parentNode ? this.states.get(node.parentNode) : undefined;
    if (parent) {
      return { path: join(parent.info.path, String(parent.children + 1)), scope: parent.info.scope, contentType: UNKNOWN_TYPE, depth: parent.info.depth + 1 };
    }
    const scope: Scope = this.place.attachment ? 'attachments' : 'headers';
    return { path: join(this.place.path, '0'), scope, contentType: 'text/rfc822-headers', depth: this.place.depth };
  }
}
