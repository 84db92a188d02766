/*
 * Run the real `bin/mailveil serve` as a child process for system tests and
 * benchmarks.
 *
 * System tests must exercise the shipped entry point (argument parsing,
 * signal handling, the drain on SIGTERM, pino output), not an in-process
 * server, so this spawns `node bin/mailveil serve ...` exactly as an
 * operator would, on loopback ports chosen at run time and with a temp
 * state dir. It collects stdout as pino JSON lines for assertions, waits
 * for the `"msg":"listening"` line (DESIGN contract) before returning,
 * and always reaps the process (stop(), or the exit hook on a crash).
 */
import { spawn, ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BIN, REPO_ROOT } from './paths';
import { freePort, LOOPBACK, registerExitCleanup, terminate, waitFor } from './ports';

export interface MailveilOptions {
  /** --next-hop HOST:PORT (e.g. a sink's `address`, or Postfix's reinjection port). */
  nextHop: string;
  /** SMTP listener port on 127.0.0.1 (default: a free port). */
  listenPort?: number;
  /** --rules DIR (default: the repo's shipped rules.d). */
  rulesDir?: string;
  /** --state-dir DIR (default: a fresh temp dir, removed by stop()). A given dir is never removed. */
  stateDir?: string;
  metricsPort?: number;
  adminPort?: number;
  /** --log-level (default 'info', the level whose per-message line DESIGN.md specifies). */
  logLevel?: string;
  /** --config FILE, if a test needs settings that have no flag. */
  config?: string;
  /** Appended after the generated flags. */
  extraArgs?: string[];
  env?: NodeJS.ProcessEnv;
  /** How long to wait for the "listening" line (default 15 s). */
  startTimeoutMs?: number;
  /**
   * Keep parsed log lines (default true). Benchmarks turn this off: parsing
   * thousands of lines in the driver steals CPU from the process measured.
   */
  captureLogs?: boolean;
}

/** One pino line. `msg`, `level`, `time` are pino's; the rest is mailveil's. */
export type LogLine = Record<string, unknown> & { msg?: string; level?: number | string };

