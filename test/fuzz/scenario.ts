/*
 * Random sessions. Most iterations are small (one short message, or a few
 * commands and a disconnect) so a million of them fit in well under an hour;
 * a few carry large bodies (spooled to disk, big enough to fill a next hop
 * that stops reading) or slow clients.
 *
 * A message body mixes ordinary lines with lines that look like SMTP
 * (`RSET`, `MAIL FROM:<body-<token>@evil.test>`, `.`, `..`), bare LF and bare
 * CR, and the smuggling sequences (`\n.\n`, `\r.\r`, `\r\n.\n`). Every
 * command-looking line names evil.test and the transaction's body marker, so
 * one ever reaching the next hop as a command is caught. The last line is
 * `END-<token>`, so a truncated copy is caught too.
 */
import { Rng, derive } from './rng';
import {
  BODY_MARK,
  ENVELOPE_DOMAIN,
  EVIL_DOMAIN,
  tokenOf,
  type Cut,
  type HopReply,
  type HopTxPlan,
  type SessionPlan,
  type Step,
  type TxPlan,
  type TxStyle,
  type Verdict,
} from './model';

/** Patterns of the fuzz rule set (target.ts writes them), one per action. */
export const MARKS: Record<Exclude<Verdict, 'pass' | 'too_big'>, string> = {
  tag: 'FUZZ-TAG-MARK',
  redact: 'FUZZ-REDACT-', // followed by six digits
  quarantine: 'FUZZ-QUARANTINE-MARK',
  reject: 'FUZZ-REJECT-MARK',
  tempfail: 'FUZZ-TEMPFAIL-MARK',
};
export const REDACT_REPLACEMENT = '[R]';
export const REJECT_REPLY = '550 5.7.1 fuzz rule rejected it';
export const TEMPFAIL_REPLY = '451 4.7.1 fuzz rule deferred it';

export interface ScenarioLimits {
  maxMessageSize: number;
  /** The next hop's command deadline in mailveil's config: "late" replies come after it. */
  commandDeadlineMs: number;
  dataDeadlineMs: number;
}

const ok = (lines: string[], delayMs = 0): HopReply => ({ lines, delayMs, close: false });

/** A next-hop reply to one command: mostly at once, sometimes slow, late, refused, dropped or never. */
function hopReply(rng: Rng, good: string[], refusals: string[], lim: ScenarioLimits, faultRate: number, deadline: number): HopReply {
  if (!rng.chance(faultRate)) {
    const r = ok(good, rng.chance(0.15) ? rng.range(1, 20) : 0);
    if (rng.chance(0.04)) r.splitMs = rng.range(0, 5);
    return r;
  }
  return rng.weighted<() => HopReply>([
    [6, () => ok([rng.pick(refusals)], rng.chance(0.3) ? rng.range(1, 30) : 0)],
    [2, () => ({ lines: ['421 4.3.2 hop going down'], delayMs: rng.range(0, 10), close: true })],
    [1.5, () => ({ lines: [], delayMs: rng.range(0, 20), close: true })],
    [1, () => ({ lines: [], delayMs: Infinity, close: false })],
    [1.5, () => ok(good, rng.range(200, Math.min(1200, deadline / 2)))],
    [0.5, () => ok(good, deadline + 1500)],
  ])();
}

