/*
 * End-to-end relay benchmark: smtp-source → [mailveil →] smtp-sink.
 *
 * Why these tools: smtp-source and smtp-sink are Postfix's own C load
 * generator and sink, so the measured cost is mailveil's, not the load
 * generator's. Every mailveil figure is reported next to a reference
 * measured in the same run on the same machine (smtp-source straight into
 * smtp-sink), because absolute msg/s numbers from a 2-core VM mean little
 * on their own; the ratio travels better.
 *
 * Scenarios (each: S parallel sessions, N messages of ~10 KB on the wire):
 *   reference/per-connection   smtp-source → smtp-sink, one message per connection
 *   reference/reuse            the same, all messages over S long-lived connections (-d)
 *   mailveil/per-connection    smtp-source → mailveil → smtp-sink
 *   mailveil/reuse             the same with connection reuse
 *   mailveil/reuse tls:none    smtp-source → mailveil → TLS sink (smtp-server, STARTTLS offered), tls.next_hop none
 *   mailveil/reuse tls:may     the same with tls.next_hop may: every next-hop connection is TLS
 * The last two (issue 10) measure what TLS to the next hop costs: the same
 * Node sink on both, so the ratio may/none is the TLS cost alone (the sink's
 * own CPU, in this driver process, counts on both sides).
 *
 * Each scenario gets a fresh sink (so its -c counter proves delivery of
 * all N) and, for mailveil, a fresh process with a temp state dir, warmed
 * up before timing, SIGTERMed at the end (exit code recorded) with its
 * peak RSS (VmHWM) read just before. Everything is bounded by a timeout,
 * listens on 127.0.0.1 only, and every child is reaped on any exit path.
 *
 * smtp-source flag semantics (smtp-source(1), Postfix 3.7, checked here):
 *   -s N   N parallel sessions;  -m N  total messages across all sessions;
 *   -d     do NOT disconnect after each message (connection reuse);
 *          without -d every message gets its own connection;
 *   -F f   send file f as header+body (it dot-stuffs, turns LF into CRLF, and
 *          adds one empty line before the final "."); without -F it generates
 *          its own From/To/Date/Message-Id headers and -l bytes of body;
 *   -f/-t  envelope sender/recipient;  -M name  HELO name;  -c  progress counter.
 *   smtp-source speaks HELO (not EHLO), has no pipelining, and exits non-zero
 *   on the first unexpected reply (unless -A).
 */
import { spawn } from 'node:child_process';
import { get } from 'node:http';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { startMailveil, Mailveil } from '../test/helpers/mailveil';
import { killOnExit, terminate, waitFor, waitForExit } from '../test/helpers/ports';
import { requireTool, startSink, Sink } from '../test/helpers/sink';
import { startTlsSink, type TlsSink } from '../test/helpers/tls-sink';
import { TestPki } from '../test/helpers/test-pki';

export interface RelayBenchParams {
  messages: number;
  sessions: number;
  /** Target size of one message on the wire (CRLF line ends), bytes. */
  sizeBytes: number;
  /** Messages sent through mailveil before timing (JIT, pools, caches). */
  warmup: number;
  /** Upper bound for one scenario, seconds; on expiry everything is killed. */
  timeoutS: number;
}

export interface RelayResult {
  scenario: string;
  target: 'reference' | 'mailveil';
  mode: 'per-connection' | 'reuse';
  messages: number;
  sessions: number;
  sizeBytes: number;
  ok: boolean;
  error?: string;
  wallSeconds?: number;
  msgPerSec?: number;
  /** mailveil msg/s divided by the reference in the same mode, same run. */
  ratioToReference?: number;
  /** The TLS-sink variants: tls.next_hop level; for may, msg/s divided by the none row of the same run. */
  tlsLevel?: 'none' | 'may';
  ratioToPlain?: number;
  sinkReceived?: number;
  mailveilExitCode?: number | null;
  mailveilPeakRssMiB?: number;
  mailveilLogLines?: number;
  /** From mailveil's /metrics (mailveil_bytes_total{direction}), per message incl. warm-up. */
  bytesInPerMessage?: number;
  bytesOutPerMessage?: number;
}

