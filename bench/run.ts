/*
 * Benchmark driver: `npm run bench` (= tsc -p . && node dist/bench/run.js).
 *
 * Runs the benchmarks one after another (never in parallel: they would
 * compete for the same 2 cores and both results would be wrong), prints a
 * markdown table per benchmark on stdout, progress on stderr, and writes
 * the machine-readable results to bench/results/<name>-<timestamp>.json in
 * the source tree so runs can be compared over time.
 *
 * Benchmarks: the end-to-end relay benchmark (bench/relay.ts) is built in.
 * Any other compiled module under dist/bench/ whose name ends in
 * `.bench.js` and exports `bench: { name, run() }` is picked up too, so a
 * pipeline stage can ship its own benchmark without editing this file.
 *
 * Usage: node dist/bench/run.js [name-substring ...]
 * Env:   BENCH_MESSAGES (2000) BENCH_SESSIONS (20) BENCH_SIZE (10240)
 *        BENCH_WARMUP (200) BENCH_TIMEOUT_S (300 per scenario)
 *        BENCH_TOTAL_TIMEOUT_S (whole run; default 4 × per-scenario + 120)
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from '../test/helpers/paths';
import { hostInfo, paramsFromEnv, relayTable, runRelayBench } from './relay';

export interface BenchModule {
  name: string;
  /** Resolve with a markdown table for humans and a JSON-able value for the results file. */
  run(): Promise<{ markdown: string; json: unknown; ok: boolean }>;
}

const relayBench: BenchModule = {
  name: 'relay',
  async run() {
    const { params, results } = await runRelayBench(paramsFromEnv());
    const note = results.some((r) => r.mode === 'per-connection' && r.target === 'mailveil')
      ? `\nNote: smtp-server waits a hard-coded 100 ms after accepting a connection before it greets ` +
        `(early-talker check), so with ${params.sessions} sessions and one message per connection mailveil ` +
        `is capped near ${Math.round(params.sessions / 0.1)} msg/s whatever its own speed; compare the reuse rows for mailveil's throughput.`
      : '';
    return {
      markdown: relayTable(results) + '\n' + note,
      json: { params, results },
      ok: results.every((r) => r.ok),
    };
  },
};

function discover(dir: string): string[] {
  const out: string[] = [];
  if (!existsSync(dir)) return out;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...discover(p));
    else if (e.name.endsWith('.bench.js')) out.push(p);
  }
  return out.sort();
}

/** What was measured: package version and, when the tree is a git checkout with commits, the commit. */
function subjectInfo() {
  let version: string | undefined;
  let commit: string | undefined;
  try { version = (JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { version?: string }).version; } catch { /* ignore */ }
  try {
    commit = execFileSync('git', ['-C', REPO_ROOT, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8', timeout: 5000, stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch { /* no git or no commits yet */ }
  return { version, commit };
}

function postfixVersion(): string | undefined {
  try {
    return execFileSync('postconf', ['-d', '-h', 'mail_version'], { encoding: 'utf8', timeout: 5000, stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return undefined;
  }
}

async function main(argv: string[]): Promise<number> {
  const filters = argv.filter((a) => !a.startsWith('-'));
  const benches: BenchModule[] = [relayBench];
  for (const file of discover(__dirname)) {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const mod = require(file) as { bench?: BenchModule };
    if (mod.bench && typeof mod.bench.run === 'function') benches.push(mod.bench);
  }
  const selected = benches.filter((b) => filters.length === 0 || filters.some((f) => b.name.includes(f)));
  if (selected.length === 0) {
    process.stderr.write(`no benchmark matches ${filters.join(' ')}; known: ${benches.map((b) => b.name).join(', ')}\n`);
    return 2;
  }

  const p = paramsFromEnv();
  const totalS = Number(process.env.BENCH_TOTAL_TIMEOUT_S) || p.timeoutS * 4 + 120;
  // Last line of defence: the helpers' exit hook kills every child we started.
  const watchdog = setTimeout(() => {
    process.stderr.write(`bench: total time limit of ${totalS} s exceeded; killing everything\n`);
    process.exit(3);
  }, totalS * 1000);
  watchdog.unref();

  const stamp = new Date().toISOString().replace(/[:]/g, '').replace(/\.\d+Z$/, 'Z'); // 2025-06-02T100000Z
  const resultsDir = join(REPO_ROOT, 'bench', 'results');
  const meta = { date: new Date().toISOString(), mailveil: subjectInfo(), host: { ...hostInfo(), postfix: postfixVersion() } };
  let allOk = true;
  for (const b of selected) {
    let out: { markdown: string; json: unknown; ok: boolean };
    try {
      out = await b.run();
    } catch (e) {
      out = { markdown: `benchmark ${b.name} failed: ${(e as Error).message}`, json: { error: (e as Error).message }, ok: false };
    }
    allOk &&= out.ok;
    process.stdout.write(`\n## ${b.name}\n\n${out.markdown}\n`);
    mkdirSync(resultsDir, { recursive: true });
    const file = join(resultsDir, `${b.name}-${stamp}.json`);
    writeFileSync(file, JSON.stringify({ benchmark: b.name, ...meta, ok: out.ok, ...(out.json as object) }, null, 2) + '\n');
    process.stderr.write(`bench: wrote ${file}\n`);
  }
  clearTimeout(watchdog);
  return allOk ? 0 : 1;
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => { process.exitCode = code; },
    (e) => { process.stderr.write(`bench: ${(e as Error).stack ?? e}\n`); process.exitCode = 1; },
  );
}
