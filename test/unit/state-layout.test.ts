/*
 * The state_dir layout (src/state-layout.ts). The names are written out
 * here on purpose: renaming a file under state_dir strands what existing
 * installs hold, so it has to be a change to this test too. Then the
 * cleanups, all run over one state dir that holds every name of the layout
 * beside names that are not (foreign files, and layout names in the wrong
 * folder): whatever they remove must be a layout name of that folder.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as layout from '../../src/state-layout';
import { cleanStaleSpool } from '../../src/pipeline/spool';
import { cleanExports } from '../../src/admin/routes';
import { QuarantineStore } from '../../src/quarantine/store';
import { AuditLog } from '../../src/audit/log';
import { tempName } from '../../src/storage/durable';
import { newMessageId } from '../../src/smtp/handle-message';
import { StsCache } from '../../src/mta-sts/cache';
import { purgeDays } from '../../src/tlsrpt/store';

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

test('the names under state_dir', () => {
  const s = '/srv/mv';
  assert.deepEqual(
    [layout.stateMarkerFile, layout.pseudonymKeyFile, layout.adminTokenFile, layout.spoolDir, layout.quarantineDir, layout.keysDir, layout.auditDir, layout.exportsDir, layout.mtaStsDir, layout.tlsrptDir].map((f) => f(s)),
    ['state.json', 'pseudonym.key', 'admin.token', 'spool', 'quarantine', 'keys', 'audit', 'exports', 'mta-sts', 'tlsrpt'].map((n) => `${s}/${n}`),
  );
  assert.deepEqual([...layout.STATE_ENTRIES], [
    ['spool', 'dir'],
    ['quarantine', 'dir'],
    ['keys', 'dir'],
    ['audit', 'dir'],
    ['exports', 'dir'],
    ['mta-sts', 'dir'],
    ['tlsrpt', 'dir'],
    ['pseudonym.key', 'file'],
    ['admin.token', 'file'],
  ]);
  assert.equal(layout.markerTempName('0123456789ab'), '.state.json.tmp-0123456789ab');
  assert.equal(layout.spoolFileName('ABC1'), 'ABC1.spool');
  assert.equal('ABC1' + layout.ENTRY_SUFFIX, 'ABC1.mvq');
  assert.equal(layout.releaseLockName('ABC1'), '.release-ABC1.lock');
  assert.equal(layout.CURRENT_KEY_FILE, 'current');
  assert.equal(layout.keyFileName('0123456789abcdef'), 'quarantine-0123456789abcdef.key');
  assert.equal(layout.auditFileName('2026-01-31'), 'audit-2026-01-31.jsonl');
  assert.equal(layout.exportFileName('0123456789abcdef'), 'sar-0123456789abcdef.tar.gz');
  assert.equal(layout.exportTempName('sar-0123456789abcdef.tar.gz', '0123456789ab'), '.sar-0123456789abcdef.tar.gz.tmp-0123456789ab');
  assert.equal(layout.tempFileName('ABC1', '0123456789ab'), '.tmp-ABC1-0123456789ab');
  assert.equal(layout.stsEntryName('0123456789abcdef0123456789abcdef'), 'policy-0123456789abcdef0123456789abcdef.json');
  assert.equal(layout.tlsrptDayDir(s, '2026-01-31'), `${s}/tlsrpt/2026-01-31`);
  assert.equal(layout.tlsrptCountsName('0123456789abcdef'), 'counts-0123456789abcdef.json');
  assert.equal(layout.tlsrptSentName('0123456789abcdef'), 'sent-0123456789abcdef.json');
  assert.equal(layout.TLSRPT_SEND_LOCK, '.send.lock');
});

test('each name maker matches its pattern (HIT), and look-alikes do not (MISS)', () => {
  const cases: [RegExp, string[], string[]][] = [
    [layout.MARKER_TEMP_RE, [layout.markerTempName('0123456789ab')], ['.state.json.tmp-0123456789a', 'state.json', '.state.json.tmp-0123456789AB']],
    [layout.SPOOL_NAME_RE, [layout.spoolFileName(newMessageId())], ['abc.spool', 'ABC.spool.bak', '.spool']],
    [layout.ENTRY_NAME_RE, [newMessageId() + layout.ENTRY_SUFFIX], ['abc.mvq', 'ABC.mvq.tmp', '.mvq']],
    [layout.KEY_FILE_RE, [layout.keyFileName('0123456789abcdef')], ['quarantine-0123456789abcde.key', 'quarantine-0123456789ABCDEF.key', 'current']],
    [layout.AUDIT_FILE_RE, [layout.auditFileName('2026-01-31')], ['audit-2026-1-31.jsonl', 'audit-2026-01-31.json', 'audit.jsonl']],
    [layout.EXPORT_NAME_RE, [layout.exportFileName('0123456789abcdef'), layout.exportTempName(layout.exportFileName('0123456789abcdef'), '0123456789ab')], ['sar-0123456789abcde.tar.gz', 'sar-export-20260131T000000Z.tar.gz']],
    [layout.STS_ENTRY_RE, [layout.stsEntryName('0123456789abcdef0123456789abcdef')], ['policy-0123456789abcdef0123456789abcde.json', 'policy-0123456789ABCDEF0123456789ABCDEF.json', 'example.com.json']],
    [layout.TLSRPT_DAY_RE, ['2026-01-31'], ['2026-1-31', '2026-01-31.json', 'counts-0123456789abcdef.json']],
    [layout.TLSRPT_COUNTS_RE, [layout.tlsrptCountsName('0123456789abcdef')], ['counts-0123456789abcde.json', 'counts-0123456789ABCDEF.json', 'counts-0123456789abcdef.json.tmp']],
    [layout.TLSRPT_SENT_RE, [layout.tlsrptSentName('0123456789abcdef')], ['sent-0123456789abcde.json', 'sent-0123456789ABCDEF.json', 'counts-0123456789abcdef.json', 'sent-0123456789abcdef.json.tmp']],
    [layout.TEMP_NAME_RE, [tempName('ABC1'), tempName(layout.tlsrptCountsName('0123456789abcdef')), tempName(layout.tlsrptSentName('0123456789abcdef')), tempName(layout.keyFileName('0123456789abcdef')), tempName(layout.stsEntryName('0123456789abcdef0123456789abcdef'))], ['.tmp-ABC1', '.tmp-ABC1-0123456789a', 'tmp-ABC1-0123456789ab']],
  ];
  for (const [re, hits, misses] of cases) {
    for (const h of hits) assert.match(h, re, h);
    for (const m of misses) assert.doesNotMatch(m, re, m);
  }
});

/** Every name a folder of the layout may hold, one of each. */
function layoutNames(): Record<string, string[]> {
  const hex12 = '0123456789ab';
  const hex16 = '0123456789abcdef';
  return {
    [layout.SPOOL_DIR]: [layout.spoolFileName('OLDSPOOL1')],
    [layout.QUARANTINE_DIR]: ['ENTRY1' + layout.ENTRY_SUFFIX, layout.releaseLockName('ENTRY1'), layout.tempFileName('ENTRY2', hex12)],
    [layout.KEYS_DIR]: [layout.CURRENT_KEY_FILE, layout.keyFileName(hex16), layout.tempFileName(layout.keyFileName(hex16), hex12)],
    [layout.AUDIT_DIR]: [layout.auditFileName('2001-01-01'), layout.tempFileName(layout.auditFileName('2001-01-02'), hex12)],
    [layout.EXPORTS_DIR]: [layout.exportFileName(hex16), layout.exportTempName(layout.exportFileName(hex16), hex12)],
    [layout.MTA_STS_DIR]: [layout.stsEntryName(hex16 + hex16), layout.tempFileName(layout.stsEntryName(hex16 + hex16), hex12)],
  };
}

