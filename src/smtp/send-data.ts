/*
 * A next-hop connection's DATA as the lifecycle's DeliveryResult: the one
 * place where a NextHopError's kind becomes a delivery failure (timeout,
 * lost, the client gone, or pass 2's own failure), logged and counted once.
 */
import type { Readable } from 'node:stream';
import { NextHopError, type NextHopConnection } from './next-hop';
import type { DeliveryResult } from '../pipeline/message';
import type { Runtime } from '../runtime';

export async function sendData(rt: Runtime, conn: NextHopConnection, body: Readable & AsyncIterable<Buffer>, signal: AbortSignal): Promise<DeliveryResult> {
  try {
    const reply = await conn.data(body, signal);
    return { ok: true, reply, bytes: conn.dataBytes };
  } catch (err) {
    const e = err instanceof NextHopError ? err : new NextHopError('aborted', (err as Error).message, { cause: err });
    rt.hopEvents.failure(e, 'DATA');
    if (e.kind === 'client_gone') return { ok: false, failure: 'client_gone' };
    if (e.kind === 'aborted') return { ok: false, failure: 'pass2', cause: e.cause };
    return { ok: false, failure: e.kind === 'timeout' || e.kind === 'write_timeout' ? 'timeout' : 'lost' };
  }
}
