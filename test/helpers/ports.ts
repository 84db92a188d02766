/*
 * Loopback ports and child-process plumbing for system tests and benchmarks.
 *
 * Every listener a test starts (smtp-sink, Postfix, mailveil) gets a port
 * chosen at run time, so test files can run in parallel and never collide
 * with a real MTA on 25/10025/10026. Everything here talks to 127.0.0.1
 * only: the test machines have no other network.
 *
 * The same file keeps the last-resort cleanup registry: a crashed or
 * timed-out test must not leave smtp-sink, mailveil or a Postfix master
 * holding ports on the machine, so every harness piece registers a
 * synchronous "kill it" callback that runs on exit and on SIGINT/SIGTERM.
 */
import { createServer, connect, Socket } from 'node:net';
import type { ChildProcess } from 'node:child_process';

export const LOOPBACK = '127.0.0.1';

/**
 * Ask the kernel for a free TCP port on 127.0.0.1. There is an unavoidable
 * window between close() and the caller binding it again; the kernel hands
 * out ephemeral ports round-robin, so a collision between parallel test
 * files is unlikely, and the caller's bind would fail loudly if it happened.
 * Within this process a port is never handed out twice, because tests often
 * reserve a port (say, for mailveil) before starting what listens on it.
 */
export async function freePort(): Promise<number> {
  for (let i = 0; i < 50; i++) {
    const port = await kernelPort();
    if (!handedOut.has(port)) {
      handedOut.add(port);
      return port;
    }
  }
  throw new Error('freePort: the kernel keeps returning ports already handed out');
}

const handedOut = new Set<number>();

function kernelPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen(0, LOOPBACK, () => {
      const addr = srv.address();
      if (addr === null || typeof addr === 'string') {
        srv.close();
        reject(new Error('freePort: unexpected server address ' + String(addr)));
        return;
      }
      const port = addr.port;
      srv.close((err) => (err ? reject(err) : resolve(port)));
    });
  });
}

/** Several distinct free ports (distinct within this call). */
export async function freePorts(n: number): Promise<number[]> {
  const out = new Set<number>();
  // Bounded: the kernel would have to hand back duplicates 10*n times.
  for (let i = 0; out.size < n && i < n * 10; i++) out.add(await freePort());
  if (out.size < n) throw new Error(`freePorts: could not find ${n} distinct ports`);
  return [...out];
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * Connect once, read the first reply line and say QUIT. Resolves with the
 * greeting (e.g. "220 mx.test.example ESMTP"), rejects on refusal/timeout.
 */
export function readBanner(port: number, host = LOOPBACK, timeoutMs = 2000): Promise<string> {
  return new Promise((resolve, reject) => {
    let buf = '';
    let done = false;
    const sock: Socket = connect({ port, host });
    const finish = (err: Error | null, line?: string) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      // Say goodbye politely so the server does not log a lost connection,
      // but never wait for its 221.
      if (err) sock.destroy();
      else {
        sock.end('QUIT\r\n');
        setTimeout(() => sock.destroy(), 200).unref();
      }
      err ? reject(err) : resolve(line!);
    };
    const timer = setTimeout(() => finish(new Error(`no SMTP banner from ${host}:${port} within ${timeoutMs} ms`)), timeoutMs);
    sock.setEncoding('latin1');
    sock.on('data', (d: string) => {
      buf += d;
      const i = buf.indexOf('\n');
      if (i >= 0) finish(null, buf.slice(0, i).replace(/\r$/, ''));
    });
    sock.on('error', (e) => finish(e));
    sock.on('close', () => finish(new Error(`connection to ${host}:${port} closed before a banner`)));
  });
}

/**
 * Poll until something on host:port greets with an SMTP 220 banner.
 * Used instead of "the port accepts connections" because a listener may
 * accept before it can serve (smtp-server delays its greeting, Postfix's
 * master hands off to smtpd).
 */
