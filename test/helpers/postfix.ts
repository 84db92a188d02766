/*
 * A private, throw-away Postfix instance wired exactly as DESIGN.md's
 * after-queue content_filter layout:
 *
 *   client ─► public smtpd 127.0.0.1:publicPort
 *              └ content_filter = scan:[127.0.0.1]:<filter>   (optional)
 *                 scan unix smtp (XFORWARD on, no MIME downgrade) ─► the filter (mailveil)
 *                 (scanCommand: 'lmtp' makes it `scan unix lmtp`: mailveil in
 *                 LMTP mode, one reply per recipient after DATA)
 *   filter ─► reinjection smtpd 127.0.0.1:reinjectPort (content_filter=, no checks)
 *   Postfix ─► relayhost [127.0.0.1]:<smtp-sink>   (final delivery)
 *
 * Why a real Postfix and not a mock: the interop contract (XFORWARD, the
 * queue's retry on 4xx, SMTPUTF8/8BITMIME handling, the exact envelope
 * Postfix's smtp client sends) is Postfix's behaviour, not ours.
 *
 * Hard-won rules this follows (each one cost a debugging session):
 *  - the instance's config dir must be listed in /etc/postfix/main.cf's
 *    alternate_config_directories, or the set-gid tools (postqueue,
 *    postdrop) refuse `-c DIR`. Several test files may edit it at once, so
 *    edits are serialised with a lock file and written with rename;
 *  - maillog_file must live under /var/log (maillog_file_prefixes), and
 *    needs the `postlog unix-dgram` service in master.cf (postlogd writes it);
 *  - data_directory and queue_directory must belong to the postfix user,
 *    and their parents must be traversable by it;
 *  - `postfix start` reports fatal errors on the terminal only, so it runs
 *    under `script -qc` to give it one and we capture that output;
 *  - every service runs without chroot (column 5 = n): a chroot would need
 *    a copy of /etc files inside the temp queue dir.
 *
 * Ports are chosen at run time so test files run in parallel, everything
 * listens on 127.0.0.1 only, and stop() (or the exit hook) always takes the
 * master down and removes the instance from alternate_config_directories.
 */
import { execFile, execFileSync } from 'node:child_process';
import {
  chmodSync, chownSync, closeSync, existsSync, mkdirSync, mkdtempSync, openSync,
  readdirSync, readFileSync, renameSync, rmSync, statSync, unlinkSync, writeFileSync,
} from 'node:fs';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, LOOPBACK, registerExitCleanup, sleep, waitFor, waitForSmtpBanner } from './ports';
import { requireTool } from './sink';

export const SYSTEM_MAIN_CF = '/etc/postfix/main.cf';

export interface PostfixOptions {
  /** Port of the final next hop (usually an smtp-sink) on 127.0.0.1. */
  relayPort: number;
  /**
   * content_filter of the public smtpd, e.g. `scan:[127.0.0.1]:10025`.
   * undefined = no filter (mail goes straight to the relayhost).
   * Use filterTo(port) to build the DESIGN.md value.
   */
  contentFilter?: string;
  /** Fixed ports (default: free ports chosen now). */
  publicPort?: number;
  reinjectPort?: number;
  /**
   * Domains the public smtpd accepts from any client. Mail from 127.0.0.1
   * relays anyway (mynetworks); this matters when a test uses XCLIENT to
   * pretend to be a non-local client.
   */
  relayDomains?: string[];
  /** Extra or overriding main.cf parameters. */
  main?: Record<string, string>;
  /** Extra -o overrides for the public smtpd (which allows XCLIENT from 127.0.0.0/8 by default). */
  publicOptions?: Record<string, string>;
  /** Extra -o overrides for the reinjection smtpd. */
  reinjectOptions?: Record<string, string>;
  /** Extra -o overrides for the scan transport (Postfix's smtp client towards the filter). */
  scanOptions?: Record<string, string>;
  /**
   * The scan transport's client: 'smtp' (default, DESIGN.md's relay layout)
   * or 'lmtp' (mailveil with `listen_protocol: lmtp`, typically in
   * `delivery.mode: mx`): Postfix's lmtp client reads one reply per
   * recipient after DATA and defers only the recipients that got a 4xx.
   * The XFORWARD option is then lmtp_send_xforward_command.
   */
  scanCommand?: 'smtp' | 'lmtp';
  /**
   * master.cf text appended after the generated services (a second
   * reinjection listener, an extra transport), verbatim; a function gets
   * the instance name, for `syslog_name` values. Used to run README
   * snippets exactly as written.
   */
  extraMasterCf?: string | ((name: string) => string);
  /** Ports of listeners in extraMasterCf that must greet before start() and restart() resolve. */
  extraListenPorts?: number[];
  /** Keep config/queue/log after stop() (default: env MAILVEIL_TEST_KEEP=1). */
  keep?: boolean;
}