export function paramsFromEnv(env = process.env): RelayBenchParams {
  const int = (name: string, dflt: number) => {
    const v = env[name];
    if (v === undefined || v === '') return dflt;
    const n = Number(v);
    if (!Number.isInteger(n) || n <= 0) throw new Error(`${name} must be a positive integer, got ${JSON.stringify(v)}`);
    return n;
  };
  return {
    messages: int('BENCH_MESSAGES', 2000),
    sessions: int('BENCH_SESSIONS', 20),
    sizeBytes: int('BENCH_SIZE', 10 * 1024),
    warmup: int('BENCH_WARMUP', 200),
    timeoutS: int('BENCH_TIMEOUT_S', 300),
  };
}

/**
 * A synthetic, PII-free ~size-byte message (size counted with CRLF line
 * ends, as smtp-source sends it). Plain business prose, so the run measures
 * the common clean path: parse, scan, decide, stream out unchanged.
 */
export function syntheticMessage(size: number): string {
  const header = [
    'Received: from relay1.example.net (relay1.example.net [192.0.2.10])',
    '\tby mx.example.com (Postfix) with ESMTPS id 4ABCDEF0123',
    '\tfor <team@example.com>; Mon, 02 Jun 2025 10:00:00 +0000 (UTC)',
    'From: Project Office <office@example.net>',
    'To: Team <team@example.com>',
    'Subject: Weekly project status (benchmark message)',
    'Date: Mon, 02 Jun 2025 10:00:00 +0000',
    'Message-ID: <bench.0001@example.net>',
    'MIME-Version: 1.0',
    'Content-Type: text/plain; charset=utf-8',
    'Content-Transfer-Encoding: 8bit',
    'X-Mailer: bench-generator 1.0',
    '',
  ];
  const words = ('status milestone review budget schedule delivery risk owner action item meeting agenda ' +
    'update progress release quality testing deployment customer feedback roadmap planning team report ' +
    'summary decision follow-up timeline resource estimate scope change request approval draft final').split(' ');
  const lines: string[] = [];
  let bytes = header.reduce((n, l) => n + l.length + 2, 0);
  let seed = 12345;
  const rnd = () => { seed = (seed * 1103515245 + 12345) & 0x7fffffff; return seed; };
  let para = 0;
  while (bytes < size) {
    let line = '';
    while (line.length < 66) line += (line ? ' ' : '') + words[rnd() % words.length];
    line += '.';
    if (bytes + line.length + 2 > size) line = line.slice(0, Math.max(1, size - bytes - 2));
    lines.push(line);
    bytes += line.length + 2;
    if (++para % 8 === 0 && bytes + 2 < size) { lines.push(''); bytes += 2; }
  }
  return [...header, ...lines].join('\n') + '\n';
}

interface SourceRun { code: number | null; wallSeconds: number; stderr: string; timedOut: boolean }

/** Run smtp-source to completion (bounded), timing wall clock from spawn to exit. */
async function runSource(port: number, file: string, messages: number, sessions: number, reuse: boolean, timeoutS: number): Promise<SourceRun> {
  const bin = requireTool('smtp-source');
  const args = [
    '-s', String(sessions), '-m', String(messages),
    ...(reuse ? ['-d'] : []),
    '-F', file, '-f', 'bench-sender@example.net', '-t', 'bench-rcpt@example.com', '-M', 'bench-client.example.net',
    `inet:127.0.0.1:${port}`,
  ];
  const t0 = process.hrtime.bigint();
  const child = spawn(bin, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  killOnExit(child);
  let stderr = '';
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (d: string) => { stderr = (stderr + d).slice(-8192); });
  const r = await waitForExit(child, timeoutS * 1000);
  const wallSeconds = Number(process.hrtime.bigint() - t0) / 1e9;
  if (!r) {
    await terminate(child, 'SIGKILL');
    return { code: null, wallSeconds, stderr, timedOut: true };
  }
  return { code: r.code, wallSeconds, stderr, timedOut: false };
}

