/*
 * Where each character of the text pass 1 scans came from in a part's
 * decoded text ("raw"), so pass 2 can find a value in that text and edit the
 * raw characters it stands for. The map is a list of runs: characters copied
 * one for one (exact), or decoded as a whole from a raw span (a character
 * reference). Characters in no run are separators pass 1 added (HTML block
 * breaks, one item of hidden HTML per line): they have no raw form.
 * Memory: five 32-bit integers per run, in one typed array that doubles.
 */

/** text offset, length, raw offset, raw length, flags (context << 1 | exact) */
const FIELDS = 5;

export interface RawEdit {
  start: number;
  end: number;
  /** What the raw [start, end) becomes. */
  text: string;
  /** The caller's context code of the run the edit came from (HTML: text, attribute value, comment...). */
  ctx: number;
}

export class TextMap {
  private data = new Int32Array(FIELDS * 16);
  private runs = 0;
  /** Characters of text covered so far, separators included. */
  length = 0;

  /** `length` characters copied from raw at `raw`. */
  copy(length: number, raw: number, ctx = 0): void {
    if (length <= 0) return;
    const d = this.data;
    const k = (this.runs - 1) * FIELDS;
    // A run arriving piece by piece (a comment, a flowed paragraph) stays one run.
    if (this.runs && d[k + 4] === ((ctx << 1) | 1) && d[k] + d[k + 1] === this.length && d[k + 2] + d[k + 3] === raw) {
      d[k + 1] += length;
      d[k + 3] += length;
    } else this.push(this.length, length, raw, length, (ctx << 1) | 1);
    this.length += length;
  }

  /** `length` characters decoded as a whole from raw[raw, raw + rawLength). */
  span(length: number, raw: number, rawLength: number, ctx = 0): void {
    if (length <= 0) return;
    this.push(this.length, length, raw, rawLength, ctx << 1);
    this.length += length;
  }

  /** `length` separator characters. */
  skip(length: number): void {
    this.length += length;
  }

  /** Appends `other` after this map's text. */
  append(other: TextMap): void {
    const d = other.data;
    for (let r = 0, k = 0; r < other.runs; r++, k += FIELDS) this.push(d[k] + this.length, d[k + 1], d[k + 2], d[k + 3], d[k + 4]);
    this.length += other.length;
  }

  clear(): void {
    this.runs = 0;
    this.length = 0;
  }

  /** The raw spans behind text[start, end), in text order; each with an empty `text`. */
  pieces(start: number, end: number): RawEdit[] {
    const out: RawEdit[] = [];
    const d = this.data;
    for (let r = this.runAt(start), k = r * FIELDS; r < this.runs && d[k] < end; r++, k += FIELDS) {
      const from = Math.max(start, d[k]);
      const to = Math.min(end, d[k] + d[k + 1]);
      if (from >= to) continue;
      const ctx = d[k + 4] >> 1;
      if (d[k + 4] & 1) out.push({ start: d[k + 2] + from - d[k], end: d[k + 2] + to - d[k], text: '', ctx });
      else out.push({ start: d[k + 2], end: d[k + 2] + d[k + 3], text: '', ctx });
    }
    return out;
  }

  /** The raw span from the first to the last character of text[start, end), or undefined if none has a raw form. */
  hull(start: number, end: number): { start: number; end: number } | undefined {
    const p = this.pieces(start, end);
    return p.length ? { start: p[0].start, end: p[p.length - 1].end } : undefined;
  }

  /**
   * The text without U+0000 and its map: pass 1 drops NULs after decoding
   * (src/mime/part-text.ts), so a NUL between digits does not hide a value.
   */
  withoutNul(text: string): { text: string; map: TextMap } {
    if (text.indexOf('\0') < 0) return { text, map: this };
    const map = new TextMap();
    const d = this.data;
    let at = 0;
    for (let r = 0, k = 0; r <= this.runs; r++, k += FIELDS) {
      const runStart = r < this.runs ? d[k] : this.length;
      map.skip(countNonNul(text, at, runStart));
      if (r === this.runs) break;
      const runEnd = d[k] + d[k + 1];
      if (d[k + 4] & 1) {
        for (let i = d[k]; i < runEnd; ) {
          const nul = text.indexOf('\0', i);
          const stop = nul < 0 || nul >= runEnd ? runEnd : nul;
          map.copy(stop - i, d[k + 2] + i - d[k], d[k + 4] >> 1);
          i = stop + 1;
        }
      } else map.span(countNonNul(text, d[k], runEnd), d[k + 2], d[k + 3], d[k + 4] >> 1);
      at = runEnd;
    }
    return { text: text.replace(/\0/g, ''), map };
  }

  /** The last run starting at or before text offset `pos` (0 if none). */
  private runAt(pos: number): number {
    return lastAtOrBefore(this.data, FIELDS, this.runs, pos);
  }

  private push(text: number, length: number, raw: number, rawLength: number, flags: number): void {
    if ((this.runs + 1) * FIELDS > this.data.length) {
      const bigger = new Int32Array(this.data.length * 2);
      bigger.set(this.data);
      this.data = bigger;
    }
    const k = this.runs++ * FIELDS;
    const d = this.data;
    d[k] = text;
    d[k + 1] = length;
    d[k + 2] = raw;
    d[k + 3] = rawLength;
    d[k + 4] = flags;
  }
}

function countNonNul(text: string, from: number, to: number): number {
  let n = to - from;
  for (let i = text.indexOf('\0', from); i >= 0 && i < to; i = text.indexOf('\0', i + 1)) n--;
  return n;
}

/** Edits sorted by raw offset, overlapping ones merged (two values may share a character reference). */
export function mergeEdits(edits: RawEdit[]): RawEdit[] {
  const sorted = [...edits].sort((a, b) => a.start - b.start || a.end - b.end);
  const out: RawEdit[] = [];
  for (const e of sorted) {
    const last = out[out.length - 1];
    if (last && e.start < last.end) {
      last.end = Math.max(last.end, e.end);
      last.text += e.text;
    } else out.push({ ...e });
  }
  return out;
}

export function applyEdits(raw: string, edits: readonly RawEdit[]): string {
  let out = '';
  let at = 0;
  for (const e of edits) {
    out += raw.slice(at, e.start) + e.text;
    at = e.end;
  }
  return out + raw.slice(at);
}

/**
 * Binary search over `count` records of `stride` numbers each, sorted by
 * their first number: the index of the last record whose first number is at
 * or before `pos` (0 if none).
 */
export function lastAtOrBefore(data: ArrayLike<number>, stride: number, count: number, pos: number): number {
  let lo = 0;
  let hi = count - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (data[mid * stride] <= pos) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}
