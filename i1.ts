import { Thread, Lock, Event, Queue, sleep, currentThread, interrupted, isMainThread } from 'threadkit';
export function blockIn(e: Event, l: Lock, q: Queue, n: string) {
  const fns: Record<string, () => unknown> = { lock: () => l.acquire(), event: () => e.wait(), get: () => q.get(), sleep: () => sleep(1e9) };
  try { fns[n]!(); return { r: 'no' }; } catch (err) { console.log('  ', n, (err as Error).name + ': ' + (err as Error).message); }
}
export async function asyncWait(l: Lock) {
  const s = currentThread().signal;
  try { await l.acquireAsync(); return 'no'; } catch (e) { console.log('async:', (e as Error).name, s.aborted, interrupted()); }
}
export function busyThenWait(e: Event) {
  const until = performance.now() + 100; while (performance.now() < until);
  console.log('flag?', currentThread().isInterrupted());
  try { e.wait(); } catch (err) { console.log('next wait:', (err as Error).name); }
}
if (isMainThread) {
  const lock = new Lock(); lock.acquire();
  const ev = new Event();
  const q = new Queue();
  for (const name of ['lock', 'event', 'get', 'sleep']) {
    const t = new Thread({ target: { module: import.meta.url, name: 'blockIn' }, args: [ev, lock, q, name] });
    t.start();
    sleep(50);
    const t0 = performance.now();
    t.interrupt();
    t.join();
    console.log(name, 'joined after', (performance.now() - t0).toFixed(3), 'ms');
  }
  const t = new Thread({ target: { module: import.meta.url, name: 'asyncWait' }, args: [lock] });
  t.start(); sleep(50); t.interrupt(); t.join();
  const t2 = new Thread({ target: { module: import.meta.url, name: 'busyThenWait' }, args: [ev] });
  t2.start(); sleep(20); t2.interrupt(); t2.join();
}
