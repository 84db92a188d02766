/*
 * Per-stage benchmark: every pipeline stage in PIPELINE, plus the spool, run
 * in-process over two inputs:
 *  - a 10 KiB message with a realistic header (internal Received hops,
 *    Exchange headers), 2000 times: cost per message in microseconds;
 *  - one 8 MiB message in 64 KiB chunks: throughput in MB/s.
 * The reference is a PassThrough over the same chunks in the same run, so
 * the ratio shows what the stage costs beyond Node's stream plumbing. The
 * spool's reference is a plain file write of the same bytes.
 */
import { mkdtempSync, rmSync, createWriteStream } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable, Writable, type Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { loadConfig } from '../src/config/load';
import { loadRuleSet } from '../src/rules/load';
import { newContext, type MessageContext } from '../src/pipeline/context';
import { PIPELINE } from '../src/pipeline/lifecycle';
import { AnalysisStream } from '../src/pipeline/run';
import { Spool } from '../src/pipeline/spool';
import { Pseudonymiser } from '../src/privacy/pseudonym';
import { REPO_ROOT } from '../test/helpers/paths';
import type { BenchModule } from './run';

const CHUNK = 64 * 1024;
const SMALL_RUNS = 2000;
const ROUNDS = 5;

function header(): string {
  const hops = [
    'from mx.example.net (mx.example.net [198.51.100.20]) by mail.example.com (Postfix) with ESMTPS id 4Xq1; Mon, 2 Nov 2026 10:00:03 +0000',
    'from exch01.corp.local (10.20.30.40) by edge01.corp.local (10.20.30.1) with Microsoft SMTP Server id 15.2.1; Mon, 2 Nov 2026 10:00:02 +0000',
    'from laptop-17.corp.local (laptop-17.corp.local [10.1.2.3])\r\n\tby exch01.corp.local (Postfix) with ESMTPSA id 4Xq0\r\n\tfor <rcpt@example.net>; Mon, 2 Nov 2026 10:00:01 +0000',
  ];
  return (
    hops.map((h) => `Received: ${h}\r\n`).join('') +
    'From: "Sender" <sender@example.com>\r\nTo: <rcpt@example.net>\r\nSubject: Quarterly numbers\r\n' +
    'Message-ID: <abc123.456@exch01.corp.local>\r\nDate: Mon, 2 Nov 2026 10:00:00 +0000\r\n' +
    'X-Originating-IP: [10.1.2.3]\r\nX-Mailer: Synthetic Mailer 1.0\r\nX-MS-Exchange-Organization-SCL: -1\r\n' +
    'X-MS-Exchange-Organization-AuthAs: Internal\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n'
  );
}

function message(bytes: number): Buffer {
  const line = 'The quick brown fox jumps over the lazy dog; numbers 0123456789 follow.\r\n';
  const dotted = '.a line that starts with a dot and must be stuffed\r\n';
  let body = '';
  for (let i = 0; body.length < bytes; i++) body += i % 50 === 0 ? dotted : line;
  return Buffer.from(header() + body.slice(0, bytes));
}

function chunks(buf: Buffer): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < buf.length; i += CHUNK) out.push(buf.subarray(i, i + CHUNK));
  return out;
}

const devNull = () => new Writable({ write: (_c, _e, cb) => cb() });

async function time(fn: () => Promise<void>): Promise<number> {
  const start = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - start) / 1e9;
}

async function best(fn: () => Promise<void>): Promise<number> {
  let b = Infinity;
  for (let i = 0; i < ROUNDS; i++) b = Math.min(b, await time(fn));
  return b;
}

interface Row {
  stage: string;
  usPerMsg10k: number;
  refUsPerMsg10k: number;
  mbPerSec8m: number;
  refMbPerSec8m: number;
}

export const bench: BenchModule = {
  name: 'stages',
  async run() {
    const state = mkdtempSync(join(tmpdir(), 'mv-bench-'));
    const config = loadConfig(undefined, { state_dir: state, rules_dir: join(REPO_ROOT, 'rules.d') });
    const rules = loadRuleSet(config.rules_dir);
    const pseudonyms = Pseudonymiser.fromStateDir(state);
    const ctx = (): MessageContext => newContext('BENCH', config, rules, pseudonyms);
    const small = chunks(message(10 * 1024));
    const large = chunks(message(8 * 1024 * 1024));
    const largeBytes = large.reduce((n, c) => n + c.length, 0);
    const through = (make: () => Transform, input: Buffer[]) => () => pipeline(Readable.from(input, { objectMode: false }), make(), devNull());
    const perMsg = async (make: () => Transform) =>
      ((await best(async () => {
        for (let i = 0; i < SMALL_RUNS / ROUNDS; i++) await through(make, small)();
      })) /
        (SMALL_RUNS / ROUNDS)) *
      1e6;
    const mbps = async (make: () => Transform) => largeBytes / 1e6 / (await best(through(make, large)));

    const refUs = await perMsg(() => new PassThrough());
    const refMb = await mbps(() => new PassThrough());
    const rows: Row[] = [];
    // Analyzers are synchronous (src/pipeline/stage.ts): each is measured inside a pass-through stream, as pass 1 runs them.
    const stages: { name: string; make: () => Transform }[] = [
      ...PIPELINE.pass1.map((s) => ({ name: s.name, make: () => new AnalysisStream(s.create(ctx())) })),
      ...PIPELINE.pass2.map((s) => ({ name: s.name, make: () => s.create(ctx()) })),
    ];
    for (const s of stages) {
      rows.push({ stage: s.name, usPerMsg10k: await perMsg(s.make), refUsPerMsg10k: refUs, mbPerSec8m: await mbps(s.make), refMbPerSec8m: refMb });
    }
    // The spool: encrypted spill against a plain file write of the same bytes.
    const dir = join(state, 'spool');
    let n = 0;
    const spoolMb = largeBytes / 1e6 / (await best(async () => {
      const sp = new Spool(dir, `S${n++}`, config.limits.spool_memory);
      await pipeline(Readable.from(large, { objectMode: false }), sp);
      await pipeline(sp.read(), devNull());
      await sp.dispose();
    }));
    const fileMb = largeBytes / 1e6 / (await best(async () => {
      const f = join(dir, `plain${n++}`);
      await pipeline(Readable.from(large, { objectMode: false }), createWriteStream(f));
      const { createReadStream } = await import('node:fs');
      await pipeline(createReadStream(f), devNull());
      rmSync(f);
    }));
    rmSync(state, { recursive: true, force: true });

    const fmt = (x: number) => (x >= 100 ? x.toFixed(0) : x.toFixed(1));
    const lines = [
      '| stage | µs per 10 KiB message | PassThrough µs | MB/s on 8 MiB | PassThrough MB/s | ratio (MB/s) |',
      '|---|---:|---:|---:|---:|---:|',
      ...rows.map((r) => `| ${r.stage} | ${fmt(r.usPerMsg10k)} | ${fmt(r.refUsPerMsg10k)} | ${fmt(r.mbPerSec8m)} | ${fmt(r.refMbPerSec8m)} | ${(r.mbPerSec8m / r.refMbPerSec8m).toFixed(2)} |`),
      `| spool (write + read back, 8 MiB, encrypted spill) | | | ${fmt(spoolMb)} | ${fmt(fileMb)} (plain file) | ${(spoolMb / fileMb).toFixed(2)} |`,
    ];
    return { markdown: lines.join('\n'), json: { rows, spool: { mbPerSec: spoolMb, plainFileMbPerSec: fileMb } }, ok: true };
  },
};
