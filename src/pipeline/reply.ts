/*
 * SMTP replies as values (RFC 5321 4.2, enhanced codes per RFC 3463/2034).
 * A reply keeps the next hop's code, enhanced code and text so a 5xx can be
 * passed back to our client unchanged.
 */

export interface Reply {
  code: number;
  /** Enhanced status code such as "5.1.1", when the text starts with one. */
  enhanced?: string;
  /** Text of all lines without code or enhanced code, joined by "; ". */
  text: string;
}

const ENHANCED = /^([245]\.\d{1,3}\.\d{1,3})(?:\s+|$)/;

/** Builds a Reply from the lines of one (possibly multi-line) SMTP reply. */
export function parseReply(lines: string[]): Reply {
  const code = Number(lines[lines.length - 1].slice(0, 3));
  let enhanced: string | undefined;
  const texts = lines.map((l) => {
    let t = l.slice(4);
    const m = ENHANCED.exec(t);
    if (m) {
      enhanced ??= m[1];
      t = t.slice(m[0].length);
    }
    return t;
  });
  return { code, enhanced, text: texts.filter(Boolean).join('; ') };
}

export function replyClass(code: number): '2xx' | '3xx' | '4xx' | '5xx' {
  return `${Math.floor(code / 100)}xx` as '2xx';
}

/** The reply as one line, e.g. "550 5.1.1 User unknown". */
export function formatReply(r: Reply): string {
  return [r.code, r.enhanced, r.text].filter((p) => p !== undefined && p !== '').join(' ');
}

/** Code and enhanced code only: safe to log, since reply texts may quote addresses. */
export function replyStatus(r: Reply): string {
  return r.enhanced ? `${r.code} ${r.enhanced}` : String(r.code);
}

/** A next hop's own refusal as our reply text, unchanged (guarantee 1); a reply without an enhanced code gets its class's X.0.0. */
export function passedBack(r: Reply): { code: number; text: string } {
  const enhanced = r.enhanced ?? `${Math.floor(r.code / 100)}.0.0`;
  return { code: r.code, text: `${enhanced} ${r.text}`.trim() };
}
