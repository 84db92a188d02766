/*
 * The mailveil under test, with the fuzzer's config and rules:
 *  - 'spawn': the real `bin/mailveil serve` (test/helpers/mailveil.ts), so
 *    the shipped entry point, its logging and its process are what is
 *    fuzzed; mailveil and the fuzzer then run on separate cores;
 *  - 'inproc': `new Service(config)` in the fuzzer's own process, with the
 *    log captured from the logger directly; quicker to start, and a stack
 *    trace of a hang is in the same process.
 * Both expose the same view: the SMTP port, metrics by name, the message log
 * lines since the last look, the spool directory, and the pseudonym of an
 * address (to find a message's log line by its sender).
 */
import { mkdtempSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { get } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startMailveil, type Mailveil } from '../helpers/mailveil';
import { freePort } from '../helpers/ports';
import { loadConfig } from '../../src/config/load';
import { Service } from '../../src/service';
import { createLogger } from '../../src/observability/log';
import { Pseudonymiser } from '../../src/privacy/pseudonym';
import { MARKS, REDACT_REPLACEMENT, REJECT_REPLY, TEMPFAIL_REPLY } from './scenario';

export type Mode = 'spawn' | 'inproc';

export interface TargetLimits {
  maxMessageSize: number;
  commandDeadlineMs: number;
  dataDeadlineMs: number;
  writeDeadlineMs: number;
  clientIdleMs: number;
}

/** The fuzzer's mailveil settings: short deadlines, so every stall ends quickly, and a small spool_memory, so larger bodies go to disk. */
export const FUZZ_LIMITS: TargetLimits = {
  maxMessageSize: 8 * 1024 * 1024,
  commandDeadlineMs: 2000,
  dataDeadlineMs: 3000,
  writeDeadlineMs: 2000,
  clientIdleMs: 2000,
};

export const FUZZ_CONFIG = `# written by test/fuzz/target.ts
hostname: mailveil.fuzz.test
log_level: info
limits:
  max_message_size: 8MiB
  spool_memory: 32KiB
  max_connections: 3000
  max_recipients: 50
timeouts:
  next_hop_connect: 2s
  next_hop_command: 2s
  next_hop_write: 2s
  next_hop_data: 3s
  client_idle: 2s
  client_min_data_rate: 500B
  drain: 2s
next_hop_pool:
  max_idle: 20
  idle_timeout: 5s
`;

/** One rule per action, each on its own mark; headers left alone so the expected output is exact. */
export const FUZZ_RULES = `# written by test/fuzz/target.ts
headers:
  remove: []
  received: keep
rules:
  - id: fuzz-tag
    pattern: '${MARKS.tag}'
    scope: [body]
    action: tag
  - id: fuzz-redact
    pattern: '${MARKS.redact}[0-9]{6}'
    scope: [body]
    action: redact
    replacement: '${REDACT_REPLACEMENT}'
  - id: fuzz-quarantine
    pattern: '${MARKS.quarantine}'
    scope: [body]
    action: quarantine
  - id: fuzz-reject
    pattern: '${MARKS.reject}'
    scope: [body]
    action: reject
    reply: '${REJECT_REPLY}'
  - id: fuzz-tempfail
    pattern: '${MARKS.tempfail}'
    scope: [body]
    action: tempfail
    reply: '${TEMPFAIL_REPLY}'
`;

export interface MessageLog {
  from?: string;
  id?: string;
  reply?: number;
  verdict?: string;
}

export interface Target {
  mode: Mode;
  port: number;
  stateDir: string;
  pseudonym(address: string): string;
  /** The `"msg":"message"` log lines since the last call. */
  takeMessageLogs(): MessageLog[];
  /** Error-level log lines since the last call (for the report). */
  takeErrors(): string[];
  /** The sum of a metric's samples, or undefined if mailveil does not export it. */
  metric(name: string): Promise<number | undefined>;
  spoolFiles(): string[];
  /** Set once a spawned mailveil has exited on its own: how, and the end of its stderr. */
  exited(): string | undefined;
  stop(): Promise<void>;
}

function isMessage(l: Record<string, unknown>): boolean {
  return l.msg === 'message';
}

function toMessageLog(l: Record<string, unknown>): MessageLog {
  return { from: l.from as string | undefined, id: l.id as string | undefined, reply: l.reply as number | undefined, verdict: l.verdict as string | undefined };
}

/** Sums the samples of `name` in Prometheus text format (undefined when absent). */
export function sumMetric(text: string, name: string): number | undefined {
  let found = false;
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const rest = line.slice(name.length);
    if (rest[0] !== ' ' && rest[0] !== '{') continue;
    const v = Number(line.slice(line.lastIndexOf(' ') + 1));
    if (Number.isFinite(v)) {
      found = true;
      sum += v;
    }
  }
  return found ? sum : undefined;
}

