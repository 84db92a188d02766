/*
 * What the fuzzer's pieces share: a session plan (what the client will do),
 * a transaction plan (what it sends and how the next hop is to answer it),
 * and what each side saw. The client and the randomised next hop run in the
 * fuzzer's process, so the hop finds a transaction's plan by the token in
 * the MAIL FROM address mailveil forwards (`s-<token>@fuzz.test`).
 */

export type Verdict = 'pass' | 'tag' | 'redact' | 'quarantine' | 'reject' | 'tempfail' | 'too_big';

/** The domain of every address a client puts in its envelope. */
export const ENVELOPE_DOMAIN = 'fuzz.test';
/** The domain of every command-looking line inside a message body. Never legitimate in a next-hop command. */
export const EVIL_DOMAIN = 'evil.test';
/** Prefix of the unique marker that body lines carry (`body-<token>`). */
export const BODY_MARK = 'body-';

/** One planned reply of the next hop. */
export interface HopReply {
  /** Reply lines without CRLF; [] sends nothing (with `close`: a silent hang-up). */
  lines: string[];
  /** Wait before answering; Infinity = never answer (a stall: wait until the peer closes). */
  delayMs: number;
  /** Hang up after the reply (or instead of it when `lines` is empty). */
  close: boolean;
  /** Write the reply in two pieces, this many ms apart. */
  splitMs?: number;
}

export interface HopTxPlan {
  mail: HopReply;
  /** By recipient index in the transaction; missing entries answer 250. */
  rcpt: HopReply[];
  data: HopReply;
  body: {
    /** After this many body bytes, answer `premature` (the next hop ending the transaction early). */
    prematureAt?: number;
    premature?: HopReply;
    /** After this many body bytes, stop reading for `stopReadingMs` (Infinity: for good). */
    stopReadingAt?: number;
    stopReadingMs?: number;
  };
  dot: HopReply;
}

export interface TxPlan {
  /** Unique over the run: `t<iteration>x<index>`, or `t<iteration>r<repetition>x<index>` when a replay repeats a session. */
  token: string;
  iteration: number;
  /** The session's place in the run (launch order), which batches go by. */
  seq: number;
  from: string;
  mailParams: string;
  rcpts: { addr: string; params: string }[];
  /** What mailveil should receive between DATA and the dot (unstuffed, ends with CRLF). */
  content: Buffer;
  verdict: Verdict;
  hop: HopTxPlan;
}

export type TxStyle =
  /** One command, one reply, as a careful client does. */
  | 'sync'
  /** MAIL, every RCPT and DATA in one write (RFC 2920), the body after 354. */
  | 'pipelined'
  /** MAIL .. DATA, the body, the dot and QUIT in one write without waiting (the body then holds no markers). */
  | 'blind'
  /** The body trickles in a few bytes at a time (slowloris). */
  | 'drip';

export type Step =
  | { t: 'cmd'; lines: string[] }
  | { t: 'tx'; tx: TxPlan; style: TxStyle; abandon?: 'rset' | 'mail' | 'quit' | 'none'; bodyWrites: number[]; bodyGapMs: number }
  | { t: 'sleep'; ms: number }
  | { t: 'quit' }
  | { t: 'close' }
  | { t: 'end' };

/** Where the client goes away on its own. */
export type Cut =
  | { kind: 'byte'; at: number; how: 'destroy' | 'end' }
  | { kind: 'event'; event: 'mail' | 'rcpt' | 'data' | 'body' | 'dot'; delayMs: number; how: 'destroy' | 'end' };

export interface SessionPlan {
  iteration: number;
  /** false: talk before the greeting. */
  waitGreeting: boolean;
  steps: Step[];
  cut?: Cut;
}

export interface Reply {
  code: number;
  text: string;
}

/** What the client saw of one transaction. */
export interface TxOutcome {
  mail?: Reply;
  rcpt: (Reply | undefined)[];
  data?: Reply;
  final?: Reply;
  /** The DATA command was written. */
  dataSent: boolean;
  /** Every byte of the body and the final dot was written. */
  dotSent: boolean;
  /** The client was still connected and waiting when its final reply was due. */
  awaitedFinal: boolean;
}

export interface SessionOutcome {
  iteration: number;
  startedAt: number;
  endedAt: number;
  /** Who ended the connection. */
  end: 'client' | 'server' | 'deadline';
  /** Set when the client waited for a reply longer than the deadline. */
  hang?: string;
  /** Set when a dripping client was not cut off in time. */
  slowNotCut?: string;
  /** Envelope commands with a bare CR (or another control character) that got a 2xx instead of 501. */
  controlAccepted?: string[];
  /** The connection was refused (nothing listening). */
  refused?: boolean;
  /** The server closed the connection before sending anything at all. */
  noGreeting?: boolean;
  trace: string[];
}

/** The session a token belongs to (`t5x1` -> `t5`, `t5r2x1` -> `t5r2`): what traces are kept by. */
export function sessionOfToken(token: string): string {
  return token.replace(/x\d+$/, '');
}

export interface Violation {
  /** Which invariant: 1 acknowledged = committed once and whole, 2 no foreign command, 3 nothing pending, P policy and protocol. */
  inv: '1' | '2' | '3' | 'P';
  kind: string;
  iteration?: number;
  /** `t<iteration>` or `t<iteration>r<repetition>`. */
  session?: string;
  token?: string;
  detail: string;
  trace?: string[];
}

/** A transaction token, as a regular expression source. */
export const TOKEN = 't\\d+(?:r\\d+)?x\\d+';

export function tokenOf(iteration: number, index: number, repetition = 0): string {
  return repetition ? `t${iteration}r${repetition}x${index}` : `t${iteration}x${index}`;
}

export function iterationOfToken(token: string): number {
  const m = /^t(\d+)(?:r\d+)?x\d+$/.exec(token);
  return m ? Number(m[1]) : -1;
}

/** The token in a MAIL FROM / RCPT TO address the fuzzer made (`s-<token>@`, `r<i>-<token>@`). */
export function tokenInAddress(line: string): { token: string; rcpt?: number } | undefined {
  const m = new RegExp(`<(?:s|r(\\d+))-(${TOKEN})@fuzz\\.test>`, 'i').exec(line);
  if (!m) return undefined;
  return { token: m[2], rcpt: m[1] === undefined ? undefined : Number(m[1]) };
}