function hopPlan(rng: Rng, token: string, nRcpt: number, bodyLen: number, lim: ScenarioLimits): HopTxPlan {
  const f = rng.chance(0.5) ? 0.06 : 0.02; // some sessions meet a flakier hop
  const mail = hopReply(rng, ['250 2.1.0 Ok'], [`451 4.3.0 mail deferred ${token}`, `550 5.7.1 sender refused ${token}`], lim, f, lim.commandDeadlineMs);
  const rcpt: HopReply[] = [];
  for (let i = 0; i < nRcpt; i++) {
    rcpt.push(hopReply(rng, [`250 2.1.5 Ok r${i}-${token}`], [`450 4.2.0 r${i}-${token} busy`, `550 5.1.1 r${i}-${token} unknown`], lim, f * 1.5, lim.commandDeadlineMs));
  }
  const data = hopReply(rng, ['354 End data with <CR><LF>.<CR><LF>'], [`451 4.3.0 no data now ${token}`, `554 5.5.1 no valid recipients ${token}`], lim, f * 0.7, lim.commandDeadlineMs);
  const body: HopTxPlan['body'] = {};
  if (bodyLen > 0 && rng.chance(0.02)) {
    body.prematureAt = rng.int(bodyLen);
    body.premature = { lines: [`550 5.7.0 premature refusal ${token}`], delayMs: 0, close: rng.chance(0.8) };
  }
  const big = bodyLen > 3_000_000 ? 0.8 : bodyLen > 200_000 ? 0.5 : 0;
  if (bodyLen > 0 && rng.chance(big || 0.02)) {
    body.stopReadingAt = rng.int(Math.min(bodyLen, 64 * 1024));
    body.stopReadingMs = rng.chance(big || 0.3) ? Infinity : rng.range(20, 400);
  }
  const queued = [`250 2.0.0 Ok: queued as H-${token}`];
  let dot = hopReply(
    rng,
    rng.chance(0.1) ? ['250-2.0.0 Ok', `250 2.0.0 queued as H-${token}`] : queued,
    [`451 4.3.0 dot deferred ${token}`, `554 5.7.1 dot refused ${token}`, `452 4.3.1 insufficient storage ${token}`],
    lim,
    f * 1.5,
    lim.dataDeadlineMs,
  );
  if (rng.chance(0.005)) dot = { lines: queued, delayMs: rng.range(0, 5), close: true };
  return { mail, rcpt, data, body, dot };
}

const EOLS: readonly (readonly [number, string])[] = [
  [85, '\r\n'],
  [6, '\n'],
  [4, '\r'],
  [3, '\r\r\n'],
  [2, '\n\r'],
];

/** Body lines; those that look like SMTP carry the evil domain and this transaction's body marker. */
function bodyLine(rng: Rng, token: string, k: number): string {
  const mark = `${BODY_MARK}${token}`;
  return rng.weighted<() => string>([
    [40, () => `line ${k} of ${token}: the quick brown fox jumps over the lazy dog`],
    [4, () => 'RSET'],
    [3, () => 'QUIT'],
    [3, () => 'DATA'],
    [2, () => 'NOOP'],
    [4, () => `MAIL FROM:<${mark}@${EVIL_DOMAIN}>`],
    [4, () => `RCPT TO:<${mark}@${EVIL_DOMAIN}>`],
    [1, () => `EHLO ${mark}.${EVIL_DOMAIN}`],
    [1, () => `XFORWARD NAME=${mark}.${EVIL_DOMAIN}`],
    [4, () => '.'],
    [3, () => '..'],
    [2, () => '...'],
    [2, () => '. '],
    [2, () => `.${mark}`],
    [2, () => ''],
    [2, () => `${mark}\n.\nMAIL FROM:<${mark}@${EVIL_DOMAIN}>`],
    [2, () => `${mark}\r.\rRCPT TO:<${mark}@${EVIL_DOMAIN}>`],
    [1, () => `${mark}\r\n.\nRSET`],
    [1, () => `${mark}\n.\r\nDATA`],
    [1, () => `${mark}\r\n.\r`],
    [2, () => `caf\u00e9 na\u00efve ${mark}`],
    [1, () => `nul\u0000byte ${mark}`],
    [1, () => `${mark} ${'x'.repeat(rng.range(900, 3000))}`],
    [1, () => `\t${mark} folded-looking`],
  ])();
}

/** Blind-mode body lines: harmless even if the DATA was refused and they are read as commands. */
function blindLine(token: string, k: number): string {
  return `blind ${k} ${token} lorem ipsum`;
}

export interface Message {
  content: Buffer;
  verdict: Verdict;
}

