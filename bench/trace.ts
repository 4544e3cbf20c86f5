/**
 * The cost of tracing: the same work with no trace under way (the anchor) and with
 * `startTrace()`, measured in the same run, interleaved.
 * - a contended Lock (two threads acquire and release it; waits sleep often: each sleep records a
 *   wait's begin and end, each release that wakes someone a wake-up);
 * - pool round trip: `submit(fn).result()` on a 1-worker pool (task begin/end, waits, wake-ups);
 * - queue put + get in one thread: exactly two events (the depth after each), so the difference
 *   per operation, halved, is the cost of one recorded event.
 * Goal: the lock and pool rows within 10% of off. Off, tracing costs one load where an event
 * would be recorded: the other benchmarks show it (no change).
 *
 * Run alone: `node --import tsx bench/trace.ts`.
 */

import { Queue, ThreadPoolExecutor, startTrace, stopTrace } from 'threadkit';
import { contendedLock, poolRoundTrip } from './detection.js';
import { type Row, isMain, measure, runAlone } from './lib.js';

const MIN_MS = 600;
const PASSES = 3;

/** Best of PASSES interleaved measurements of `loop` with tracing off and on (ns per round). */
function offAndOn(loop: (n: number) => void): [number, number] {
  const best: [number, number] = [Infinity, Infinity];
  loop(100);
  for (let pass = 0; pass < PASSES; pass++) {
    best[0] = Math.min(best[0], measure(loop, { minMs: MIN_MS / PASSES }));
    startTrace({ maxEvents: 100_000 });
    try {
      best[1] = Math.min(best[1], measure(loop, { minMs: MIN_MS / PASSES }));
    } finally {
      stopTrace();
    }
  }
  return best;
}

function putGet(): (n: number) => void {
  const q = new Queue<number>();
  return (n: number): void => {
    for (let i = 0; i < n; i++) {
      q.put(i);
      q.get();
    }
  };
}

export async function run(): Promise<Row[]> {
  const contended = contendedLock();
  const lock = offAndOn(contended.loop);
  contended.stop();
  const pool = new ThreadPoolExecutor({ maxWorkers: 1 });
  const tasks = offAndOn(poolRoundTrip(pool));
  pool.shutdown();
  const [queueOff, queueOn] = offAndOn(putGet());
  const row = (work: string, [off, on]: [number, number], note: string): Row => ({
    group: 'trace',
    work,
    unit: 'µs',
    threadkit: on / 1000,
    anchorName: 'tracing off',
    anchor: off / 1000,
    note: `startTrace() against no trace; goal within 10% (≤ 1.10x): ${on / off <= 1.1 ? 'met' : 'MISSED'}; ${note}`,
  });
  return [
    row('contended Lock acquire + release (2 threads)', lock, 'waits and wake-ups recorded'),
    row('pool submit + result() round trip', tasks, '1 worker; task, waits and wake-ups recorded'),
    {
      group: 'trace',
      work: 'one recorded event (queue put + get: 2 depth counters)',
      unit: 'ns',
      threadkit: (queueOn - queueOff) / 2,
      anchorName: 'put + get, tracing off',
      anchor: queueOff,
      note: 'the cost of an event: (on - off) / 2 per put + get',
    },
  ];
}

if (isMain(import.meta.url)) await runAlone(run);
