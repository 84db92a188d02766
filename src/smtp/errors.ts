/*
 * The SMTP view of the error catalogue (src/errors.ts): a catalogue code
 * becomes the error smtp-server turns into its reply. The replies themselves
 * (code, enhanced status code, text) live in the catalogue only.
 */
import { smtpReplyOf, type ReplyCode } from '../errors';
import { passedBack, type Reply } from '../pipeline/reply';

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
  const r = passedBack(reply);
  return smtpError(r.code, r.text);
}
