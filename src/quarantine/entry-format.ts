/*
 * The on-disk format of one quarantine entry, <state_dir>/quarantine/<id>.mvq.
 * All integers big-endian.
 *
 *   offset  bytes  field
 *   0       4      magic "MVQE"
 *   4       1      format version (1)
 *   5       1      key id length K (1..64)
 *   6       K      key id, ASCII: names keys/quarantine-<keyid>.key
 *   6+K     16     salt: entry key = HKDF-SHA256(data key, salt, "mailveil quarantine entry v1")
 *   22+K    12     IV of the metadata section
 *   34+K    12     IV of the message section
 *   46+K    4      M = length of the metadata ciphertext (<= MAX_META_BYTES)
 *   50+K    M      metadata: AES-256-GCM of the metadata JSON (UTF-8)
 *   ...     16     metadata tag
 *   ...     N      message: AES-256-GCM of the original message bytes
 *   end-16  16     message tag
 *
 * N is not stored: it is the file size minus everything else, which lets the
 * message be encrypted as it streams in and the tag be appended last.
 *
 * Why a key per entry: the IVs are random, and deriving a fresh key from a
 * random salt for each entry makes an (IV, key) pair repeat only if a 128-bit
 * salt does, however many entries one data key encrypts. The two sections
 * use distinct IVs under that key as well.
 *
 * The additional authenticated data of each section is a section label, the
 * entry id and the whole header, so a header edit, a section swapped between
 * entries, or a file renamed to another id all fail the tag check.
 *
 * Nothing in the plaintext header comes from the message: magic, version,
 * key id, random salt and IVs, and a length.
 */
import { hkdfSync, randomBytes } from 'node:crypto';
import { QuarantineError } from './errors';

export { ENTRY_SUFFIX } from '../state-layout';
export const MAGIC = Buffer.from('MVQE', 'latin1');
export const FORMAT_VERSION = 1;
export const SALT_BYTES = 16;
export const IV_BYTES = 12;
export const TAG_BYTES = 16;
export const MAX_KEY_ID_BYTES = 64;
/** Metadata is ids, pseudonyms and counts; a larger section means a corrupt header, not a big entry. */
export const MAX_META_BYTES = 1024 * 1024;
const FIXED_HEADER_BYTES = MAGIC.length + 1 + 1 + SALT_BYTES + 2 * IV_BYTES + 4;
/** Reading this many bytes always covers a whole header. */
export const MAX_HEADER_BYTES = FIXED_HEADER_BYTES + MAX_KEY_ID_BYTES;
const HKDF_INFO = Buffer.from('mailveil quarantine entry v1');

export interface EntryHeader {
  keyId: string;
  salt: Buffer;
  metaIv: Buffer;
  messageIv: Buffer;
  metaLength: number;
  /** The encoded header, as written: part of each section's AAD. */
  raw: Buffer;
}

/** Where each section lives in a file of `fileSize` bytes with this header. */
export interface EntryLayout {
  metaStart: number;
  metaTagStart: number;
  messageStart: number;
  /** Also where the message tag starts. */
  messageEnd: number;
}

function corrupt(why: string): QuarantineError {
  return new QuarantineError('MV_QUARANTINE_CORRUPT', `corrupt entry: ${why}`);
}

/** A header with fresh random salt and IVs. */
export function newHeader(keyId: string, metaLength: number): EntryHeader {
  const id = Buffer.from(keyId, 'latin1');
  if (id.length < 1 || id.length > MAX_KEY_ID_BYTES) throw new Error('key id length out of range');
  if (metaLength > MAX_META_BYTES) throw new QuarantineError('MV_QUARANTINE_INVALID', `metadata is ${metaLength} bytes, limit ${MAX_META_BYTES}`);
  const salt = randomBytes(SALT_BYTES);
  const metaIv = randomBytes(IV_BYTES);
  const messageIv = randomBytes(IV_BYTES);
  const len = Buffer.alloc(4);
  len.writeUInt32BE(metaLength);
  const raw = Buffer.concat([MAGIC, Buffer.from([FORMAT_VERSION, id.length]), id, salt, metaIv, messageIv, len]);
  return { keyId, salt, metaIv, messageIv, metaLength, raw };
}

/** Parses the header at the start of `buf` (which may hold more bytes after it). */
export function parseHeader(buf: Buffer): EntryHeader {
  if (buf.length < FIXED_HEADER_BYTES + 1 || !buf.subarray(0, MAGIC.length).equals(MAGIC)) throw corrupt('not a quarantine entry');
  const version = buf[4];
  if (version !== FORMAT_VERSION) throw corrupt(`unsupported format version ${version}`);
  const k = buf[5];
  if (k < 1 || k > MAX_KEY_ID_BYTES) throw corrupt('bad key id length');
  const end = FIXED_HEADER_BYTES + k;
  if (buf.length < end) throw corrupt('truncated header');
  let p = 6;
  const take = (n: number) => buf.subarray(p, (p += n));
  const keyId = take(k).toString('latin1');
  const salt = Buffer.from(take(SALT_BYTES));
  const metaIv = Buffer.from(take(IV_BYTES));
  const messageIv = Buffer.from(take(IV_BYTES));
  const metaLength = buf.readUInt32BE(p);
  if (metaLength > MAX_META_BYTES) throw corrupt('metadata length out of range');
  return { keyId, salt, metaIv, messageIv, metaLength, raw: Buffer.from(buf.subarray(0, end)) };
}

export function layout(h: EntryHeader, fileSize: number): EntryLayout {
  const metaStart = h.raw.length;
  const metaTagStart = metaStart + h.metaLength;
  const messageStart = metaTagStart + TAG_BYTES;
  const messageEnd = fileSize - TAG_BYTES;
  if (messageEnd < messageStart) throw corrupt('truncated');
  return { metaStart, metaTagStart, messageStart, messageEnd };
}

export function entryKey(dataKey: Buffer, salt: Buffer): Buffer {
  return Buffer.from(hkdfSync('sha256', dataKey, salt, HKDF_INFO, 32));
}

export function aad(section: 'meta' | 'message', entryId: string, h: EntryHeader): Buffer {
  return Buffer.concat([Buffer.from(`mailveil-quarantine-${section}\0${entryId}\0`, 'latin1'), h.raw]);
}
