/*
 * A bounds check of a DNS message's framing (RFC 1035 4.1), run before
 * dns-packet decodes it. dns-packet 5.6 trusts lengths: an A record cut
 * short decodes as "192.undefined.undefined.undefined", and a TLSA record
 * cut short decodes with fewer digest bytes, both without an error. This
 * walk reads no record's content; it only checks that every name, question
 * and record (by its RDLENGTH) lies inside the message, so a truncated or
 * padded-out message is 'malformed' instead of quietly different data.
 */

/** Labels in one name: 127 is the most a 255-byte name can have. */
const MAX_LABELS = 127;
const HEADER = 12;

/** The offset after the name at `off`, or undefined if it runs past the end. */
function skipName(msg: Buffer, off: number): number | undefined {
  for (let labels = 0; labels <= MAX_LABELS; labels++) {
    if (off >= msg.length) return undefined;
    const len = msg[off];
    if (len === 0) return off + 1;
    if ((len & 0xc0) === 0xc0) return off + 2 <= msg.length ? off + 2 : undefined;
    if ((len & 0xc0) !== 0) return undefined;
    off += 1 + len;
  }
  return undefined;
}

/** Why the message's framing is broken, or undefined when every part fits. Trailing bytes are tolerated. */
export function framingError(msg: Buffer): string | undefined {
  if (msg.length < HEADER) return `${msg.length} bytes is shorter than a DNS header`;
  const questions = msg.readUInt16BE(4);
  const records = msg.readUInt16BE(6) + msg.readUInt16BE(8) + msg.readUInt16BE(10);
  let off: number | undefined = HEADER;
  for (let i = 0; i < questions; i++) {
    off = skipName(msg, off);
    if (off === undefined || off + 4 > msg.length) return `question ${i + 1} runs past the end`;
    off += 4;
  }
  for (let i = 0; i < records; i++) {
    off = skipName(msg, off);
    if (off === undefined || off + 10 > msg.length) return `record ${i + 1} runs past the end`;
    off += 10 + msg.readUInt16BE(off + 8);
    if (off > msg.length) return `record ${i + 1}'s data runs past the end`;
  }
  return undefined;
}
