/*
 * Pass 2 rewriter: redaction. Runs only when the verdict is `redact`, and
 * only touches the parts where pass 1 found a value of a `redact` rule:
 * those parts are decoded (transfer encoding, charset), read the way pass 1
 * read them (plain text, HTML with its hidden content: src/redact/html.ts,
 * format=flowed: src/redact/flowed.ts), the values replaced with the rule's
 * replacement, and re-encoded with their original transfer encoding and
 * charset. The Subject is re-encoded per RFC 2047 when needed. Every other
 * byte of the message, MIME structure and boundaries included, passes
 * through mailsplit unchanged, so parts without a hit stay byte-identical.
 *
 * Fail closed (src/redact/verify.ts): each redacted part, then the whole
 * message as it leaves, is scanned again as pass 1 would; a value left
 * fails the stream with a RedactionError and the original is quarantined.
 *
 * Memory: a part being redacted is held whole, up to MAX_REDACT_PART bytes;
 * a larger one fails the stream, so the message is not delivered with the
 * value in it (fail closed).
 */
import { isUtf8 } from 'node:buffer';
import * as stream from 'node:stream';
import { Readable, Transform, type TransformCallback, PassThrough, type Duplex } from 'node:stream';
import { Splitter, Joiner } from 'mailsplit';
import libmime from 'libmime';
import type { Rewriter } from '../stage';
import type { MessageContext } from '../context';
import type { CompiledRule } from '../../rules/compile';
import { partPath, HEADER_PART } from '../../mime/paths';
import { decodeTransfer, encodeTransfer, resolveCharset, decodeCharset, encodeCharset } from '../../redact/codec';
import { findRanges, applyRanges, redactText } from '../../redact/find';
import { redactHtml } from '../../redact/html';
import { redactFlowed } from '../../redact/flowed';
import { partKind } from '../../mime/part-kind';
import { remainingMatches, messageCheck } from '../../redact/verify';
import { scanLimits } from './dlp-scan';
import type { ExtractLimits } from '../../mime/extract';
import { RedactionError } from '../../redact/error';

export const MAX_REDACT_PART = 16 * 1024 * 1024;
/** Part headers are parsed by mailsplit, whose parser is quadratic on hostile input: keep them small. */
const MAX_PART_HEAD = 256 * 1024;

// stream.compose exists since Node 16.9; @types/node 20 does not declare it.
const compose = (stream as unknown as { compose: (...s: NodeJS.ReadWriteStream[]) => Duplex }).compose;

export { RedactionError };

interface Plan {
  /** A redact rule fired where redaction cannot rewrite (arbitrary header fields). */
  unredactable?: string;
  /** Part paths (relative to the message being walked) to redact, with the rules that apply there. */
  parts: Map<string, CompiledRule[]>;
  /** Header pseudo-parts ("0", "2.0", ...) whose Subject holds a value to redact. */
  subjects: Map<string, CompiledRule[]>;
  /** The limits pass 1 scanned with (dlp-scan.ts): every re-check reads the message as pass 1 did. */
  limits: ExtractLimits;
}

function addRule(map: Map<string, CompiledRule[]>, key: string, rule: CompiledRule): void {
  const list = map.get(key) ?? [];
  if (!list.includes(rule)) list.push(rule);
  map.set(key, list);
}

function plan(ctx: MessageContext): Plan {
  const redactRules = new Map(ctx.rules.compiled.rules.filter((r) => r.def.action === 'redact').map((r) => [r.def.id, r]));
  const p: Plan = { parts: new Map(), subjects: new Map(), limits: scanLimits(ctx.config.limits) };
  for (const f of ctx.findings) {
    const rule = redactRules.get(f.rule);
    if (!rule || !ctx.verdict.rules.includes(f.rule)) continue;
    // Inside an attached message, its header fields are attachment text at "<path>.0": of those, redaction rewrites the
    // Subject; a value in another field is not found there, and that fails closed (redactSubject, then messageCheck).
    const attachedHeaders = f.scope === 'attachments' && /(?:^|\.)0$/.test(f.part);
    if (f.scope === 'subject' || attachedHeaders) addRule(p.subjects, f.part, rule);
    else if (f.scope === 'headers') p.unredactable = `rule ${rule.def.id} matched in header fields, which redaction does not rewrite`;
    else addRule(p.parts, f.part, rule);
  }
  return p;
}

/** The plan of a message nested at `prefix`, with paths made relative to it. */
function subPlan(p: Plan, prefix: string): Plan {
  const cut = (m: Map<string, CompiledRule[]>) =>
    new Map([...m].filter(([k]) => k.startsWith(prefix + '.')).map(([k, v]) => [k.slice(prefix.length + 1), v]));
  return { parts: cut(p.parts), subjects: cut(p.subjects), limits: p.limits };
}

