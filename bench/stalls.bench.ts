/*
 * Stall benchmark (issue 8, "the time to a 4xx for each stall case"): how
 * long a client waits for its 4xx when the next hop, or the client itself,
 * stops half-way, against the deadline configured for that wait.
 *
 * One real `bin/mailveil serve` with short deadlines (TIMEOUTS below) in
 * front of a scripted next hop (test/helpers/scripted-hop.ts). For each case
 * and each of N repetitions (BENCH_STALL_REPS, default 5):
 *  - the hop drops every connection it holds, so mailveil's pool is empty
 *    and every repetition starts on a fresh next-hop connection;
 *  - the hop is scripted to stall at one step (or the client stalls);
 *  - the time is taken from the client's last action (its MAIL, RCPT, final
 *    dot or DATA) to the reply it gets, and, for the next-hop stalls, also
 *    from the moment the stall began as the hop saw it (connection accepted,
 *    command read, 354 sent, dot read), which leaves out mailveil's own
 *    pass 1 and pass 2 work after the client's dot;
 *  - the invariants are checked: the hop committed nothing, no command from
 *    a message body reached it, mailveil's mailveil_messages_in_flight is
 *    back to 0, no spool file is left, no transaction is left open at the
 *    hop, and the hop saw no command out of order; the deadline that ran out
 *    is read from mailveil_deadlines_total{deadline}.
 * A case fails (ok=false) when a reply is not a 4xx, is not the documented
 * one, comes later than its deadline + 1 s (or not at all), when an
 * invariant breaks, or when the expected deadline counter did not move.
 * The port-closed case is expected at ~0 s, so its limit is 1 s.
 *
 * mailveil's peak RSS (VmHWM) is read before the SIGTERM at the end; it
 * must exit 0.
 */
import { writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { startMailveil, type Mailveil } from '../test/helpers/mailveil';
import { LOOPBACK, sleep } from '../test/helpers/ports';
import { ScriptedHop, foreignCommands, relaySettledProblems, type HopVerb } from '../test/helpers/scripted-hop';
import { SMUGGLED_LINES, messageWithCommands, openSession, writeAll, type ClientReply, type RawSmtp } from '../test/helpers/smtp-client';
import type { BenchModule } from './run';

const MiB = 1024 * 1024;
const SLACK_MS = 1000;
const FROM = 'sender@example.com';
const TO = 'rcpt@example.net';
const ADDRESSES = [FROM, TO];

/** Configured deadlines (units are mandatory). next_hop_connect differs from next_hop_command so case 1 shows which one governs the greeting. */
const TIMEOUTS = {
  next_hop_connect: '1s',
  next_hop_command: '2s',
  next_hop_write: '2s',
  next_hop_data: '3s',
  client_idle: '2s',
  client_min_data_rate: '500B',
  drain: '2s',
} as const;
type TimeoutKey = keyof typeof TIMEOUTS;
const ms = (k: TimeoutKey): number => {
  const m = /^(\d+)(ms|s)$/.exec(TIMEOUTS[k]);
  if (!m) throw new Error(`stalls bench: cannot read ${k}: ${TIMEOUTS[k]}`);
  return Number(m[1]) * (m[2] === 's' ? 1000 : 1);
};

interface Rep {
  /** Client's last action → reply, ms. */
  elapsedMs?: number;
  /** Stall start as the hop saw it → reply, ms. */
  hopElapsedMs?: number;
  code?: number;
  text?: string;
  /** mailveil_deadlines_total increments during the repetition, by label. */
  deadlines: Record<string, number>;
  problems: string[];
}

interface Ctx {
  mv: Mailveil;
  hop: ScriptedHop;
  big: Buffer;
}

interface StallCase {
  id: number;
  name: string;
  /** What the time is measured from. */
  from: string;
  /** The key whose value the measured time is compared with. */
  key: TimeoutKey;
  /** Expected time to the reply, ms (the deadline; 0 for a refused connection). */
  expectMs: number;
  /** The documented reply. */
  reply: RegExp;
  replyLabel: string;
  /** The mailveil_deadlines_total label that must count it (none for a refused connection). */
  deadline?: string;
  /** From the hop's view: which event starts the stall. */
  hopStart?: string;
  run(ctx: Ctx, rep: Rep): Promise<void>;
}

const now = () => performance.now();

/** Records the time of the first hop event `event` whose arguments `pred` accepts. */
function stamp(hop: ScriptedHop, event: string, pred: (...a: unknown[]) => boolean = () => true): { at?: number; off(): void } {
  const s: { at?: number; off(): void } = { off: () => hop.events.off(event, on) };
  const on = (...a: unknown[]) => {
    if (s.at === undefined && pred(...a)) s.at = now();
  };
  hop.events.on(event, on);
  return s;
}

const commandIs = (verb: string) => (_conn: unknown, line: unknown) => typeof line === 'string' && line.toUpperCase().startsWith(verb);

/** Waits for the reply to whatever the client just did; records it and the time since `t0`. */
async function awaitReply(c: RawSmtp, rep: Rep, t0: number, boundMs: number, hopAt?: number | (() => number | undefined)): Promise<ClientReply | undefined> {
  let r: ClientReply | undefined;
  try {
    r = await c.reply(boundMs);
  } catch {
    rep.problems.push(`no reply within ${boundMs} ms: a hang`);
    return undefined;
  }
  const t = now();
  if (r.code === 0) {
    rep.problems.push(`the connection closed without a reply after ${Math.round(t - t0)} ms`);
    return undefined;
  }
  rep.elapsedMs = t - t0;
  const h = typeof hopAt === 'function' ? hopAt() : hopAt;
  if (h !== undefined) rep.hopElapsedMs = t - h;
  rep.code = r.code;
  rep.text = r.text;
  return r;
}

async function mail(c: RawSmtp, rep: Rep): Promise<boolean> {
  const r = await c.cmd(`MAIL FROM:<${FROM}>`);
  if (r.code !== 250) rep.problems.push(`MAIL was refused before the stall: ${r.code} ${r.text}`);
  return r.code === 250;
}

async function upToData(c: RawSmtp, rep: Rep): Promise<boolean> {
  if (!(await mail(c, rep))) return false;
  const r = await c.cmd(`RCPT TO:<${TO}>`);
  if (r.code !== 250) {
    rep.problems.push(`RCPT was refused before the stall: ${r.code} ${r.text}`);
    return false;
  }
  const d = await c.cmd('DATA');
  if (d.code !== 354) rep.problems.push(`DATA got ${d.code} ${d.text}, not 354`);
  return d.code === 354;
}

/** Cases where the next hop stalls at one command: script it, do `act` (the client's last action), time the reply. */
function hopCommandStall(verb: HopVerb, hopEvent: string, hopPred: ((...a: unknown[]) => boolean) | undefined, before: (c: RawSmtp, rep: Rep) => Promise<boolean>, act: (c: RawSmtp) => Promise<void>, boundMs: number) {
  return async (ctx: Ctx, rep: Rep): Promise<void> => {
    ctx.hop.script(verb, { stall: true });
    const c = await openSession(ctx.mv.port);
    const mark = stamp(ctx.hop, hopEvent, hopPred);
    try {
      if (!(await before(c, rep))) return;
      const t0 = now();
      await act(c);
      await awaitReply(c, rep, t0, boundMs, () => mark.at);
    } finally {
      mark.off();
      bye(c);
    }
  };
}

function bye(c: RawSmtp): void {
  if (!c.closed) c.socket.end('QUIT\r\n');
  setTimeout(() => c.close(), 500).unref();
}

const small = messageWithCommands('stall-small', 4096).message;

function cases(): StallCase[] {
  const bound = (k: TimeoutKey) => ms(k) + 15_000;
  return [
    {
      id: 1, name: 'next hop accepts, never greets', from: 'MAIL', key: 'next_hop_command', expectMs: ms('next_hop_command'),
      reply: /^451 4\.4\.\d /, replyLabel: '451 4.4.x', deadline: 'next_hop_command', hopStart: 'connection accepted',
      run: hopCommandStall('CONNECT', 'connection', undefined, async () => true, async (c) => void c.socket.write(`MAIL FROM:<${FROM}>\r\n`), bound('next_hop_command')),
    },
    {
      id: 2, name: 'next hop never answers MAIL', from: 'MAIL', key: 'next_hop_command', expectMs: ms('next_hop_command'),
      reply: /^451 4\.4\.2 /, replyLabel: '451 4.4.2', deadline: 'next_hop_command', hopStart: 'MAIL read',
      run: hopCommandStall('MAIL', 'command', commandIs('MAIL'), async () => true, async (c) => void c.socket.write(`MAIL FROM:<${FROM}>\r\n`), bound('next_hop_command')),
    },
    {
      id: 3, name: 'next hop never answers RCPT', from: 'RCPT', key: 'next_hop_command', expectMs: ms('next_hop_command'),
      reply: /^451 4\.4\.2 /, replyLabel: '451 4.4.2', deadline: 'next_hop_command', hopStart: 'RCPT read',
      run: hopCommandStall('RCPT', 'command', commandIs('RCPT'), mail, async (c) => void c.socket.write(`RCPT TO:<${TO}>\r\n`), bound('next_hop_command')),
    },
    {
      id: 4, name: 'next hop never answers DATA (no 354)', from: 'dot', key: 'next_hop_command', expectMs: ms('next_hop_command'),
      reply: /^451 4\.4\.2 /, replyLabel: '451 4.4.2', deadline: 'next_hop_command', hopStart: 'DATA read',
      run: hopCommandStall('DATA', 'command', commandIs('DATA'), upToData, async (c) => {
        await writeAll(c, small);
        await writeAll(c, '.\r\n');
      }, bound('next_hop_command')),
    },
    {
      id: 5, name: 'next hop stops reading the body (20 MiB)', from: 'dot', key: 'next_hop_write', expectMs: ms('next_hop_write'),
      reply: /^451 4\.4\.2 /, replyLabel: '451 4.4.2', deadline: 'next_hop_write', hopStart: '354 sent, reading paused',
      async run(ctx, rep) {
        ctx.hop.script('DATA', { pauseReadingAfter: 0 });
        const c = await openSession(ctx.mv.port);
        const mark = stamp(ctx.hop, 'data');
        try {
          if (!(await upToData(c, rep))) return;
          const sent = await writeAll(c, ctx.big, 120_000);
          if (sent !== ctx.big.length) rep.problems.push(`mailveil took only ${sent} of ${ctx.big.length} message bytes`);
          await writeAll(c, '.\r\n');
          const t0 = now();
          await awaitReply(c, rep, t0, bound('next_hop_write'), () => mark.at);
        } finally {
          mark.off();
          ctx.hop.resumeAll();
          bye(c);
        }
      },
    },
    {
      id: 6, name: 'next hop never answers the final dot', from: 'dot', key: 'next_hop_data', expectMs: ms('next_hop_data'),
      reply: /^451 4\.4\.2 /, replyLabel: '451 4.4.2', deadline: 'next_hop_data', hopStart: 'dot read',
      run: hopCommandStall('.', 'dot', undefined, upToData, async (c) => {
        await writeAll(c, small);
        await writeAll(c, '.\r\n');
      }, bound('next_hop_data')),
    },
    {
      id: 7, name: 'client trickles DATA at 1 byte/s', from: 'DATA', key: 'client_idle', expectMs: ms('client_idle'),
      reply: /^421 4\.4\.2 /, replyLabel: '421 4.4.2', deadline: 'client_data_rate',
      async run(ctx, rep) {
        const c = await openSession(ctx.mv.port);
        try {
          if (!(await mail(c, rep))) return;
          const r = await c.cmd(`RCPT TO:<${TO}>`);
          if (r.code !== 250) return void rep.problems.push(`RCPT refused: ${r.code} ${r.text}`);
          const t0 = now();
          const d = await c.cmd('DATA');
          if (d.code !== 354) return void rep.problems.push(`DATA got ${d.code} ${d.text}`);
          const text = 'Subject: trickle\r\n\r\n' + 'x'.repeat(100);
          const boundMs = bound('client_idle');
          let done = false;
          const got = awaitReply(c, rep, t0, boundMs).finally(() => (done = true));
          for (let i = 0; i < text.length && !done && !c.closed && now() - t0 < boundMs; i++) {
            c.socket.write(text[i]);
            await Promise.race([sleep(1000), got]);
          }
          await got;
        } finally {
          bye(c);
        }
      },
    },
    {
      id: 8, name: 'client silent in DATA', from: 'DATA', key: 'client_idle', expectMs: ms('client_idle'),
      reply: /^421 /, replyLabel: '421', deadline: 'client_idle',
      async run(ctx, rep) {
        const c = await openSession(ctx.mv.port);
        try {
          if (!(await mail(c, rep))) return;
          const r = await c.cmd(`RCPT TO:<${TO}>`);
          if (r.code !== 250) return void rep.problems.push(`RCPT refused: ${r.code} ${r.text}`);
          const t0 = now();
          const d = await c.cmd('DATA');
          if (d.code !== 354) return void rep.problems.push(`DATA got ${d.code} ${d.text}`);
          await awaitReply(c, rep, t0, bound('client_idle'));
        } finally {
          bye(c);
        }
      },
    },
    {
      id: 9, name: 'next hop port closed', from: 'MAIL', key: 'next_hop_connect', expectMs: 0,
      reply: /^451 4\.4\.1 /, replyLabel: '451 4.4.1',
      async run(ctx, rep) {
        const c = await openSession(ctx.mv.port);
        try {
          const t0 = now();
          c.socket.write(`MAIL FROM:<${FROM}>\r\n`);
          await awaitReply(c, rep, t0, bound('next_hop_connect'));
        } finally {
          bye(c);
        }
      },
    },
  ];
}

/** Every mailveil_deadlines_total sample, by its `deadline` label. */
async function deadlineCounts(port: number): Promise<Record<string, number>> {
  const res = await fetch(`http://${LOOPBACK}:${port}/metrics`, { signal: AbortSignal.timeout(3000) });
  const out: Record<string, number> = {};
  for (const line of (await res.text()).split('\n')) {
    const m = /^mailveil_deadlines_total\{[^}]*deadline="([^"]+)"[^}]*\}\s+(\S+)/.exec(line);
    if (m) out[m[1]] = (out[m[1]] ?? 0) + Number(m[2]);
  }
  return out;
}

