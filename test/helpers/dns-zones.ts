/*
 * Zone files for the DNS test world (dns-world.ts), signed at test time.
 *
 * Each zone gets an SOA and an NS (ns.test., served by the parent zone)
 * around the caller's records. A signed zone gets a fresh KSK and ZSK
 * (ECDSA P-256, ldns-keygen) and is signed with ldns-signzone (NSEC, so
 * NXDOMAIN and NODATA are provably secure); its KSK's DS is the trust anchor
 * unbound validates it against. A bogus zone is signed the same way, then
 * the rdata of chosen RRsets is changed in the signed file, so their RRSIGs
 * no longer match: a validating resolver answers SERVFAIL for exactly those
 * RRsets and validates the rest of the zone as usual.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { requireTool } from './sink';

export type ZoneMode = 'signed' | 'unsigned' | 'bogus';

export interface ZoneSpec {
  /** The zone's name, under .test (e.g. 'signed.test'). */
  name: string;
  /**
   * Zone-file lines relative to the zone, with the default TTL (300) and
   * class IN: '@ MX 10 mx1', 'mx1 A 127.0.0.2', '_25._tcp.mx1 TLSA 3 1 1 <hex>',
   * '@ TXT "v=STSv1; id=1"', 'www CNAME mx1'. SOA and NS are added.
   */
  records: string[];
  mode: ZoneMode;
  /**
   * For 'bogus': the RRsets to break after signing, as 'owner TYPE' with the
   * owner relative to the zone ('_25._tcp.mx1 TLSA', '@ MX', 'mx1 A').
   * Default: every TLSA RRset. Types that can be broken: TLSA, A, AAAA, MX, TXT.
   */
  tamper?: string[];
}

export interface ZoneFile {
  name: string;
  /** The file unbound loads. */
  file: string;
  /** DS lines of the KSK, for a signed or bogus zone. */
  trustAnchor?: string;
}

const TTL = 300;
const DAY = 86_400;

function fqdn(zone: string, owner: string): string {
  if (owner === '@') return `${zone}.`;
  return owner.endsWith('.') ? owner.toLowerCase() : `${owner}.${zone}.`.toLowerCase();
}

export function zoneText(zone: string, records: readonly string[], extra: readonly string[] = []): string {
  return [
    `$ORIGIN ${zone}.`,
    `$TTL ${TTL}`,
    `@ SOA ns.test. hostmaster.${zone}. 1 3600 600 86400 ${TTL}`,
    '@ NS ns.test.',
    ...extra,
    ...records,
    '',
  ].join('\n');
}

/** Write the zone's file into dir (signed and tampered as its mode says). */
export function writeZone(dir: string, spec: ZoneSpec): ZoneFile {
  const name = spec.name.toLowerCase().replace(/\.$/, '');
  if (!/^([a-z0-9_-]+\.)+test$/.test(name)) throw new Error(`dns world: zone ${spec.name} must be a name under .test`);
  if (spec.tamper && spec.mode !== 'bogus') throw new Error(`dns world: zone ${name}: tamper is for mode 'bogus'`);
  const plain = join(dir, `${name}.zone`);
  writeFileSync(plain, zoneText(name, spec.records));
  if (spec.mode === 'unsigned') return { name, file: plain };

  const keygen = requireTool('ldns-keygen');
  const run = (tool: string, args: string[]) => execFileSync(tool, args, { cwd: dir, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
  const ksk = run(keygen, ['-a', 'ECDSAP256SHA256', '-k', name]);
  const zsk = run(keygen, ['-a', 'ECDSAP256SHA256', name]);
  const signedFile = join(dir, `${name}.signed`);
  // Inception a day back: clocks differ by seconds, and a signature from the future is bogus.
  const now = Math.floor(Date.now() / 1000);
  run(requireTool('ldns-signzone'), ['-i', String(now - DAY), '-e', String(now + 30 * DAY), '-f', signedFile, plain, ksk, zsk]);
  const trustAnchor = readFileSync(join(dir, `${ksk}.ds`), 'utf8');
  if (spec.mode === 'bogus') tamperFile(signedFile, name, spec.tamper ?? allOwnersOf(signedFile, 'TLSA', name));
  return { name, file: signedFile, trustAnchor };
}

function allOwnersOf(file: string, type: string, zone: string): string[] {
  const owners = readFileSync(file, 'utf8').split('\n').map((l) => l.split('\t')).filter((f) => f[3] === type).map((f) => `${f[0]} ${type}`);
  if (owners.length === 0) throw new Error(`dns world: bogus zone ${zone} has no ${type} record to break; give 'tamper'`);
  return [...new Set(owners)];
}

/** Change the rdata of each named RRset in ldns-signzone's output (owner, TTL, class, type, rdata; tab-separated). */
function tamperFile(file: string, zone: string, targets: readonly string[]): void {
  const lines = readFileSync(file, 'utf8').split('\n');
  for (const target of targets) {
    const [owner, type] = target.trim().split(/\s+/);
    const want = fqdn(zone, owner);
    let hits = 0;
    for (let i = 0; i < lines.length; i++) {
      const f = lines[i].split('\t');
      if (f.length < 5 || f[0].toLowerCase() !== want || f[3] !== type.toUpperCase()) continue;
      f[4] = breakRdata(f[3], f.slice(4).join('\t'));
      lines[i] = f.slice(0, 5).join('\t');
      hits++;
    }
    if (hits === 0) throw new Error(`dns world: tamper '${target}': zone ${zone} has no such RRset`);
  }
  writeFileSync(file, lines.join('\n'));
}

/** Different rdata of the same type, so the record still loads but its signature fails. */
function breakRdata(type: string, rdata: string): string {
  switch (type) {
    case 'TLSA':
      return rdata.replace(/([0-9a-fA-F])$/, (d) => (d.toLowerCase() === '0' ? '1' : '0'));
    case 'A':
      return rdata.replace(/(\d+)$/, (n) => String((Number(n) + 1) % 256));
    case 'AAAA':
      return rdata === '::1' ? '::2' : '::1';
    case 'MX':
      return rdata.replace(/^(\d+)/, (n) => String((Number(n) + 1) % 65536));
    case 'TXT':
      return rdata.replace(/"$/, 'x"');
    default:
      throw new Error(`dns world: cannot tamper with ${type} (TLSA, A, AAAA, MX, TXT)`);
  }
}