async function oneScenario(
  p: RelayBenchParams, file: string, target: 'reference' | 'mailveil', mode: 'per-connection' | 'reuse',
): Promise<RelayResult> {
  const res: RelayResult = {
    scenario: `${target}/${mode}`, target, mode, messages: p.messages, sessions: p.sessions, sizeBytes: p.sizeBytes, ok: false,
  };
  const reuse = mode === 'reuse';
  let sink: Sink | undefined;
  let mv: Mailveil | undefined;
  try {
    // No capture files: disk I/O in the sink would dominate what we measure.
    sink = await startSink({ dump: false });
    let port = sink.port;
    let expected = p.messages;
    if (target === 'mailveil') {
      // Info level on purpose: one log line per message is the production cost.
      mv = await startMailveil({ nextHop: sink.address, captureLogs: false, logLevel: 'info' });
      port = mv.port;
      if (p.warmup > 0) {
        const w = await runSource(port, file, p.warmup, Math.min(p.sessions, p.warmup), reuse, p.timeoutS);
        if (w.timedOut || w.code !== 0) throw new Error(`warm-up failed (exit ${w.code}${w.timedOut ? ', timed out' : ''}): ${w.stderr.trim()}`);
        expected += p.warmup;
        await waitFor(() => sink!.counters().mesg >= p.warmup, { timeoutMs: 10_000, what: 'warm-up messages at the sink' });
      }
    }
    const r = await runSource(port, file, p.messages, p.sessions, reuse, p.timeoutS);
    res.wallSeconds = round(r.wallSeconds, 3);
    if (r.timedOut) throw new Error(`timed out after ${p.timeoutS} s (BENCH_TIMEOUT_S)`);
    if (r.code !== 0) throw new Error(`smtp-source exited ${r.code}: ${r.stderr.trim().split('\n').slice(-3).join(' | ')}`);
    // A 250 from mailveil means the sink already said 250; allow only for the -c line to arrive.
    await waitFor(() => sink!.counters().mesg >= expected, {
      timeoutMs: 10_000, what: `${expected} messages counted by smtp-sink`,
      describe: () => `counters: ${JSON.stringify(sink!.counters())}`,
    }).catch(() => undefined);
    res.sinkReceived = sink.counters().mesg - (expected - p.messages);
    res.msgPerSec = round(p.messages / r.wallSeconds, 1);
    if (res.sinkReceived !== p.messages) throw new Error(`sink counted ${res.sinkReceived} of ${p.messages} messages`);
    if (mv) {
      // The sink only counts messages; mailveil's own byte counters show that
      // whole messages went through, not empty or truncated ones.
      const bytes = await scrapeBytes(mv.metricsPort);
      if (bytes) {
        res.bytesInPerMessage = Math.round(bytes.in / expected);
        res.bytesOutPerMessage = Math.round(bytes.out / expected);
        if (res.bytesOutPerMessage < 0.9 * p.sizeBytes) {
          throw new Error(`mailveil forwarded only ${res.bytesOutPerMessage} bytes/message of ~${p.sizeBytes}`);
        }
      }
    }
    res.ok = true;
  } catch (e) {
    res.error = (e as Error).message.split('\n')[0];
  } finally {
    if (mv) {
      try {
        res.mailveilExitCode = await mv.stop('SIGTERM', 20_000);
      } catch (e) {
        res.mailveilExitCode = null;
        res.ok = false;
        res.error ??= (e as Error).message.split('\n')[0];
      }
      const hwm = mv.peakRssKb();
      if (hwm !== undefined) res.mailveilPeakRssMiB = round(hwm / 1024, 1);
      res.mailveilLogLines = mv.lineCount();
      if (res.mailveilExitCode !== 0) {
        res.ok = false;
        res.error ??= `mailveil exited ${res.mailveilExitCode} on SIGTERM`;
      }
    }
    if (sink) await sink.stop();
  }
  return res;
}

