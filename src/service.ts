/*
 * The running relay: wires config, rules, pseudonyms, metrics, the next-hop
 * pool and the SMTP front, and owns the process-level behaviours:
 *  - reload: SIGHUP or a change under rules_dir or local_rules_dir builds a
 *    new rule set from both layers; a broken set is refused and the last
 *    good one stays live;
 *  - drain: SIGTERM stops the listener, lets open transactions finish,
 *    closes idle sessions with 421, then resolves so the process exits 0;
 *  - retention: once at start and every RETENTION_INTERVAL_MS, expired
 *    quarantine entries, audit days and retired keys are purged (audited
 *    with counts, quarantine/retention.ts);
 *  - mailveil_quarantine_messages follows the store: set from count() at
 *    start, after each purge, and every QUARANTINE_GAUGE_REFRESH_MS (a CLI
 *    release or delete runs in another process);
 *  - the admin API (admin/server.ts) on `admin`: checked first (a
 *    non-loopback address without admin_tls refuses the start), started
 *    before the SMTP listener, closed on drain once the SMTP side is done.
 */
import { mkdirSync, watch, type FSWatcher } from 'node:fs';
import type { Server } from 'node:http';
import type { Config } from './config/load';
import { formatEndpoint } from './config/address';
import { formatRuleError, loadRuleSet, RuleSetError } from './rules/load';
import type { RuleSet } from './rules/types';
import { Pseudonymiser } from './privacy/pseudonym';
import { accessError } from './access-error';
import { Metrics } from './observability/metrics';
import { createLogger, type Logger } from './observability/log';
import { startOpsServer } from './observability/http';
import { NextHopPool } from './smtp/next-hop-pool';
import { QuarantineStore } from './quarantine/store';
import { AuditLog } from './audit/log';
import { purgeExpired, RETENTION_INTERVAL_MS, SERVICE_ACTOR } from './quarantine/retention';
import { createSmtpServer } from './smtp/server';
import { checkAdminBind, describeAdmin, startAdminServer, type AdminServer } from './admin/server';
import { cleanExports } from './admin/routes';
import { cleanStaleSpool } from './pipeline/spool';
import { describePipeline } from './pipeline/lifecycle';
import type { Runtime } from './runtime';
import { nextHopOptions } from './smtp/next-hop';
import { nextHopReport } from './smtp/next-hop-report';
import { finishing } from './smtp/session-state';
import { timeoutOrderWarnings } from './config/timeout-order';
import { replyError } from './smtp/errors';
import type { SmtpFront } from './smtp/server';
import { mxRuntime } from './smtp/mx/runtime';
import { logTlsRequirementWarning } from './rules/tls-requirement-check';
import { startTlsRptSubmitter } from './operations/tlsrpt-submit';
import { DnsClient } from './dns/client';
import { DnsLookups } from './dns/lookups';

const RELOAD_DEBOUNCE_MS = 200;
const DRAIN_POLL_MS = 50;
const QUARANTINE_GAUGE_REFRESH_MS = 5_000;

export interface ServiceOptions {
  /** The clock for retention (tests inject one). */
  now?: () => Date;
  /** How often retention runs (default hourly). */
  retentionIntervalMs?: number;
}

export class Service {
  readonly rt: Runtime;
  private ruleSet: RuleSet;
  private smtp?: SmtpFront;
  private ops?: Server;
  private admin?: AdminServer;
  private watchers: FSWatcher[] = [];
  private reloadTimer?: NodeJS.Timeout;
  private listening = false;
  private retentionTimer?: NodeJS.Timeout;
  private gaugeTimer?: NodeJS.Timeout;
  private purging?: Promise<void>;
  private stopTlsRpt?: () => void;
  private readonly now: () => Date;
  private readonly retentionIntervalMs: number;

  constructor(config: Config, log: Logger = createLogger(config.log_level), opts: ServiceOptions = {}) {
    this.now = opts.now ?? (() => new Date());
    this.retentionIntervalMs = opts.retentionIntervalMs ?? RETENTION_INTERVAL_MS;
    try {
      mkdirSync(config.state_dir, { recursive: true, mode: 0o700 });
    } catch (err) {
      throw accessError(err, 'create', config.state_dir); // one line from the CLI, not a stack trace
    }
    // Throws RuleSetError: a process must not start on a broken rule set.
    this.ruleSet = loadRuleSet(config.rules_dir, config.local_rules_dir);
    const metrics = new Metrics();
    metrics.rulesReload.inc({ result: 'ok' });
    const hopEvents = nextHopReport(log, metrics);
    this.rt = {
      config,
      rules: () => this.ruleSet,
      pseudonyms: Pseudonymiser.fromStateDir(config.state_dir),
      metrics,
      log,
      pool: new NextHopPool(nextHopOptions(config), config.next_hop_pool.max_idle, config.next_hop_pool.idle_timeout, hopEvents),
      hopEvents,
      inflight: new Set(),
      quarantine: new QuarantineStore(config.state_dir, { now: this.now }),
      audit: new AuditLog(config.state_dir, { now: this.now }),
      draining: false,
    };
    if (config.delivery.mode === 'mx') this.rt.mx = mxRuntime(this.rt);
  }

