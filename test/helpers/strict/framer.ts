/**
 * Splits one direction of a connection into MQTT frames, whatever the chunks (a frame may be split anywhere, and
 * one chunk may hold many). Knows only the fixed header (5.0 section 2.1.1, 3.1.1 section 2.2): a type byte, a
 * Remaining Length of one to four bytes, then that many bytes. Chunks are joined only once a frame is complete,
 * so a large PUBLISH arriving in many reads costs one copy.
 */

/** One complete frame. */
export interface Frame {
  /** The whole frame: fixed header, variable header, payload. */
  readonly bytes: Buffer;
  /** Packet type (bits 7-4 of byte 1) and flags (bits 3-0). */
  readonly type: number;
  readonly flags: number;
  /** The Remaining Length, and how many bytes encoded it. */
  readonly remaining: number;
  readonly lengthSize: number;
  /** Offset of the variable header in `bytes`. */
  readonly body: number;
}

/** A stream that cannot be framed any further (a Remaining Length of more than four bytes). */
export interface FramingError {
  readonly message: string;
  readonly bytes: Buffer;
}

/** A streaming frame splitter for one direction of one connection. */
export class Framer {
  private chunks: Buffer[] = [];
  private buffered = 0;
  /** Bytes the next frame needs in all (0 while unknown). */
  private need = 0;
  /** Set once the stream cannot be framed: nothing after it is read. */
  broken: FramingError | null = null;

  /**
   * Adds `chunk`; returns the frames it completed. Once the stream cannot be framed, `broken` says why and nothing
   * more is read; the frames before that point are still returned (a CONNECT followed by garbage is a CONNECT).
   */
  push(chunk: Buffer): Frame[] {
    if (this.broken !== null || chunk.length === 0) return [];
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    if (this.buffered < this.need) return [];
    const buf = this.chunks.length === 1 ? (this.chunks[0] as Buffer) : Buffer.concat(this.chunks, this.buffered);
    const frames: Frame[] = [];
    let off = 0;
    this.need = 0;
    while (off < buf.length) {
      let remaining = 0;
      let mul = 1;
      let lengthSize = 0;
      let complete = false;
      while (lengthSize < 4 && off + 1 + lengthSize < buf.length) {
        const b = buf[off + 1 + lengthSize] as number;
        lengthSize++;
        remaining += (b & 0x7f) * mul;
        mul *= 128;
        if ((b & 0x80) === 0) {
          complete = true;
          break;
        }
      }
      if (!complete) {
        if (lengthSize === 4) {
          // The fourth byte still says "more": no receiver can find where this frame ends.
          this.broken = { message: 'Remaining Length is a Variable Byte Integer of more than 4 bytes', bytes: buf.subarray(off, off + 5) };
          this.chunks = [];
          this.buffered = 0;
          return frames;
        }
        this.need = buf.length - off + 1;
        break;
      }
      const total = 1 + lengthSize + remaining;
      if (off + total > buf.length) {
        this.need = total;
        break;
      }
      const first = buf[off] as number;
      frames.push({ bytes: buf.subarray(off, off + total), type: first >> 4, flags: first & 0x0f, remaining, lengthSize, body: 1 + lengthSize });
      off += total;
    }
    const rest = buf.subarray(off);
    this.chunks = rest.length > 0 ? [rest] : [];
    this.buffered = rest.length;
    return frames;
  }
}