/** mailveil (reuse) → TLS sink with tls.next_hop `level`: what TLS to the next hop costs. */
async function tlsScenario(p: RelayBenchParams, file: string, pki: TestPki, level: 'none' | 'may'): Promise<RelayResult> {
  const res: RelayResult = {
    scenario: `mailveil/reuse tls:${level}`, target: 'mailveil', mode: 'reuse', messages: p.messages, sessions: p.sessions, sizeBytes: p.sizeBytes, ok: false, tlsLevel: level,
  };
  let sink: TlsSink | undefined;
  let mv: Mailveil | undefined;
  const dir = mkdtempSync(join(tmpdir(), 'mailveil-bench-tls-'));
  try {
    sink = await startTlsSink({ cert: pki.leaf(`hop-${level}`, { names: ['hop.example.test'] }), keepData: false });
    const cfg = join(dir, 'mailveil.yaml');
    writeFileSync(cfg, `tls:\n  next_hop: { level: ${level}, servername: hop.example.test, ca_file: ${JSON.stringify(pki.caFile)} }\n`);
    mv = await startMailveil({ nextHop: sink.address, config: cfg, captureLogs: false, logLevel: 'info' });
    let expected = p.messages;
    if (p.warmup > 0) {
      const w = await runSource(mv.port, file, p.warmup, Math.min(p.sessions, p.warmup), true, p.timeoutS);
      if (w.timedOut || w.code !== 0) throw new Error(`warm-up failed (exit ${w.code}${w.timedOut ? ', timed out' : ''}): ${w.stderr.trim()}`);
      expected += p.warmup;
    }
    const r = await runSource(mv.port, file, p.messages, p.sessions, true, p.timeoutS);
    res.wallSeconds = round(r.wallSeconds, 3);
    if (r.timedOut) throw new Error(`timed out after ${p.timeoutS} s (BENCH_TIMEOUT_S)`);
    if (r.code !== 0) throw new Error(`smtp-source exited ${r.code}: ${r.stderr.trim().split('\n').slice(-3).join(' | ')}`);
    res.sinkReceived = sink.count() - (expected - p.messages);
    res.msgPerSec = round(p.messages / r.wallSeconds, 1);
    if (res.sinkReceived !== p.messages) throw new Error(`sink counted ${res.sinkReceived} of ${p.messages} messages`);
    res.ok = true;
  } catch (e) {
    res.error = (e as Error).message.split('\n')[0];
  } finally {
    if (mv) {
      try {
        res.mailveilExitCode = await mv.stop('SIGTERM', 20_000);
      } catch (e) {
        res.mailveilExitCode = null;
        res.ok = false;
        res.error ??= (e as Error).message.split('\n')[0];
      }
      const hwm = mv.peakRssKb();
      if (hwm !== undefined) res.mailveilPeakRssMiB = round(hwm / 1024, 1);
      res.mailveilLogLines = mv.lineCount();
      if (res.mailveilExitCode !== 0) {
        res.ok = false;
        res.error ??= `mailveil exited ${res.mailveilExitCode} on SIGTERM`;
      }
    }
    if (sink) await sink.stop();
    rmSync(dir, { recursive: true, force: true });
  }
  return res;
}

/** mailveil_bytes_total{direction="in"|"out"} from /metrics, or undefined if unavailable. */
function scrapeBytes(port: number): Promise<{ in: number; out: number } | undefined> {
  return new Promise((resolve) => {
    const req = get({ host: '127.0.0.1', port, path: '/metrics', timeout: 3000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => { body += d; });
      res.on('end', () => {
        const val = (dir: string) => {
          const m = new RegExp(`^mailveil_bytes_total\\{[^}]*direction="${dir}"[^}]*\\}\\s+([0-9.eE+]+)`, 'm').exec(body);
          return m ? Number(m[1]) : undefined;
        };
        const i = val('in');
        const o = val('out');
        resolve(res.statusCode === 200 && i !== undefined && o !== undefined ? { in: i, out: o } : undefined);
      });
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(undefined));
  });
}

