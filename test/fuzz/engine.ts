/*
 * The fuzzing loop. Sessions run `concurrency` at a time (smtp-server waits
 * 100 ms before its greeting, so throughput comes from overlap); every
 * `barrierEvery` iterations no new session starts until all are done, and
 * the batch is settled: mailveil must come to rest (connections and
 * in-flight gauges 0, no spool file, no open next-hop transaction, every log
 * line in) within `quiesceMs`, then the whole-batch checks run and the batch
 * is forgotten, so a run of a million iterations keeps constant memory.
 *
 * Session i draws only from derive(seed, i): `--seed S --only i` replays it
 * alone. A fault that needs an earlier session (a pooled connection left out
 * of step) replays with `--seed S --start K --iterations N` over a window.
 */
import { FuzzClient } from './client';
import { FuzzHop } from './hop';
import { Ledger } from './invariants';
import { newSession, type ScenarioLimits } from './scenario';
import { FUZZ_LIMITS, startTarget, type Mode, type Target } from './target';
import { iterationOfToken, sessionOfToken, type SessionOutcome, type TxPlan, type Violation } from './model';

export interface FuzzOptions {
  seed: number;
  iterations: number;
  /** First iteration number (for replaying a window). */
  start?: number;
  /** Run only these iterations. */
  only?: number[];
  /** Run the selected iterations this many times over (a replay of a race that does not happen every time). */
  repeat?: number;
  concurrency?: number;
  mode?: Mode;
  barrierEvery?: number;
  replyDeadlineMs?: number;
  quiesceMs?: number;
  /** Examples kept per violation kind. */
  examples?: number;
  /** Stop starting sessions once this many violations were seen (0: never). */
  stopAfter?: number;
  progress?: (line: string) => void;
  progressEveryMs?: number;
  /** Print every session's trace (client side, then the next-hop connections of its transactions) as it ends. */
  traceAll?: boolean;
}

export interface KindCount {
  inv: Violation['inv'];
  kind: string;
  count: number;
  examples: Violation[];
}

export interface FuzzStats {
  sessions: number;
  transactions: number;
  dataSent: number;
  delivered: number;
  quarantined: number;
  refused4xx: number;
  refused5xx: number;
  noFinalReply: number;
  commits: number;
  clientCuts: number;
  serverCloses: number;
  hangs: number;
  logLines: number;
  barriers: number;
}

export interface FuzzReport {
  seed: number;
  start: number;
  iterations: number;
  concurrency: number;
  mode: Mode;
  elapsedMs: number;
  perSecond: number;
  total: number;
  kinds: KindCount[];
  stats: FuzzStats;
  inFlightMetric: boolean;
  errorLines: string[];
}

const TRACE_LRU = 3000;
/** A batch is at rest only once no next-hop connection has seen traffic for this long. */
const HOP_QUIET_MS = 400;