function message(rng: Rng, token: string, blind: boolean, lim: ScenarioLimits): Message {
  const size = rng.weighted<string>([
    [80, 'small'],
    [17.6, 'medium'],
    [2, 'large'],
    [0.25, 'huge'],
    [0.06, 'jumbo'],
    [0.04, 'oversize'],
  ]);
  const header =
    `From: <s-${token}@${ENVELOPE_DOMAIN}>\r\n` +
    `To: <r0-${token}@${ENVELOPE_DOMAIN}>\r\n` +
    `Subject: fuzz ${token}\r\n` +
    `Message-ID: <${token}@${ENVELOPE_DOMAIN}>\r\n` +
    (!blind && rng.chance(0.03) ? 'X-Mailveil-Verdict: pass; rules=\r\n\tforged\r\n' : '') +
    (!blind && rng.chance(0.1) ? `X-Fuzz: a folded\r\n value ${token}\r\n` : '') +
    '\r\n';
  const end = `END-${token}\r\n`;
  if (size === 'large' || size === 'huge' || size === 'jumbo' || size === 'oversize') {
    // jumbo: more than the ~4 MB that loopback socket buffers absorb, so a next
    // hop that stops reading really blocks mailveil's writes.
    const target =
      size === 'large'
        ? rng.range(20_000, 300_000)
        : size === 'huge'
          ? rng.range(800_000, 1_800_000)
          : size === 'jumbo'
            ? rng.range(4_500_000, Math.min(6_500_000, lim.maxMessageSize - 65_536))
            : lim.maxMessageSize + rng.range(1, 200_000);
    const content = Buffer.concat([Buffer.from(header, 'latin1'), filler(rng, token, target), Buffer.from(end, 'latin1')]);
    return { content, verdict: size === 'oversize' ? 'too_big' : 'pass' };
  }
  const verdict: Verdict = blind
    ? 'pass'
    : rng.weighted<Verdict>([
        [86, 'pass'],
        [3, 'tag'],
        [4, 'redact'],
        [3, 'quarantine'],
        [2, 'reject'],
        [2, 'tempfail'],
      ]);
  const lines: string[] = [];
  const n = size === 'small' ? rng.range(0, 12) : rng.range(12, 120);
  for (let k = 0; k < n; k++) lines.push((blind ? blindLine(token, k) : bodyLine(rng, token, k)) + (blind ? '\r\n' : rng.weighted(EOLS)));
  // Rule marks on clean lines of their own, so detection does not depend on the junk around them.
  const marks: string[] = [];
  if (verdict === 'redact') {
    for (let i = rng.range(1, 3); i > 0; i--) marks.push(`card ${MARKS.redact}${String(rng.range(100000, 999999))} here\r\n`);
  } else if (verdict !== 'pass' && verdict !== 'too_big') {
    marks.push(`see ${MARKS[verdict]} here\r\n`);
  }
  for (const m of marks) {
    const at = rng.int(lines.length + 1);
    // A mark goes after a CRLF-ended line (or first), so it starts a line of its own.
    const i = at > 0 && !lines[at - 1].endsWith('\r\n') ? 0 : at;
    lines.splice(i, 0, m);
  }
  let text = header + lines.join('');
  if (!text.endsWith('\r\n')) text += '\r\n';
  text += end;
  return { content: Buffer.from(text, 'latin1'), verdict };
}

/** Clean 76-column lines up to about `bytes`, with a dot-line and a decoy now and then. */
function filler(rng: Rng, token: string, bytes: number): Buffer {
  const line = Buffer.from(`${token} `.padEnd(76, 'abcdefghij') + '\r\n', 'latin1');
  const decoys = [Buffer.from('.\r\n'), Buffer.from('RSET\r\n'), Buffer.from(`MAIL FROM:<${BODY_MARK}${token}@${EVIL_DOMAIN}>\r\n`), Buffer.from('..\r\n')];
  const out: Buffer[] = [];
  let n = 0;
  while (n < bytes) {
    const b = rng.chance(0.01) ? rng.pick(decoys) : line;
    out.push(b);
    n += b.length;
  }
  return Buffer.concat(out, n);
}

