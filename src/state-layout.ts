/*
 * Every file and folder name mailveil makes under state_dir, in one file
 * (issue 9). The ownership check (config/state-dir.ts) and every cleanup
 * take their names from here, so what a state dir may hold, and what
 * mailveil may delete there, is read in one place; a rename is a change to
 * this file and to test/unit/state-layout.test.ts.
 *
 *   <state_dir>/
 *     state.json                      the ownership marker
 *     .state.json.tmp-<12 hex>        the marker while it is written
 *     pseudonym.key                   the key of the log and audit pseudonyms
 *     admin.token                     the admin API's bearer token
 *     spool/<id>.spool                a message being handled (encrypted)
 *     quarantine/<id>.mvq             a held message (encrypted)
 *     quarantine/.release-<id>.lock   a release in progress
 *     keys/current                    the id of the current quarantine key
 *     keys/quarantine-<16 hex>.key    a quarantine data key
 *     audit/audit-<YYYY-MM-DD>.jsonl  the audit log, a file per day
 *     exports/sar-<16 hex>.tar.gz     a SAR archive on its way to the admin API client
 *     exports/.sar-<16 hex>.tar.gz.tmp-<12 hex>   that archive while it is written
 *     mta-sts/policy-<32 hex>.json    a cached MTA-STS policy; the hex is sha256(domain)
 *     tlsrpt/<YYYY-MM-DD>/counts-<16 hex>.json   one writer's TLS-RPT counters for a UTC day
 *     tlsrpt/<YYYY-MM-DD>/sent-<16 hex>.json     what was submitted of that day's report for one policy domain; the hex is sha256(domain)
 *     tlsrpt/<YYYY-MM-DD>/.send.lock             a submission of that day in progress
 *     {quarantine,keys,audit,mta-sts,tlsrpt/<day>}/.tmp-<name>-<12 hex>  an interrupted durable write
 *
 * It imports node:path only: the lowest layer, so every store can take it.
 */
import { join } from 'node:path';

export const STATE_MARKER = 'state.json';
export const PSEUDONYM_KEY_FILE = 'pseudonym.key';
export const ADMIN_TOKEN_FILE = 'admin.token';
export const SPOOL_DIR = 'spool';
export const QUARANTINE_DIR = 'quarantine';
export const KEYS_DIR = 'keys';
export const AUDIT_DIR = 'audit';
export const EXPORTS_DIR = 'exports';
export const MTA_STS_DIR = 'mta-sts';
export const TLSRPT_DIR = 'tlsrpt';

/** What mailveil creates at the top of state_dir, besides the marker, and of which type. */
export const STATE_ENTRIES: ReadonlyMap<string, 'dir' | 'file'> = new Map([
  [SPOOL_DIR, 'dir'],
  [QUARANTINE_DIR, 'dir'],
  [KEYS_DIR, 'dir'],
  [AUDIT_DIR, 'dir'],
  [EXPORTS_DIR, 'dir'],
  [MTA_STS_DIR, 'dir'],
  [TLSRPT_DIR, 'dir'],
  [PSEUDONYM_KEY_FILE, 'file'],
  [ADMIN_TOKEN_FILE, 'file'],
]);

export const stateMarkerFile = (stateDir: string): string => join(stateDir, STATE_MARKER);
export const pseudonymKeyFile = (stateDir: string): string => join(stateDir, PSEUDONYM_KEY_FILE);
export const adminTokenFile = (stateDir: string): string => join(stateDir, ADMIN_TOKEN_FILE);
export const spoolDir = (stateDir: string): string => join(stateDir, SPOOL_DIR);
export const quarantineDir = (stateDir: string): string => join(stateDir, QUARANTINE_DIR);
export const keysDir = (stateDir: string): string => join(stateDir, KEYS_DIR);
export const auditDir = (stateDir: string): string => join(stateDir, AUDIT_DIR);
export const exportsDir = (stateDir: string): string => join(stateDir, EXPORTS_DIR);
export const mtaStsDir = (stateDir: string): string => join(stateDir, MTA_STS_DIR);
export const tlsrptDir = (stateDir: string): string => join(stateDir, TLSRPT_DIR);