const round = (x: number, d: number) => Math.round(x * 10 ** d) / 10 ** d;

/** Run the four relay scenarios, then the two TLS-sink ones (issue 10), in sequence. */
export async function runRelayBench(p: RelayBenchParams = paramsFromEnv(), log: (s: string) => void = (s) => process.stderr.write(s + '\n')): Promise<{ params: RelayBenchParams; results: RelayResult[] }> {
  requireTool('smtp-source');
  requireTool('smtp-sink');
  const dir = mkdtempSync(join(tmpdir(), 'mailveil-bench-'));
  try {
    const file = join(dir, 'message.eml');
    // smtp-source -F sends an empty line of its own before the final ".": 2 bytes.
    writeFileSync(file, syntheticMessage(p.sizeBytes - 2));
    const results: RelayResult[] = [];
    for (const mode of ['per-connection', 'reuse'] as const) {
      for (const target of ['reference', 'mailveil'] as const) {
        log(`relay: ${target}/${mode}: ${p.messages} messages, ${p.sessions} sessions, ${p.sizeBytes} B …`);
        const r = await oneScenario(p, file, target, mode);
        log(`relay: ${target}/${mode}: ${r.ok ? `${r.msgPerSec} msg/s in ${r.wallSeconds} s` : `FAILED: ${r.error}`}`);
        results.push(r);
      }
    }
    // Issue 10: TLS to the next hop, both levels against the same kind of sink, in this run.
    const pki = new TestPki('mailveil bench');
    for (const level of ['none', 'may'] as const) {
      log(`relay: mailveil/reuse tls:${level}: ${p.messages} messages, ${p.sessions} sessions, ${p.sizeBytes} B …`);
      const r = await tlsScenario(p, file, pki, level);
      log(`relay: mailveil/reuse tls:${level}: ${r.ok ? `${r.msgPerSec} msg/s in ${r.wallSeconds} s` : `FAILED: ${r.error}`}`);
      results.push(r);
    }
    const plain = results.find((x) => x.tlsLevel === 'none' && x.ok);
    const tls = results.find((x) => x.tlsLevel === 'may' && x.ok);
    if (plain?.msgPerSec && tls?.msgPerSec) tls.ratioToPlain = round(tls.msgPerSec / plain.msgPerSec, 3);
    for (const r of results) {
      if (r.target !== 'mailveil' || !r.msgPerSec || r.tlsLevel) continue;
      const ref = results.find((x) => x.target === 'reference' && x.mode === r.mode && x.ok);
      if (ref?.msgPerSec) r.ratioToReference = round(r.msgPerSec / ref.msgPerSec, 3);
    }
    return { params: p, results };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Markdown table of relay results. */
export function relayTable(results: RelayResult[]): string {
  const head = '| scenario | sessions | messages | size | wall s | msg/s | vs reference | mailveil peak RSS | mailveil exit | sink got | status |';
  const sep = '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|';
  const rows = results.map((r) => `| ${r.scenario} | ${r.sessions} | ${r.messages} | ${(r.sizeBytes / 1024).toFixed(0)} KiB | ${r.wallSeconds ?? '–'} | ${r.msgPerSec ?? '–'} | ${
    r.ratioToReference !== undefined ? `${(r.ratioToReference * 100).toFixed(1)} %` : r.ratioToPlain !== undefined ? `${(r.ratioToPlain * 100).toFixed(1)} % of tls:none` : '–'} | ${
    r.mailveilPeakRssMiB !== undefined ? `${r.mailveilPeakRssMiB} MiB` : '–'} | ${
    r.target === 'mailveil' ? String(r.mailveilExitCode) : '–'} | ${r.sinkReceived ?? '–'} | ${r.ok ? 'ok' : 'FAIL: ' + (r.error ?? '').replace(/\|/g, '/')} |`);
  return [head, sep, ...rows].join('\n');
}

export function hostInfo() {
  const c = cpus();
  return { cpus: c.length, cpuModel: c[0]?.model ?? 'unknown', node: process.version, platform: `${process.platform} ${process.arch}` };
}
