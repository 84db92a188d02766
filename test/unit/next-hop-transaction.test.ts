/*
 * The next-hop transaction model (issue 8), driven against a next hop whose
 * every byte the test writes by hand, one byte per write where it matters:
 *  - each reply answers exactly the command it belongs to, never a later one;
 *  - a reply with no command, or one that cannot follow its command,
 *    destroys the connection and is reported;
 *  - a connection past DATA is never reset and never pooled;
 *  - RSET waits until every reply is in;
 *  - a reply that arrives after our client has gone is recorded, not
 *    mistaken for the answer to the next command;
 *  - a next hop that stops reading ends the transaction within next_hop_write.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { Readable } from 'node:stream';
import { NextHopConnection, NextHopError, type NextHopOptions } from '../../src/smtp/next-hop';
import { NextHopPool } from '../../src/smtp/next-hop-pool';

/** One accepted connection: what it received, and a way to answer byte by byte. */
interface Peer {
  sock: Socket;
  /** Everything received so far, as text. */
  received(): string;
  /** Command lines received outside DATA (the body is not split into lines). */
  commands(): string[];
  /** Writes `text` one byte per write, yielding to the event loop in between. */
  trickle(text: string): Promise<void>;
  /** Resolves once `n` command lines have arrived. */
  waitCommands(n: number): Promise<void>;
  /** Resolves once the received bytes contain `s`. */
  waitFor(s: string): Promise<void>;
}

interface ScriptedHop {
  port: number;
  peers: Peer[];
  close(): Promise<void>;
}

async function scripted(): Promise<ScriptedHop> {
  const peers: Peer[] = [];
  const server: Server = createServer((sock) => {
    let all = '';
    const listeners: (() => void)[] = [];
    sock.on('data', (d) => {
      all += d.toString('latin1');
      for (const l of listeners.splice(0)) l();
    });
    sock.on('error', () => undefined);
    const commands = () => {
      const out: string[] = [];
      let inData = false;
      for (const line of all.split('\r\n').slice(0, -1)) {
        if (inData) {
          if (line === '.') inData = false;
          continue;
        }
        out.push(line);
        if (line === 'DATA') inData = true;
      }
      return out;
    };
    const until = (cond: () => boolean) =>
      new Promise<void>((resolve) => {
        const check = () => (cond() ? resolve() : listeners.push(check));
        check();
      });
    const peer: Peer = {
      sock,
      received: () => all,
      commands,
      async trickle(text) {
        for (const ch of Buffer.from(text, 'latin1')) {
          if (sock.destroyed) return;
          sock.write(Buffer.from([ch]));
          await new Promise((r) => setImmediate(r));
        }
      },
      waitCommands: (n) => until(() => commands().length >= n),
      waitFor: (s) => until(() => all.includes(s)),
    };
    peers.push(peer);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as AddressInfo).port,
    peers,
    close: () =>
      new Promise<void>((resolve) => {
        for (const p of peers) p.sock.destroy();
        server.close(() => resolve());
      }),
  };
}

const EHLO_REPLY = '250-hop.test\r\n250-PIPELINING\r\n250-SIZE 100000000\r\n250 8BITMIME\r\n';

function options(port: number, violations: string[] = [], over: Partial<NextHopOptions> = {}): NextHopOptions {
  return {
    host: '127.0.0.1',
    port,
    helo: 'mv.test',
    connectTimeout: 2000,
    commandTimeout: 2000,
    writeTimeout: 2000,
    dataTimeout: 2000,
    onViolation: (w) => violations.push(w),
    ...over,
  };
}

let current: ScriptedHop | undefined;

/** Opens a connection, answering greeting and EHLO byte by byte. */
async function openWith(port: number, over: Partial<NextHopOptions> = {}, violations: string[] = []) {
  const srv = current!;
  const seen = srv.peers.length;
  const opening = NextHopConnection.open(options(port, violations, over));
  while (srv.peers.length <= seen) await new Promise((r) => setTimeout(r, 5));
  const peer = srv.peers[seen];
  await peer.trickle('220 hop.test ESMTP\r\n');
  await peer.waitCommands(1);
  await peer.trickle(EHLO_REPLY);
  return { conn: await opening, peer };
}

