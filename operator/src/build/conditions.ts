/** Status conditions, kept as Kubernetes conventions say (metav1.Condition). */
import type { Condition } from '../api/types.js';

/** What a reconcile step says about one condition; the transition time and generation are filled in. */
export interface ConditionUpdate {
  readonly type: Condition['type'];
  readonly status: Condition['status'];
  readonly reason: string;
  readonly message: string;
}

/** A time as conditions hold it: RFC 3339 in UTC, whole seconds (as metav1.Time serializes). */
export function conditionTime(now: Date): string {
  return now.toISOString().replace(/\.\d+Z$/, 'Z');
}

/** The condition of `type`, if there is one. */
export function findCondition(conditions: readonly Condition[] | undefined, type: Condition['type']): Condition | undefined {
  return conditions?.find((c) => c.type === type);
}

/**
 * `conditions` with `update` applied. `lastTransitionTime` moves to `now` only when the status changes (a new
 * reason or message alone is not a transition); `observedGeneration` is `generation` when given. Conditions
 * keep their places and a new type goes last, so the result is deterministic. When nothing changes the very
 * same array is returned, so a caller can skip the status write with `===`.
 */
export function setCondition(
  conditions: readonly Condition[] | undefined,
  update: ConditionUpdate,
  now: Date,
  generation?: number,
): readonly Condition[] {
  const list = conditions ?? [];
  const old = findCondition(list, update.type);
  const next: Condition = {
    type: update.type,
    status: update.status,
    reason: update.reason,
    message: update.message,
    lastTransitionTime: old !== undefined && old.status === update.status ? old.lastTransitionTime : conditionTime(now),
    ...(generation !== undefined ? { observedGeneration: generation } : old?.observedGeneration !== undefined ? { observedGeneration: old.observedGeneration } : {}),
  };
  if (old === undefined) return [...list, next];
  if (sameCondition(old, next)) return list;
  return list.map((c) => (c === old ? next : c));
}

function sameCondition(a: Condition, b: Condition): boolean {
  return a.status === b.status && a.reason === b.reason && a.message === b.message
    && a.lastTransitionTime === b.lastTransitionTime && a.observedGeneration === b.observedGeneration;
}