export interface QueueEntry {
  queue_name: string; // 'active' | 'deferred' | 'hold' | 'incoming' | 'maildrop'
  queue_id: string;
  arrival_time: number;
  message_size: number;
  sender: string;
  recipients: { address: string; delay_reason?: string }[];
}

export interface PostfixInstance {
  /** Unique name; also the syslog_name prefix in the maillog. */
  name: string;
  baseDir: string;
  configDir: string;
  queueDir: string;
  dataDir: string;
  logFile: string;
  publicPort: number;
  reinjectPort: number;
  /** postqueue -f: retry deferred mail now. */
  flush(): Promise<void>;
  /** postqueue -j, parsed. */
  queue(): Promise<QueueEntry[]>;
  /** Wait until the queue is empty (all mail delivered or bounced). */
  waitForEmptyQueue(timeoutMs?: number): Promise<void>;
  /** Wait for a queue entry matching pred (e.g. a deferred message). */
  waitForQueue(pred: (q: QueueEntry[]) => boolean, what: string, timeoutMs?: number): Promise<QueueEntry[]>;
  /** The instance's maillog so far ('' if nothing was logged yet). */
  log(): string;
  /** Wait until the maillog matches re; resolves with the first matching line. */
  waitForLog(re: RegExp, timeoutMs?: number): Promise<string>;
  /** postconf -c DIR NAME: effective value of a main.cf parameter. */
  postconf(name: string): string;
  /**
   * Take the master down but keep config, queue and log (unlike stop()):
   * 'stop' is `postfix stop` (the master SIGTERMs its children, so a
   * delivery in progress dies mid-transfer), 'abort' is `postfix abort`.
   * Resolves once `postfix status` says it is down (bounded).
   */
  halt(how?: 'stop' | 'abort'): Promise<void>;
  /** `postfix start` again after halt(); resolves once both smtpd listeners (and extraListenPorts) greet. */
  restart(): Promise<void>;
  /** pid of the running master, or undefined. */
  masterPid(): number | undefined;
  /**
   * pids of the master's children that run a master.cf service right now:
   * 'scan' (the smtp client towards the filter), reinjectService, 'smtp', …
   * Tests freeze (SIGSTOP) or kill one of them to place a fault mid-transfer.
   */
  servicePids(service: string): number[];
  /** master.cf service name of the reinjection smtpd ("127.0.0.1:PORT"), for servicePids(). */
  reinjectService: string;
  stop(): Promise<void>;
}

/** The DESIGN.md content_filter value for a filter listening on 127.0.0.1:port. */
export const filterTo = (port: number) => `scan:[${LOOPBACK}]:${port}`;

let instanceCounter = 0;

// ---- /etc/postfix/main.cf: alternate_config_directories ------------------

const LOCK_FILE = join(tmpdir(), 'mailveil-test-postfix-main-cf.lock');
const INSTANCE_PREFIX = join(tmpdir(), 'mailveil-pf-');

function pidAlive(pid: number): boolean {
  try { process.kill(pid, 0); return true; } catch (e) { return (e as NodeJS.ErrnoException).code === 'EPERM'; }
}

/**
 * Serialise read-modify-write of the system main.cf across test processes.
 * Synchronous (with a blocking sleep) so it can also run in the exit hook.
 */
