/*
 * mailveil sits between two Postfix processes, and its waits must end before
 * the waits of the Postfix smtp client that feeds it (the content_filter
 * transport). If Postfix gives up first, it retries a message that mailveil
 * may still have delivered: a duplicate at best, and before issue 8 the path
 * that lost mail. These are Postfix's defaults (postconf(5)); an operator who
 * lowers them in master.cf must lower mailveil's too, and `serve` says so.
 */
import type { Config } from './load';

/** Postfix smtp client limits, in milliseconds, at their defaults. */
export const POSTFIX_SMTP_LIMITS = {
  smtp_data_done_timeout: 600_000,
  smtp_data_xfer_timeout: 180_000,
  smtp_rcpt_timeout: 300_000,
  smtp_mail_timeout: 300_000,
} as const;

const s = (ms: number) => `${Math.round(ms / 1000)}s`;

/** One line per configured wait that breaks the order; empty when all is well. */
export function timeoutOrderWarnings(t: Config['timeouts']): string[] {
  const out: string[] = [];
  const p = POSTFIX_SMTP_LIMITS;
  if (t.next_hop_data >= p.smtp_data_done_timeout) {
    out.push(`timeouts.next_hop_data (${s(t.next_hop_data)}) is not below Postfix's smtp_data_done_timeout (${s(p.smtp_data_done_timeout)}): Postfix gives up first and retries a message the next hop may accept`);
  }
  if (t.next_hop_write >= p.smtp_data_xfer_timeout) {
    out.push(`timeouts.next_hop_write (${s(t.next_hop_write)}) is not below Postfix's smtp_data_xfer_timeout (${s(p.smtp_data_xfer_timeout)})`);
  }
  // Our MAIL reply may wait for a connect, the greeting, EHLO and MAIL itself.
  const mail = t.next_hop_connect + 3 * t.next_hop_command;
  if (mail >= p.smtp_mail_timeout) {
    out.push(`timeouts.next_hop_connect + 3 x next_hop_command (${s(mail)}) is not below Postfix's smtp_mail_timeout (${s(p.smtp_mail_timeout)})`);
  }
  if (t.next_hop_command >= p.smtp_rcpt_timeout) {
    out.push(`timeouts.next_hop_command (${s(t.next_hop_command)}) is not below Postfix's smtp_rcpt_timeout (${s(p.smtp_rcpt_timeout)})`);
  }
  return out;
}
