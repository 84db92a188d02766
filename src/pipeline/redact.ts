/*
 * Pass 2 rewriter: redaction. Runs only when the verdict is `redact`, and
 * only touches the parts where pass 1 found a value of a `redact` rule:
 * those parts are decoded (transfer encoding, charset), the values replaced
 * with the rule's replacement (in text nodes only for HTML), and re-encoded
 * with their original transfer encoding and charset. The Subject is
 * re-encoded per RFC 2047 when needed. Every other byte of the message,
 * MIME structure and boundaries included, passes through mailsplit
 * unchanged, so parts without a hit stay byte-identical.
 *
 * Memory: a part being redacted is held whole, up to MAX_REDACT_PART bytes;
 * a larger one fails the stream, so the message is not delivered with the
 * value in it (fail closed, the client gets 451).
 */
import * as stream from 'node:stream';
import { Transform, type TransformCallback, PassThrough, type Duplex } from 'node:stream';
import { Splitter, Joiner } from 'mailsplit';
import libmime from 'libmime';
import type { Rewriter } from './stage';
import type { MessageContext } from './context';
import type { CompiledRule } from '../rules/compile';
import { partPath, HEADER_PART } from '../mime/paths';
import { decodeTransfer, encodeTransfer, resolveCharset, decodeCharset, encodeCharset } from '../redact/codec';
import { findRanges, applyRanges } from '../redact/find';
import { redactHtml } from '../redact/html';

export const MAX_REDACT_PART = 16 * 1024 * 1024;
/** Part headers are parsed by mailsplit, whose parser is quadratic on hostile input: keep them small. */
const MAX_PART_HEAD = 256 * 1024;

// stream.compose exists since Node 16.9; @types/node 20 does not declare it.
const compose = (stream as unknown as { compose: (...s: NodeJS.ReadWriteStream[]) => Duplex }).compose;

export class RedactionError extends Error {
  readonly code = 'MV_REDACT';
}

interface Plan {
  /** Part paths to redact, with the rules that apply there. */
  parts: Map<string, CompiledRule[]>;
  subject: CompiledRule[];
}

function plan(ctx: MessageContext): Plan {
  const redactRules = new Map(ctx.rules.compiled.rules.filter((r) => r.def.action === 'redact').map((r) => [r.def.id, r]));
  const parts = new Map<string, CompiledRule[]>();
  let subject: CompiledRule[] = [];
  for (const f of ctx.findings) {
    const rule = redactRules.get(f.rule);
    if (!rule || !ctx.verdict.rules.includes(f.rule)) continue;
    if (f.scope === 'subject') subject = [...new Set([...subject, rule])];
    else if (f.part !== HEADER_PART) parts.set(f.part, [...new Set([...(parts.get(f.part) ?? []), rule])]);
  }
  return { parts, subject };
}

/** Object-mode stage between mailsplit's Splitter and Joiner. */
class RedactNodes extends Transform {
  private current?: { node: any; rules: CompiledRule[]; chunks: Buffer[]; bytes: number };

  constructor(private readonly p: Plan) {
    super({ objectMode: true });
  }

  _transform(obj: any, _enc: BufferEncoding, cb: TransformCallback): void {
    try {
      if (this.current && obj.type === 'body') {
        this.current.chunks.push(obj.value);
        this.current.bytes += obj.value.length;
        if (this.current.bytes > MAX_REDACT_PART) throw new RedactionError(`part to redact exceeds ${MAX_REDACT_PART} bytes`);
        return cb();
      }
      if (this.current) this.finish();
      if (obj.type === 'node') {
        if (obj.root && this.p.subject.length) redactSubject(obj, this.p.subject);
        const path = partPath(obj);
        const rules = this.p.parts.get(path);
        const nested = obj.rfc822 && [...this.p.parts.keys()].some((k) => k.startsWith(path + '.'));
        if (rules || nested) {
          this.current = { node: obj, rules: rules ?? [], chunks: [], bytes: 0 };
          return cb();
        }
      }
      cb(null, obj);
    } catch (err) {
      cb(err as Error);
    }
  }

  _flush(cb: TransformCallback): void {
    try {
      if (this.current) this.finish();
      cb();
    } catch (err) {
      cb(err as Error);
    }
  }

  private finish(): void {
    const { node, rules, chunks } = this.current!;
    this.current = undefined;
    const raw = Buffer.concat(chunks);
    this.push(node);
    if (raw.length) this.push({ node, type: 'body', value: node.rfc822 ? raw : redactBody(node, raw, rules) });
  }
}

function redactBody(node: any, raw: Buffer, rules: CompiledRule[]): Buffer {
  const encoding = (node.encoding || '7bit').toLowerCase();
  const bytes = decodeTransfer(raw, encoding);
  const cs = resolveCharset(bytes, node.charset || undefined);
  const text = decodeCharset(bytes, cs);
  const redacted = /html/.test(node.contentType || '') ? redactHtml(text, rules).html : applyRanges(text, findRanges(text, rules));
  if (redacted === text) return raw;
  const trailing = raw.length >= 2 && raw[raw.length - 2] === 0x0d && raw[raw.length - 1] === 0x0a;
  return encodeTransfer(encodeCharset(redacted, cs), encoding, trailing);
}

function redactSubject(node: any, rules: CompiledRule[]): void {
  const raw: string = node.headers.getFirst('subject');
  if (!raw) return;
  const decoded = libmime.decodeWords(raw);
  const redacted = applyRanges(decoded, findRanges(decoded, rules));
  if (redacted === decoded) return;
  // Non-ASCII goes back as RFC 2047 encoded words; ASCII as plain text.
  node.headers.update('Subject', /^[\x20-\x7e]*$/.test(redacted) ? redacted : libmime.encodeWords(redacted, 'Q', 52, 'utf-8'));
}

export const redact: Rewriter = {
  name: 'redact',
  kind: 'rewriter',
  create(ctx) {
    if (ctx.verdict.action !== 'redact') return new PassThrough();
    const p = plan(ctx);
    if (!p.parts.size && !p.subject.length) return new PassThrough();
    const splitter = new Splitter({ maxHeadSize: Math.min(MAX_PART_HEAD, ctx.config.limits.max_header_size) });
    return compose(splitter, new RedactNodes(p), new Joiner()) as unknown as Transform;
  },
};