function withMainCfLock<T>(fn: () => T): T {
  const deadline = Date.now() + 15_000;
  for (;;) {
    try {
      const fd = openSync(LOCK_FILE, 'wx', 0o600);
      writeFileSync(fd, String(process.pid));
      closeSync(fd);
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      // A holder that died keeps the file: break a stale lock.
      let holder = 0;
      try { holder = Number(readFileSync(LOCK_FILE, 'utf8')) || 0; } catch { /* vanished */ }
      if (holder && !pidAlive(holder)) { try { unlinkSync(LOCK_FILE); } catch { /* raced */ } continue; }
      if (Date.now() > deadline) throw new Error(`could not lock ${LOCK_FILE} (held by pid ${holder}) within 15 s`);
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
    }
  }
  try { return fn(); } finally { try { unlinkSync(LOCK_FILE); } catch { /* ignore */ } }
}

/** Parse `alternate_config_directories` (incl. continuation lines) out of main.cf text. */
function splitAlternate(text: string): { before: string[]; dirs: string[]; after: string[] } {
  const lines = text.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  const start = lines.findIndex((l) => /^alternate_config_directories\s*=/.test(l));
  if (start < 0) return { before: lines, dirs: [], after: [] };
  let end = start + 1;
  while (end < lines.length && /^[ \t]/.test(lines[end]) && !/^\s*#/.test(lines[end])) end++;
  const value = lines.slice(start, end).join(' ').replace(/^alternate_config_directories\s*=/, '');
  const dirs = value.split(/[\s,]+/).filter(Boolean);
  return { before: lines.slice(0, start), dirs, after: lines.slice(end) };
}

function editAlternateDirs(edit: (dirs: string[]) => string[]) {
  withMainCfLock(() => {
    if (!existsSync(SYSTEM_MAIN_CF)) {
      // Fresh install with "No configuration": postfix tools need a main.cf to exist.
      mkdirSync('/etc/postfix', { recursive: true });
      writeFileSync(SYSTEM_MAIN_CF, '# created by mailveil test harness (Postfix instances for tests)\ncompatibility_level = 3.6\n');
    }
    const text = readFileSync(SYSTEM_MAIN_CF, 'utf8');
    const { before, dirs, after } = splitAlternate(text);
    const next = [...new Set(edit(dirs))];
    if (next.length === dirs.length && next.every((d, i) => d === dirs[i])) return; // idempotent: no write
    const line = next.length ? [`alternate_config_directories = ${next.join(', ')}`] : [];
    // Keep the parameter where it was, or append it.
    const out = [...before, ...line, ...after].join('\n') + '\n';
    const tmp = `${SYSTEM_MAIN_CF}.mailveil-tmp-${process.pid}`;
    writeFileSync(tmp, out, { mode: statSync(SYSTEM_MAIN_CF).mode & 0o777 });
    renameSync(tmp, SYSTEM_MAIN_CF);
  });
}

function addAlternateDir(dir: string) {
  editAlternateDirs((dirs) => [
    // Drop entries left by crashed test runs whose dirs are gone.
    ...dirs.filter((d) => !(d.startsWith(INSTANCE_PREFIX) && !existsSync(d))),
    dir,
  ]);
}

function removeAlternateDir(dir: string) {
  editAlternateDirs((dirs) => dirs.filter((d) => d !== dir));
}

// ---- config generation ---------------------------------------------------

function postfixIds(): { uid: number; gid: number } {
  const line = readFileSync('/etc/passwd', 'utf8').split('\n').find((l) => l.startsWith('postfix:'));
  if (!line) throw new Error("no 'postfix' user in /etc/passwd: is the postfix package installed?");
  const [, , uid, gid] = line.split(':');
  return { uid: Number(uid), gid: Number(gid) };
}

function masterCf(o: {
  name: string; publicPort: number; reinjectPort: number;
  publicOptions: Record<string, string>; reinjectOptions: Record<string, string>; scanOptions: Record<string, string>;
  scanCommand: 'smtp' | 'lmtp';
}): string {
  // Values with whitespace need Postfix 3.0's "-o { name = value }" form.
  const opts = (r: Record<string, string>) =>
    Object.entries(r).map(([k, v]) => (/\s/.test(v) ? `  -o { ${k} = ${v} }` : `  -o ${k}=${v}`)).join('\n');
  const svc = (line: string, r: Record<string, string> = {}) => [line, opts(r)].filter(Boolean).join('\n');
  // Columns: service type private unpriv chroot wakeup maxproc command.
  // chroot is 'n' everywhere (see header comment).
  return [
    '# Generated by test/helpers/postfix.ts - private test instance, loopback only.',
    svc(`${LOOPBACK}:${o.publicPort} inet n - n - - smtpd`, {
      syslog_name: `${o.name}/public`,
      // Lets a test pose as a remote client (swaks --xclient-addr) from loopback.
      smtpd_authorized_xclient_hosts: '127.0.0.0/8',
      ...o.publicOptions,
    }),
    // DESIGN.md reinjection listener.
    svc(`${LOOPBACK}:${o.reinjectPort} inet n - n - 10 smtpd`, {
      syslog_name: `${o.name}/reinject`,
      content_filter: '',
      receive_override_options: 'no_unknown_recipient_checks,no_header_body_checks,no_milters',
      smtpd_authorized_xforward_hosts: '127.0.0.0/8',
      mynetworks: '127.0.0.0/8',
      ...o.reinjectOptions,
    }),
    // DESIGN.md filter transport: Postfix's smtp (or lmtp) client towards mailveil.
    svc(`scan unix - - n - 10 ${o.scanCommand}`, {
      syslog_name: `${o.name}/scan`,
      [`${o.scanCommand}_send_xforward_command`]: 'yes',
      disable_mime_output_conversion: 'yes',
      ...o.scanOptions,
    }),
    'pickup    unix  n       -       n       60      1       pickup',
    'cleanup   unix  n       -       n       -       0       cleanup',
    'qmgr      unix  n       -       n       300     1       qmgr',
    'tlsmgr    unix  -       -       n       1000?   1       tlsmgr',
    'rewrite   unix  -       -       n       -       -       trivial-rewrite',
    'bounce    unix  -       -       n       -       0       bounce',
    'defer     unix  -       -       n       -       0       bounce',
    'trace     unix  -       -       n       -       0       bounce',
    'verify    unix  -       -       n       -       1       verify',
    'flush     unix  n       -       n       1000?   0       flush',
    'proxymap  unix  -       -       n       -       -       proxymap',
    'proxywrite unix -       -       n       -       1       proxymap',
    'smtp      unix  -       -       n       -       -       smtp',
    'relay     unix  -       -       n       -       -       smtp',
    'showq     unix  n       -       n       -       -       showq',
    'error     unix  -       -       n       -       -       error',
    'retry     unix  -       -       n       -       -       error',
    'discard   unix  -       -       n       -       -       discard',
    'local     unix  -       n       n       -       -       local',
    'virtual   unix  -       n       n       -       -       virtual',
    'lmtp      unix  -       -       n       -       -       lmtp',
    'anvil     unix  -       -       n       -       1       anvil',
    'scache    unix  -       -       n       -       1       scache',
    // Without postlogd, maillog_file stays empty.
    'postlog   unix-dgram n  -       n       -       1       postlogd',
    '',
  ].join('\n');
}

function mainCf(o: {
  name: string; queueDir: string; dataDir: string; logFile: string; relayPort: number;
  contentFilter?: string; relayDomains: string[]; extra: Record<string, string>;
}): string {
  const p: Record<string, string> = {
    compatibility_level: '3.6',
    queue_directory: o.queueDir,
    data_directory: o.dataDir,
    mail_owner: 'postfix',
    setgid_group: 'postdrop',
    syslog_name: o.name,
    maillog_file: o.logFile,
    myhostname: 'mx.test.example',
    mydomain: 'test.example',
    myorigin: '$myhostname',
    mydestination: '',
    local_recipient_maps: '',
    local_transport: 'error:local delivery is disabled in the test instance',
    alias_maps: '',
    alias_database: '',
    inet_interfaces: LOOPBACK,
    inet_protocols: 'ipv4',
    mynetworks: '127.0.0.0/8',
    relay_domains: o.relayDomains.join(', '),
    relayhost: `[${LOOPBACK}]:${o.relayPort}`,
    smtpd_relay_restrictions: 'permit_mynetworks, reject_unauth_destination',
    // No DNS on the test machines: literal next hops, native lookups only.
    smtp_dns_support_level: 'disabled',
    smtp_host_lookup: 'native',
    smtputf8_enable: 'yes',
    smtpd_banner: '$myhostname ESMTP mailveil-test',
    smtp_tls_security_level: 'none',
    smtpd_tls_security_level: 'none',
    biff: 'no',
    append_dot_mydomain: 'no',
    // Deferred mail comes back within seconds, not the production minutes.
    queue_run_delay: '1s',
    minimal_backoff_time: '1s',
    maximal_backoff_time: '2s',
    maximal_queue_lifetime: '1h',
    bounce_queue_lifetime: '1h',
    delay_warning_time: '0h',
    // A filter that accepts but never answers must not hold a test for the 30 s default.
    smtp_connect_timeout: '5s',
  };
  if (o.contentFilter !== undefined) p.content_filter = o.contentFilter;
  Object.assign(p, o.extra);
  return '# Generated by test/helpers/postfix.ts - private test instance, loopback only.\n' +
    Object.entries(p).map(([k, v]) => `${k} = ${v}`).join('\n') + '\n';
}

// ---- running commands ----------------------------------------------------

interface RunResult { code: number | null; stdout: string; stderr: string }

/** Run a command to completion, bounded by timeoutMs (SIGKILL); never rejects. */
function run(cmd: string, args: string[], timeoutMs = 30_000): Promise<RunResult> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 16 * 1024 * 1024 },
      (err, stdout, stderr) => {
        const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : null) : 0;
        resolve({ code, stdout: String(stdout), stderr: String(stderr) + (err && code === null ? `\n[${cmd}: ${err.message}]` : '') });
      });
  });
}

