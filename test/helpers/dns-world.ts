/*
 * A DNS world with a real validating resolver: Debian's unbound on a
 * loopback port, serving test zones and validating them against their own
 * trust anchors. The AD bit the tests see is earned, not faked.
 *
 *   const world = await startDnsWorld({ zones: [
 *     { name: 'signed.test', mode: 'signed', records: ['@ MX 10 mx1', 'mx1 A 127.0.0.2', '_25._tcp.mx1 TLSA 3 1 1 <hex>'] },
 *     { name: 'plain.test', mode: 'unsigned', records: ['@ MX 10 mx1', 'mx1 A 127.0.0.3'] },
 *     { name: 'broken.test', mode: 'bogus', records: [...], tamper: ['_25._tcp.mx1 TLSA'] },
 *   ] });
 *   const dns = new DnsClient({ servers: [world.server], timeoutMs: 2000 });   // or world.lookups()
 *   ...
 *   await world.stop();
 *
 * Zones (see ZoneSpec in dns-zones.ts for the record syntax):
 *  - 'signed':   answers carry the AD bit; NXDOMAIN and NODATA are proven (NSEC).
 *  - 'unsigned': answers without the AD bit (no trust anchor covers them).
 *  - 'bogus':    signed, then the `tamper` RRsets (default: every TLSA) are
 *                changed: those answer SERVFAIL, the rest validates (AD).
 * Every zone must be under .test. The world also serves an unsigned `test.`
 * zone holding `ns.test A 127.0.0.1`, so a name under .test outside the
 * given zones is a quick NXDOMAIN (insecure), never a timeout.
 *
 * How: each zone is an unbound `auth-zone` with `for-upstream: yes` (the
 * iterator reads it instead of the network) and `for-downstream: no` (so
 * answers go through the validator, not straight out); `local-zone: "test."
 * nodefault` lifts unbound's built-in RFC 6761 refusal of .test. unbound
 * runs in the foreground, unprivileged paths only, in a temp dir (kept with
 * MAILVEIL_TEST_KEEP=1). start waits until it answers a query; on failure
 * the error carries unbound-checkconf's or unbound's own output. stop()
 * kills it, and so does the exit of the test process.
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DnsClient, type DnsServer } from '../../src/dns/client';
import { DnsLookups } from '../../src/dns/lookups';
import { freePort, killOnExit, LOOPBACK, sleep, terminate } from './ports';
import { requireTool } from './sink';
import { writeZone, zoneText, type ZoneFile, type ZoneSpec } from './dns-zones';

export type { ZoneSpec, ZoneMode } from './dns-zones';

export interface DnsWorldOptions {
  zones: ZoneSpec[];
  /** How long to wait for unbound to answer (default 15 s). */
  startTimeoutMs?: number;
  /** Keep the temp dir after stop() (default: env MAILVEIL_TEST_KEEP=1). */
  keep?: boolean;
}

export interface DnsWorld {
  /** Where unbound listens, UDP and TCP. */
  server: DnsServer;
  /** The temp dir: unbound.conf, zone files, keys, trust anchors. */
  dir: string;
  /** Typed lookups against this world (timeout per query: 2 s unless given). */
  lookups(timeoutMs?: number): DnsLookups;
  /** unbound's log so far (stderr: startup, validation failures, SERVFAIL reasons). */
  log(): string;
  stop(): Promise<void>;
}

const MAX_LOG = 64 * 1024;
const BIND_ATTEMPTS = 3;

function unboundConf(dir: string, port: number, zones: readonly ZoneFile[]): string {
  const q = (s: string) => JSON.stringify(s);
  const server = [
    'server:',
    '  do-daemonize: no',
    '  username: ""',
    '  chroot: ""',
    `  directory: ${q(dir)}`,
    `  pidfile: ${q(join(dir, 'unbound.pid'))}`,
    `  interface: 127.0.0.1@${port}`,
    `  port: ${port}`,
    '  do-ip6: no',
    '  do-not-query-localhost: no',
    '  access-control: 127.0.0.0/8 allow',
    '  num-threads: 1',
    '  so-reuseport: no',
    '  use-syslog: no',
    '  logfile: ""',
    '  verbosity: 1',
    // Say why a validation failed, and log every SERVFAIL: the reason a test failed is in log().
    '  val-log-level: 2',
    '  log-servfail: yes',
    // No RFC 8145 key-tag queries for our anchors: nothing to report them to.
    '  trust-anchor-signaling: no',
    '  module-config: "validator iterator"',
    '  local-zone: "test." nodefault',
  ];
  if (zones.some((z) => z.trustAnchor)) server.push(`  trust-anchor-file: ${q(join(dir, 'anchors.ds'))}`);
  const auth = zones.flatMap((z) => ['auth-zone:', `  name: ${q(z.name + '.')}`, `  zonefile: ${q(z.file)}`, '  for-upstream: yes', '  for-downstream: no']);
  return [...server, 'remote-control:', '  control-enable: no', ...auth, ''].join('\n');
}

