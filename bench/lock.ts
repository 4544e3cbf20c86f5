/**
 * Uncontended lock cost: `acquire(); release()` on one thread, nobody else touching the lock.
 * threadkit's Lock against the raw limit (one compareExchange and one store on a fixed-length
 * Int32Array over a SharedArrayBuffer) and against CPython's `threading.Lock`, measured by
 * python3 in the same run. RLock and Semaphore are measured the same way, for information.
 *
 * Run alone: `node --import tsx bench/lock.ts`.
 */

import { Lock, RLock, Semaphore } from 'threadkit';
import { type Row, isMain, measureInterleaved, runAlone, runPython } from './lib.js';

/** Per measurement; each loop is measured PASSES times, interleaved, and keeps its best. */
const MIN_MS = 200;
const PASSES = 3;

/** CPython's locks, with bound methods in locals (its fastest plain loop); median of 5 runs. */
const PYTHON = `
import threading, time
def bench(acquire, release, n, runs=5):
    for _ in range(n // 4):
        acquire(); release()
    times = []
    for _ in range(runs):
        start = time.perf_counter_ns()
        for _ in range(n):
            acquire(); release()
        times.append((time.perf_counter_ns() - start) / n)
    times.sort()
    return times[len(times) // 2]
lock = threading.Lock()
print('Lock:', bench(lock.acquire, lock.release, 400_000))
rlock = threading.RLock()
print('RLock:', bench(rlock.acquire, rlock.release, 400_000))
sem = threading.Semaphore()
print('Semaphore:', bench(sem.acquire, sem.release, 60_000))
`;

/** The raw limit: take and give one futex word with no checks around it. */
function rawLoop(i32: Int32Array): (n: number) => void {
  return (n) => {
    for (let i = 0; i < n; i++) {
      if (Atomics.compareExchange(i32, 0, 0, 1) !== 0) throw new Error('raw word was not free');
      Atomics.store(i32, 0, 0);
    }
  };
}

export function run(): Row[] {
  // The same raw loop on a fixed-length view of a growable buffer, as threadkit's heap is.
  const growable = new SharedArrayBuffer(4096, { maxByteLength: 1 << 20 });
  const lock = new Lock();
  const rlock = new RLock();
  const semaphore = new Semaphore(1);
  const [raw, rawGrowable, lockNs, rlockNs, semaphoreNs] = measureInterleaved([
    rawLoop(new Int32Array(new SharedArrayBuffer(4))),
    rawLoop(new Int32Array(growable, 0, 1024)),
    (n) => {
      for (let i = 0; i < n; i++) {
        lock.acquire();
        lock.release();
      }
    },
    (n) => {
      for (let i = 0; i < n; i++) {
        rlock.acquire();
        rlock.release();
      }
    },
    (n) => {
      for (let i = 0; i < n; i++) {
        semaphore.acquire();
        semaphore.release();
      }
    },
  ], { minMs: MIN_MS, passes: PASSES }) as [number, number, number, number, number];

  const python = runPython(PYTHON);
  const py = (name: string): number | undefined => (python.ok ? python.values.get(name) : undefined);
  const pyNote = python.ok ? `${python.version}, bound methods, median of 5 runs` : python.note;

  const rawName = 'raw CAS+store';
  return [
    {
      group: 'lock', work: 'Lock acquire+release', unit: 'ns', threadkit: lockNs, anchorName: rawName, anchor: raw, goal: { op: '<=', value: 1.3 },
      note: `raw loop on a fixed view of a growable SAB (as the heap): ${rawGrowable.toFixed(1)} ns`,
    },
    { group: 'lock', work: 'Lock acquire+release', unit: 'ns', threadkit: lockNs, anchorName: 'python3 Lock', anchor: py('Lock'), ratio: 'speedup', goal: { op: '>=', value: 4 }, note: pyNote },
    { group: 'lock', work: 'RLock acquire+release', unit: 'ns', threadkit: rlockNs, anchorName: rawName, anchor: raw },
    { group: 'lock', work: 'RLock acquire+release', unit: 'ns', threadkit: rlockNs, anchorName: 'python3 RLock', anchor: py('RLock'), ratio: 'speedup', note: python.ok ? undefined : python.note },
    { group: 'lock', work: 'Semaphore acquire+release', unit: 'ns', threadkit: semaphoreNs, anchorName: rawName, anchor: raw },
    { group: 'lock', work: 'Semaphore acquire+release', unit: 'ns', threadkit: semaphoreNs, anchorName: 'python3 Semaphore', anchor: py('Semaphore'), ratio: 'speedup', note: python.ok ? 'pure-Python class (a Condition inside)' : python.note },
  ];
}

if (isMain(import.meta.url)) await runAlone(run);