const shQuote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

// ---- the instance ----------------------------------------------------------

export async function startPostfix(opts: PostfixOptions): Promise<PostfixInstance> {
  const postfix = requireTool('postfix');
  const postqueue = requireTool('postqueue');
  const postconfBin = requireTool('postconf');
  const script = requireTool('script');
  if (typeof process.getuid === 'function' && process.getuid() !== 0) {
    throw new Error('a private Postfix instance needs root (postfix -c DIR start); run the system tests as root');
  }
  const { uid, gid } = postfixIds();
  const keep = opts.keep ?? process.env.MAILVEIL_TEST_KEEP === '1';

  const baseDir = mkdtempSync(INSTANCE_PREFIX);
  chmodSync(baseDir, 0o755); // postfix-owned daemons must reach queue/ and data/
  const id = `${process.pid}-${++instanceCounter}`;
  const name = `mailveil-test-${id}`;
  const configDir = join(baseDir, 'etc');
  const queueDir = join(baseDir, 'queue');
  const dataDir = join(baseDir, 'data');
  const logFile = `/var/log/${name}.log`;
  for (const d of [configDir, queueDir, dataDir]) mkdirSync(d, { mode: 0o755 });
  chownSync(queueDir, 0, 0); // post-install wants the queue root root-owned; it creates the subdirs
  chownSync(dataDir, uid, gid);
  chmodSync(dataDir, 0o700);

  const publicPort = opts.publicPort ?? (await freePort());
  let reinjectPort = opts.reinjectPort ?? (await freePort());
  while (reinjectPort === publicPort) reinjectPort = await freePort();

  writeFileSync(join(configDir, 'main.cf'), mainCf({
    name, queueDir, dataDir, logFile, relayPort: opts.relayPort, contentFilter: opts.contentFilter,
    relayDomains: opts.relayDomains ?? ['dest.example'], extra: opts.main ?? {},
  }));
  const extra = typeof opts.extraMasterCf === 'function' ? opts.extraMasterCf(name) : opts.extraMasterCf;
  writeFileSync(join(configDir, 'master.cf'), masterCf({
    name, publicPort, reinjectPort,
    publicOptions: opts.publicOptions ?? {}, reinjectOptions: opts.reinjectOptions ?? {}, scanOptions: opts.scanOptions ?? {},
    scanCommand: opts.scanCommand ?? 'smtp',
  }) + (extra ? `# extraMasterCf\n${extra.replace(/\n?$/, '\n')}` : ''));
  const listenPorts = [publicPort, reinjectPort, ...(opts.extraListenPorts ?? [])];

  let started = false;
  let removed = false;
  const cleanupSync = () => {
    // Used by the exit hook: synchronous, best effort, bounded.
    if (started) {
      try { execFileSync(postfix, ['-c', configDir, 'stop'], { stdio: 'ignore', timeout: 10_000 }); } catch { /* ignore */ }
      try { execFileSync(postfix, ['-c', configDir, 'abort'], { stdio: 'ignore', timeout: 5_000 }); } catch { /* not running */ }
    }
    if (!removed) { removed = true; try { removeAlternateDir(configDir); } catch { /* ignore */ } }
    if (!keep) {
      rmSync(baseDir, { recursive: true, force: true });
      rmSync(logFile, { force: true });
    }
  };
  const unregister = registerExitCleanup(cleanupSync);

  const readLog = () => { try { return readFileSync(logFile, 'utf8'); } catch { return ''; } };
  const logTail = (n = 40) => readLog().split('\n').slice(-n).join('\n');

  try {
    addAlternateDir(configDir);
    // A stale log from a crashed run that had the same pid would mix into this one.
    rmSync(logFile, { force: true });

    const check = await run(postfix, ['-c', configDir, 'check'], 60_000);
    if (check.code !== 0) {
      throw new Error(`postfix -c ${configDir} check failed (exit ${check.code}):\n${check.stdout}${check.stderr}\n${logTail()}`);
    }
    // `postfix start` prints fatal errors only to a terminal: give it one.
    const start = await run(script, ['-qec', `${shQuote(postfix)} -c ${shQuote(configDir)} start`, '/dev/null'], 60_000);
    started = true;
    if (start.code !== 0) {
      throw new Error(`postfix -c ${configDir} start failed (exit ${start.code}):\n${start.stdout}${start.stderr}\n--- ${logFile} ---\n${logTail()}`);
    }
    for (const p of listenPorts) {
      await waitForSmtpBanner(p, 15_000).catch((e: Error) => {
        throw new Error(`${e.message}\n--- ${logFile} ---\n${logTail()}`);
      });
    }
  } catch (e) {
    cleanupSync();
    unregister();
    throw e;
  }

  const queue = async (): Promise<QueueEntry[]> => {
    const r = await run(postqueue, ['-c', configDir, '-j'], 15_000);
    if (r.code !== 0) throw new Error(`postqueue -c ${configDir} -j failed (exit ${r.code}): ${r.stderr}`);
    return r.stdout.split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l) as QueueEntry);
  };

  const masterPid = (): number | undefined => {
    // The master writes its pid (space-padded) to $queue_directory/pid/master.pid.
    let pid = 0;
    try { pid = Number(readFileSync(join(queueDir, 'pid', 'master.pid'), 'utf8').trim()); } catch { return undefined; }
    return pid > 0 && pidAlive(pid) ? pid : undefined;
  };
  const waitDown = async () => {
    for (let i = 0; i < 100; i++) {
      const t = await run(postfix, ['-c', configDir, 'status'], 10_000);
      if (t.code !== 0) return;
      await sleep(100);
    }
    throw new Error(`Postfix ${name} still running 10 s after stop\n--- ${logFile} ---\n${logTail()}`);
  };

  let stopped = false;
  const inst: PostfixInstance = {
    name, baseDir, configDir, queueDir, dataDir, logFile, publicPort, reinjectPort,
    reinjectService: `${LOOPBACK}:${reinjectPort}`,
    async flush() {
      const r = await run(postqueue, ['-c', configDir, '-f'], 15_000);
      if (r.code !== 0) throw new Error(`postqueue -c ${configDir} -f failed (exit ${r.code}): ${r.stderr}`);
    },
    queue,
    async waitForQueue(pred, what, timeoutMs = 20_000) {
      let last: QueueEntry[] = [];
      return waitFor(async () => { last = await queue(); return pred(last) ? last : undefined; }, {
        timeoutMs, intervalMs: 200, what: `${what} (Postfix ${name})`,
        describe: () => `queue: ${JSON.stringify(last)}\n--- ${logFile} ---\n${logTail()}`,
      });
    },
    async waitForEmptyQueue(timeoutMs = 20_000) {
      await inst.waitForQueue((q) => q.length === 0, 'an empty queue', timeoutMs);
    },
    log: readLog,
    async waitForLog(re, timeoutMs = 15_000) {
      return waitFor(() => readLog().split('\n').find((l) => re.test(l)), {
        timeoutMs, intervalMs: 100, what: `maillog line matching ${re}`,
        describe: () => `--- ${logFile} ---\n${logTail()}`,
      });
    },
    postconf(param) {
      return execFileSync(postconfBin, ['-c', configDir, '-h', param], { encoding: 'utf8', timeout: 10_000 }).trim();
    },
    async halt(how = 'stop') {
      const r = await run(postfix, ['-c', configDir, how], 20_000);
      if (r.code !== 0 && !/not running/.test(r.stdout + r.stderr)) {
        throw new Error(`postfix -c ${configDir} ${how} failed (exit ${r.code}): ${r.stdout}${r.stderr}`);
      }
      await waitDown();
    },
    async restart() {
      const r = await run(script, ['-qec', `${shQuote(postfix)} -c ${shQuote(configDir)} start`, '/dev/null'], 60_000);
      if (r.code !== 0) {
        throw new Error(`postfix -c ${configDir} start failed (exit ${r.code}):\n${r.stdout}${r.stderr}\n--- ${logFile} ---\n${logTail()}`);
      }
      for (const p of listenPorts) {
        await waitForSmtpBanner(p, 15_000).catch((e: Error) => {
          throw new Error(`${e.message}\n--- ${logFile} ---\n${logTail()}`);
        });
      }
    },
    masterPid,
    servicePids(service) {
      const master = masterPid();
      if (!master) return [];
      const out: number[] = [];
      let entries: string[] = [];
      try { entries = readdirSync('/proc'); } catch { return []; }
      for (const e of entries) {
        if (!/^\d+$/.test(e)) continue;
        try {
          // Field 4 of /proc/PID/stat is the parent pid; the comm field (2) may hold spaces, so split after ')'.
          const stat = readFileSync(`/proc/${e}/stat`, 'utf8');
          const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
          if (ppid !== master) continue;
          // The master starts every child as "<command> -n <service> -t <type> …".
          const argv = readFileSync(`/proc/${e}/cmdline`, 'utf8').split('\0');
          const i = argv.indexOf('-n');
          if (i >= 0 && argv[i + 1] === service) out.push(Number(e));
        } catch { /* exited meanwhile */ }
      }
      return out;
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      // postfix stop waits up to 5 s for the master, then kills it.
      const r = await run(postfix, ['-c', configDir, 'stop'], 20_000);
      if (r.code !== 0 && !/not running/.test(r.stdout + r.stderr)) {
        await run(postfix, ['-c', configDir, 'abort'], 10_000);
      }
      // The master may take a moment to release the ports after stop returns.
      for (let i = 0; i < 50; i++) {
        const t = await run(postfix, ['-c', configDir, 'status'], 10_000);
        if (t.code !== 0) break;
        await sleep(100);
      }
      if (!removed) { removed = true; removeAlternateDir(configDir); }
      if (!keep) {
        rmSync(baseDir, { recursive: true, force: true });
        rmSync(logFile, { force: true });
      }
      unregister();
    },
  };
  return inst;
}

