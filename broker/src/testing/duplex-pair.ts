import { Duplex } from 'node:stream';

/** One end of an in-memory connection: what is written here is read at the other end. */
class End extends Duplex {
  peer: End | null = null;

  override _read(): void {
    // Data is pushed by the peer's writes.
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, done: (err?: Error | null) => void): void {
    this.peer?.push(chunk);
    done();
  }

  override _final(done: (err?: Error | null) => void): void {
    this.peer?.push(null);
    done();
  }

  override _destroy(err: Error | null, done: (err?: Error | null) => void): void {
    const p = this.peer;
    this.peer = null;
    if (p && !p.destroyed) p.destroy();
    done(err);
  }
}

/**
 * Two connected in-memory duplex streams, for in-process integration tests of the broker (Node 20 has no
 * `stream.duplexPair`).
 */
export function duplexPair(): [Duplex, Duplex] {
  const a = new End();
  const b = new End();
  a.peer = b;
  b.peer = a;
  return [a, b];
}