/** Opens a connection and gets MAIL accepted, so a DATA may follow. */
async function openInTransaction(port: number, over: Partial<NextHopOptions> = {}, violations: string[] = []) {
  const opened = await openWith(port, over, violations);
  const mail = opened.conn.command('MAIL FROM:<a@example.com>');
  await opened.peer.waitCommands(2);
  await opened.peer.trickle('250 ok\r\n');
  await mail;
  return opened;
}

async function withHop(fn: (port: number) => Promise<void>): Promise<void> {
  current = await scripted();
  try {
    await fn(current.port);
  } finally {
    await current.close();
    current = undefined;
  }
}

/** A body the test feeds chunk by chunk (object mode: chunks are never merged). */
const manual = () => new Readable({ objectMode: true, read() {} });
const body = (text: string) => Readable.from([Buffer.from(text)]);

test('replies written one byte at a time are matched to their commands in order, pipelined or not', async () => {
  await withHop(async (port) => {
    const { conn, peer } = await openWith(port);
    assert.ok(conn.supports('PIPELINING'));
    const replies = conn.commands(['MAIL FROM:<a@example.com>', 'RCPT TO:<b@example.net>', 'RCPT TO:<c@example.net>']);
    await peer.waitCommands(4);
    await peer.trickle('250 2.1.0 mail\r\n250 2.1.5 first\r\n550-5.1.1 second\r\n550 5.1.1 no such user\r\n');
    const [m, r1, r2] = await replies;
    assert.deepEqual([m.text, r1.text, r2.code, r2.enhanced], ['mail', 'first', 550, '5.1.1']);
    assert.equal(conn.outstanding, 0);
    conn.destroy();
  });
});

test('a reply to no command destroys the connection and is reported', async () => {
  await withHop(async (port) => {
    const violations: string[] = [];
    const { conn, peer } = await openWith(port, {}, violations);
    const mail = conn.command('MAIL FROM:<a@example.com>');
    await peer.waitCommands(2);
    // Two replies for one command: the second would answer the next command.
    await peer.trickle('250 2.1.0 ok\r\n250 2.1.5 stray\r\n');
    assert.equal((await mail).code, 250);
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(conn.usable, false);
    assert.match(violations.join(), /250 reply to no command/);
  });
});

test('a 2xx reply to DATA is a protocol violation, never a final answer', async () => {
  await withHop(async (port) => {
    const violations: string[] = [];
    const { conn, peer } = await openInTransaction(port, {}, violations);
    const sent = conn.data(body('Subject: x\r\n\r\nhello\r\n'));
    await peer.waitCommands(3);
    await peer.trickle('250 2.1.5 stale\r\n');
    await assert.rejects(sent, (e: NextHopError) => e.kind === 'protocol');
    assert.match(violations.join(), /250 reply to DATA/);
    assert.ok(!peer.received().includes('hello'), 'no body after a bad DATA reply');
  });
});

test('a 354 to RCPT is a protocol violation', async () => {
  await withHop(async (port) => {
    const violations: string[] = [];
    const { conn, peer } = await openWith(port, {}, violations);
    const r = conn.command('RCPT TO:<b@example.net>');
    await peer.waitCommands(2);
    await peer.trickle('354 go ahead\r\n');
    await assert.rejects(r, (e: NextHopError) => e.kind === 'protocol');
    assert.equal(conn.usable, false);
  });
});