// ---- swaks: the test client ------------------------------------------------

export interface SwaksResult extends RunResult {
  /** Postfix queue id from "250 ... queued as X", if any. */
  queueId?: string;
  /** The last server reply line (e.g. "250 2.0.0 Ok: queued as 4F2A..."). */
  lastReply?: string;
}

/**
 * Run swaks against server ("127.0.0.1:PORT") with extra args. Never
 * throws on an SMTP failure (tests assert on code/lastReply); throws if
 * swaks itself is missing. Bounded by timeoutMs.
 */
export async function runSwaks(server: string, args: string[], timeoutMs = 30_000): Promise<SwaksResult> {
  const bin = requireTool('swaks');
  const r = await run(bin, ['--server', server, '--timeout', '20', ...args], timeoutMs);
  const replies = r.stdout.split('\n').filter((l) => /^<[-~* ]/.test(l)).map((l) => l.replace(/^<[-~*]*\s+/, '').trim());
  // The reply to the final "." is the one before QUIT's 221.
  const lastReply = replies.filter((l) => !/^221\b/.test(l)).pop();
  const queueId = /queued as ([0-9A-Za-z]+)/.exec(r.stdout)?.[1];
  return { ...r, lastReply, queueId };
}

// ---- a policy service that holds smtpd's reply: a slow next hop on demand ----