const MAIL_PARAMS: readonly (readonly [number, (size: number) => string])[] = [
  [60, () => ''],
  [15, (s) => ` SIZE=${s}`],
  [8, () => ' BODY=8BITMIME'],
  [4, () => ' SMTPUTF8'],
  [5, () => ' RET=HDRS ENVID=fuzz+2Benv'],
  [3, (s) => ` SIZE=${s} BODY=8BITMIME RET=FULL`],
];
const RCPT_PARAMS: readonly (readonly [number, string])[] = [
  [75, ''],
  [10, ' NOTIFY=SUCCESS,FAILURE'],
  [8, ' NOTIFY=NEVER'],
  [7, ' ORCPT=rfc822;someone+40fuzz.test'],
];

export function newTx(rng: Rng, iteration: number, index: number, blind: boolean, lim: ScenarioLimits, envelopeOnly = false, seq = iteration, repetition = 0): TxPlan {
  const token = tokenOf(iteration, index, repetition);
  // An envelope-only transaction never sends its body (unless a DATA slips through): keep it tiny.
  const msg: Message = envelopeOnly ? { content: Buffer.from(`Subject: ${token}\r\n\r\nEND-${token}\r\n`, 'latin1'), verdict: 'pass' } : message(rng, token, blind, lim);
  const nRcpt = rng.weighted<number>([
    [78, 1],
    [14, 2],
    [6, rng.range(3, 6)],
    [2, 0],
  ]);
  const rcpts = [];
  for (let i = 0; i < nRcpt; i++) rcpts.push({ addr: `r${i}-${token}@${ENVELOPE_DOMAIN}`, params: rng.weighted(RCPT_PARAMS) });
  return {
    token,
    iteration,
    seq,
    from: `s-${token}@${ENVELOPE_DOMAIN}`,
    mailParams: rng.weighted(MAIL_PARAMS)(msg.content.length),
    rcpts,
    content: msg.content,
    verdict: msg.verdict,
    hop: hopPlan(rng, token, nRcpt, msg.content.length, lim),
  };
}

/** Client commands that are not part of a transaction, none naming the evil domain. */
function noise(rng: Rng, iteration: number): string[] {
  const one = () =>
    rng.weighted<() => string>([
      [5, () => 'NOOP'],
      [5, () => 'RSET'],
      [2, () => 'HELP'],
      [2, () => `VRFY someone@${ENVELOPE_DOMAIN}`],
      [2, () => `EHLO again-${iteration}.${ENVELOPE_DOMAIN}`],
      [3, () => 'FOO bar'],
      [2, () => `RCPT TO:<stray-${iteration}@${ENVELOPE_DOMAIN}>`],
      [2, () => 'DATA'],
      [1, () => 'MAIL FROM:<bad address'],
      [1, () => `MAIL FROM:<cr-${iteration}@${ENVELOPE_DOMAIN}>\rjunk`],
      [1, () => `RCPT TO:<cr-${iteration}@${ENVELOPE_DOMAIN}> NOTIFY=NEVER\rjunk`],
      [0.5, () => `MAIL FROM:<nul-${iteration}@${ENVELOPE_DOMAIN}>\u0000`],
      [1, () => 'STARTTLS'],
      [1, () => 'AUTH PLAIN AGZvbwBiYXI='],
      [1, () => '\u0000\u0001\u00ff'],
      [1, () => 'x'.repeat(rng.range(500, 2000))],
    ])();
  const n = rng.weighted<number>([
    [80, 1],
    [15, 2],
    [5, 4],
  ]);
  return Array.from({ length: n }, one);
}

/** Body write sizes: the wire bytes cut into 1-4 pieces, with a bias for cuts inside CRLF.CRLF. */
function bodyWrites(rng: Rng, wireLen: number): number[] {
  const cuts = new Set<number>();
  const n = rng.weighted<number>([
    [55, 0],
    [25, 1],
    [15, 2],
    [5, 3],
  ]);
  for (let i = 0; i < n; i++) {
    cuts.add(rng.chance(0.5) ? Math.max(1, wireLen - rng.range(1, 5)) : rng.range(1, Math.max(1, wireLen - 1)));
  }
  return [...cuts].filter((c) => c > 0 && c < wireLen).sort((a, b) => a - b);
}