function diff(a: Record<string, number>, b: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const k of new Set([...Object.keys(a), ...Object.keys(b)])) {
    const d = (b[k] ?? 0) - (a[k] ?? 0);
    if (d) out[k] = d;
  }
  return out;
}

const median = (xs: number[]) => {
  if (!xs.length) return undefined;
  const s = [...xs].sort((x, y) => x - y);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const max = (xs: number[]) => (xs.length ? Math.max(...xs) : undefined);
const sec = (v: number | undefined, digits = 3) => (v === undefined ? '–' : (v / 1000).toFixed(digits));
const ratio = (v: number | undefined, d: number) => (v === undefined ? '–' : (v / d).toFixed(2));

interface CaseResult {
  id: number;
  name: string;
  from: string;
  key: TimeoutKey;
  configured: string;
  configuredMs: number;
  expectMs: number;
  limitMs: number;
  expectedReply: string;
  expectedDeadline?: string;
  hopStart?: string;
  reps: Rep[];
  medianMs?: number;
  maxMs?: number;
  hopMedianMs?: number;
  hopMaxMs?: number;
  ok: boolean;
  problems: string[];
}

async function runCase(k: StallCase, ctx: Ctx, reps: number): Promise<CaseResult> {
  const out: Rep[] = [];
  const limitMs = k.expectMs + SLACK_MS;
  for (let i = 0; i < reps; i++) {
    const { hop, mv } = ctx;
    // A fresh next-hop connection each time: the hop drops whatever mailveil has pooled.
    hop.clearScript();
    for (const c of hop.connections) if (!c.closed) c.close();
    await sleep(150);
    const committedBefore = hop.committed().length;
    const before = await deadlineCounts(mv.metricsPort);
    const rep: Rep = { deadlines: {}, problems: [] };
    try {
      await k.run(ctx, rep);
    } catch (e) {
      rep.problems.push(`repetition failed: ${(e as Error).message}`);
    }
    hop.clearScript();
    hop.resumeAll();
    rep.problems.push(...(await relaySettledProblems(mv, hop, 10_000)));
    const committed = hop.committed().length - committedBefore;
    if (committed) rep.problems.push(`the hop committed ${committed} message(s)`);
    rep.deadlines = diff(before, await deadlineCounts(mv.metricsPort));
    if (rep.code !== undefined) {
      const line = `${rep.code} ${rep.text ?? ''}`;
      if (rep.code < 400 || rep.code >= 500) rep.problems.push(`reply is not a 4xx: ${line}`);
      else if (!k.reply.test(line)) rep.problems.push(`reply ${JSON.stringify(line)} is not the documented ${k.replyLabel}`);
    }
    if (rep.elapsedMs !== undefined && rep.elapsedMs > limitMs) rep.problems.push(`reply after ${Math.round(rep.elapsedMs)} ms, limit ${limitMs} ms`);
    if (k.deadline && !rep.deadlines[k.deadline]) rep.problems.push(`mailveil_deadlines_total{deadline="${k.deadline}"} did not count it (moved: ${JSON.stringify(rep.deadlines)})`);
    out.push(rep);
    process.stderr.write(
      `stalls: case ${k.id} rep ${i + 1}/${reps}: ${rep.code ?? '-'} ${rep.text ?? ''} after ${sec(rep.elapsedMs)} s` +
        `${rep.hopElapsedMs !== undefined ? ` (hop-side ${sec(rep.hopElapsedMs)} s)` : ''} deadlines ${JSON.stringify(rep.deadlines)}` +
        `${rep.problems.length ? ' PROBLEMS: ' + rep.problems.join('; ') : ''}\n`,
    );
  }
  const times = out.map((r) => r.elapsedMs).filter((x): x is number => x !== undefined);
  const hopTimes = out.map((r) => r.hopElapsedMs).filter((x): x is number => x !== undefined);
  const problems = out.flatMap((r, i) => r.problems.map((p) => `rep ${i + 1}: ${p}`));
  return {
    id: k.id,
    name: k.name,
    from: k.from,
    key: k.key,
    configured: TIMEOUTS[k.key],
    configuredMs: ms(k.key),
    expectMs: k.expectMs,
    limitMs,
    expectedReply: k.replyLabel,
    expectedDeadline: k.deadline,
    hopStart: k.hopStart,
    reps: out,
    medianMs: median(times),
    maxMs: max(times),
    hopMedianMs: median(hopTimes),
    hopMaxMs: max(hopTimes),
    ok: problems.length === 0 && times.length === reps,
    problems,
  };
}

function table(results: CaseResult[]): string {
  const head =
    '| # | stall | timed from | reply (first rep) | deadline | median s | max s | median / deadline | max / deadline | from hop-side stall start, median s | deadline counted | status |';
  const sep = '|---:|---|---|---|---|---:|---:|---:|---:|---:|---|---|';
  const rows = results.map((r) => {
    const first = r.reps.find((x) => x.code !== undefined);
    const counted = [...new Set(r.reps.flatMap((x) => Object.keys(x.deadlines)))].join(', ') || '–';
    const hop = r.hopMedianMs !== undefined ? `${sec(r.hopMedianMs)} (${r.hopStart})` : '–';
    return `| ${r.id} | ${r.name} | ${r.from} | ${first ? `${first.code} ${(first.text ?? '').split('\n')[0]}` : '–'} | ${r.key} ${r.configured} | ${sec(r.medianMs)} | ${sec(r.maxMs)} | ${ratio(r.medianMs, r.configuredMs)} | ${ratio(r.maxMs, r.configuredMs)} | ${hop} | ${counted} | ${
      r.ok ? 'ok' : 'FAIL: ' + r.problems.slice(0, 3).join('; ').replace(/\|/g, '/')
    } |`;
  });
  return [head, sep, ...rows].join('\n');
}

async function runStalls(): Promise<{ markdown: string; json: unknown; ok: boolean }> {
  const reps = Math.max(1, Number(process.env.BENCH_STALL_REPS) || 5);
  const dir = mkdtempSync(join(tmpdir(), 'mv-bench-stalls-'));
  const config = join(dir, 'mailveil.yaml');
  writeFileSync(config, JSON.stringify({ timeouts: TIMEOUTS }) + '\n');
  const hop = await ScriptedHop.start();
  let mv: Mailveil | undefined;
  const results: CaseResult[] = [];
  let peakRssKb: number | undefined;
  let exitCode: number | null | undefined;
  let stopError: string | undefined;
  const started = Date.now();
  try {
    mv = await startMailveil({ nextHop: hop.address, config });
    const big = messageWithCommands('stall-write', 20 * MiB).message;
    const ctx: Ctx = { mv, hop, big };
    const all = cases();
    for (const k of all) {
      // The last case needs the next hop gone: nothing listens on its port any more.
      if (k.id === 9) await hop.stop();
      process.stderr.write(`stalls: case ${k.id}: ${k.name}\n`);
      results.push(await runCase(k, ctx, reps));
    }
    const foreign = foreignCommands(hop, { forbidden: SMUGGLED_LINES, addresses: ADDRESSES });
    if (foreign.length) {
      const last = results[results.length - 1];
      last.problems.push(`commands from a body reached the next hop: ${JSON.stringify(foreign)}`);
      last.ok = false;
    }
    peakRssKb = mv.peakRssKb();
  } finally {
    if (mv) {
      try {
        exitCode = await mv.stop('SIGTERM', 20_000);
      } catch (e) {
        stopError = (e as Error).message.split('\n')[0];
      }
    }
    await hop.stop().catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  }
  const exitOk = exitCode === 0 && !stopError;
  const ok = results.length === 9 && results.every((r) => r.ok) && exitOk;
  const markdown =
    table(results) +
    `\n\nConfigured: ${Object.entries(TIMEOUTS).map(([k, v]) => `${k} ${v}`).join(', ')}. N = ${reps} per case; a case fails when a reply is not the documented 4xx or comes later than deadline + ${SLACK_MS / 1000} s ` +
    `(case 9: 0 + ${SLACK_MS / 1000} s), or an invariant breaks.\n` +
    `mailveil peak RSS (VmHWM) over the run: ${peakRssKb !== undefined ? (peakRssKb / 1024).toFixed(1) + ' MiB' : '–'}; exit on SIGTERM: ${stopError ?? String(exitCode)}; wall ${((Date.now() - started) / 1000).toFixed(0)} s.\n` +
    results.filter((r) => !r.ok).map((r) => `\nCase ${r.id} problems:\n${r.problems.map((p) => '- ' + p).join('\n')}`).join('\n');
  return {
    markdown,
    ok,
    json: {
      params: { reps, timeouts: TIMEOUTS, slackMs: SLACK_MS, bigMessageBytes: 20 * MiB },
      mailveilPeakRssKb: peakRssKb,
      mailveilExitCode: exitCode,
      stopError,
      results,
    },
  };
}

export const bench: BenchModule = { name: 'stalls', run: runStalls };