/** The patterns a cleanup of that folder may remove. */
const REMOVABLE: Record<string, RegExp[]> = {
  [layout.SPOOL_DIR]: [layout.SPOOL_NAME_RE],
  [layout.QUARANTINE_DIR]: [layout.TEMP_NAME_RE],
  [layout.KEYS_DIR]: [layout.TEMP_NAME_RE, layout.KEY_FILE_RE],
  [layout.AUDIT_DIR]: [layout.AUDIT_FILE_RE, layout.TEMP_NAME_RE],
  [layout.EXPORTS_DIR]: [layout.EXPORT_NAME_RE],
  [layout.MTA_STS_DIR]: [layout.TEMP_NAME_RE, layout.STS_ENTRY_RE],
};

test('the cleanups remove only names of the layout, each in its own folder', async () => {
  const state = mkdtempSync(join(tmpdir(), 'mv-layout-'));
  dirs.push(state);
  const own = layoutNames();
  const allOwn = Object.values(own).flat();
  const before: Record<string, string[]> = {};
  for (const [dir, names] of Object.entries(own)) {
    mkdirSync(join(state, dir), { mode: 0o700 });
    // Each folder also holds the other folders' names and names nobody in mailveil makes.
    const foreign = [...allOwn.filter((n) => !names.includes(n)), 'notes.txt', 'README', '.tmp-', 'x.spool'];
    before[dir] = [...new Set([...names, ...foreign])].sort();
    for (const n of before[dir]) writeFileSync(join(state, dir, n), 'x');
  }
  writeFileSync(join(state, 'notes.txt'), 'x');
  const topBefore = readdirSync(state).sort();

  cleanStaleSpool(state);
  await cleanExports(state);
  await new QuarantineStore(state).recover();
  await new AuditLog(state, { now: () => new Date('2026-01-01T00:00:00Z') }).purge(86_400_000);
  await new StsCache(state).open();

  assert.deepEqual(readdirSync(state).sort(), topBefore, 'nothing at the top of state_dir is removed');
  let removedAny = 0;
  for (const dir of Object.keys(own)) {
    const after = new Set(readdirSync(join(state, dir)));
    const removed = before[dir].filter((n) => !after.has(n));
    removedAny += removed.length;
    for (const n of removed) assert.ok(REMOVABLE[dir].some((re) => re.test(n)), `${dir}/${n} was removed, but the layout does not name it as removable there`);
  }
  assert.ok(removedAny >= 6, 'the cleanups ran (spool, exports, three temp files, the old audit day)');
});