/* The marker while it is written: a crash can leave one, which is ours and harmless. */
export const markerTempName = (hex: string): string => `.${STATE_MARKER}.tmp-${hex}`;
export const MARKER_TEMP_RE = /^\.state\.json\.tmp-[0-9a-f]{12}$/;

/* spool/: message ids (newMessageId) are digits and A-Z. */
export const spoolFileName = (id: string): string => `${id}.spool`;
export const SPOOL_NAME_RE = /^[0-9A-Z]{1,64}\.spool$/;

/* quarantine/ */
export const ENTRY_SUFFIX = '.mvq';
export const ENTRY_NAME_RE = /^([0-9A-Z]{1,64})\.mvq$/;
export const releaseLockName = (id: string): string => `.release-${id}.lock`;

/* keys/ */
export const CURRENT_KEY_FILE = 'current';
export const keyFileName = (id: string): string => `quarantine-${id}.key`;
export const KEY_FILE_RE = /^quarantine-([0-9a-f]{16})\.key$/;

/* audit/ */
export const auditFileName = (day: string): string => `audit-${day}.jsonl`;
export const AUDIT_FILE_RE = /^audit-(\d{4}-\d{2}-\d{2})\.jsonl$/;

/* exports/: the archive, and the temp file gdpr/export.ts writes beside it. */
export const exportFileName = (hex: string): string => `sar-${hex}.tar.gz`;
/** gdpr/export.ts writes any archive (an admin's --out too) under this name beside it first. */
export const exportTempName = (archive: string, hex: string): string => `.${archive}.tmp-${hex}`;
export const EXPORT_NAME_RE = /^(?:sar-[0-9a-f]{16}\.tar\.gz|\.sar-[0-9a-f]{16}\.tar\.gz\.tmp-[0-9a-f]{12})$/;

/*
 * mta-sts/: one file per policy domain, named by a hash so any domain (253
 * octets) fits a file name with room for the temp suffix. The domain is
 * inside the file. The cache (mta-sts/cache.ts) removes only temp files
 * and entries whose policy has expired.
 */
export const stsEntryName = (hex32: string): string => `policy-${hex32}.json`;
export const STS_ENTRY_RE = /^policy-[0-9a-f]{32}\.json$/;

/*
 * tlsrpt/: a folder per UTC day, and in it one file per writer (a worker
 * process, or the same process again after a restart or after it let the
 * day go from memory), so no two processes ever write one file. The 16 hex
 * are random per writer. tlsrpt/store.ts removes only day folders past
 * retention (the names below, and temp files, inside them) and temp files.
 */
export const TLSRPT_DAY_RE = /^\d{4}-\d{2}-\d{2}$/;
export const tlsrptDayDir = (stateDir: string, day: string): string => join(stateDir, TLSRPT_DIR, day);
export const tlsrptCountsName = (hex16: string): string => `counts-${hex16}.json`;
export const TLSRPT_COUNTS_RE = /^counts-[0-9a-f]{16}\.json$/;
/*
 * What the submitter (tlsrpt/sent.ts) recorded per policy domain, so a run
 * after a restart does not send twice and retries what failed; and the lock
 * that keeps two submitters (serve's timer, `tlsrpt send`) off one day.
 * Removed with their day folder.
 */
export const tlsrptSentName = (hex16: string): string => `sent-${hex16}.json`;
export const TLSRPT_SENT_RE = /^sent-[0-9a-f]{16}\.json$/;
export const TLSRPT_SEND_LOCK = '.send.lock';

/* Durable writes (storage/durable.ts): a temp name in the target's own directory, then a rename. */
export const TEMP_PREFIX = '.tmp-';
export const tempFileName = (base: string, hex: string): string => `${TEMP_PREFIX}${base}-${hex}`;
/** A temp name whose base is an entry id or a key file name. */
export const TEMP_NAME_RE = /^\.tmp-[0-9A-Za-z.-]{1,100}-[0-9a-f]{12}$/;