/**
 * Session `iteration` of the run with `seed`. `seq` is its place in this run
 * and `repetition` tells repeated replays of one session apart (tokens stay unique).
 */
export function newSession(seed: number, iteration: number, lim: ScenarioLimits, seq = iteration, repetition = 0): SessionPlan {
  const rng = new Rng(derive(seed, iteration));
  const steps: Step[] = [];
  const helo = rng.weighted<string>([
    [84, 'EHLO'],
    [8, 'HELO'],
    [4, 'junk'],
    [3, 'none'],
    [1, 'xforward'],
  ]);
  if (helo === 'junk') steps.push({ t: 'cmd', lines: [rng.pick(['EHLO', 'HELLO x', 'EHLO a b c'])] });
  if (helo !== 'none') steps.push({ t: 'cmd', lines: [`${helo === 'HELO' ? 'HELO' : 'EHLO'} c${iteration}.${ENVELOPE_DOMAIN}`] });
  if (helo === 'xforward') steps.push({ t: 'cmd', lines: [`XFORWARD NAME=c${iteration}.${ENVELOPE_DOMAIN} ADDR=127.0.0.9 PROTO=ESMTP HELO=c${iteration}.${ENVELOPE_DOMAIN}`] });
  // Most sessions carry a message; many only play with the envelope (the
  // mirrored MAIL/RCPT and the pooled connection behind them), which costs
  // mailveil far less; a few only chatter.
  const kind = rng.weighted<'message' | 'envelope' | 'chatter'>([
    [58, 'message'],
    [32, 'envelope'],
    [10, 'chatter'],
  ]);
  const nTx =
    kind === 'chatter'
      ? 0
      : rng.weighted<number>([
          [78, 1],
          [16, 2],
          [6, 3],
        ]);
  if (kind === 'chatter') for (let k = rng.range(1, 3); k > 0; k--) steps.push({ t: 'cmd', lines: noise(rng, iteration) });
  let drip = false;
  for (let i = 0; i < nTx; i++) {
    if (rng.chance(0.15)) steps.push({ t: 'cmd', lines: noise(rng, iteration) });
    let style = rng.weighted<TxStyle>([
      [62, 'sync'],
      [33, 'pipelined'],
      [kind === 'message' ? 4.8 : 0, 'blind'],
      [kind === 'message' ? 0.2 : 0, 'drip'],
    ]);
    if (style === 'drip' && drip) style = 'sync';
    drip ||= style === 'drip';
    const tx = newTx(rng, iteration, i, style === 'blind', lim, kind === 'envelope', seq, repetition);
    if (style === 'drip' && tx.content.length > 20_000) style = 'sync';
    const abandon =
      style === 'blind'
        ? 'none'
        : kind === 'envelope'
          ? rng.weighted<'rset' | 'mail' | 'quit' | 'none'>([
              [45, 'rset'],
              [20, 'mail'],
              [15, 'quit'],
              [20, 'none'],
            ])
          : rng.weighted<'rset' | 'mail' | 'quit' | 'none'>([
              [96, 'none'],
              [2, 'rset'],
              [1.5, 'mail'],
              [0.5, 'quit'],
            ]);
    const wire = tx.content.length + 3;
    steps.push({ t: 'tx', tx, style, abandon, bodyWrites: bodyWrites(rng, wire), bodyGapMs: rng.chance(0.2) ? rng.range(0, 5) : 0 });
    if (abandon === 'quit') break;
    if (rng.chance(0.003)) steps.push({ t: 'sleep', ms: rng.range(2200, 3000) }); // past client_idle
    else if (rng.chance(0.05)) steps.push({ t: 'sleep', ms: rng.range(1, 30) });
  }
  const last = steps[steps.length - 1];
  if (!(last && last.t === 'tx' && last.abandon === 'quit')) {
    steps.push(
      rng.weighted<Step>([
        [72, { t: 'quit' }],
        [18, { t: 'close' }],
        [10, { t: 'end' }],
      ]),
    );
  }
  let cut: Cut | undefined;
  if (rng.chance(kind === 'envelope' ? 0.45 : 0.3)) {
    const how = rng.chance(0.85) ? 'destroy' : 'end';
    const delayMs = rng.pick([0, 0, 0, 1, 2, 5, 10, 25, 60, 150, 400, 1000]);
    const w = kind === 'message' ? [20, 12, 12, 10, 14, 32] : [30, 35, 35, 0, 0, 0];
    cut = rng.weighted<Cut>([
      [w[0], { kind: 'byte', at: rng.int(estimateBytes(steps)), how }],
      [w[1], { kind: 'event', event: 'mail', delayMs, how }],
      [w[2], { kind: 'event', event: 'rcpt', delayMs, how }],
      [w[3], { kind: 'event', event: 'data', delayMs, how }],
      [w[4], { kind: 'event', event: 'body', delayMs, how }],
      [w[5], { kind: 'event', event: 'dot', delayMs, how }],
    ]);
  }
  return { iteration, waitGreeting: !rng.chance(0.005), steps, cut };
}

