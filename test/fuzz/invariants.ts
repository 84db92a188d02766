/*
 * The fuzzer's ledger: every transaction the clients start, what each client
 * saw, what the next hop committed and what mailveil logged, and the checks
 * over them.
 *
 * Invariant 1 (acknowledged = committed, once, whole):
 *  - a client's "250 ... queued as" has a commit at the hop for its token,
 *    and the reply carries the hop's queue id for that same token (not a
 *    stale reply of another command or transaction);
 *  - no token is committed twice; nothing is committed for a client that
 *    never sent its final dot, or that stayed and was told 4xx/5xx;
 *  - the committed bytes are exactly what mailveil had to send (verdict
 *    header, redactions, CRLF): a truncated copy or one with a spliced
 *    `RSET` fails; the recipients are the ones the client was told 250 for.
 * Invariant 2 (no foreign command) is checked by the hop as it reads.
 * Invariant 3 (nothing pending): after a batch, the connections and
 * in-flight gauges are 0, no spool file is left, no next-hop transaction is
 * open, every client got a reply or a close within its deadline, and every
 * message that reached DATA has exactly one log line.
 * 'P' (policy and protocol): the verdict matches the rule mark in the body,
 * a healthy next hop with a client that stayed ends in 250, and so on.
 */
import type { HopCommit } from './hop';
import { firstDiff } from './hop';
import { expectedAtHop } from './scenario';
import { TOKEN, type TxOutcome, type TxPlan, type Verdict, type Violation } from './model';

export interface TxRec {
  tx: TxPlan;
  out?: TxOutcome;
  commits: HopCommit[];
  logs: { reply?: number; verdict?: string }[];
  pseudo: string;
}

const DELIVERED: readonly Verdict[] = ['pass', 'tag', 'redact'];

/** The verdict named by a committed message's first header line. */
export function verdictOfLine(line: string | undefined): Verdict | undefined {
  const m = /^X-Mailveil-Verdict:\s*([a-z_]+);/i.exec(line ?? '');
  return m ? (m[1].toLowerCase() as Verdict) : undefined;
}

/** A transaction plan whose next hop answers everything at once and well. */
function healthyHop(tx: TxPlan): boolean {
  const h = tx.hop;
  const fine = (r: { lines: string[]; delayMs: number; close: boolean }, first: string) =>
    !r.close && r.delayMs < 100 && r.lines.length > 0 && r.lines[r.lines.length - 1].startsWith(first);
  return (
    fine(h.mail, '2') &&
    tx.rcpts.length > 0 &&
    tx.rcpts.every((_, i) => !h.rcpt[i] || fine(h.rcpt[i], '2')) &&
    fine(h.data, '354') &&
    h.body.prematureAt === undefined &&
    h.body.stopReadingAt === undefined &&
    fine(h.dot, '2')
  );
}

export class Ledger {
  readonly txs = new Map<string, TxRec>();
  private readonly byPseudo = new Map<string, string>();
  unknownLogLines = 0;
  loggedMessages = 0;

  constructor(
    private readonly report: (v: Violation) => void,
    private readonly pseudonym: (address: string) => string,
  ) {}

  add(tx: TxPlan): void {
    const pseudo = this.pseudonym(tx.from);
    this.txs.set(tx.token, { tx, commits: [], logs: [], pseudo });
    this.byPseudo.set(pseudo, tx.token);
  }

  plan(token: string): TxPlan | undefined {
    return this.txs.get(token)?.tx;
  }

  expected(token: string, verdictLine: string | undefined): Buffer | undefined {
    const rec = this.txs.get(token);
    if (!rec) return undefined;
    return expectedAtHop(rec.tx.content, verdictOfLine(verdictLine) ?? rec.tx.verdict);
  }

