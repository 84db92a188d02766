/*
 * `npm run fuzz -- [--iterations N] [--seed S] [--concurrency C] [--mode spawn|inproc]
 *                  [--start K] [--only I,J] [--repeat R] [--barrier N] [--deadline MS] [--stop-after N] [--json FILE]
 *                  [--no-traces] [--trace]`
 *
 * Fuzzes mailveil's SMTP front and next-hop client (test/fuzz/engine.ts).
 * Prints the seed first; on a violation, prints each kind with examples and
 * the commands that replay them, and exits 1.
 */
import { writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { formatReport, hex, runFuzz, type FuzzOptions } from './engine';

function usage(msg?: string): never {
  if (msg) process.stderr.write(`fuzz: ${msg}\n`);
  process.stderr.write(
    'usage: npm run fuzz -- [--iterations N] [--seed S] [--concurrency C] [--mode spawn|inproc] [--start K] [--only I,J,...] [--repeat R] [--barrier N] [--deadline MS] [--stop-after N] [--json FILE] [--no-traces] [--trace]\n',
  );
  process.exit(2);
}

function num(v: string | undefined, name: string): number {
  if (v === undefined) usage(`${name} needs a value`);
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) usage(`${name}: not a number: ${v}`);
  return n;
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const o: FuzzOptions = { seed: randomBytes(4).readUInt32BE(0), iterations: 1000 };
  let json: string | undefined;
  let traces = true;
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    const v = () => args[++i];
    switch (a) {
      case '--iterations':
      case '-n':
        o.iterations = num(v(), a);
        break;
      case '--seed':
        o.seed = num(v(), a) >>> 0;
        break;
      case '--concurrency':
        o.concurrency = Math.max(1, num(v(), a));
        break;
      case '--mode': {
        const m = v();
        if (m !== 'spawn' && m !== 'inproc') usage('--mode is spawn or inproc');
        o.mode = m;
        break;
      }
      case '--start':
        o.start = num(v(), a);
        break;
      case '--only':
        o.only = (v() ?? '').split(',').map((x) => num(x, a));
        break;
      case '--repeat':
        o.repeat = Math.max(1, num(v(), a));
        break;
      case '--barrier':
        o.barrierEvery = Math.max(1, num(v(), a));
        break;
      case '--deadline':
        o.replyDeadlineMs = num(v(), a);
        break;
      case '--stop-after':
        o.stopAfter = num(v(), a);
        break;
      case '--json':
        json = v();
        break;
      case '--no-traces':
        traces = false;
        break;
      case '--trace':
        o.traceAll = true;
        break;
      case '--help':
      case '-h':
        usage();
      default:
        usage(`unknown argument ${a}`);
    }
  }
  if (o.only || o.repeat) o.concurrency ??= 1;
  process.stdout.write(
    `fuzz: seed ${hex(o.seed)}, ${o.only ? `iterations ${o.only.join(',')}` : `${o.iterations} iterations from ${o.start ?? 0}`}${o.repeat ? ` x${o.repeat}` : ''}, mode ${o.mode ?? 'spawn'}, concurrency ${o.concurrency ?? 64}\n`,
  );
  const report = await runFuzz({ ...o, progress: (l) => process.stdout.write(l + '\n') });
  process.stdout.write(formatReport(report, { traces }) + '\n');
  if (json) writeFileSync(json, JSON.stringify(report, null, 2));
  process.exit(report.total ? 1 : 0);
}

main().catch((err) => {
  process.stderr.write(`fuzz: ${(err as Error).stack ?? err}\n`);
  process.exit(2);
});
