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

/**
 * {@link swapClaim} for many keys (at most MAX_TXN_OPS): one read and one transaction of compare-and-swaps for
 * all of them. A key found with a newer claim is left alone; when another write lands on any key in between,
 * the transaction takes none, and those keys come back as null (to be claimed one by one). Throws when etcd
 * does not answer.
 */
export async function swapClaims(ctx: EtcdContext, wanted: readonly { key: string; claim: Claim }[]): Promise<SwapResult[]> {
  if (wanted.length === 0) return [];
  // etcd transactions start with a comparison; this one always holds.
  const always = (): ReturnType<EtcdContext['client']['if']> => ctx.client.if(ctx.keys.member(ctx.self), 'Version', '>', -1);
  const read = await always().then(...wanted.map(({ key }) => ctx.client.get(key))).commit();
  const results: SwapResult[] = [];
  const swaps: { key: string; claim: Claim; rev: string | null; at: number }[] = [];
  wanted.forEach(({ key, claim }, i) => {
    const kv = read.responses[i]?.response_range.kvs[0];
    const held = kv === undefined ? null : decodeClaim(kv.value.toString());
    if (held !== null && held.node === claim.node && held.at === claim.at) results[i] = { taken: true, replaced: null };
    else if (held !== null && newer(held, claim)) results[i] = { taken: false, newer: held };
    else {
      results[i] = { taken: true, replaced: held };
      swaps.push({ key, claim, rev: kv === undefined ? null : kv.mod_revision, at: i });
    }
  });
  if (swaps.length === 0) return results;
  const [first, ...rest] = swaps as [typeof swaps[number], ...typeof swaps];
  const cmp = (s: typeof first): [string, 'Create' | 'Mod', '==', number | string] =>
    s.rev === null ? [s.key, 'Create', '==', 0] : [s.key, 'Mod', '==', s.rev];
  let txn = ctx.client.if(...cmp(first));
  for (const s of rest) txn = txn.and(...cmp(s));
  const done = await txn.then(...swaps.map((s) => ctx.client.put(s.key).value(encodeClaim(s.claim)))).commit();
  if (!done.succeeded) for (const s of swaps) results[s.at] = null;
  return results;
}