export async function runFuzz(o: FuzzOptions): Promise<FuzzReport> {
  const seed = o.seed >>> 0;
  const start = o.start ?? 0;
  const concurrency = o.concurrency ?? 64;
  const mode = o.mode ?? 'spawn';
  const barrierEvery = o.barrierEvery ?? 5000;
  const replyDeadlineMs = o.replyDeadlineMs ?? 15_000;
  const quiesceMs = o.quiesceMs ?? 12_000;
  const maxExamples = o.examples ?? 3;
  const lim: ScenarioLimits = { maxMessageSize: FUZZ_LIMITS.maxMessageSize, commandDeadlineMs: FUZZ_LIMITS.commandDeadlineMs, dataDeadlineMs: FUZZ_LIMITS.dataDeadlineMs };
  const progress = o.progress ?? (() => undefined);

  const kinds = new Map<string, KindCount>();
  let total = 0;
  const sessionTraces = new Map<string, string[]>();
  const stats: FuzzStats = {
    sessions: 0, transactions: 0, dataSent: 0, delivered: 0, quarantined: 0, refused4xx: 0, refused5xx: 0,
    noFinalReply: 0, commits: 0, clientCuts: 0, serverCloses: 0, hangs: 0, logLines: 0, barriers: 0,
  };
  const errorLines: string[] = [];

  let hop: FuzzHop | undefined;
  let ledger: Ledger | undefined;
  const report = (v: Violation) => {
    total++;
    const key = `${v.inv}:${v.kind}`;
    let k = kinds.get(key);
    if (!k) {
      kinds.set(key, (k = { inv: v.inv, kind: v.kind, count: 0, examples: [] }));
      // A long run says what it found as it finds it.
      const it = v.iteration ?? (v.token ? iterationOfToken(v.token) : undefined);
      progress(`fuzz: first [inv ${v.inv}] ${v.kind}${it !== undefined ? ` at iteration ${it}` : ''}: ${v.detail.slice(0, 300)}`);
    }
    k.count++;
    if (k.examples.length < maxExamples) {
      if (v.token) {
        v.iteration ??= iterationOfToken(v.token);
        v.session ??= sessionOfToken(v.token);
      }
      const trace = [...(v.trace ?? [])];
      if (v.token && hop) for (const l of hop.tracesFor(v.token)) if (!trace.includes(l)) trace.push(l);
      v.trace = trace;
      k.examples.push(v);
    }
  };

  hop = new FuzzHop(seed, {
    plan: (t) => ledger?.plan(t)?.hop,
    expected: (t, line) => ledger?.expected(t, line),
    violation: report,
    commit: (c) => {
      stats.commits++;
      ledger?.commit(c);
    },
  });
  await hop.start();
  let target: Target;
  try {
    target = await startTarget(mode, hop.port);
  } catch (err) {
    await hop.close();
    throw err;
  }
  ledger = new Ledger(report, (a) => target.pseudonym(a));
  const inFlightMetric = (await target.metric('mailveil_messages_in_flight')) !== undefined;

  const t0 = Date.now();
  let done = 0;
  /** Set when mailveil is gone: no session is started after that. */
  let dead = false;
  const checkAlive = (): boolean => {
    const why = target.exited();
    if (why && !dead) {
      dead = true;
      report({ inv: '3', kind: 'mailveil-exited', detail: why });
    }
    return !dead;
  };
  const metric = async (name: string): Promise<number | undefined> => {
    try {
      return await target.metric(name);
    } catch (err) {
      if (checkAlive()) report({ inv: '3', kind: 'metrics-unreachable', detail: `GET /metrics failed: ${(err as Error).message}` });
      return undefined;
    }
  };
  let lastProgress = t0;
  const active = new Set<Promise<void>>();

  const drainLogs = () => {
    for (const l of target.takeMessageLogs()) {
      stats.logLines++;
      ledger!.logLine(l.from, l.reply, l.verdict);
    }
    for (const e of target.takeErrors()) if (errorLines.length < 50) errorLines.push(e);
  };

  const runSession = async (i: number, seq: number, rep: number): Promise<void> => {
    const plan = newSession(seed, i, lim, seq, rep);
    const label = rep ? `t${i}r${rep}` : `t${i}`;
    for (const s of plan.steps) if (s.t === 'tx') ledger!.add(s.tx);
    const client = new FuzzClient(plan, {
      port: target.port,
      replyDeadlineMs,
      slowCutMs: FUZZ_LIMITS.clientIdleMs * 3,
      trace: true,
      onTx: (tx: TxPlan, out) => {
        stats.transactions++;
        if (out.dataSent) stats.dataSent++;
        const f = out.final;
        if (f) {
          if (f.code === 250) /held in quarantine/.test(f.text) ? stats.quarantined++ : stats.delivered++;
          else if (f.code >= 500) stats.refused5xx++;
          else stats.refused4xx++;
        } else if (out.dotSent) stats.noFinalReply++;
        ledger!.clientDone(tx, out);
      },
    });
    let outcome: SessionOutcome;
    try {
      outcome = await client.run();
    } catch (err) {
      report({ inv: 'P', kind: 'fuzz-client-crashed', iteration: i, session: label, detail: (err as Error).stack ?? String(err) });
      return;
    }
    stats.sessions++;
    if (outcome.end === 'client') stats.clientCuts++;
    else if (outcome.end === 'server') stats.serverCloses++;
    sessionTraces.set(label, outcome.trace);
    if (o.traceAll) traced.push({ label, trace: outcome.trace, tokens: plan.steps.flatMap((s) => (s.t === 'tx' ? [s.tx.token] : [])) });
    if (sessionTraces.size > TRACE_LRU) sessionTraces.delete(sessionTraces.keys().next().value!);
    if (outcome.hang) {
      stats.hangs++;
      report({ inv: '3', kind: 'no-reply-within-deadline', iteration: i, session: label, detail: outcome.hang, trace: outcome.trace });
    }
    if ((outcome.refused || outcome.noGreeting) && checkAlive()) {
      report({
        inv: '3',
        kind: outcome.refused ? 'connection-refused' : 'closed-without-a-greeting',
        iteration: i,
        session: label,
        detail: outcome.refused ? 'mailveil refused the connection while it was running' : 'mailveil closed the connection without a greeting, a 421 or a 554',
        trace: outcome.trace,
      });
    }
    for (const c of outcome.controlAccepted ?? []) report({ inv: 'P', kind: 'envelope-control-character-accepted', iteration: i, session: label, detail: c, trace: outcome.trace });
    if (outcome.slowNotCut) report({ inv: '3', kind: 'slow-client-not-cut-off', iteration: i, session: label, detail: outcome.slowNotCut, trace: outcome.trace });
  };

  const traced: { label: string; trace: string[]; tokens: string[] }[] = [];
  const settle = async (upTo: number) => {
    stats.barriers++;
    const until = Date.now() + quiesceMs;
    let state: Record<string, unknown> = {};
    for (;;) {
      drainLogs();
      if (!checkAlive()) return;
      const connections = await metric('mailveil_connections');
      const inFlight = inFlightMetric ? await metric('mailveil_messages_in_flight') : 0;
      const spool = target.spoolFiles();
      const open = hop!.openTransactions();
      const busy = hop!.busy(HOP_QUIET_MS);
      const missing = ledger!.missingLogLines(upTo);
      state = { connections, inFlight, spool: spool.length, openHopTransactions: open.length, busyHopConnections: busy.length, missingLogLines: missing };
      if (connections === 0 && inFlight === 0 && !spool.length && !open.length && !busy.length && !missing) break;
      if (Date.now() > until) {
        const why = `after ${quiesceMs} ms at rest: ${JSON.stringify(state)}`;
        if (connections) report({ inv: '3', kind: 'connections-gauge-not-zero', detail: `mailveil_connections = ${connections} ${why}` });
        if (inFlight) report({ inv: '3', kind: 'messages-in-flight-not-zero', detail: `mailveil_messages_in_flight = ${inFlight} ${why}` });
        if (spool.length) report({ inv: '3', kind: 'spool-file-left', detail: `${spool.length} spool file(s) left: ${spool.slice(0, 3).join(', ')} ${why}` });
        for (const t of open.slice(0, 50)) {
          report({ inv: '3', kind: 'next-hop-transaction-left-open', token: t.token, detail: `hop connection ${t.id} still in state ${t.state} for ${t.token ?? '?'} (idle ${t.idleMs} ms) ${why}`, trace: t.trace });
        }
        for (const b of busy.filter((x) => x.why.startsWith('waiting')).slice(0, 50)) {
          report({ inv: '3', kind: 'next-hop-connection-left-waiting', detail: `hop connection ${b.id} is still ${b.why}: the relay never gave up on it ${why}`, trace: b.trace });
        }
        break;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    // Traces are printed once the batch is at rest, so the next hop's side is complete.
    for (const t of traced.splice(0)) {
      const lines = [`session ${t.label}:`, ...t.trace.map((l) => '  ' + l)];
      const seen = new Set<string>();
      for (const token of t.tokens) for (const l of hop!.tracesFor(token)) if (!seen.has(l)) seen.add(l), lines.push('  ' + l);
      progress(lines.join('\n'));
    }
    ledger!.settle(upTo);
    if (ledger!.unknownLogLines) {
      report({ inv: '3', kind: 'log-line-after-settling', detail: `${ledger!.unknownLogLines} message log line(s) for no transaction of the current batch` });
      ledger!.unknownLogLines = 0;
    }
    const messages = dead ? undefined : await metric('mailveil_messages_total');
    if (messages !== undefined && messages !== ledger!.loggedMessages) {
      report({ inv: '3', kind: 'messages-total-differs-from-log-lines', detail: `mailveil_messages_total = ${messages}, message log lines = ${ledger!.loggedMessages}` });
      ledger!.loggedMessages = messages;
    }
    // Attach client traces to this batch's examples.
    for (const k of kinds.values()) {
      for (const ex of k.examples) {
        if (ex.session && sessionTraces.has(ex.session) && !ex.trace?.some((l) => l.startsWith('client session'))) {
          ex.trace = [`client session ${ex.session}:`, ...sessionTraces.get(ex.session)!.map((l) => '  ' + l), ...(ex.trace ?? [])];
        }
      }
    }
  };

  const base = o.only ? o.only.slice() : Array.from({ length: o.iterations }, (_, k) => start + k);
  const repeat = Math.max(1, o.repeat ?? 1);
  const iterations: { i: number; rep: number }[] = [];
  for (let r = 0; r < repeat; r++) for (const i of base) iterations.push({ i, rep: repeat > 1 ? r + 1 : 0 });
  let sinceBarrier = 0;
  try {
    for (let seq = 0; seq < iterations.length; seq++) {
      const { i, rep } = iterations[seq];
      if (o.stopAfter && total >= o.stopAfter) break;
      if (!checkAlive()) break;
      while (active.size >= concurrency) await Promise.race(active);
      const p = runSession(i, seq, rep).finally(() => {
        active.delete(p);
        done++;
      });
      active.add(p);
      if (++sinceBarrier >= barrierEvery) {
        await Promise.all(active);
        await settle(seq + 1);
        sinceBarrier = 0;
      }
      const now = Date.now();
      if (now - lastProgress >= (o.progressEveryMs ?? 10_000)) {
        lastProgress = now;
        drainLogs();
        progress(`fuzz: ${done}/${iterations.length} iterations, ${((done * 1000) / (now - t0)).toFixed(0)}/s, ${total} violation(s)`);
      }
    }
    await Promise.all(active);
    await settle(Number.MAX_SAFE_INTEGER);
  } finally {
    await target.stop().catch((err) => report({ inv: '3', kind: 'mailveil-did-not-stop', detail: (err as Error).message.slice(0, 2000) }));
    await hop.close();
  }
  const elapsedMs = Date.now() - t0;
  return {
    seed,
    start,
    iterations: done,
    concurrency,
    mode,
    elapsedMs,
    perSecond: (done * 1000) / Math.max(1, elapsedMs),
    total,
    kinds: [...kinds.values()].sort((a, b) => a.inv.localeCompare(b.inv) || b.count - a.count),
    stats,
    inFlightMetric,
    errorLines,
  };
}

export function hex(seed: number): string {
  return '0x' + (seed >>> 0).toString(16).padStart(8, '0');
}

/** The report as text: counts per invariant and kind, then examples with replay commands. */
export function formatReport(r: FuzzReport, opts: { traces?: boolean } = {}): string {
  const out: string[] = [];
  const s = r.stats;
  out.push(
    `fuzz: seed ${hex(r.seed)}, ${r.iterations} iterations from ${r.start} in ${(r.elapsedMs / 1000).toFixed(1)} s (${r.perSecond.toFixed(0)}/s), mode ${r.mode}, concurrency ${r.concurrency}`,
    `  sessions ${s.sessions}, transactions ${s.transactions}, DATA sent ${s.dataSent}, delivered ${s.delivered}, quarantined ${s.quarantined}, 4xx ${s.refused4xx}, 5xx ${s.refused5xx}, ` +
      `dot without reply ${s.noFinalReply}, hop commits ${s.commits}, log lines ${s.logLines}, client closes ${s.clientCuts}, server closes ${s.serverCloses}, hangs ${s.hangs}, batches ${s.barriers}`,
  );
  if (!r.inFlightMetric) out.push('  note: mailveil does not export mailveil_messages_in_flight; that part of invariant 3 was not checked');
  if (!r.total) {
    out.push('  no invariant violated');
    return out.join('\n');
  }
  out.push(`  ${r.total} violation(s):`);
  for (const k of r.kinds) out.push(`    [inv ${k.inv}] ${k.kind}: ${k.count}`);
  for (const k of r.kinds) {
    for (const ex of k.examples) {
      out.push('', `[inv ${k.inv}] ${k.kind}${ex.iteration !== undefined ? ` (iteration ${ex.iteration})` : ''}${ex.token ? ` token ${ex.token}` : ''}`, `  ${ex.detail}`);
      if (ex.iteration !== undefined) {
        const from = Math.max(0, ex.iteration - 2 * r.concurrency);
        // Timing decides many of these races: a replay repeats the session(s) to give the race its chances again.
        out.push(
          `  replay alone:      npm run fuzz -- --seed ${hex(r.seed)} --only ${ex.iteration} --repeat 30 --mode ${r.mode}`,
          `  replay its window: npm run fuzz -- --seed ${hex(r.seed)} --start ${from} --iterations ${ex.iteration - from + 1} --repeat 3 --concurrency ${r.concurrency} --mode ${r.mode}`,
        );
      }
      if (opts.traces !== false && ex.trace?.length) out.push(...ex.trace.slice(0, 120).map((l) => '    ' + l));
    }
  }
  out.push('', `replay the whole run: npm run fuzz -- --seed ${hex(r.seed)} --start ${r.start} --iterations ${r.iterations} --concurrency ${r.concurrency} --mode ${r.mode}`);
  if (r.errorLines.length) out.push('', 'mailveil error lines (first ones):', ...r.errorLines.slice(0, 10).map((l) => '  ' + l));
  return out.join('\n');
}
