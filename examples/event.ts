/**
 * Event: a flag threads can wait for. Runners get ready and block in `go.wait()`; the main
 * thread sets the event once, and every waiter wakes. `waitAsync` waits without blocking the
 * event loop.
 */

import { fileURLToPath } from 'node:url';
import { Event, Semaphore, Thread, isMainThread } from 'threadkit';

/** A runner: says it is ready, waits for the start signal, reports when it woke (epoch ms). */
export function runner(ready: Semaphore, go: Event): { started: boolean; wokeAt: number } {
  ready.release();
  const started = go.wait(5000); // true: the event was set (false would mean the timeout ran out)
  return { started, wokeAt: performance.timeOrigin + performance.now() };
}

export async function main(): Promise<string[]> {
  const lines: string[] = [];
  const go = new Event();
  lines.push(`before set(): isSet=${go.isSet()}, wait(30) -> ${go.wait(30)} (timed out)`);

  const ready = new Semaphore(0);
  const runners = [1, 2, 3].map((i) => new Thread<{ started: boolean; wokeAt: number }>({ name: `runner-${i}`, target: { module: import.meta.url, name: 'runner' }, args: [ready, go] }));
  runners.forEach((t) => t.start());
  for (let i = 0; i < runners.length; i++) ready.acquire(); // all three are about to wait
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 50); // let them block in wait()
  const setAt = performance.timeOrigin + performance.now();
  go.set();
  runners.forEach((t) => t.join());
  for (const t of runners) {
    const { started, wokeAt } = t.result!;
    lines.push(`${t.name}: wait() returned ${started}, ${Math.max(0, wokeAt - setAt).toFixed(2)} ms after set()`);
  }

  go.clear();
  lines.push(`after clear(): isSet=${go.isSet()}, wait(0) -> ${go.wait(0)}`);

  // The Promise twin: the event loop keeps running while we wait for a thread to set the event.
  const setter = new Thread({ target: (e: Event) => (Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 50), e.set()), args: [go] });
  setter.start();
  let ticks = 0;
  const ticker = setInterval(() => ticks++, 5);
  const got = await go.waitAsync({ timeout: 5000 });
  clearInterval(ticker);
  setter.join();
  lines.push(`await waitAsync() -> ${got}, while the event loop stayed free (${ticks > 0 ? 'timers kept firing' : 'no timer fired'})`);
  return lines;
}

if (isMainThread && process.argv[1] === fileURLToPath(import.meta.url)) {
  for (const line of await main()) console.log(line);
}
