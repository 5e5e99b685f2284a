// Latency histogram in whole microseconds: one counter per microsecond up to 1 s (exact percentiles, 4 MB),
// and everything slower counted together with the maximum kept, so a stall still shows in p99.9 and max.
const SLOTS = 1_000_000;

export class Histogram {
  constructor() {
    this.slots = new Uint32Array(SLOTS);
    this.reset();
  }

  reset() {
    this.slots.fill(0);
    this.count = 0;
    this.over = 0;
    this.sum = 0;
    this.max = 0;
    this.min = Infinity;
  }

  record(us) {
    const v = us < 0 ? 0 : Math.floor(us);
    if (v < SLOTS) this.slots[v]++;
    else this.over++;
    this.count++;
    this.sum += v;
    if (v > this.max) this.max = v;
    if (v < this.min) this.min = v;
  }

  /** The smallest value v with at least q of the recorded values <= v (q in 0..1). */
  percentile(q) {
    if (this.count === 0) return null;
    const rank = Math.max(1, Math.ceil(q * this.count));
    let seen = 0;
    for (let v = 0; v < SLOTS; v++) {
      seen += this.slots[v];
      if (seen >= rank) return v;
    }
    return this.max;
  }

  summary() {
    return {
      count: this.count,
      min: this.count ? this.min : null,
      mean: this.count ? this.sum / this.count : null,
      p50: this.percentile(0.5),
      p90: this.percentile(0.9),
      p99: this.percentile(0.99),
      p999: this.percentile(0.999),
      max: this.count ? this.max : null,
      overOneSecond: this.over,
    };
  }
}