function httpText(port: number, path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = get({ host: '127.0.0.1', port, path, timeout: 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve(body));
    });
    req.on('timeout', () => req.destroy(new Error('metrics request timed out')));
    req.on('error', reject);
  });
}

function spoolOf(stateDir: string): string[] {
  try {
    return readdirSync(join(stateDir, 'spool')).filter((f) => f.endsWith('.spool'));
  } catch {
    return [];
  }
}

export async function startTarget(mode: Mode, nextHopPort: number): Promise<Target> {
  const dir = mkdtempSync(join(tmpdir(), 'mailveil-fuzz-'));
  const rulesDir = join(dir, 'rules');
  mkdirSync(rulesDir);
  writeFileSync(join(rulesDir, '00-fuzz.yaml'), FUZZ_RULES);
  const configFile = join(dir, 'mailveil.yaml');
  writeFileSync(configFile, FUZZ_CONFIG);
  const stateDir = join(dir, 'state');
  return mode === 'spawn' ? spawnTarget(dir, configFile, rulesDir, stateDir, nextHopPort) : inprocTarget(dir, configFile, rulesDir, stateDir, nextHopPort);
}

async function spawnTarget(dir: string, configFile: string, rulesDir: string, stateDir: string, hopPort: number): Promise<Target> {
  mkdirSync(stateDir, { mode: 0o700 });
  let mv: Mailveil;
  try {
    mv = await startMailveil({ nextHop: `127.0.0.1:${hopPort}`, config: configFile, rulesDir, stateDir, captureLogs: true });
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  const pseudonyms = Pseudonymiser.fromStateDir(stateDir);
  let errors: string[] = [];
  let stopping = false;
  let exit: string | undefined;
  void mv.exited.then(({ code, signal }) => {
    if (stopping) return;
    const out = mv.rawLines().slice(-5).join(' | ');
    exit = `mailveil (pid ${mv.pid}) exited with ${signal ? `signal ${signal}` : `code ${code}`}; stderr: ${mv.stderr().slice(-1500) || '(empty)'}${out ? `; non-JSON stdout: ${out.slice(-500)}` : ''}`;
  });
  const take = () => {
    const lines = mv.logs().splice(0);
    const out: MessageLog[] = [];
    for (const l of lines) {
      if (isMessage(l)) out.push(toMessageLog(l));
      else if (l.level === 'error' || l.level === 'fatal' || (typeof l.level === 'number' && l.level >= 50)) {
        if (errors.length < 200) errors.push(JSON.stringify(l).slice(0, 400));
      }
    }
    return out;
  };
  return {
    mode: 'spawn',
    port: mv.port,
    stateDir,
    pseudonym: (a) => pseudonyms.token('addr', a),
    takeMessageLogs: take,
    takeErrors: () => {
      const e = errors;
      errors = [];
      return e;
    },
    async metric(name) {
      return sumMetric(await httpText(mv.metricsPort, '/metrics'), name);
    },
    spoolFiles: () => spoolOf(stateDir),
    exited: () => exit,
    async stop() {
      stopping = true;
      try {
        await mv.stop('SIGTERM', 20_000);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}

async function inprocTarget(dir: string, configFile: string, rulesDir: string, stateDir: string, hopPort: number): Promise<Target> {
  const [port, metricsPort, adminPort] = [await freePort(), await freePort(), await freePort()];
  const config = loadConfig(configFile, {
    listen: `127.0.0.1:${port}`,
    next_hop: `127.0.0.1:${hopPort}`,
    rules_dir: rulesDir,
    state_dir: stateDir,
    metrics: `127.0.0.1:${metricsPort}`,
    admin: `127.0.0.1:${adminPort}`,
  });
  let messages: MessageLog[] = [];
  let errors: string[] = [];
  const sink = {
    write(line: string) {
      // Cheap pre-filter: only message and error lines are parsed.
      if (line.includes('"msg":"message"')) messages.push(toMessageLog(JSON.parse(line) as Record<string, unknown>));
      else if (/"level":"(error|fatal)"/.test(line) && errors.length < 200) errors.push(line.slice(0, 400));
    },
  };
  const service = new Service(config, createLogger('info', sink as never));
  await service.start();
  return {
    mode: 'inproc',
    port,
    stateDir,
    pseudonym: (a) => service.rt.pseudonyms.token('addr', a),
    takeMessageLogs: () => {
      const m = messages;
      messages = [];
      return m;
    },
    takeErrors: () => {
      const e = errors;
      errors = [];
      return e;
    },
    async metric(name) {
      const m = service.rt.metrics.registry.getSingleMetric(name);
      if (!m) return undefined;
      const v = await m.get();
      return v.values.reduce((a, s) => a + s.value, 0);
    },
    spoolFiles: () => spoolOf(stateDir),
    exited: () => undefined,
    async stop() {
      try {
        await service.drain();
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}
