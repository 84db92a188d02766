/*
 * The SMTP view of the error catalogue (src/errors.ts): a catalogue code
 * becomes the error smtp-server turns into its reply. The replies themselves
 * (code, enhanced status code, text) live in the catalogue only.
 */
import { smtpReplyOf, type ReplyCode } from '../errors';
import type { Reply } from '../pipeline/reply';

export interface SmtpError extends Error {
  responseCode: number;
}

/** An error smtp-server turns into the reply `code text`. */
export function smtpError(code: number, text: string): SmtpError {
  return Object.assign(new Error(text), { responseCode: code });
}

/** The reply a catalogue code gives a client. */
export function replyError(code: ReplyCode): SmtpError {
  const r = smtpReplyOf(code);
  return smtpError(r.code, r.text);
}

/** The next hop's own refusal, passed back unchanged (guarantee 1). */
export function passThrough(reply: Reply): SmtpError {
  const enhanced = reply.enhanced ?? `${Math.floor(reply.code / 100)}.0.0`;
  return smtpError(reply.code, `${enhanced} ${reply.text}`.trim());
}

/** A rule's reply text ("550 5.7.1 ..."), validated by the rule schema. */
export function ruleReply(reply: string | undefined, fallback: ReplyCode): SmtpError {
  const m = reply ? /^([45]\d\d) (.+)$/.exec(reply) : null;
  return m ? smtpError(Number(m[1]), m[2]) : replyError(fallback);
}
