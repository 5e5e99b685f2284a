import type { Lease } from 'etcd3';
import type { EtcdContext } from './context.js';

/**
 * A node's timed claim on a key (`clients/<id>`: a connection; `sessions/<id>`: a persistent session). The newer
 * claim holds; a claim replaces only an older one, by compare-and-swap, so one that reaches etcd late cannot take
 * the key back from a newer one.
 */
export interface Claim {
  readonly node: string;
  /** Epoch ms of the claim (a connection's CONNACK, a session's arrival). */
  readonly at: number;
}

/** `node` LF `at`: what a claimed key (and `takeover/<node>/<id>`) holds. */
export function encodeClaim(c: Claim): string {
  return `${c.node}\n${c.at}`;
}

/** Reads a claim; a value written by an older node (the node id alone) is a claim from the start of time. */
export function decodeClaim(value: string): Claim {
  const lf = value.indexOf('\n');
  if (lf < 0) return { node: value, at: 0 };
  const at = Number(value.slice(lf + 1));
  return { node: value.slice(0, lf), at: Number.isFinite(at) ? at : 0 };
}

/** True when claim `a` is newer than `b`: a later claim, the node id breaking a tie of the same millisecond. */
export function newer(a: Claim, b: Claim): boolean {
  return a.at > b.at || (a.at === b.at && a.node > b.node);
}

/** What {@link swapClaim} did: took the key (over `replaced`, if another claim was there), or found a newer one. */
export type SwapResult =
  | { readonly taken: true; readonly replaced: Claim | null }
  | { readonly taken: false; readonly newer: Claim }
  | null;

/**
 * Writes `claim` on `key` unless a newer claim holds it, by compare-and-swap on the key's revision, read again
 * and retried when another claim lands in between. Null when it kept losing the race (try again later); throws
 * when etcd does not answer. With `lease`, the key goes with it.
 */
export async function swapClaim(ctx: EtcdContext, key: string, claim: Claim, lease: Lease | null, stillWanted: () => boolean): Promise<SwapResult> {
  for (let attempt = 0; attempt < 5; attempt++) {
    if (!stillWanted()) return null;
    const kv = (await ctx.client.get(key).exec()).kvs[0];
    const held = kv === undefined ? null : decodeClaim(kv.value.toString());
    if (held !== null && held.node === claim.node && held.at === claim.at) return { taken: true, replaced: null };
    if (held !== null && newer(held, claim)) return { taken: false, newer: held };
    const put = ctx.client.put(key).value(encodeClaim(claim));
    if (lease !== null) put.lease(lease.grant());
    const swap = kv === undefined ? ctx.client.if(key, 'Create', '==', 0) : ctx.client.if(key, 'Mod', '==', kv.mod_revision);
    if ((await swap.then(put).commit()).succeeded) return { taken: true, replaced: held };
  }
  return null;
}

/** Deletes `key` if it still holds `claim` (not when a newer claim has replaced it). */
export async function releaseClaim(ctx: EtcdContext, key: string, claim: Claim): Promise<void> {
  await ctx.client.if(key, 'Value', '==', encodeClaim(claim)).then(ctx.client.delete().key(key)).commit();
}
