/**
 * One line per reliability scenario, for RELIABILITY.md: what load was held, what faults were injected, and
 * how many acknowledged messages arrived. node:test shows it in its output as `# RELIABILITY | ...`.
 */
export interface Outcome {
  readonly load: string;
  readonly faults: string;
  readonly acked: number;
  /** Distinct acknowledged messages that arrived. */
  readonly received: number;
  /** Deliveries beyond the first of a message (QoS 1 allows them). */
  readonly dup?: number;
}

export function report(scenario: string, o: Outcome): void {
  const lost = o.acked - o.received;
  console.log(`RELIABILITY | ${scenario} | load: ${o.load} | faults: ${o.faults} | acked: ${o.acked} | received: ${o.received} | lost: ${lost} | dup: ${o.dup ?? 0}`);
}