/** Roughly how many bytes the client writes on the happy path (for the byte cut). */
function estimateBytes(steps: Step[]): number {
  let n = 0;
  for (const s of steps) {
    if (s.t === 'cmd') n += s.lines.reduce((a, l) => a + l.length + 2, 0);
    else if (s.t === 'tx') n += 40 + s.tx.rcpts.length * 40 + 6 + s.tx.content.length + 3;
    else if (s.t === 'quit') n += 6;
  }
  return Math.max(1, n);
}

// ---- bytes on the wire and what the next hop must receive ------------------

const LF = 0x0a;
const DOT = 0x2e;

/**
 * The client's DATA bytes for `content`: a dot at the start or after any LF
 * is doubled (smtp-server removes one dot after any LF), then ".\r\n".
 */
export function wireBody(content: Buffer): Buffer {
  const out: Buffer[] = [];
  let start = 0;
  if (content[0] === DOT) {
    out.push(Buffer.from('.'));
  }
  for (let lf = content.indexOf(LF); lf >= 0 && lf + 1 < content.length; lf = content.indexOf(LF, lf + 1)) {
    if (content[lf + 1] === DOT) {
      out.push(content.subarray(start, lf + 1), Buffer.from('.'));
      start = lf + 1;
    }
  }
  out.push(content.subarray(start), Buffer.from('.\r\n'));
  return Buffer.concat(out);
}

/** Every bare CR and bare LF becomes CRLF, as mailveil's smtp-encode stage does. */
export function normaliseEol(text: string): string {
  return text.replace(/\r\n|\r|\n/g, '\r\n');
}

function verdictHeader(verdict: Verdict): string {
  switch (verdict) {
    case 'tag':
      return 'X-Mailveil-Verdict: tag; rules=fuzz-tag\r\n';
    case 'redact':
      return 'X-Mailveil-Verdict: redact; rules=fuzz-redact\r\n';
    default:
      return 'X-Mailveil-Verdict: pass; rules=\r\n';
  }
}

/**
 * The exact message the next hop must commit (dots already removed) for a
 * delivered verdict: mailveil's verdict header on top, any forged one gone,
 * redacted values replaced, and every line ending CRLF.
 */
export function expectedAtHop(content: Buffer, verdict: Verdict): Buffer | undefined {
  if (verdict !== 'pass' && verdict !== 'tag' && verdict !== 'redact') return undefined;
  let text = content.toString('latin1');
  const end = text.indexOf('\r\n\r\n');
  let header = end < 0 ? text : text.slice(0, end + 2);
  let body = end < 0 ? '' : text.slice(end + 2);
  header = header.replace(/^X-Mailveil-Verdict:[^\r\n]*\r\n(?:[ \t][^\r\n]*\r\n)*/gim, '');
  if (verdict === 'redact') body = body.replace(/FUZZ-REDACT-\d{6}/g, REDACT_REPLACEMENT);
  text = verdictHeader(verdict) + header + body;
  return Buffer.from(normaliseEol(text), 'latin1');
}