test('RSET waits for every outstanding reply, so the replies stay in step', async () => {
  await withHop(async (port) => {
    const { conn, peer } = await openWith(port);
    const mail = conn.command('MAIL FROM:<a@example.com>');
    await peer.waitCommands(2);
    await peer.trickle('250 2.1.0 mail\r\n');
    await mail;
    // The client goes away with a RCPT outstanding: the pool takes the connection back.
    const rcpt = conn.command('RCPT TO:<b@example.net>');
    const pool = new NextHopPool(options(port), 5, 60_000);
    const released = pool.release(conn);
    await new Promise((r) => setTimeout(r, 30));
    assert.deepEqual(peer.commands().slice(-1), ['RCPT TO:<b@example.net>'], 'no RSET while the RCPT reply is owed');
    await peer.trickle('250 2.1.5 rcpt\r\n');
    assert.equal((await rcpt).text, 'rcpt');
    await peer.waitCommands(4);
    assert.equal(peer.commands()[3], 'RSET');
    await peer.trickle('250 2.0.0 reset\r\n');
    await released;
    // The pooled connection answers the next transaction with the right replies.
    const { conn: again, reused } = await pool.acquire();
    assert.equal(reused, true);
    assert.equal(again, conn);
    const m2 = again.command('MAIL FROM:<c@example.com>');
    await peer.waitCommands(5);
    await peer.trickle('250 2.1.0 second mail\r\n');
    assert.equal((await m2).text, 'second mail');
    pool.close();
  });
});

test('a connection past DATA is closed, never reset: body streaming, dot sent, or 354 outstanding', async () => {
  for (const stage of ['354', 'body', 'dot'] as const) {
    await withHop(async (port) => {
      const { conn, peer } = await openInTransaction(port);
      let push: (b: Buffer | null) => void = () => undefined;
      const stream = manual();
      push = (b) => stream.push(b);
      const sent = conn.data(stream as Readable & AsyncIterable<Buffer>);
      sent.catch(() => undefined);
      await peer.waitCommands(3);
      if (stage !== '354') {
        await peer.trickle('354 go\r\n');
        // One chunk is held back until the next arrives (the dot rides with the last).
        push(Buffer.from('Subject: x\r\n\r\nRSET\r\nMAIL FROM:<evil@evil.test>\r\n'));
        push(Buffer.from('more body\r\n'));
        await peer.waitFor('MAIL FROM:<evil');
        if (stage === 'dot') {
          push(null);
          await peer.waitFor('\r\n.\r\n');
        }
      }
      assert.equal(conn.phase, stage === '354' ? 'data' : stage);
      const pool = new NextHopPool(options(port), 5, 60_000);
      await pool.release(conn);
      await new Promise((r) => setTimeout(r, 30));
      assert.equal(conn.usable, false, `${stage}: the connection must be closed`);
      assert.ok(!peer.commands().includes('RSET'), `${stage}: RSET was sent after DATA`);
      const { reused } = await pool.acquire().catch(() => ({ reused: false }));
      assert.equal(reused, false, `${stage}: a connection past DATA was pooled`);
      pool.close();
    });
  }
});

test('the client leaves during the body: the dot is never sent, the connection is closed', async () => {
  await withHop(async (port) => {
    const { conn, peer } = await openInTransaction(port);
    const gone = new AbortController();
    const stream = manual();
    const sent = conn.data(stream as Readable & AsyncIterable<Buffer>, gone.signal);
    await peer.waitCommands(3);
    await peer.trickle('354 go\r\n');
    stream.push(Buffer.from('Subject: x\r\n\r\nfirst half\r\n'));
    await new Promise((r) => setTimeout(r, 20));
    gone.abort();
    stream.push(Buffer.from('second half\r\n'));
    await assert.rejects(sent, (e: NextHopError) => e.kind === 'client_gone');
    await new Promise((r) => setTimeout(r, 20));
    assert.ok(!peer.received().includes('\r\n.\r\n'), 'the final dot was sent for an abandoned message');
    assert.equal(conn.usable, false);
  });
});

test('the client leaves after the dot: the late reply is recorded as the answer to the dot', async () => {
  await withHop(async (port) => {
    const { conn, peer } = await openInTransaction(port);
    const gone = new AbortController();
    const sent = conn.data(body('Subject: x\r\n\r\nhello\r\n') as Readable & AsyncIterable<Buffer>, gone.signal);
    await peer.waitCommands(3);
    await peer.trickle('354 go\r\n');
    await peer.waitFor('\r\n.\r\n');
    gone.abort();
    await new Promise((r) => setTimeout(r, 50));
    await peer.trickle('250 2.0.0 Ok: queued as LATE1\r\n');
    const reply = await sent;
    assert.equal(reply.code, 250);
    assert.match(reply.text, /LATE1/);
    assert.equal(conn.phase, 'ready', 'the transaction is over and the connection in step');
    conn.destroy();
  });
});

