/*
 * smtp-server prefixes every reply with an enhanced status code of its own
 * choosing (550 becomes "550 5.1.1 ..."). mailveil's replies carry their own
 * code, often the next hop's, which must reach the client unchanged: a next
 * hop's "550 5.7.1" must not become "550 5.1.1 5.7.1". This makes send()
 * leave a reply alone when its text already starts with an enhanced code.
 * Applied once, at import.
 */
import { SMTPConnection } from 'smtp-server/lib/smtp-connection';

const HAS_ENHANCED = /^[245]\.\d{1,3}\.\d{1,3}(?: |$)/;
const original = SMTPConnection.prototype.send;

SMTPConnection.prototype.send = function send(this: SMTPConnection, code, data, context) {
  if (typeof data === 'string' && HAS_ENHANCED.test(data)) context = false;
  return original.call(this, code, data, context);
};