  /** The hop committed a message (called before it writes its 250). */
  commit(c: HopCommit): void {
    const rec = c.token ? this.txs.get(c.token) : undefined;
    if (!rec) {
      // Every session's transactions are in the ledger before it starts: a fuzz token missing here was settled already.
      const late = c.token !== undefined;
      this.report({
        inv: late ? '1' : '2',
        kind: late ? 'commit-after-the-batch-was-settled' : 'commit-of-a-transaction-no-client-made',
        token: c.token,
        detail: `the next hop committed a message for ${c.token ?? 'no fuzz token'} (MAIL line ${JSON.stringify(c.from.slice(0, 100))}, ${c.data.length} bytes)`,
      });
      return;
    }
    rec.commits.push(c);
    const text = c.data.toString('latin1');
    const endTokens = [...text.matchAll(new RegExp(`^END-(${TOKEN})\\r$`, 'gm'))].map((m) => m[1]);
    if (endTokens.some((t) => t !== rec.tx.token)) {
      this.report({ inv: '1', kind: 'committed-another-transactions-message', token: rec.tx.token, iteration: rec.tx.iteration, detail: `the transaction of ${rec.tx.token} committed a message ending with END-${endTokens.join(', END-')}` });
    }
    const line = /^[^\r\n]*/.exec(text)?.[0];
    const got = verdictOfLine(line);
    if (got && got !== rec.tx.verdict) {
      this.report({ inv: 'P', kind: 'verdict-differs-from-rule-marks', token: rec.tx.token, iteration: rec.tx.iteration, detail: `delivered as "${line}" but its marks call for ${rec.tx.verdict}` });
    }
    const want = expectedAtHop(rec.tx.content, got ?? rec.tx.verdict);
    if (!want) {
      this.report({ inv: 'P', kind: 'delivered-despite-verdict', token: rec.tx.token, iteration: rec.tx.iteration, detail: `a ${rec.tx.verdict} message reached the next hop as "${line}"` });
      return;
    }
    if (!want.equals(c.data)) {
      const at = firstDiff(c.data, want);
      const truncated = want.subarray(0, c.data.length).equals(c.data);
      const spliced = /^(RSET|MAIL FROM|RCPT TO|DATA|QUIT)\b/m.test(c.data.subarray(at, at + 200).toString('latin1'));
      this.report({
        inv: '1',
        kind: truncated ? 'committed-a-truncated-message' : spliced ? 'committed-a-message-with-spliced-commands' : 'committed-bytes-differ',
        token: rec.tx.token,
        iteration: rec.tx.iteration,
        detail:
          `committed ${c.data.length} bytes, expected ${want.length}; first difference at byte ${at}: ` +
          `got ${JSON.stringify(c.data.subarray(at, at + 80).toString('latin1'))}, expected ${JSON.stringify(want.subarray(at, at + 80).toString('latin1'))}`,
      });
    }
  }

  /** A message log line from mailveil. */
  logLine(from: string | undefined, reply: number | undefined, verdict: string | undefined): void {
    this.loggedMessages++;
    const token = from ? this.byPseudo.get(from) : undefined;
    const rec = token ? this.txs.get(token) : undefined;
    if (!rec) {
      this.unknownLogLines++;
      return;
    }
    rec.logs.push({ reply, verdict });
  }

