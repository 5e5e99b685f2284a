/**
 * The strict checker's own reading of MQTT's data types (5.0 section 1.5, 3.1.1 section 1.5): integers, Variable
 * Byte Integers, UTF-8 strings and binary data, each read from a bounded slice of one frame. Written apart from
 * the broker and from mqtt-packet on purpose, and strict where they are lenient: a non-minimal Variable Byte
 * Integer or a string with a surrogate is reported, not decoded.
 */

/** A structural error in a frame (a field that runs past its end, a bad length): the rest of it cannot be read. */
export class Malformed extends Error {
  readonly rule: string;
  constructor(rule: string, message: string) {
    super(message);
    this.rule = rule;
    this.name = 'Malformed';
  }
}

/** What is wrong with a string, or null when it is a well-formed MQTT UTF-8 string. */
export type Utf8Problem = { readonly kind: 'ill-formed' | 'surrogate' | 'null'; readonly at: number } | null;

/**
 * Checks `b` as RFC 3629 UTF-8 by hand: no overlong forms, nothing above U+10FFFF, no surrogates U+D800..U+DFFF
 * (encoded as ED A0..BF xx), no truncated sequences; and no U+0000, which MQTT forbids on top of UTF-8.
 * The first problem is returned with its byte offset.
 */
export function utf8Problem(b: Buffer, start = 0, end = b.length): Utf8Problem {
  let i = start;
  while (i < end) {
    const c = b[i] as number;
    if (c === 0x00) return { kind: 'null', at: i - start };
    if (c < 0x80) {
      i++;
      continue;
    }
    let n: number; // continuation bytes
    let lo = 0x80; // the bounds of the first continuation byte (Table 3-7 of the Unicode standard)
    let hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf) n = 1;
    else if (c >= 0xe0 && c <= 0xef) {
      n = 2;
      if (c === 0xe0) lo = 0xa0; // overlong below U+0800
      if (c === 0xed) {
        // ED A0..BF is U+D800..U+DFFF: a surrogate, which well-formed UTF-8 never holds.
        const next = i + 1 < end ? (b[i + 1] as number) : 0;
        if (next >= 0xa0 && next <= 0xbf) return { kind: 'surrogate', at: i - start };
        hi = 0x9f;
      }
    } else if (c >= 0xf0 && c <= 0xf4) {
      n = 3;
      if (c === 0xf0) lo = 0x90; // overlong below U+10000
      if (c === 0xf4) hi = 0x8f; // above U+10FFFF
    } else return { kind: 'ill-formed', at: i - start }; // 80..C1 (continuation, overlong) and F5..FF
    if (i + n >= end) return { kind: 'ill-formed', at: i - start }; // the sequence is cut by the string's end
    for (let k = 1; k <= n; k++) {
      const cc = b[i + k] as number;
      const min = k === 1 ? lo : 0x80;
      const max = k === 1 ? hi : 0xbf;
      if (cc < min || cc > max) return { kind: 'ill-formed', at: i - start };
    }
    i += n + 1;
  }
  return null;
}

/** Bytes `a` as spaced hex, at most `max` of them. */
export function hex(a: Buffer, max = 256): string {
  const shown = a.subarray(0, max).toString('hex').replace(/(..)(?!$)/g, '$1 ');
  return a.length > max ? `${shown} ... (${a.length} bytes)` : shown;
}

/** The size of the shortest Variable Byte Integer for `n` (5.0 Table 1-1). */
export function varintSize(n: number): number {
  return n < 128 ? 1 : n < 16_384 ? 2 : n < 2_097_152 ? 3 : 4;
}

/** A read position in one frame's body, bounded by `end`; reads past it throw Malformed with `shortRule`. */
export class Cursor {
  pos: number;
  end: number;

  constructor(readonly buf: Buffer, start: number, end: number, readonly shortRule: string) {
    this.pos = start;
    this.end = end;
  }

  /** Bytes left before the bound. */
  get left(): number {
    return this.end - this.pos;
  }

  private need(n: number, what: string): void {
    if (this.pos + n > this.end) {
      throw new Malformed(this.shortRule, `${what} needs ${n} byte(s) at offset ${this.pos}, ${this.left} left`);
    }
  }

  /** A byte; `what` names the field in the error when it is missing. */
  u8(what: string): number {
    this.need(1, what);
    return this.buf[this.pos++] as number;
  }

  /** A Two Byte Integer (1.5.2). */
  u16(what: string): number {
    this.need(2, what);
    const v = this.buf.readUInt16BE(this.pos);
    this.pos += 2;
    return v;
  }

  /** A Four Byte Integer (1.5.3). */
  u32(what: string): number {
    this.need(4, what);
    const v = this.buf.readUInt32BE(this.pos);
    this.pos += 4;
    return v;
  }

  /**
   * A Variable Byte Integer (1.5.5): at most four bytes, the fourth without a continuation bit. Returns its value
   * and how many bytes it took, so the caller can judge the encoding's length against the minimum.
   */
  varint(what: string): { value: number; size: number } {
    let value = 0;
    let mul = 1;
    for (let size = 1; size <= 4; size++) {
      const b = this.u8(what);
      value += (b & 0x7f) * mul;
      if ((b & 0x80) === 0) return { value, size };
      mul *= 128;
    }
    throw new Malformed(this.shortRule, `${what} is a Variable Byte Integer of more than 4 bytes`);
  }

  /** A Two Byte Integer length and that many bytes (1.5.4, 1.5.6); returns where they are. */
  lengthPrefixed(what: string): { start: number; end: number } {
    const n = this.u16(`${what} length`);
    this.need(n, what);
    const start = this.pos;
    this.pos += n;
    return { start, end: this.pos };
  }

  /** Moves the bound to `end` for a nested block (a property list), returning the old bound. */
  narrow(end: number): number {
    const old = this.end;
    this.end = end;
    return old;
  }
}
