/* Envelope mirroring: parameters and XFORWARD as the next hop must see them. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { SMTPServerAddress, SMTPServerSession } from 'smtp-server';
import { clientAttributes, mailFromCommand, rcptToCommand, xforwardCommands, EnvelopeError } from '../../src/smtp/envelope';
import { encodeXtext } from '../../src/smtp/xtext';

const all = () => true;
const none = () => false;
const addr = (address: string, args: Record<string, string | boolean> | false = false) => ({ address, args }) as SMTPServerAddress;

test('MAIL FROM carries SIZE, BODY, SMTPUTF8, RET and ENVID (xtext re-encoded)', () => {
  assert.equal(
    mailFromCommand(addr('a@example.com', { SIZE: '1234', BODY: '8BITMIME', SMTPUTF8: true, RET: 'HDRS', ENVID: 'x+y=z' }), all),
    'MAIL FROM:<a@example.com> SIZE=1234 BODY=8BITMIME SMTPUTF8 RET=HDRS ENVID=x+2By+3Dz',
  );
  assert.equal(mailFromCommand(addr(''), all), 'MAIL FROM:<>');
});

test('a parameter whose extension the next hop lacks is left out, except SMTPUTF8', () => {
  assert.equal(mailFromCommand(addr('a@example.com', { SIZE: '1', BODY: '8BITMIME', RET: 'FULL' }), none), 'MAIL FROM:<a@example.com>');
  assert.throws(() => mailFromCommand(addr('a@example.com', { SMTPUTF8: true }), none), (e: EnvelopeError) => e.responseCode === 553 && /^5\.6\.7 /.test(e.message));
});

test('RCPT TO carries NOTIFY and ORCPT', () => {
  assert.equal(
    rcptToCommand(addr('b@example.net', { NOTIFY: 'SUCCESS,DELAY', ORCPT: 'rfc822;b+tag@example.net' }), all),
    'RCPT TO:<b@example.net> NOTIFY=SUCCESS,DELAY ORCPT=rfc822;b+2Btag@example.net',
  );
});

test('xtext encodes +, = and bytes outside 33..126', () => {
  assert.equal(encodeXtext('a+b=c d\u00e9'), 'a+2Bb+3Dc+20d+C3+A9');
});

test('XFORWARD: forwarded attributes, only those the next hop announced, IPv6 prefixed, unavailable marked', () => {
  const session = {
    remoteAddress: '2001:db8::5',
    xForward: new Map<string, unknown>([
      ['ADDR:DEFAULT', '127.0.0.1'],
      ['ADDR', '2001:db8::5'],
      ['NAME', false],
      ['HELO', 'client.example.org'],
      ['PROTO', 'ESMTP'],
      ['IDENT', 'q1 2'],
    ]),
  } as unknown as SMTPServerSession;
  assert.deepEqual(xforwardCommands(clientAttributes(session), 'NAME ADDR PROTO HELO'), [
    'XFORWARD NAME=[UNAVAILABLE] ADDR=IPv6:2001:db8::5 PROTO=ESMTP HELO=client.example.org',
  ]);
  assert.deepEqual(xforwardCommands(clientAttributes(session), undefined), []);
});

test('XFORWARD: without forwarded data our own client is the original client', () => {
  const session = { remoteAddress: '::ffff:192.0.2.7', hostNameAppearsAs: 'mx.example.org', transmissionType: 'ESMTPS', xForward: new Map() } as unknown as SMTPServerSession;
  assert.deepEqual(xforwardCommands(clientAttributes(session), 'NAME ADDR PROTO HELO SOURCE'), [
    'XFORWARD ADDR=192.0.2.7 NAME=[UNAVAILABLE] HELO=mx.example.org PROTO=ESMTP',
  ]);
});

test('XFORWARD: long values are split over several commands under the line limit', () => {
  const session = { xForward: new Map<string, unknown>([['ADDR', '192.0.2.1'], ['NAME', 'n'.repeat(250)], ['HELO', 'h'.repeat(250)]]) } as unknown as SMTPServerSession;
  const lines = xforwardCommands(clientAttributes(session), 'NAME ADDR HELO');
  assert.equal(lines.length, 2);
  for (const l of lines) assert.ok(l.length <= 400 && l.startsWith('XFORWARD '));
});
