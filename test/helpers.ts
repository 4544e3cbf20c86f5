/**
 * Helpers shared by the test files: start threads and collect their results, sleep, and
 * measure elapsed time for "timed waits never return early" checks.
 */

import { type ExceptHookArgs, Thread, type ThreadFunction, setExcepthook } from 'threadkit';

/** Starts one thread per args list, joins them all, and returns their results in order. */
export function runThreads<R = unknown>(target: ThreadFunction, argsPerThread: unknown[][]): R[] {
  const threads = argsPerThread.map((args) => new Thread({ target, args }) as Thread<R>);
  for (const t of threads) t.start();
  for (const t of threads) t.join();
  return threads.map((t) => t.result as R);
}

/** Starts a thread and returns it (the caller joins). */
export function startThread<R = unknown>(target: ThreadFunction, args: unknown[] = []): Thread<R> {
  const t = new Thread({ target, args }) as Thread<R>;
  t.start();
  return t;
}

/** Blocks the calling thread for `ms` (works in any thread, without an event loop). */
export function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Milliseconds since `start` (from performance.now()). */
export function since(start: number): number {
  return performance.now() - start;
}

/** Runs `body` with an excepthook that collects what it is given (none is printed; the default one restored after). */
export async function collectingHook<T>(body: (reports: ExceptHookArgs[]) => Promise<T> | T): Promise<T> {
  const reports: ExceptHookArgs[] = [];
  setExcepthook((args) => reports.push(args));
  try {
    return await body(reports);
  } finally {
    setExcepthook(undefined);
  }
}
