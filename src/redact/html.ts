/*
 * Redaction inside HTML that leaves the markup valid: values are looked for
 * in the text the reader sees (tags dropped, entities decoded, script/style
 * and comments ignored, inline tags joining text with nothing so
 * `123-<b>45</b>-6789` is one value), and replaced in text nodes only: the
 * first text node of a match gets the (escaped) replacement, the other text
 * nodes it spans are emptied, every tag stays where it was.
 */
import { decodeHTML } from 'entities';
import type { CompiledRule } from '../rules/compile';
import { findRanges, replacementOf } from './find';

const BLOCK = /^(?:br|p|div|td|th|tr|li|ul|ol|table|h[1-6]|blockquote|pre|hr|section|article|header|footer|title|dd|dt)$/i;

interface Segment {
  kind: 'text' | 'markup';
  raw: string;
  /** For text: decoded characters and, per character, its [start, end) in raw. */
  chars?: string;
  map?: Int32Array;
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);
}

/** Splits HTML into text and markup; bounded: each character is looked at a fixed number of times. */
function segments(html: string): Segment[] {
  const out: Segment[] = [];
  let i = 0;
  const pushText = (raw: string) => {
    if (!raw) return;
    let chars = '';
    const map: number[] = [];
    for (let j = 0; j < raw.length; ) {
      if (raw[j] === '&') {
        const semi = raw.indexOf(';', j);
        if (semi > j && semi - j <= 32) {
          const decoded = decodeHTML(raw.slice(j, semi + 1));
          if (decoded !== raw.slice(j, semi + 1)) {
            for (const ch of decoded) {
              chars += ch === '\u00a0' ? ' ' : ch;
              map.push(j, semi + 1);
            }
            j = semi + 1;
            continue;
          }
        }
      }
      chars += raw[j] === '\u00a0' ? ' ' : raw[j];
      map.push(j, j + 1);
      j++;
    }
    out.push({ kind: 'text', raw, chars, map: Int32Array.from(map) });
  };
  while (i < html.length) {
    const lt = html.indexOf('<', i);
    if (lt < 0) {
      pushText(html.slice(i));
      break;
    }
    pushText(html.slice(i, lt));
    // An unclosed comment or tag runs to the end of the part: `end` must
    // always move forward, or a sender could make this loop forever.
    const close = html.startsWith('<!--', lt) ? html.indexOf('-->', lt + 4) : html.indexOf('>', lt);
    let end = close < 0 ? html.length : close + (html.startsWith('<!--', lt) ? 3 : 1);
    let markup = html.slice(lt, end);
    // HTML5 tag names run to whitespace, '/' or '>' ("<style<p>" is not <style>).
    const name = /^<\s*([^\s/>]+)/.exec(markup)?.[1]?.toLowerCase();
    if ((name === 'script' || name === 'style') && !markup.endsWith('/>')) {
      const closeAt = html.toLowerCase().indexOf(`</${name}`, end);
      const closeEnd = closeAt < 0 ? html.length : html.indexOf('>', closeAt) + 1 || html.length;
      markup = html.slice(lt, closeEnd);
      end = closeEnd;
    }
    out.push({ kind: 'markup', raw: markup });
    i = end;
  }
  return out;
}

export function redactHtml(html: string, rules: readonly CompiledRule[]): { html: string; count: number } {
  const segs = segments(html);
  // The text a reader sees, and for each of its characters the segment and raw range.
  let text = '';
  const owner: number[] = [];
  const pos: number[] = [];
  segs.forEach((s, si) => {
    if (s.kind === 'text') {
      for (let k = 0; k < s.chars!.length; k++) {
        text += s.chars![k];
        owner.push(si);
        pos.push(k);
      }
    } else {
      const name = /^<\s*\/?\s*([a-z0-9]+)/i.exec(s.raw)?.[1];
      if (name && BLOCK.test(name)) {
        text += '\n';
        owner.push(-1);
        pos.push(-1);
      }
    }
  });
  const ranges = findRanges(text, rules);
  if (!ranges.length) return { html, count: 0 };
  // Per text segment: raw [start, end) spans to replace, and with what.
  const edits = new Map<number, { from: number; to: number; with: string }[]>();
  for (const r of ranges) {
    let first = true;
    for (let c = r.start; c < r.end; c++) {
      const si = owner[c];
      if (si < 0) continue;
      const map = segs[si].map!;
      const from = map[pos[c] * 2];
      const to = map[pos[c] * 2 + 1];
      const list = edits.get(si) ?? [];
      const last = list[list.length - 1];
      if (!first && last && last.to === from) last.to = to;
      else list.push({ from, to, with: first ? escapeHtml(replacementOf(r.rule)) : '' });
      first = false;
      edits.set(si, list);
    }
  }
  let out = '';
  segs.forEach((s, si) => {
    const list = edits.get(si);
    if (!list) {
      out += s.raw;
      return;
    }
    let at = 0;
    for (const e of list) {
      out += s.raw.slice(at, e.from) + e.with;
      at = e.to;
    }
    out += s.raw.slice(at);
  });
  return { html: out, count: ranges.length };
}
