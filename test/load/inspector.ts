/**
 * A minimal Chrome DevTools Protocol session with a broker started with `--inspect=127.0.0.1:<port>`, used by
 * the load tests for one thing: the live heap after a full garbage collection, which tells a leak from the
 * sawtooth of garbage that the heap in use shows between collections.
 */
import WebSocket from 'ws';

export class Inspector {
  private readonly ws: WebSocket;
  private seq = 0;
  private readonly waiting = new Map<number, { resolve: (r: Record<string, unknown>) => void; reject: (e: Error) => void }>();

  private constructor(ws: WebSocket) {
    this.ws = ws;
    ws.on('message', (data: Buffer) => {
      const msg = JSON.parse(data.toString('utf8')) as { id?: number; result?: Record<string, unknown>; error?: { message: string } };
      if (msg.id === undefined) return;
      const w = this.waiting.get(msg.id);
      if (!w) return;
      this.waiting.delete(msg.id);
      if (msg.error) w.reject(new Error(`inspector: ${msg.error.message}`));
      else w.resolve(msg.result ?? {});
    });
    ws.on('close', () => {
      for (const w of this.waiting.values()) w.reject(new Error('inspector session closed'));
      this.waiting.clear();
    });
  }

  /** Connects to the first target of the inspector on `port` (retrying for up to 5 s while it starts). */
  static async connect(port: number): Promise<Inspector> {
    let url: string | undefined;
    for (let i = 0; i < 50 && url === undefined; i++) {
      try {
        const list = (await (await fetch(`http://127.0.0.1:${port}/json/list`)).json()) as { webSocketDebuggerUrl?: string }[];
        url = list[0]?.webSocketDebuggerUrl;
      } catch {
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    if (url === undefined) throw new Error(`no inspector target on port ${port}`);
    const ws = new WebSocket(url);
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    return new Inspector(ws);
  }

  /** Calls a protocol method and resolves with its result. */
  call(method: string, params: Record<string, unknown> = {}, timeoutMs = 30000): Promise<Record<string, unknown>> {
    const id = ++this.seq;
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => {
        this.waiting.delete(id);
        reject(new Error(`inspector: no answer to ${method} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiting.set(id, {
        resolve: (r) => { clearTimeout(t); resolve(r); },
        reject: (e) => { clearTimeout(t); reject(e); },
      });
      this.ws.send(JSON.stringify({ id, method, params }));
    });
  }

  /** Forces a full garbage collection and returns the heap still in use, in bytes. */
  async liveHeap(): Promise<number> {
    await this.call('HeapProfiler.collectGarbage');
    const usage = await this.call('Runtime.getHeapUsage');
    return Number(usage['usedSize']);
  }

  close(): void {
    this.ws.close();
  }
}