  /** The client is done with a transaction: the checks that cannot wait. */
  clientDone(tx: TxPlan, out: TxOutcome): void {
    const rec = this.txs.get(tx.token);
    if (!rec) return;
    rec.out = out;
    const v = (kind: string, inv: Violation['inv'], detail: string) => this.report({ inv, kind, token: tx.token, iteration: tx.iteration, detail });
    const replies = [out.mail, ...out.rcpt, out.data, out.final];
    for (const r of replies) {
      const foreign = (r?.text.match(new RegExp(TOKEN, 'g')) ?? []).filter((t) => t !== tx.token);
      if (foreign.length) v('reply-of-another-transaction', '1', `the client of ${tx.token} got "${r!.code} ${r!.text.slice(0, 160)}", which answers ${foreign[0]}`);
    }
    const f = out.final;
    if (!f) return;
    if (f.code === 250) {
      if (/held in quarantine/.test(f.text)) {
        if (tx.verdict !== 'quarantine') v('unexpected-quarantine', 'P', `a ${tx.verdict} message was quarantined: "${f.text.slice(0, 120)}"`);
        return;
      }
      if (!rec.commits.length) v('acknowledged-but-not-committed', '1', `the client got "250 ${f.text.slice(0, 160)}" and the next hop has no commit for ${tx.token}`);
      else if (!f.text.includes(`H-${tx.token}`)) v('acknowledged-with-a-stale-reply', '1', `the client got "250 ${f.text.slice(0, 160)}", not the next hop's answer to its dot (queued as H-${tx.token})`);
      if (!DELIVERED.includes(tx.verdict)) v('delivered-despite-verdict', 'P', `a ${tx.verdict} message got "250 ${f.text.slice(0, 120)}"`);
      return;
    }
    const expected = tx.verdict === 'reject' ? 550 : tx.verdict === 'tempfail' ? 451 : tx.verdict === 'too_big' ? 552 : undefined;
    if (expected !== undefined && f.code !== expected) {
      v('reply-differs-from-verdict', 'P', `a ${tx.verdict} message got "${f.code} ${f.text.slice(0, 120)}", expected ${expected}`);
    }
    if (expected === undefined && tx.verdict !== 'quarantine' && healthyHop(tx) && out.rcpt.some((r) => r?.code === 250)) {
      v('healthy-hop-yet-no-250', 'P', `the next hop accepted everything at once, the client stayed, and got "${f.code} ${f.text.slice(0, 160)}"`);
    }
  }

  /**
   * The checks that need the whole batch settled (the hop may commit after
   * the client's last reply, the log line may come after it): run at a
   * barrier, then the batch is forgotten.
   */
  settle(upTo: number): void {
    for (const [token, rec] of this.txs) {
      if (rec.tx.seq >= upTo) continue;
      const { tx, out, commits } = rec;
      const v = (kind: string, inv: Violation['inv'], detail: string) => this.report({ inv, kind, token, iteration: tx.iteration, detail });
      if (commits.length > 1) v('committed-more-than-once', '1', `${commits.length} commits of ${token} (hop connections ${commits.map((c) => c.connId).join(', ')})`);
      if (commits.length && out) {
        if (!out.dotSent) v('committed-without-the-clients-dot', '1', `the next hop committed ${token}, whose client never sent its final dot`);
        else if (out.final && out.final.code !== 250) v('committed-but-the-client-was-told-failure', '1', `the next hop committed ${token}, and its client, still connected, got "${out.final.code} ${out.final.text.slice(0, 120)}" (a retry delivers it twice)`);
        if (out.final?.code === 250) {
          const told = tx.rcpts.filter((_, i) => out.rcpt[i]?.code === 250).map((r) => `<${r.addr}>`);
          const got = commits[0].rcpts.map((l) => /<[^>]*>/.exec(l)?.[0] ?? l);
          if (told.sort().join() !== [...got].sort().join()) v('recipients-differ', '1', `client told 250 for ${told.join(' ') || 'none'}, next hop accepted ${got.join(' ') || 'none'}`);
        }
      }
      if (out?.data?.code === 354 && rec.logs.length === 0) v('message-without-log-line', '3', `the client of ${token} got 354 (final: ${out.final ? out.final.code : 'none'}), and mailveil logged no message line for it`);
      if (rec.logs.length > 1) v('message-logged-more-than-once', '3', `${rec.logs.length} message log lines for ${token}`);
      if (rec.logs.length && out?.final && rec.logs[0].reply !== undefined && rec.logs[0].reply !== out.final.code) {
        v('log-reply-differs-from-client-reply', 'P', `logged reply ${rec.logs[0].reply}, the client got ${out.final.code}`);
      }
      this.byPseudo.delete(rec.pseudo);
      this.txs.delete(token);
    }
  }

  /** Transactions whose client saw 354 and whose log line has not come yet. */
  missingLogLines(upTo: number): number {
    let n = 0;
    for (const rec of this.txs.values()) if (rec.tx.seq < upTo && rec.out?.data?.code === 354 && rec.logs.length === 0) n++;
    return n;
  }
}
