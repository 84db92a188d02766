/*
 * Issue 8, point 12: a next hop that is down is visible. After the next hop
 * refused 3 connections in a row, /readyz on the metrics listener answers
 * 503, each failure has a log line and is counted in
 * mailveil_next_hop_failures_total{kind}; once a hop listens on that port
 * again, /readyz is back to 200 and mail flows.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cleanupAfter } from '../helpers/cleanup';
import { startMailveil, type LogLine } from '../helpers/mailveil';
import { freePort, LOOPBACK, sleep } from '../helpers/ports';
import { Findings, ScriptedHop, deliveryProblems, foreignCommands, metricValue, relaySettledProblems } from '../helpers/scripted-hop';
import { SMUGGLED_LINES, sendWithCommands } from '../helpers/smtp-client';

const { running, tempDir } = cleanupAfter();

async function readyz(port: number): Promise<number> {
  const res = await fetch(`http://${LOOPBACK}:${port}/readyz`, { signal: AbortSignal.timeout(3000) });
  await res.text();
  return res.status;
}

const numericLevel = (l: LogLine) => (typeof l.level === 'number' ? l.level : ({ warn: 40, error: 50, fatal: 60 } as Record<string, number>)[String(l.level)] ?? 30);

test('/readyz turns 503 after the next hop refused 3 connections in a row, and 200 again once it answers', async (t) => {
  const hopPort = await freePort();
  const dir = tempDir('mv-hard-ready-');
  const config = join(dir, 'mailveil.yaml');
  writeFileSync(config, JSON.stringify({ timeouts: { next_hop_connect: '2s', next_hop_command: '5s', next_hop_data: '8s', client_idle: '10s', drain: '5s' } }) + '\n');
  const mv = await startMailveil({ nextHop: `${LOOPBACK}:${hopPort}`, config });
  running.push(mv);
  assert.equal(await readyz(mv.metricsPort), 200, 'ready before anything failed');

  for (let i = 1; i <= 3; i++) {
    const r = await sendWithCommands(mv.port, { token: `hop-down-${i}` });
    assert.equal(r.reply.code, 451, `message ${i} with the hop down: ${r.reply.code} ${r.reply.text}`);
    assert.match(r.reply.text, /^4\.4\.1 /);
  }
  const f = new Findings();
  const status = await readyz(mv.metricsPort);
  const failures = await metricValue(mv.metricsPort, 'mailveil_next_hop_failures_total');
  const hopLines = mv.logs().filter((l) => numericLevel(l) >= 40 && /next[ _]hop/i.test(JSON.stringify(l)));
  f.equal(status, 503, '/readyz while the next hop refuses every connection');
  f.check((failures ?? 0) >= 3, `mailveil_next_hop_failures_total should count the 3 refusals: ${failures}`);
  f.check(hopLines.length >= 3, `each refusal should have a warning (or worse) log line: ${hopLines.length} found`);

  const hop = await ScriptedHop.start({ port: hopPort });
  running.push(hop);
  // Back to ready once the hop answers: on its own (a probe), or at the latest once a message got through.
  let back = false;
  for (const until = Date.now() + 5000; !back && Date.now() < until; await sleep(100)) back = (await readyz(mv.metricsPort)) === 200;
  t.diagnostic(back ? '/readyz recovered on its own, before any mail' : '/readyz still 503 5 s after the hop came back; trying a message');
  const sent = await sendWithCommands(mv.port, { token: 'hop-back' });
  f.check(sent.reply.code === 250, `with the hop back: ${sent.reply.code} ${sent.reply.text}`);
  for (const until = Date.now() + 3000; !back && Date.now() < until; await sleep(100)) back = (await readyz(mv.metricsPort)) === 200;
  f.check(back, '/readyz is not 200 again after the next hop answered');
  f.add(deliveryProblems(hop, [sent]));
  const foreign = foreignCommands(hop, { forbidden: SMUGGLED_LINES, addresses: ['sender@example.com', 'rcpt@example.net'] });
  f.check(foreign.length === 0, `commands from a body reached the next hop: ${JSON.stringify(foreign)}`);
  f.add(await relaySettledProblems(mv, hop));
  f.assertNone(hop.describe());
});
