/*
 * smtp-sink as a test next hop.
 *
 * Postfix's smtp-sink(1) is a real, independent SMTP server with built-in
 * fault injection (-r/-f soft/hard rejects, -q drop, -Q 421, -w/-W delays,
 * -A premature 550), which is exactly what a relay's failure paths need to
 * be tested against. This wrapper starts it on a loopback port chosen at run
 * time, captures every received transaction to its own file (-d), keeps
 * the -c counters, and parses the captures back for assertions.
 *
 * Facts about the capture format (from smtp-sink.c, checked by the tests):
 *  - each file starts with sink-generated records (X-Client-Addr,
 *    X-Client-Proto, X-Helo-Args, X-Mail-Args, one X-Rcpt-Args per RCPT,
 *    a 3-line Received:), then the DATA as received, then one empty line;
 *  - CRs are not stored (lines end in LF) and dots are already unstuffed,
 *    so this capture cannot prove CRLF-exactness: use a byte capture for
 *    that;
 *  - the file is opened at MAIL and completed at the final "."; an aborted
 *    transaction's file is unlinked. A completed file is written BEFORE the
 *    reply to "." is chosen, so with "-r ." / "-f ." / "-q ." the rejected
 *    message is still on disk. Use the 250 count (counters) when that matters.
 *
 * It also holds the tool discovery used by the other harness pieces: when
 * CI=true nothing may skip, so a missing tool is a thrown error there.
 */
import { spawn, ChildProcess } from 'node:child_process';
import { accessSync, constants, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, chownSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { canConnect, freePort, LOOPBACK, registerExitCleanup, terminate, waitFor } from './ports';

// ---- tool discovery ------------------------------------------------------

/** CI=true (or 1): missing prerequisites are failures, never skips. */
export function isCI(): boolean {
  const v = (process.env.CI ?? '').toLowerCase();
  return v === 'true' || v === '1' || v === 'yes';
}

export const isRoot = () => typeof process.getuid === 'function' && process.getuid() === 0;

const EXTRA_DIRS = ['/usr/sbin', '/usr/bin', '/sbin', '/bin', '/usr/local/sbin', '/usr/local/bin'];

/** Absolute path of a tool, or undefined. Searches PATH plus the sbin dirs (not on a user PATH). */
export function findTool(name: string): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(delimiter).filter(Boolean), ...EXTRA_DIRS];
  for (const d of dirs) {
    const p = join(d, name);
    try {
      accessSync(p, constants.X_OK);
      if (statSync(p).isFile()) return p;
    } catch { /* not here */ }
  }
  return undefined;
}

const PACKAGE_OF: Record<string, string> = {
  'smtp-sink': 'postfix', 'smtp-source': 'postfix', postfix: 'postfix', postqueue: 'postfix',
  postconf: 'postfix', swaks: 'swaks', script: 'bsdutils',
  unbound: 'unbound', 'unbound-checkconf': 'unbound', 'ldns-keygen': 'ldnsutils', 'ldns-signzone': 'ldnsutils',
};

/** Like findTool but throws a message that says what to install. */
export function requireTool(name: string): string {
  const p = findTool(name);
  if (!p) {
    const pkg = PACKAGE_OF[name];
    throw new Error(`required tool '${name}' not found on PATH or in ${EXTRA_DIRS.join(', ')}` +
      (pkg ? ` (install the Debian package '${pkg}'; .ci/run does this)` : ''));
  }
  return p;
}

/**
 * Skip reason for a system test, or false to run it. Under CI nothing is
 * skipped: the test runs and the harness throws on the missing tool, so a
 * broken CI image is a red build, not a quietly green one.
 */
export function systemSkipReason(tools: string[], opts: { root?: boolean } = {}): string | false {
  if (isCI()) return false;
  if (opts.root && !isRoot()) return 'needs root (Postfix instances are started with `postfix -c DIR start`)';
  const missing = tools.filter((t) => !findTool(t));
  if (missing.length) return `missing tools: ${missing.join(', ')} (apt-get install postfix swaks)`;
  return false;
}

// ---- smtp-sink -----------------------------------------------------------

export interface SinkOptions {
  /** Extra smtp-sink flags, e.g. ['-r', 'RCPT'], ['-Q', '.'], ['-w', '3']. */
  flags?: string[];
  /** Port on 127.0.0.1; default: a free one. */
  port?: number;
  /** Capture each transaction to its own file (default true). Off for benchmarks: disk I/O would dominate. */
  dump?: boolean;
  /** Greeting hostname (-h). Must differ from the client's own name, or Postfix reports a mail loop. */
  hostname?: string;
  /** listen(2) backlog (default 256). */
  backlog?: number;
  /** Keep the capture directory after stop() (default: env MAILVEIL_TEST_KEEP=1). */
  keep?: boolean;
  startTimeoutMs?: number;
}

export interface SinkCounters { sess: number; quit: number; mesg: number }

