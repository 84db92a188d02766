/* xtext (RFC 3461 4): what ENVID, ORCPT and XFORWARD values travel as. */

export function encodeXtext(value: string): string {
  let out = '';
  for (const ch of Buffer.from(value, 'utf8')) {
    out += ch < 33 || ch > 126 || ch === 0x2b || ch === 0x3d ? '+' + ch.toString(16).toUpperCase().padStart(2, '0') : String.fromCharCode(ch);
  }
  return out;
}