export async function waitForSmtpBanner(port: number, timeoutMs = 10_000, host = LOOPBACK): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const line = await readBanner(port, host, Math.min(2000, Math.max(100, deadline - Date.now())));
      if (line.startsWith('220')) return line;
      last = new Error('unexpected banner: ' + line);
    } catch (e) {
      last = e;
    }
    await sleep(50);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for SMTP on ${host}:${port}: ${String((last as Error)?.message ?? last)}`);
}

/** True if nothing accepts connections on host:port right now. */
export function isPortClosed(port: number, host = LOOPBACK, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect({ port, host });
    const t = setTimeout(() => { sock.destroy(); resolve(false); }, timeoutMs);
    sock.once('connect', () => { clearTimeout(t); sock.destroy(); resolve(false); });
    sock.once('error', () => { clearTimeout(t); resolve(true); });
  });
}

/** True once something accepts TCP connections on host:port. */
export function canConnect(port: number, host = LOOPBACK, timeoutMs = 1000): Promise<boolean> {
  return isPortClosed(port, host, timeoutMs).then((closed) => !closed);
}

/**
 * Poll `probe` until it returns a truthy value or the deadline passes.
 * `describe` is called on timeout to put useful state (logs, counters)
 * into the error, because "timed out" alone never explains a failure.
 */
export async function waitFor<T>(
  probe: () => T | undefined | null | false | Promise<T | undefined | null | false>,
  opts: { timeoutMs: number; intervalMs?: number; what: string; describe?: () => string },
): Promise<T> {
  const deadline = Date.now() + opts.timeoutMs;
  for (;;) {
    const v = await probe();
    if (v) return v;
    if (Date.now() >= deadline) {
      const extra = opts.describe ? '\n' + opts.describe() : '';
      throw new Error(`timed out after ${opts.timeoutMs} ms waiting for ${opts.what}${extra}`);
    }
    await sleep(opts.intervalMs ?? 50);
  }
}

/** Resolve with the exit code/signal, or undefined if it did not exit in time. */
export function waitForExit(child: ChildProcess, timeoutMs: number): Promise<{ code: number | null; signal: NodeJS.Signals | null } | undefined> {
  if (child.exitCode !== null || child.signalCode !== null) {
    return Promise.resolve({ code: child.exitCode, signal: child.signalCode });
  }
  return new Promise((resolve) => {
    const t = setTimeout(() => { child.off('exit', onExit); resolve(undefined); }, timeoutMs);
    const onExit = (code: number | null, signal: NodeJS.Signals | null) => { clearTimeout(t); resolve({ code, signal }); };
    child.once('exit', onExit);
  });
}

/**
 * Signal a child and wait for it; escalate to SIGKILL after graceMs.
 * Returns what the child reported on its own (before any SIGKILL), or
 * the SIGKILL result when it had to be forced.
 */
export async function terminate(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM', graceMs = 5000) {
  if (child.exitCode !== null || child.signalCode !== null) return { code: child.exitCode, signal: child.signalCode, forced: false };
  child.kill(signal);
  const r = await waitForExit(child, graceMs);
  if (r) return { ...r, forced: false };
  child.kill('SIGKILL');
  const k = await waitForExit(child, 5000);
  return { code: k?.code ?? null, signal: k?.signal ?? 'SIGKILL', forced: true };
}

// ---- last-resort cleanup -------------------------------------------------

const exitCleanups = new Map<number, () => void>();
let nextCleanupId = 1;
let hooksInstalled = false;

function runExitCleanups() {
  for (const [id, fn] of [...exitCleanups].reverse()) {
    exitCleanups.delete(id);
    try { fn(); } catch { /* best effort: we are going down anyway */ }
  }
}

/**
 * Register a synchronous cleanup for abnormal exits. Returns a function
 * that unregisters it; call that once the resource was released normally.
 */
export function registerExitCleanup(fn: () => void): () => void {
  if (!hooksInstalled) {
    hooksInstalled = true;
    process.once('exit', runExitCleanups);
    for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
      process.once(sig, () => {
        runExitCleanups();
        // Re-raise the default behaviour: die with the conventional status.
        process.exit(128 + (sig === 'SIGINT' ? 2 : sig === 'SIGTERM' ? 15 : 1));
      });
    }
  }
  const id = nextCleanupId++;
  exitCleanups.set(id, fn);
  return () => { exitCleanups.delete(id); };
}

/** registerExitCleanup for a child process: SIGKILL it if we die first. */
export function killOnExit(child: ChildProcess): () => void {
  const un = registerExitCleanup(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  child.once('exit', un);
  return un;
}