export interface DelayPolicy {
  port: number;
  /** Value for a restriction list: `check_policy_service inet:127.0.0.1:PORT`. */
  restriction: string;
  /**
   * Delays (ms) for the next requests, one each, in order; afterwards the
   * policy answers at once. Only requests whose protocol_state matches
   * `state` (default END-OF-MESSAGE) take a delay.
   */
  delayNext(ms: number[], state?: string): void;
  /** Every request seen so far (the attribute lists smtpd sent). */
  requests(): Record<string, string>[];
  /** Answers still being held back (each one is a message waiting at the next hop). */
  held(): number;
  stop(): Promise<void>;
}

/**
 * A Postfix policy delegation server (SMTPD_POLICY_README protocol) that
 * answers DUNNO, after a delay when told to. Put in the reinjection smtpd's
 * smtpd_end_of_data_restrictions, it holds that smtpd's reply to the final
 * dot: the message is complete at the next hop and the client waits, which
 * is exactly where a client that gives up makes RFC 1047 duplicates. smtpd
 * commits the message after the policy answers whether or not its client is
 * still connected, as any MTA does.
 */
export async function startDelayPolicy(): Promise<DelayPolicy> {
  const pending: { ms: number; state: string }[] = [];
  const seen: Record<string, string>[] = [];
  const timers = new Set<NodeJS.Timeout>();
  const sockets = new Set<Socket>();
  const server = createServer((sock) => {
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
    sock.on('error', () => undefined);
    sock.setEncoding('latin1');
    let buf = '';
    sock.on('data', (d: string) => {
      buf += d;
      let end: number;
      while ((end = buf.indexOf('\n\n')) >= 0) {
        const attrs: Record<string, string> = {};
        for (const line of buf.slice(0, end).split('\n')) {
          const eq = line.indexOf('=');
          if (eq > 0) attrs[line.slice(0, eq)] = line.slice(eq + 1);
        }
        buf = buf.slice(end + 2);
        seen.push(attrs);
        const i = pending.findIndex((p) => p.state === attrs.protocol_state);
        const ms = i >= 0 ? pending.splice(i, 1)[0].ms : 0;
        const answer = () => { if (!sock.destroyed) sock.write('action=DUNNO\n\n'); };
        if (ms > 0) {
          const t = setTimeout(() => { timers.delete(t); answer(); }, ms);
          timers.add(t);
        } else {
          answer();
        }
      }
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, LOOPBACK, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const unregister = registerExitCleanup(() => server.close());
  return {
    port,
    restriction: `check_policy_service inet:${LOOPBACK}:${port}`,
    delayNext(ms, state = 'END-OF-MESSAGE') { for (const x of ms) pending.push({ ms: x, state }); },
    requests: () => seen.slice(),
    held: () => timers.size,
    async stop() {
      for (const t of timers) clearTimeout(t);
      timers.clear();
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
      unregister();
    },
  };
}