const isEmpty = (p: Plan) => !p.parts.size && !p.subjects.size;

/** Object-mode stage between mailsplit's Splitter and Joiner. */
class RedactNodes extends Transform {
  private current?: { node: any; path: string; rules: CompiledRule[]; chunks: Buffer[]; bytes: number };
  private readonly visited = new Set<string>();
  private readonly visitedNested = new Set<string>();

  constructor(private readonly p: Plan) {
    super({ objectMode: true });
  }

  _transform(obj: any, _enc: BufferEncoding, cb: TransformCallback): void {
    if (this.current && obj.type === 'body') {
      // Copied: mailsplit may reuse the memory behind a chunk it already emitted.
      this.current.chunks.push(Buffer.from(obj.value));
      this.current.bytes += obj.value.length;
      if (this.current.bytes > MAX_REDACT_PART) return cb(new RedactionError(`part to redact exceeds ${MAX_REDACT_PART} bytes`));
      return cb();
    }
    const pending = this.current ? this.finish() : Promise.resolve();
    pending.then(
      () => {
        let out: any;
        try {
          out = this.route(obj);
        } catch (err) {
          return cb(err as Error);
        }
        cb(null, out);
      },
      (err) => cb(err),
    );
  }

  _flush(cb: TransformCallback): void {
    (this.current ? this.finish() : Promise.resolve()).then(() => {
      // A planned part this walk never met (the two parsers saw a different
      // structure) would leave unredacted: refuse instead.
      const missed = [...this.p.parts.keys()].filter((k) => !this.visited.has(k) && !this.nestedCovered(k));
      if (missed.length) return cb(new RedactionError(`parts ${missed.join(', ')} were not found again for redaction`));
      cb();
    }, (err) => cb(err));
  }

  /** Paths inside a nested message are checked by that message's own walk. */
  private nestedCovered(path: string): boolean {
    return [...this.visitedNested].some((n) => path.startsWith(n + '.'));
  }

  /** Passes an object on, or starts holding a part that has values to redact. */
  private route(obj: any): any {
    if (obj.type !== 'node') return obj;
    if (obj.root) {
      const rules = this.p.subjects.get(HEADER_PART);
      if (rules) redactSubject(obj, rules);
    }
    const path = partPath(obj);
    const rules = this.p.parts.get(path);
    const nested = obj.rfc822 && !isEmpty(subPlan(this.p, path));
    if (rules) this.visited.add(path);
    if (nested) this.visitedNested.add(path);
    if (!rules && !nested) return obj;
    this.current = { node: obj, path, rules: rules ?? [], chunks: [], bytes: 0 };
    return undefined;
  }

  private async finish(): Promise<void> {
    const { node, path, rules, chunks } = this.current!;
    this.current = undefined;
    const raw = Buffer.concat(chunks);
    const body = node.rfc822 ? await redactNested(node, raw, subPlan(this.p, path)) : redactBody(node, raw, rules, path);
    if (!node.rfc822 && (await remainingMatches(node.getHeaders(), body, rules, this.p.limits)) > 0) {
      throw new RedactionError(`part ${path}: a value pass 1 can see survived redaction`);
    }
    this.push(node);
    if (body.length) this.push({ node, type: 'body', value: body });
  }
}

/**
 * Re-chunks bytes so every chunk ends at a line feed: mailsplit loses a line
 * feed when a chunk boundary falls between CR and LF in some states (seen
 * with 2- and 3-byte chunks inside a message/rfc822 part). Nothing is added
 * or removed; a line longer than MAX_HELD_LINE is passed on in pieces.
 */
const MAX_HELD_LINE = 1024 * 1024;

class LineAligned extends Transform {
  private held: Buffer[] = [];
  private heldBytes = 0;

  _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    const lf = chunk.lastIndexOf(0x0a);
    if (lf < 0) {
      this.held.push(chunk);
      this.heldBytes += chunk.length;
      if (this.heldBytes > MAX_HELD_LINE) this.release();
      return cb();
    }
    this.held.push(chunk.subarray(0, lf + 1));
    this.release();
    if (lf + 1 < chunk.length) {
      this.held.push(chunk.subarray(lf + 1));
      this.heldBytes = chunk.length - lf - 1;
    }
    cb();
  }

  _flush(cb: TransformCallback): void {
    this.release();
    cb();
  }

  private release(): void {
    if (this.held.length) this.push(this.held.length === 1 ? this.held[0] : Buffer.concat(this.held));
    this.held = [];
    this.heldBytes = 0;
  }
}

