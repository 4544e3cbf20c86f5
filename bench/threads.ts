/**
 * Threads: the cost of `start()` + `join()` of a trivial target (warm: an isolate kept from an
 * earlier thread; cold: a new isolate each time) against CPython's `Thread.start()+join()`, and
 * a CPU-bound job split over 2 threads against the same job on 1 (CPython's GIL gives 1.00x).
 *
 * Run alone: `node --import tsx bench/threads.ts`.
 */

import { Thread, configureThreads } from 'threadkit';
import { type Row, isMain, runAlone, runPython } from './lib.js';

const CPU = { module: new URL('./fixtures/cpu.mjs', import.meta.url).href, name: 'countPrimes' };
const LIMIT = 3_000_000;

const PYTHON = `
import threading, time
def nothing(): pass
for _ in range(200):
    t = threading.Thread(target=nothing); t.start(); t.join()
n = 2000
start = time.perf_counter_ns()
for _ in range(n):
    t = threading.Thread(target=nothing); t.start(); t.join()
print('start_join_us:', (time.perf_counter_ns() - start) / n / 1000)
def count(start, limit, step):
    c = 0
    for n in range(start, limit, step):
        if n < 2: continue
        d = 2; p = True
        while d * d <= n:
            if n % d == 0: p = False; break
            d += 1
        if p: c += 1
    return c
L = 300_000
t0 = time.perf_counter(); count(1, L, 2); one = time.perf_counter() - t0
t0 = time.perf_counter()
ts = [threading.Thread(target=count, args=(2 * i + 1, L, 4)) for i in range(2)]
[t.start() for t in ts]; [t.join() for t in ts]
two = time.perf_counter() - t0
print('speedup:', one / two)
`;

function startJoinMicros(count: number): number {
  const t0 = performance.now();
  for (let i = 0; i < count; i++) {
    const t = new Thread({ target: () => undefined });
    t.start();
    t.join();
  }
  return ((performance.now() - t0) / count) * 1000;
}

function cpuJob(threads: number): number {
  const t0 = performance.now();
  // The odd numbers dealt round-robin (thread i: 2i+1, 2i+1+2n, …), so every thread gets the
  // same mix of sizes; 2, the even prime, is counted apart. (A stride over all numbers would
  // give one of 2 threads only the even numbers, which cost nothing.)
  const workers = Array.from({ length: threads }, (_, i) => new Thread<number>({ target: CPU, args: [2 * i + 1, LIMIT, 2 * threads] }));
  workers.forEach((t) => t.start());
  workers.forEach((t) => t.join());
  const total = 1 + workers.reduce((sum, t) => sum + (t.result ?? 0), 0);
  if (total !== 216_816) throw new Error(`prime count ${total}, expected 216816`);
  return performance.now() - t0;
}

export function run(): Row[] {
  startJoinMicros(50); // warm the isolate pool and the code paths
  const warm = Math.min(startJoinMicros(500), startJoinMicros(500));
  configureThreads({ keepIdleMs: 0 });
  const cold = startJoinMicros(20);
  configureThreads({ keepIdleMs: 5000 });
  cpuJob(1);
  cpuJob(2); // isolates warm, module imported in both
  const one = Math.min(cpuJob(1), cpuJob(1));
  const two = Math.min(cpuJob(2), cpuJob(2));
  const python = runPython(PYTHON, 120_000);
  const py = (key: string): number | undefined => (python.ok ? python.values.get(key) : undefined);
  const note = python.ok ? undefined : python.note;
  const pySpeedup = py('speedup');
  return [
    { group: 'threads', work: 'start()+join(), warm isolate', unit: 'µs', threadkit: warm, anchorName: 'python3 Thread', anchor: py('start_join_us'), note },
    { group: 'threads', work: 'start()+join(), new isolate', unit: 'µs', threadkit: cold, anchorName: 'python3 Thread', anchor: py('start_join_us'), note: 'configureThreads({ keepIdleMs: 0 })' },
    { group: 'threads', work: 'prime count below 3M, split over 2 threads', unit: 'µs', threadkit: two * 1000, anchorName: '1 thread', anchor: one * 1000, ratio: 'speedup', goal: { op: '>=', value: 1.9 }, note: `python3 2 threads vs 1: ${pySpeedup === undefined ? '—' : `${pySpeedup.toFixed(2)}x`}` },
  ];
}

if (isMain(import.meta.url)) await runAlone(run);