  async start(): Promise<void> {
    const { config, log } = this.rt;
    // Before anything listens: an admin API beyond loopback needs TLS (MV_ADMIN_BIND, exit 1).
    checkAdminBind(config);
    const stale = cleanStaleSpool(config.state_dir);
    if (stale) log.warn({ event: 'spool_cleanup', files: stale }, 'removed unreadable spool files left by an earlier process');
    const partial = await this.rt.quarantine.recover();
    if (partial) log.warn({ event: 'quarantine_recover', files: partial }, 'removed quarantine writes interrupted by an earlier crash');
    this.rt.metrics.quarantineMessages.set(await this.rt.quarantine.count());
    await this.rt.mx?.policies.start();
    this.ops = await startOpsServer(config.metrics, this.rt.metrics, {
      ready: () => {
        const pool = this.rt.pool;
        // mx mode has no one next hop to watch: each recipient domain answers for itself.
        const mx = Boolean(this.rt.mx);
        if (!mx) pool.probe();
        const hopOk = mx || pool.healthy;
        return {
          ok: this.listening && !this.rt.draining && hopOk,
          detail: { listening: this.listening, draining: this.rt.draining, next_hop: mx ? 'mx' : pool.healthy ? 'ok' : 'refusing', rules: this.ruleSet.rules.length, rules_loaded_at: this.ruleSet.loadedAt },
        };
      },
    });
    const exports = await cleanExports(config.state_dir);
    if (exports) log.warn({ event: 'admin_exports_cleanup', files: exports }, 'removed subject-access archives left by an earlier process');
    this.admin = await startAdminServer({
      config,
      store: this.rt.quarantine,
      audit: this.rt.audit,
      log,
      rules: () => this.ruleSet,
      now: this.now,
      onQuarantineChange: (remaining) => {
        if (remaining !== undefined) this.rt.metrics.quarantineMessages.set(remaining);
        else
          this.rt.quarantine.count().then(
            (n) => this.rt.metrics.quarantineMessages.set(n),
            () => undefined,
          );
      },
    });
    if (this.admin.tokenCreated) log.info({ event: 'admin_token', file: this.admin.tokenFile }, 'created the admin API token (mode 0600)');
    if (this.admin.tokenTightened) log.warn({ event: 'admin_token', file: this.admin.tokenFile }, 'the admin API token was readable by others; set it to mode 0600');
    const front = createSmtpServer(this.rt);
    const server = front.server;
    this.smtp = front;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(config.listen.port, config.listen.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    server.on('error', (err) => log.error({ err: { message: err.message } }, 'smtp server error'));
    this.listening = true;
    for (const warning of timeoutOrderWarnings(config.timeouts)) log.warn({ event: 'config_timeouts' }, warning);
    logTlsRequirementWarning(log, this.ruleSet, config);
    this.watchRules();
    this.startRetention();
    // Daily RFC 8460 reports (a no-op unless tls.tlsrpt.submit); the rua TXT records come from the validating resolver.
    const dns = this.rt.mx?.policies.lookups ?? new DnsLookups(new DnsClient({ servers: config.dns.servers, timeoutMs: config.dns.timeout }));
    this.stopTlsRpt = startTlsRptSubmitter({ config, dns, log });
    log.info(
      {
        listen: formatEndpoint(config.listen),
        delivery: config.delivery.mode,
        listen_protocol: config.listen_protocol,
        next_hop: config.delivery.mode === 'mx' ? null : formatEndpoint(config.next_hop),
        next_hop_tls: config.tls.next_hop.level,
        metrics: formatEndpoint(config.metrics),
        admin: describeAdmin(config.admin, Boolean(config.admin_tls)),
        rule_files: this.ruleSet.files.length,
        rules: this.ruleSet.rules.length,
        pipeline: describePipeline(),
      },
      'listening',
    );
  }

  /** Loads rules_dir and local_rules_dir again; keeps the current set if the new one is broken. */
  reload(trigger: string): boolean {
    const { log, metrics } = this.rt;
    try {
      this.ruleSet = loadRuleSet(this.rt.config.rules_dir, this.rt.config.local_rules_dir);
      metrics.rulesReload.inc({ result: 'ok' });
      log.info({ event: 'rules_reload', trigger, result: 'ok', files: this.ruleSet.files.length, rules: this.ruleSet.rules.length }, 'rules reloaded');
      logTlsRequirementWarning(log, this.ruleSet, this.rt.config);
      return true;
    } catch (err) {
      metrics.rulesReload.inc({ result: 'error' });
      const errors = err instanceof RuleSetError ? err.errors.map(formatRuleError) : [(err as Error).message];
      log.error({ event: 'rules_reload', trigger, result: 'error', errors }, 'rules reload refused; the previous rule set stays live');
      return false;
    }
  }

  /**
   * Stops taking mail and resolves once every open transaction has ended.
   * Sessions without a transaction are told 421 at once; the others may
   * finish until `timeouts.drain`. Then every session gets 421 and is
   * closed, except one whose client has sent its final dot: it finishes
   * (each of its waits has a deadline) and passes the next hop's answer on,
   * since a 421 there would make the client retry a message the next hop
   * may have (a duplicate). Every message handler finishes, log line included,
   * before this resolves.
   */
  async drain(): Promise<void> {
    const { log, config, metrics } = this.rt;
    if (this.rt.draining) return;
    this.rt.draining = true;
    for (const w of this.watchers) w.close();
    clearTimeout(this.reloadTimer);
    clearInterval(this.retentionTimer);
    clearInterval(this.gaugeTimer);
    this.stopTlsRpt?.();
    const front = this.smtp;
    log.info({ event: 'drain', connections: front?.server.connections.size ?? 0 }, 'draining');
    if (front) {
      const { server, sessions, kick } = front;
      const bye = replyError('MV_SHUTTING_DOWN');
      const deadline = Date.now() + config.timeouts.drain;
      let reported = false;
      await new Promise<void>((resolve) => {
        server.server.close(() => resolve());
        const tick = () => {
          const late = Date.now() > deadline;
          let cut = 0;
          for (const conn of server.connections) {
            const st = sessions.get(conn.id);
            const busy = Boolean(conn.session?.envelope?.mailFrom) || Boolean(st?.busy);
            if (!busy || (late && !(st && finishing(st)))) {
              if (busy) cut++;
              kick(conn.id, bye.responseCode, bye.message);
              conn.close();
            }
          }
          if (late && !reported && cut) {
            reported = true;
            metrics.deadlines.inc({ deadline: 'drain' });
            log.warn({ event: 'drain', result: 'timeout', sessions_cut: cut }, 'drain deadline: open transactions answered 421');
          }
          if (server.connections.size > 0) setTimeout(tick, DRAIN_POLL_MS);
        };
        tick();
      });
    }
    await Promise.allSettled([...this.rt.inflight]);
    this.listening = false;
    await this.purging;
    this.rt.pool.close();
    this.rt.mx?.destinations.close();
    await this.rt.mx?.policies.close();
    await this.admin?.close();
    this.admin?.server.closeAllConnections();
    await new Promise<void>((resolve) => (this.ops ? this.ops.close(() => resolve()) : resolve()));
    this.ops?.closeAllConnections();
    log.info({ event: 'drain', result: 'done' }, 'drained');
  }

  /**
   * One retention pass (also run by the timer); resolves with nothing, logs
   * the counts. Overlapping calls share one run.
   */
  purge(): Promise<void> {
    this.purging ??= (async () => {
      const { log, config, quarantine, audit, metrics } = this.rt;
      try {
        const r = await purgeExpired({
          store: quarantine,
          audit,
          quarantineRetention: config.quarantine.retention,
          auditRetention: config.audit.retention,
          actor: SERVICE_ACTOR,
          now: this.now,
        });
        metrics.quarantineMessages.set(r.remaining);
        log.info(
          { event: 'retention_purge', quarantine_deleted: r.quarantine.deleted, audit_files_deleted: r.audit.files, audit_events_deleted: r.audit.events, keys_removed: r.keys.removed.length, quarantine_remaining: r.remaining },
          'retention purge',
        );
      } catch (err) {
        log.error({ event: 'retention_purge', err: { message: (err as Error).message, code: (err as { code?: string }).code } }, 'retention purge failed');
      } finally {
        this.purging = undefined;
      }
    })();
    return this.purging;
  }

  private startRetention(): void {
    void this.purge();
    this.retentionTimer = setInterval(() => void this.purge(), this.retentionIntervalMs);
    this.retentionTimer.unref();
    this.gaugeTimer = setInterval(() => {
      this.rt.quarantine.count().then(
        (n) => this.rt.metrics.quarantineMessages.set(n),
        () => undefined,
      );
    }, QUARANTINE_GAUGE_REFRESH_MS);
    this.gaugeTimer.unref();
  }

  /** Watches both rule dirs; a local dir that does not exist yet is picked up by SIGHUP. */
  private watchRules(): void {
    const { config, log } = this.rt;
    for (const [key, dir] of [['rules_dir', config.rules_dir], ['local_rules_dir', config.local_rules_dir]] as const) {
      try {
        const w = watch(dir, () => {
          clearTimeout(this.reloadTimer);
          this.reloadTimer = setTimeout(() => this.reload('watch'), RELOAD_DEBOUNCE_MS);
        });
        w.on('error', (err) => log.warn({ err: { message: err.message } }, `${key} watch failed; SIGHUP still reloads`));
        this.watchers.push(w);
      } catch (err) {
        if (key === 'local_rules_dir' && (err as NodeJS.ErrnoException).code === 'ENOENT') continue;
        log.warn({ err: { message: (err as Error).message } }, `cannot watch ${key}; SIGHUP still reloads`);
      }
    }
  }
}