test('a next hop that stops reading: write_timeout within next_hop_write, no dot', async () => {
  await withHop(async (port) => {
    const { conn, peer } = await openInTransaction(port, { writeTimeout: 300 });
    const chunk = Buffer.alloc(256 * 1024, 0x61);
    const big = Readable.from(
      (function* () {
        yield Buffer.from('Subject: x\r\n\r\n');
        for (let i = 0; i < 256; i++) yield chunk; // 64 MiB: far more than socket buffers hold
      })(),
    );
    const started = Date.now();
    const sent = conn.data(big as Readable & AsyncIterable<Buffer>);
    await peer.waitCommands(3);
    peer.sock.pause();
    await peer.trickle('354 go\r\n');
    await assert.rejects(sent, (e: NextHopError) => e.kind === 'write_timeout' && e.deadline === 'next_hop_write');
    const took = Date.now() - started;
    assert.ok(took < 3000, `took ${took} ms`);
    assert.equal(conn.usable, false);
  });
});

test('no reply to the dot within next_hop_data: a timeout naming that deadline', async () => {
  await withHop(async (port) => {
    const { conn, peer } = await openInTransaction(port, { dataTimeout: 200 });
    const sent = conn.data(body('Subject: x\r\n\r\nhi\r\n') as Readable & AsyncIterable<Buffer>);
    await peer.waitCommands(3);
    await peer.trickle('354 go\r\n');
    await assert.rejects(sent, (e: NextHopError) => e.kind === 'timeout' && e.deadline === 'next_hop_data');
    assert.equal(conn.usable, false);
  });
});

test('a premature reply during the body is final and spends the connection', async () => {
  await withHop(async (port) => {
    const { conn, peer } = await openInTransaction(port);
    const stream = manual();
    const sent = conn.data(stream as Readable & AsyncIterable<Buffer>);
    await peer.waitCommands(3);
    await peer.trickle('354 go\r\n');
    stream.push(Buffer.from('Subject: x\r\n\r\n'));
    stream.push(Buffer.from('body\r\n'));
    await peer.waitFor('Subject: x');
    await peer.trickle('550 5.7.1 go away\r\n');
    stream.push(Buffer.from('more\r\n'));
    const r = await sent;
    assert.equal(r.code, 550);
    assert.equal(conn.usable, false);
    assert.ok(!peer.received().includes('\r\n.\r\n'));
  });
});

test('354 and a premature 550 in one packet: the 550 is the answer, not a violation', async () => {
  await withHop(async (port) => {
    const violations: string[] = [];
    const { conn, peer } = await openInTransaction(port, {}, violations);
    const sent = conn.data(body('Subject: x\r\n\r\nhi\r\n') as Readable & AsyncIterable<Buffer>);
    await peer.waitCommands(3);
    peer.sock.write('354 go\r\n550 5.7.0 not today\r\n');
    const r = await sent;
    assert.deepEqual([r.code, r.enhanced], [550, '5.7.0']);
    assert.deepEqual(violations, []);
    assert.equal(conn.usable, false);
  });
});

test('a 2xx during the body is a violation, never taken as the final 250', async () => {
  await withHop(async (port) => {
    const violations: string[] = [];
    const { conn, peer } = await openInTransaction(port, {}, violations);
    const sent = conn.data(body('Subject: x\r\n\r\nhi\r\n') as Readable & AsyncIterable<Buffer>);
    await peer.waitCommands(3);
    peer.sock.write('354 go\r\n250 2.0.0 not really\r\n');
    await assert.rejects(sent, (e: NextHopError) => e.kind === 'protocol');
    assert.match(violations.join(), /250 reply to no command/);
    assert.ok(!peer.received().includes('\r\n.\r\n'));
  });
});