export async function startDnsWorld(opts: DnsWorldOptions): Promise<DnsWorld> {
  const unbound = requireTool('unbound');
  const checkconf = requireTool('unbound-checkconf');
  const dir = mkdtempSync(join(tmpdir(), 'mv-dns-'));
  const keep = opts.keep ?? process.env.MAILVEIL_TEST_KEEP === '1';
  try {
    const names = new Set<string>();
    for (const z of opts.zones) {
      if (names.has(z.name)) throw new Error(`dns world: zone ${z.name} given twice`);
      names.add(z.name);
    }
    const parent: ZoneFile = { name: 'test', file: join(dir, 'test.zone') };
    writeFileSync(parent.file, zoneText('test', ['ns A 127.0.0.1']));
    const zones = [parent, ...opts.zones.map((z) => writeZone(dir, z))];
    writeFileSync(join(dir, 'anchors.ds'), zones.map((z) => z.trustAnchor ?? '').join(''));

    let lastError: Error | undefined;
    for (let attempt = 0; attempt < BIND_ATTEMPTS; attempt++) {
      const port = await freePort();
      const conf = join(dir, 'unbound.conf');
      writeFileSync(conf, unboundConf(dir, port, zones));
      try {
        execFileSync(checkconf, [conf], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
      } catch (e) {
        const out = e as { stdout?: string; stderr?: string };
        throw new Error(`dns world: unbound-checkconf rejects ${conf}:\n${out.stdout ?? ''}${out.stderr ?? ''}`);
      }
      const world = await launch(unbound, conf, dir, port, keep, opts.startTimeoutMs ?? 15_000).catch((e: Error) => {
        lastError = e;
        return undefined;
      });
      if (world) return world;
      // Another process may have taken the UDP side of the port (freePort checks TCP only): try another.
      if (!/bind|address already in use|could not open ports/i.test(lastError?.message ?? '')) break;
    }
    throw lastError ?? new Error('dns world: unbound did not start');
  } catch (e) {
    if (!keep) rmSync(dir, { recursive: true, force: true });
    throw e;
  }
}

async function launch(unbound: string, conf: string, dir: string, port: number, keep: boolean, timeoutMs: number): Promise<DnsWorld> {
  const child: ChildProcess = spawn(unbound, ['-d', '-c', conf], { stdio: ['ignore', 'pipe', 'pipe'] });
  killOnExit(child);
  let log = '';
  const append = (d: Buffer) => {
    log = (log + d.toString('utf8')).slice(-MAX_LOG);
  };
  child.stdout!.on('data', append);
  child.stderr!.on('data', append);
  const server: DnsServer = { host: LOOPBACK, port };
  const world: DnsWorld = {
    server,
    dir,
    lookups: (t = 2000) => new DnsLookups(new DnsClient({ servers: [server], timeoutMs: t })),
    log: () => log,
    async stop() {
      await terminate(child, 'SIGTERM', 3000);
      if (!keep) rmSync(dir, { recursive: true, force: true });
    },
  };
  try {
    await waitUntilAnswering(child, server, timeoutMs);
    return world;
  } catch (e) {
    await terminate(child, 'SIGKILL', 3000);
    throw new Error(`dns world: ${(e as Error).message}\n--- unbound (${conf}) ---\n${log}`);
  }
}

/** Poll with a real query: a bound port is not yet a resolver that has loaded its zones. */
async function waitUntilAnswering(child: ChildProcess, server: DnsServer, timeoutMs: number): Promise<void> {
  const client = new DnsClient({ servers: [server], timeoutMs: 500 });
  const deadline = Date.now() + timeoutMs;
  let last = 'no answer yet';
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`unbound exited (${child.exitCode ?? child.signalCode}) before answering`);
    try {
      const r = await client.query('ns.test', 'A');
      if (r.rcode === 'NOERROR' && r.answers.length > 0) return;
      last = `ns.test A: ${r.rcode}`;
    } catch (e) {
      last = (e as Error).message;
    }
    await sleep(50);
  }
  throw new Error(`unbound on ${server.host}:${server.port} did not answer within ${timeoutMs} ms (${last})`);
}
