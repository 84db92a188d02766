/*
 * Step `hold`: the original, byte for byte, into the quarantine with its
 * findings, subject index and envelope. 250 only once the entry is durable
 * (file, rename, directory fsync'd); a store that cannot take it answers
 * 4xx so the client keeps the message: 452 for a full disk, else
 * QUARANTINE_UNAVAILABLE. Whether the message needs verified TLS (a fired
 * `require_tls: verified` rule, REQUIRETLS, `Require-TLS-ESMTP: yes`) is
 * recorded with it, so a release keeps to a verified path
 * (operations/release.ts).
 */
import { FULL_DISK } from './receive';
import { tlsRequirement } from '../tls-requirement';
import type { Step } from '../message';

export const hold: Step = async (m) => {
  const { ctx, services } = m;
  const { pseudonyms } = services;
  const env = ctx.envelope ?? { from: '', rcpts: [] };
  const why = tlsRequirement(ctx);
  try {
    await services.quarantine.put(
      {
        id: ctx.id,
        receivedAt: new Date(ctx.receivedAt).toISOString(),
        size: ctx.size,
        verdict: ctx.unscannable.length && !ctx.verdict.rules.length ? 'unscannable' : 'quarantine',
        rules: ctx.verdict.rules,
        reasons: ctx.unscannable,
        from: pseudonyms.token('addr', env.from),
        rcpts: env.rcpts.map((r) => pseudonyms.token('addr', r)),
        findings: ctx.findings.map(({ rule, detector, count, part, offset, scope }) => ({ rule, detector, count, part, offset, scope })),
        subjects: ctx.subjects,
        envelope: env,
        ...(why ? { requireTls: { why, esmtp: ctx.requireTls.esmtp } } : {}),
      },
      m.spool.read(),
    );
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    services.log.error({ id: ctx.id, err: { message: (err as Error).message, code } }, 'quarantine write failed');
    return { end: { kind: code !== undefined && FULL_DISK.has(code) ? 'no_space' : 'quarantine_unavailable' } };
  }
  services.metrics.quarantineMessages.inc();
  return { end: { kind: 'held' } };
};
