/*
 * Step `receive`: pass 1 (run.ts) streams the client's bytes through the
 * analyzers into the spool. Past max_message_size the spool stops and the
 * rest is read and dropped, so nothing over the limit touches the disk;
 * `check-size` answers for it after the client's dot. A spool that cannot
 * be written refuses the message: 452 for a full disk, else 451.
 */
import { runPass1 } from '../run';
import type { Step } from '../message';

/** A file system that is full (or over quota): the client gets 452 and may retry later. */
export const FULL_DISK: ReadonlySet<string> = new Set(['ENOSPC', 'EDQUOT']);

export const receive: Step = async (m) => {
  const start = process.hrtime.bigint();
  let pass1;
  try {
    pass1 = await runPass1(m.ctx, m.client.data, m.spool, m.timings, { maxBytes: m.ctx.config.limits.max_message_size, onBytes: m.client.onBytes });
  } finally {
    m.client.onReceived?.();
    m.timings.set('pass1', Number(process.hrtime.bigint() - start) / 1e9);
  }
  m.tooBig = pass1.tooBig;
  if (pass1.failure) {
    const code = (pass1.failure as NodeJS.ErrnoException).code;
    m.services.log.error({ id: m.ctx.id, err: { message: pass1.failure.message, code } }, 'pass 1 failed; the message is not accepted');
    return { end: { kind: code !== undefined && FULL_DISK.has(code) ? 'no_space' : 'internal' } };
  }
  return { next: 'check-size' };
};
