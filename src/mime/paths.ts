/*
 * MIME part paths for code that walks a message with its own mailsplit
 * Splitter (pass 2 rewriters), so it can find the parts pass 1 reported.
 * Same IMAP-style scheme as the extractor (see types.ts): "0" the top-level
 * header fields, "1" a single-part body, "1", "2", "2.1"... the parts of a
 * multipart, "" the top-level multipart container, and inside a
 * message/rfc822 part "2": "2.0" its header fields, "2.1"... its parts.
 *
 * Built on mailsplit's own part numbers (MimeNode.partNr: [1, 2] for "1.2",
 * 'TEXT' marking a message's root node), so it holds for nodes whose headers
 * have been parsed, i.e. every node a Splitter emits. Nested message parts
 * only appear in a default Splitter when mailsplit descends into them (inline
 * message/rfc822 in 7bit/8bit); the extractor always does.
 */

/** Path of the top-level header fields (Subject, From...). */
export const HEADER_PART = '0';

interface NumberedNode {
  partNr?: Array<number | string> | false;
  multipart?: string | false;
  _boundary?: Buffer | false;
}

/** The path of a node emitted by a mailsplit Splitter. */
export function partPath(node: NumberedNode): string {
  const nr = Array.isArray(node.partNr) ? node.partNr : [];
  const numbers = nr.filter((n) => typeof n === 'number' || /^\d+$/.test(String(n))).map(String);
  const path = numbers.join('.');
  const messageRoot = nr.length > 0 && nr[nr.length - 1] === 'TEXT';
  if (!messageRoot) return path;
  // A message's root is "<message path>.1" when single-part; a multipart root is the container, the message's own path.
  const container = Boolean(node.multipart && node._boundary);
  return container ? path : path ? `${path}.1` : '1';
}

/** The path of the header fields of the message part at `messagePath` ('' for the top-level message). */
export function headerPath(messagePath: string): string {
  return messagePath ? `${messagePath}.0` : HEADER_PART;
}