export interface SinkMessage {
  /** Absolute path of the capture file. */
  file: string;
  clientAddr: string;
  proto: string;
  helo?: string;
  /** Arguments of MAIL, e.g. "<a@src.example> SIZE=123 BODY=8BITMIME". */
  mailFrom: string;
  /** Arguments of each RCPT, in order, e.g. ["<b@dest.example> ORCPT=rfc822;b@dest.example"]. */
  rcptTo: string[];
  /** The DATA as received: LF line ends, dot-unstuffed, without the trailing capture blank line. */
  data: string;
  /** Same as data, as bytes (for non-UTF-8 content). */
  bytes: Buffer;
  /** Header section of data (up to, not including, the first empty line). */
  headers: string;
  /** Body of data (after the first empty line). */
  body: string;
  /** Unfolded values of a header, top-most first, case-insensitive name. */
  header(name: string): string[];
}

export interface Sink {
  port: number;
  /** host:port, handy for --next-hop and relayhost. */
  address: string;
  /** Capture directory ('' when dump is off). */
  dir: string;
  pid: number;
  child: ChildProcess;
  /** Latest -c counters (mesg = completed DATA transactions, whatever the reply to "."). */
  counters(): SinkCounters;
  /** Completed captured messages, oldest first. */
  messages(): SinkMessage[];
  /** Wait until at least n messages are captured (or counted, when dump is off). */
  waitForMessages(n: number, timeoutMs?: number): Promise<SinkMessage[]>;
  /** Everything smtp-sink wrote to stderr (warnings, fatal errors). */
  stderr(): string;
  stop(): Promise<void>;
}

/** Parse one capture file written by `smtp-sink -d`. */
export function parseSinkCapture(file: string, raw: Buffer): SinkMessage {
  const text = raw.toString('latin1'); // byte-preserving for offsets
  // Skip an optional -S start string: records begin at the X-Client-Addr line.
  let pos = text.startsWith('X-Client-Addr: ') ? 0 : text.indexOf('\nX-Client-Addr: ') + 1;
  if (pos < 0) throw new Error(`${file}: not an smtp-sink capture (no X-Client-Addr)`);
  const rec: Record<string, string[]> = {};
  for (;;) {
    const nl = text.indexOf('\n', pos);
    if (nl < 0) throw new Error(`${file}: truncated smtp-sink capture`);
    const line = text.slice(pos, nl);
    pos = nl + 1;
    if (line.startsWith('Received: ')) {
      // The sink's Received is always 3 lines: "from", "\tby ... id X;", "\tdate".
      for (let i = 0; i < 2; i++) {
        const n2 = text.indexOf('\n', pos);
        if (n2 < 0) throw new Error(`${file}: truncated sink Received header`);
        pos = n2 + 1;
      }
      break;
    }
    const m = /^(X-[A-Za-z-]+): ?(.*)$/.exec(line);
    if (!m) throw new Error(`${file}: unexpected sink record line: ${JSON.stringify(line)}`);
    (rec[m[1]] ??= []).push(Buffer.from(m[2], 'latin1').toString('utf8'));
  }
  let bytes = raw.subarray(pos);
  // The capture ends with the LF of the final "." line: one extra newline.
  if (bytes.length > 0 && bytes[bytes.length - 1] === 0x0a) bytes = bytes.subarray(0, bytes.length - 1);
  const data = bytes.toString('utf8');
  const sep = /^\n|\n\n/.exec(data);
  const headers = sep ? data.slice(0, sep.index + (sep[0].length === 2 ? 1 : 0)) : data;
  const body = sep ? data.slice(sep.index + sep[0].length) : '';
  return {
    file,
    clientAddr: rec['X-Client-Addr']?.[0] ?? '',
    proto: rec['X-Client-Proto']?.[0] ?? '',
    helo: rec['X-Helo-Args']?.[0],
    mailFrom: rec['X-Mail-Args']?.[0] ?? '',
    rcptTo: rec['X-Rcpt-Args'] ?? [],
    data,
    bytes: Buffer.from(bytes),
    headers,
    body,
    header: (name) => headerValues(headers, name),
  };
}

/** Unfolded values of a header field in an LF-terminated header block. */
export function headerValues(headers: string, name: string): string[] {
  const out: string[] = [];
  const want = name.toLowerCase();
  const lines = headers.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const c = lines[i].indexOf(':');
    if (c <= 0 || /^[ \t]/.test(lines[i])) continue;
    if (lines[i].slice(0, c).trim().toLowerCase() !== want) continue;
    let v = lines[i].slice(c + 1);
    while (i + 1 < lines.length && /^[ \t]/.test(lines[i + 1])) v += '\n' + lines[++i];
    out.push(v.replace(/\r?\n(?=[ \t])/g, '').trim());
  }
  return out;
}

/** Files a process holds open (Linux /proc). Used to tell finished captures from ones in progress. */
function openFiles(pid: number): Set<string> {
  const out = new Set<string>();
  try {
    for (const fd of readdirSync(`/proc/${pid}/fd`)) {
      try { out.add(readlinkSync(`/proc/${pid}/fd/${fd}`)); } catch { /* fd closed meanwhile */ }
    }
  } catch { /* process gone: nothing is open */ }
  return out;
}