/** Walks a message with Splitter -> RedactNodes -> Joiner. */
function redactStream(p: Plan, maxHead: number): Transform {
  // ignoreEmbedded: nested messages are walked by redactNested, whatever their disposition.
  return compose(new LineAligned(), new Splitter({ maxHeadSize: maxHead, ignoreEmbedded: true }), new RedactNodes(p), new Joiner()) as unknown as Transform;
}

/** A message/rfc822 part: its own message, redacted by the same walk. */
async function redactNested(node: any, raw: Buffer, p: Plan): Promise<Buffer> {
  const encoding = (node.encoding || '7bit').toLowerCase();
  const inner = decodeTransfer(raw, encoding);
  const out: Buffer[] = [];
  for await (const chunk of Readable.from([inner]).pipe(redactStream(p, MAX_PART_HEAD))) out.push(chunk as Buffer);
  const trailing = raw.length >= 2 && raw[raw.length - 2] === 0x0d && raw[raw.length - 1] === 0x0a;
  return encoding === 'base64' || encoding === 'quoted-printable' ? encodeTransfer(Buffer.concat(out), encoding, trailing) : Buffer.concat(out);
}

function redactBody(node: any, raw: Buffer, rules: CompiledRule[], path: string): Buffer {
  const encoding = (node.encoding || '7bit').toLowerCase();
  const bytes = decodeTransfer(raw, encoding);
  const cs = resolveCharset(bytes, node.charset || undefined);
  const text = decodeCharset(bytes, cs);
  // Re-encoding must give back every byte we did not mean to change.
  if (!encodeCharset(text, cs).equals(bytes)) throw new RedactionError(`part ${path}: its ${cs.name} text does not survive a decode/encode round trip`);
  // Read the part as pass 1 does (src/mime/message-parser.ts), or a value it saw would not be found here.
  const type = (node.contentType || 'text/plain').toLowerCase();
  const html = partKind(type, node.filename || undefined) === 'html';
  const flowed = !html && type === 'text/plain' && node.flowed;
  const view = (t: string) => (html ? redactHtml(t, rules) : flowed ? redactFlowed(t, Boolean(node.delSp), rules) : redactText(t, rules));
  const { text: redacted, count } = view(text);
  // Fail closed: pass 1 saw a value here, so pass 2 must find it, and none may survive.
  if (count === 0) throw new RedactionError(`part ${path}: the value found in pass 1 was not found again for redaction`);
  if (view(redacted).count > 0) throw new RedactionError(`part ${path}: a value survived redaction`);
  const trailing = raw.length >= 2 && raw[raw.length - 2] === 0x0d && raw[raw.length - 1] === 0x0a;
  return encodeTransfer(encodeCharset(redacted, cs), encoding, trailing);
}


function redactSubject(node: any, rules: CompiledRule[]): void {
  const field: string = node.headers.getFirst('subject');
  if (!field) return;
  // Header bytes arrive as latin1 text; raw UTF-8 (RFC 6532) must be read as UTF-8.
  const bytes = Buffer.from(field, 'latin1');
  const raw = isUtf8(bytes) ? bytes.toString('utf8') : field;
  const decoded = libmime.decodeWords(raw);
  const ranges = findRanges(decoded, rules);
  if (!ranges.length) throw new RedactionError('subject: the value found in pass 1 was not found again for redaction');
  const redacted = applyRanges(decoded, ranges);
  // Non-ASCII goes back as RFC 2047 encoded words; ASCII as plain text.
  node.headers.update('Subject', /^[\x20-\x7e]*$/.test(redacted) ? redacted : libmime.encodeWords(redacted, 'Q', 52, 'utf-8'));
}

export const redact: Rewriter = {
  name: 'redact',
  kind: 'rewriter',
  create(ctx) {
    if (ctx.verdict.action !== 'redact') return new PassThrough();
    const p = plan(ctx);
    // Fail closed: the message must not leave with a value we cannot remove.
    if (p.unredactable) {
      const reason = p.unredactable;
      return new Transform({ transform: (_c, _e, cb) => cb(new RedactionError(reason)), flush: (cb) => cb(new RedactionError(reason)) });
    }
    if (isEmpty(p)) return new PassThrough();
    const check = messageCheck([...new Set([...p.parts.values(), ...p.subjects.values()].flat())], p.limits);
    return compose(redactStream(p, Math.min(MAX_PART_HEAD, ctx.config.limits.max_header_size)), ...check) as unknown as Transform;
  },
};