export interface Mailveil {
  port: number;
  /** "127.0.0.1:PORT" of the SMTP listener (a Postfix content_filter target). */
  listen: string;
  metricsPort: number;
  adminPort: number;
  stateDir: string;
  rulesDir: string;
  pid: number;
  child: ChildProcess;
  args: string[];
  /** Parsed JSON lines so far. */
  logs(): LogLine[];
  /** Lines that were not JSON (should be none; tests may assert that). */
  rawLines(): string[];
  stderr(): string;
  /** Count of stdout lines seen (also when captureLogs is off). */
  lineCount(): number;
  waitForLog(pred: ((l: LogLine) => boolean) | RegExp, what?: string, timeoutMs?: number): Promise<LogLine>;
  /** Peak resident set (VmHWM, KiB) while alive; after stop(), the value read just before the signal. */
  peakRssKb(): number | undefined;
  /**
   * Send `signal` (default SIGTERM: the drain) and wait for exit. Resolves
   * with the exit code (null if it died by a signal). Throws if it had to be
   * SIGKILLed after timeoutMs: a drain that hangs is a bug worth a red test.
   * Idempotent.
   */
  stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<number | null>;
  /** Resolves when the process has exited, however that happened. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

function readVmHWM(pid: number): number | undefined {
  try {
    const m = /^VmHWM:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

const tail = (s: string, n = 4000) => (s.length > n ? '…' + s.slice(-n) : s);

export async function startMailveil(opts: MailveilOptions): Promise<Mailveil> {
  const port = opts.listenPort ?? (await freePort());
  const metricsPort = opts.metricsPort ?? (await freePort());
  const adminPort = opts.adminPort ?? (await freePort());
  const ownStateDir = opts.stateDir === undefined;
  const stateDir = opts.stateDir ?? mkdtempSync(join(tmpdir(), 'mailveil-state-'));
  const rulesDir = opts.rulesDir ?? join(REPO_ROOT, 'rules.d');
  const captureLogs = opts.captureLogs ?? true;

  const args = [
    'serve',
    ...(opts.config ? ['--config', opts.config] : []),
    '--listen', `${LOOPBACK}:${port}`,
    '--next-hop', opts.nextHop,
    '--rules', rulesDir,
    '--state-dir', stateDir,
    '--metrics', `${LOOPBACK}:${metricsPort}`,
    '--admin', `${LOOPBACK}:${adminPort}`,
    '--log-level', opts.logLevel ?? 'info',
    ...(opts.extraArgs ?? []),
  ];
  const child = spawn(process.execPath, [BIN, ...args], {
    cwd: REPO_ROOT,
    env: { ...process.env, ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const removeDir = ownStateDir && process.env.MAILVEIL_TEST_KEEP !== '1';
  // On a crash: kill first, then remove the temp state dir.
  const unregisterExit = registerExitCleanup(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    if (removeDir) rmSync(stateDir, { recursive: true, force: true });
  });

  const logs: LogLine[] = [];
  const raw: string[] = [];
  let stderr = '';
  let stdoutTail = '';
  let lines = 0;
  let partial = '';
  let listeningSeen = false;
  let lastHwm: number | undefined;

  const isSmtpListening = (l: LogLine) => {
    if (l.msg !== 'listening') return false;
    // If the line names a port, it must be the SMTP one (metrics/admin may log "listening" too).
    const s = JSON.stringify(l);
    const other = s.includes(String(metricsPort)) || s.includes(String(adminPort));
    return !other || s.includes(String(port));
  };

  child.stdout!.setEncoding('utf8');
  child.stdout!.on('data', (d: string) => {
    const parts = (partial + d).split('\n');
    partial = parts.pop()!;
    for (const line of parts) {
      lines++;
      if (!captureLogs && listeningSeen) continue;
      stdoutTail = (stdoutTail + line + '\n').slice(-8192);
      let obj: LogLine | undefined;
      try { obj = JSON.parse(line) as LogLine; } catch { /* not JSON */ }
      if (obj && typeof obj === 'object') {
        if (captureLogs) logs.push(obj);
        if (!listeningSeen && isSmtpListening(obj)) listeningSeen = true;
      } else if (line.trim()) {
        raw.push(line);
      }
    }
  });
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (d: string) => { stderr = (stderr + d).slice(-64 * 1024); });

  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }));
  });
  let spawnError: Error | undefined;
  child.once('error', (e) => { spawnError = e; });

  const describe = () =>
    `command: node ${BIN} ${args.join(' ')}\n--- stderr ---\n${tail(stderr) || '(empty)'}\n--- stdout ---\n${tail(stdoutTail) || '(empty)'}`;

  const cleanupDir = () => {
    if (removeDir) rmSync(stateDir, { recursive: true, force: true });
    unregisterExit();
  };

  try {
    await waitFor(() => {
      if (spawnError) throw new Error(`could not spawn mailveil: ${spawnError.message}\n${describe()}`);
      if (child.exitCode !== null || child.signalCode !== null) {
        throw new Error(`mailveil exited before listening (code ${child.exitCode}, signal ${child.signalCode})\n${describe()}`);
      }
      return listeningSeen;
    }, { timeoutMs: opts.startTimeoutMs ?? 15_000, intervalMs: 25, what: `mailveil "listening" on ${LOOPBACK}:${port}`, describe });
  } catch (e) {
    await terminate(child, 'SIGKILL');
    cleanupDir();
    throw e;
  }

  let stopResult: Promise<number | null> | undefined;
  const mv: Mailveil = {
    port,
    listen: `${LOOPBACK}:${port}`,
    metricsPort,
    adminPort,
    stateDir,
    rulesDir,
    pid: child.pid!,
    child,
    args,
    logs: () => logs,
    rawLines: () => raw,
    stderr: () => stderr,
    lineCount: () => lines,
    async waitForLog(pred, what, timeoutMs = 10_000) {
      const test = pred instanceof RegExp ? (l: LogLine) => pred.test(JSON.stringify(l)) : pred;
      return waitFor(() => logs.find(test), {
        timeoutMs, intervalMs: 25, what: `mailveil log line: ${what ?? String(pred)}`, describe,
      });
    },
    peakRssKb: () => (child.exitCode === null && child.signalCode === null ? readVmHWM(child.pid!) ?? lastHwm : lastHwm),
    stop(signal = 'SIGTERM', timeoutMs = 15_000) {
      stopResult ??= (async () => {
        // /proc/<pid> disappears with the process: read the peak now.
        lastHwm = readVmHWM(child.pid!) ?? lastHwm;
        const r = await terminate(child, signal, timeoutMs);
        await exited;
        cleanupDir();
        if (r.forced) {
          throw new Error(`mailveil did not exit within ${timeoutMs} ms of ${signal}; SIGKILLed\n${describe()}`);
        }
        return r.code;
      })();
      return stopResult;
    },
    exited,
  };
  return mv;
}
