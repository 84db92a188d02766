/*
 * Policy lookup benchmark (issue 10's closing figure: "the time a policy
 * lookup adds per message, cold and cached"). mx mode asks, for each
 * recipient domain of each message, what tls/policy.ts needs: MX, the
 * hosts' A/AAAA, TLSA where the answers were secure, and the MTA-STS TXT
 * record plus, when its id is new, the policy over HTTPS.
 *
 * The world is real: unbound validating signed zones on loopback
 * (test/helpers/dns-world.ts) and an HTTPS policy host on 127.0.0.85:443.
 * For each kind of domain (DANE, MTA-STS, neither) N distinct domains are
 * looked up once cold (nothing cached anywhere: unbound has not seen the
 * names, the MTA-STS cache is empty) and then again cached (unbound's cache,
 * the MTA-STS policy from mailveil's cache after its TXT id check). The
 * figure is policyFor()'s wall time, the same call mx delivery makes.
 * Needs root (port 443) and unbound/ldnsutils.
 */
import { createServer } from 'node:https';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { startDnsWorld } from '../test/helpers/dns-world';
import { TestPki } from '../test/helpers/test-pki';
import { loadConfig } from '../src/config/load';
import { policyServices } from '../src/smtp/mx/policy-services';
import { createLogger } from '../src/observability/log';
import { Metrics } from '../src/observability/metrics';
import type { RuleSet } from '../src/rules/types';
import type { BenchModule } from './run';

const N = Number(process.env.BENCH_POLICY_DOMAINS ?? 40);
const STS_IP = '127.0.0.85';

function stats(xs: number[]): { median: number; p95: number; max: number } {
  const s = [...xs].sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.floor(q * s.length))];
  return { median: +at(0.5).toFixed(2), p95: +at(0.95).toFixed(2), max: +s[s.length - 1].toFixed(2) };
}

async function runPolicy(): Promise<{ markdown: string; json: unknown; ok: boolean }> {
  const pki = new TestPki('policy bench');
  const mxCert = pki.leaf('mx', { names: ['mx.bench.test'] });
  const spki = createHash('sha256').update(mxCert.x509.publicKey.export({ type: 'spki', format: 'der' })).digest('hex');
  const ids = Array.from({ length: N }, (_, i) => i);
  const stsHosts = ids.map((i) => `mta-sts.s${i}.sts.test`);
  const stsCert = pki.leaf('sts', { names: stsHosts });
  const https = createServer({ key: stsCert.key, cert: stsCert.chain }, (req, res) => {
    const host = String(req.headers.host ?? '').split(':')[0];
    res.writeHead(200, { 'content-type': 'text/plain' }).end(`version: STSv1\nmode: enforce\nmx: mx.${host.slice('mta-sts.'.length)}\nmax_age: 86400\n`);
  });
  await new Promise<void>((r) => https.listen(443, STS_IP, () => r()));
  const world = await startDnsWorld({
    zones: [
      { name: 'dane.test', mode: 'signed', records: ids.flatMap((i) => [`d${i} MX 10 mx.d${i}`, `mx.d${i} A 127.0.0.86`, `_25._tcp.mx.d${i} TLSA 3 1 1 ${spki}`]) },
      { name: 'sts.test', mode: 'unsigned', records: ids.flatMap((i) => [`s${i} MX 10 mx.s${i}`, `mx.s${i} A 127.0.0.86`, `_mta-sts.s${i} TXT "v=STSv1; id=1"`, `mta-sts.s${i} A ${STS_IP}`]) },
      { name: 'plain.test', mode: 'unsigned', records: ids.flatMap((i) => [`p${i} MX 10 mx.p${i}`, `mx.p${i} A 127.0.0.86`]) },
    ],
  });
  const state = mkdtempSync(join(tmpdir(), 'mv-policy-bench-'));
  const config = loadConfig(undefined, { state_dir: state }, state);
  config.delivery = { ...config.delivery, mode: 'mx' };
  config.dns = { servers: [world.server], timeout: 3000 };
  config.tls = { ...config.tls, ca_file: { path: pki.caFile, pem: readFileSync(pki.caFile, 'utf8') } };
  const rules = { rules: [], tlsPolicy: new Map() } as unknown as RuleSet;
  const svc = policyServices(config, () => rules, createLogger('error'), new Metrics());
  await svc.start();
  const rows: { kind: string; phase: string; median: number; p95: number; max: number; source: string }[] = [];
  let ok = true;
  try {
    for (const [kind, name, want] of [['dane', (i: number) => `d${i}.dane.test`, 'dane'], ['mta-sts', (i: number) => `s${i}.sts.test`, 'mta-sts'], ['none', (i: number) => `p${i}.plain.test`, 'default']] as const) {
      for (const phase of ['cold', 'cached']) {
        const times: number[] = [];
        let source = '';
        for (const i of ids) {
          const t0 = performance.now();
          const p = await svc.policyFor(name(i));
          times.push(performance.now() - t0);
          source = p.source;
          if (p.source !== want) ok = false;
        }
        rows.push({ kind, phase, ...stats(times), source });
      }
    }
  } finally {
    await svc.close();
    await world.stop();
    await new Promise<void>((r) => https.close(() => r()));
    rmSync(state, { recursive: true, force: true });
  }
  const markdown = [
    `Policy lookup per recipient domain (policyFor(), ${N} domains per kind; cold = first lookup, cached = second), ms:`,
    '',
    '| domain kind | phase | median | p95 | max | decided by |',
    '|---|---|---:|---:|---:|---|',
    ...rows.map((r) => `| ${r.kind} | ${r.phase} | ${r.median} | ${r.p95} | ${r.max} | ${r.source} |`),
  ].join('\n');
  return { markdown, json: { domains: N, rows }, ok };
}

export const bench: BenchModule = { name: 'policy-lookup', run: runPolicy };
