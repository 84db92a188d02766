/*
 * What to do with a leaf MIME part (RFC 2046): extract it as text, convert it
 * from HTML, parse it as a nested message (RFC 2046 5.2.1, RFC 6532
 * message/global), or leave it (images, PDFs, archives: not extracted).
 * The content type OR the file name's extension (or a well-known name such
 * as id_rsa or .env) may make a part text: which
 * one a recipient's software trusts varies, and scanning a binary part as
 * text costs little, while skipping a text part would let data through.
 */

export type PartKind = 'text' | 'html' | 'message' | 'none';

const TEXT_EXTENSIONS = new Set([
  'txt', 'text', 'csv', 'tsv', 'md', 'json', 'xml', 'ics', 'vcf', 'log',
  // Keys and configuration: where private keys and cloud credentials travel (PEM, PGP armor, PuTTY, dotenv...).
  'pem', 'key', 'asc', 'ppk', 'env', 'yaml', 'yml', 'ini', 'cfg', 'conf', 'properties', 'toml', 'sql',
]);
/** Well-known text files without an extension (OpenSSH key files, dotenv, AWS CLI credentials). */
const TEXT_NAMES = new Set(['id_rsa', 'id_dsa', 'id_ecdsa', 'id_ed25519', '.env', 'credentials', '.netrc', '.pgpass']);
const HTML_EXTENSIONS = new Set(['html', 'htm', 'xhtml']);
const HTML_TYPES = new Set(['text/html', 'application/xhtml+xml', 'text/xhtml']);
const MESSAGE_TYPES = new Set(['message/rfc822', 'message/global']);
/** Non-text/* types whose content is text. The message/* ones are headers-like reports (RFC 3464, 8098, 5965). */
const TEXT_TYPES = new Set([
  'application/json', 'application/xml', 'application/csv', 'application/x-csv', 'application/ics', 'application/vcard',
  'application/x-vcard', 'application/javascript', 'application/ecmascript', 'application/x-sh', 'application/rtf',
  'message/delivery-status', 'message/global-delivery-status', 'message/disposition-notification',
  'message/global-disposition-notification', 'message/feedback-report', 'message/rfc822-headers', 'message/global-headers',
  'application/x-pem-file', 'application/pgp-keys', 'application/x-yaml', 'application/yaml', 'application/toml', 'application/sql',
]);

function baseName(filename: string): string {
  return filename.slice(Math.max(filename.lastIndexOf('/'), filename.lastIndexOf('\\')) + 1).trim();
}

export function extensionOf(filename: string | undefined): string {
  if (!filename) return '';
  const base = baseName(filename);
  const dot = base.lastIndexOf('.');
  return dot > 0 ? base.slice(dot + 1).toLowerCase() : '';
}

export function partKind(contentType: string, filename: string | undefined): PartKind {
  const type = contentType.toLowerCase();
  const ext = extensionOf(filename);
  if (MESSAGE_TYPES.has(type)) return 'message';
  if (HTML_TYPES.has(type)) return 'html';
  const textType = type.startsWith('text/') || TEXT_TYPES.has(type) || type.endsWith('+json') || type.endsWith('+xml');
  if (textType) return 'text';
  if (ext === 'eml') return 'message';
  if (HTML_EXTENSIONS.has(ext)) return 'html';
  if (TEXT_EXTENSIONS.has(ext) || (filename !== undefined && TEXT_NAMES.has(baseName(filename).toLowerCase()))) return 'text';
  return 'none';
}