test('tlsrpt/: purge removes only old day folders of the layout, and in them only counts, sent records, the send lock and temp files', async () => {
  const state = mkdtempSync(join(tmpdir(), 'mv-layout-'));
  dirs.push(state);
  const top = layout.tlsrptDir(state);
  const hex12 = '0123456789ab';
  const hex16 = '0123456789abcdef';
  const own = [layout.tlsrptCountsName(hex16), layout.tempFileName(layout.tlsrptCountsName(hex16), hex12), layout.tlsrptSentName(hex16), layout.TLSRPT_SEND_LOCK];
  // Each old day folder also holds names that are not the layout's there.
  const foreign = ['notes.txt', layout.stsEntryName(hex16 + hex16), layout.auditFileName('2001-01-01'), '2001-01-01'];
  for (const day of ['2001-01-01', '2001-01-02']) {
    mkdirSync(layout.tlsrptDayDir(state, day), { recursive: true });
    for (const n of own) writeFileSync(join(top, day, n), 'x');
  }
  for (const n of foreign) writeFileSync(join(top, '2001-01-02', n === '2001-01-01' ? 'x-2001-01-01' : n), 'x');
  // At the top: a file named like a day, a foreign folder, a counts name out of place.
  writeFileSync(join(top, '2001-01-03'), 'x');
  mkdirSync(join(top, 'backup'));
  writeFileSync(join(top, layout.tlsrptCountsName(hex16)), 'x');
  const removedDays = await purgeDays(state, 30, new Date('2026-01-01T00:00:00Z'));
  assert.deepEqual(removedDays, ['2001-01-01']);
  assert.deepEqual(readdirSync(top).sort(), ['2001-01-02', '2001-01-03', 'backup', layout.tlsrptCountsName(hex16)].sort());
  assert.deepEqual(readdirSync(join(top, '2001-01-02')).sort(), ['notes.txt', layout.stsEntryName(hex16 + hex16), layout.auditFileName('2001-01-01'), 'x-2001-01-01'].sort());
});
