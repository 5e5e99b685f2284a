/** A forked load process spoken to over IPC: one request at a time, answers in order. */
import { fork, type ChildProcess } from 'node:child_process';

/** The parent's handle on a load process. */
export interface LoadChild {
  readonly proc: ChildProcess;
  /** Sends `msg` and resolves with the answer (rejects on `{ type: 'error' }`, an exit, or the timeout). */
  request<T = Record<string, unknown>>(msg: Record<string, unknown>, timeoutMs?: number): Promise<T>;
  /** Kills the process (SIGKILL) unless it has exited; resolves once it has. */
  kill(): Promise<void>;
}

const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const p of live) p.kill('SIGKILL');
});

/** Forks `script` (a compiled .js path) and resolves once it says `{ type: 'ready' }`. */
export async function forkLoad(script: string, execArgv: string[] = []): Promise<LoadChild> {
  const proc = fork(script, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], execArgv });
  live.add(proc);
  const waiting: { resolve: (m: Record<string, unknown>) => void; reject: (e: Error) => void }[] = [];
  let exited: string | null = null;
  const gone = new Promise<void>((resolve) => proc.once('exit', (code, signal) => {
    exited = `load process exited (${code ?? signal})`;
    live.delete(proc);
    for (const w of waiting.splice(0)) w.reject(new Error(exited));
    resolve();
  }));
  proc.on('message', (m: Record<string, unknown>) => {
    const w = waiting.shift();
    if (!w) return;
    if (m['type'] === 'error') w.reject(new Error(`load process: ${String(m['message'])}`));
    else w.resolve(m);
  });
  const next = (timeoutMs: number): Promise<Record<string, unknown>> => new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`load process: no answer within ${timeoutMs} ms`)), timeoutMs);
    waiting.push({ resolve: (m) => { clearTimeout(t); resolve(m); }, reject: (e) => { clearTimeout(t); reject(e); } });
  });
  await next(10000);
  return {
    proc,
    request<T>(msg: Record<string, unknown>, timeoutMs = 60000): Promise<T> {
      if (exited !== null) return Promise.reject(new Error(exited));
      const answer = next(timeoutMs);
      proc.send(msg);
      return answer as Promise<T>;
    },
    async kill() {
      if (exited === null) proc.kill('SIGKILL');
      await gone;
    },
  };
}
