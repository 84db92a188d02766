/*
 * Key rotation (`mailveil keys rotate`, POST /api/keys/rotate): a new data
 * key for new quarantine entries (quarantine/keys.ts rotateKey). Entries
 * written before keep naming their old key and stay readable; rotating never
 * deletes a key (the next purge removes one no entry needs, an hour after it
 * was retired). Audited as `key_rotate` with the old and new key ids (ids,
 * never keys). A `current` pointer that does not hold a key id is what a
 * rotation repairs: it then reports previous = null.
 */
import { isQuarantineError } from '../quarantine/errors';
import { currentKeyId, listKeyIds, rotateKey } from '../quarantine/keys';
import type { OperationContext } from './context';

export interface KeyRotation {
  /** The new current key. */
  keyId: string;
  /** The key that was current before, if there was a valid one. */
  previous: string | null;
  /** Every key id on disk, sorted. */
  keys: string[];
  /** Key ids entries name (including writes in progress), sorted. */
  inUse: string[];
}

export async function rotateKeys(ctx: OperationContext): Promise<KeyRotation> {
  const dir = ctx.config.state_dir;
  let previous: string | undefined;
  try {
    previous = await currentKeyId(dir);
  } catch (err) {
    if (!isQuarantineError(err, 'MV_QUARANTINE_KEY_INVALID')) throw err;
  }
  const id = await rotateKey(dir);
  const inUse = await ctx.store.keyIdsInUse();
  const keys = await listKeyIds(dir);
  await ctx.audit.append({
    event: 'key_rotate',
    actor: ctx.actor,
    details: { new_key: id, previous_key: previous ?? null, keys: keys.length, keys_in_use: [...inUse].filter((x) => keys.includes(x)).length },
  });
  return { keyId: id, previous: previous ?? null, keys, inUse: [...inUse].sort() };
}