export async function startSink(opts: SinkOptions = {}): Promise<Sink> {
  const bin = requireTool('smtp-sink');
  const port = opts.port ?? (await freePort());
  const dump = opts.dump ?? true;
  const keep = opts.keep ?? process.env.MAILVEIL_TEST_KEEP === '1';
  let dir = '';
  const args = ['-c'];
  if (isRoot()) args.push('-u', 'postfix'); // smtp-sink refuses to run as root without -u
  if (dump) {
    dir = mkdtempSync(join(tmpdir(), 'mailveil-sink-'));
    // After -u the sink writes as 'postfix'; it must own the capture dir.
    if (isRoot()) chownPostfix(dir);
    chmodSync(dir, 0o755);
    args.push('-d', join(dir, '%Y%m%d%H%M%S.'));
  }
  if (opts.hostname) args.push('-h', opts.hostname);
  args.push(...(opts.flags ?? []), `inet:${LOOPBACK}:${port}`, String(opts.backlog ?? 256));

  const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  // On a crash: kill first, then remove the capture dir.
  const unregisterDir = registerExitCleanup(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    if (dir && !keep) rmSync(dir, { recursive: true, force: true });
  });
  let stdoutTail = '';
  let stderr = '';
  let counters: SinkCounters = { sess: 0, quit: 0, mesg: 0 };
  child.stdout!.setEncoding('latin1');
  child.stdout!.on('data', (d: string) => {
    // -c rewrites one status line with \r: keep only the last complete one.
    stdoutTail = (stdoutTail + d).slice(-4096);
    const all = [...stdoutTail.matchAll(/sess=(\d+) quit=(\d+) mesg=(\d+)/g)];
    const m = all[all.length - 1];
    if (m) counters = { sess: +m[1], quit: +m[2], mesg: +m[3] };
  });
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (d: string) => { stderr = (stderr + d).slice(-64 * 1024); });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  let spawnError: Error | undefined;
  child.once('error', (e) => { spawnError = e; });

  const describe = () => `smtp-sink ${args.join(' ')}\nstderr: ${stderr.trim() || '(empty)'}`;
  try {
    await waitFor(async () => {
      if (spawnError) throw spawnError;
      if (child.exitCode !== null || child.signalCode !== null) {
        throw new Error(`smtp-sink exited early (code ${child.exitCode}, signal ${child.signalCode})\n${describe()}`);
      }
      // Not a banner check: fault flags (-q CONNECT, -r CONNECT) legitimately change the greeting.
      return canConnect(port);
    }, { timeoutMs: opts.startTimeoutMs ?? 10_000, what: `smtp-sink on ${LOOPBACK}:${port}`, describe });
  } catch (e) {
    await terminate(child, 'SIGKILL');
    if (dir && !keep) rmSync(dir, { recursive: true, force: true });
    unregisterDir();
    throw e;
  }

  const messages = (): SinkMessage[] => {
    if (!dump) return [];
    // List first, then look at open files: a capture is created already open
    // (at MAIL), so anything listed and not open by now is complete.
    const names = readdirSync(dir);
    const busy = openFiles(child.pid!);
    const files: { path: string; mtime: number }[] = [];
    for (const name of names) {
      const path = join(dir, name);
      if (busy.has(path)) continue; // transaction still in progress
      try { files.push({ path, mtime: statSync(path).mtimeMs }); } catch { /* unlinked (aborted) meanwhile */ }
    }
    files.sort((a, b) => a.mtime - b.mtime || a.path.localeCompare(b.path));
    const out: SinkMessage[] = [];
    for (const f of files) {
      let raw: Buffer;
      try { raw = readFileSync(f.path); } catch { continue; }
      out.push(parseSinkCapture(f.path, raw));
    }
    return out;
  };

  let stopped = false;
  return {
    port,
    address: `${LOOPBACK}:${port}`,
    dir,
    pid: child.pid!,
    child,
    counters: () => ({ ...counters }),
    messages,
    async waitForMessages(n, timeoutMs = 15_000) {
      return waitFor(() => {
        if (!dump) return counters.mesg >= n ? ([] as SinkMessage[]) : undefined;
        const m = messages();
        return m.length >= n ? m : undefined;
      }, {
        timeoutMs,
        what: `${n} message(s) at smtp-sink :${port}`,
        describe: () => `counters: ${JSON.stringify(counters)}; captured: ${dump ? messages().length : 'n/a'}\n${describe()}`,
      });
    },
    stderr: () => stderr,
    async stop() {
      if (stopped) return;
      stopped = true;
      await terminate(child, 'SIGTERM', 3000);
      await exited;
      if (dir && !keep) rmSync(dir, { recursive: true, force: true });
      unregisterDir();
    },
  };
}

function chownPostfix(dir: string) {
  // uid/gid of 'postfix' from /etc/passwd: avoids a dependency for one lookup.
  const line = readFileSync('/etc/passwd', 'utf8').split('\n').find((l) => l.startsWith('postfix:'));
  if (!line) throw new Error("running as root but there is no 'postfix' user: smtp-sink needs -u postfix (install postfix)");
  const [, , uid, gid] = line.split(':');
  chownSync(dir, Number(uid), Number(gid));
}
