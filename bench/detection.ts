/**
 * The cost of deadlock detection: the same contended work with `deadlockDetection: 'off'` (the
 * anchor) and `'raise'`, measured in the same run, interleaved. Detection runs only when a
 * thread is about to sleep in a wait with no timeout, so the work here is the worst case: every
 * round sleeps.
 * - a contended Lock: two threads acquire and release it in a loop (a Lock wait has a holder:
 *   detection reads the wait-for graph at every sleep);
 * - Condition ping-pong (a Condition wait has no holder: detection returns at once);
 * - pool round trip: `submit(fn).result()` on a 1-worker pool (a Future wait: its holder is the
 *   pool thread running the task).
 *
 * Run alone: `node --import tsx bench/detection.ts`.
 */

import { Condition, Lock, SharedValue, Thread, ThreadPoolExecutor, configureThreads } from 'threadkit';
import { type Row, isMain, measure, runAlone } from './lib.js';
import { conditionTarget } from './pingpong.js';

const MIN_MS = 600;
const PASSES = 3;

/** The other side of the contended Lock: acquire and release in a loop until told to stop. */
const lockTarget = (lock: Lock, stop: SharedValue<'int32'>): number => {
  let rounds = 0;
  while (stop.value === 0) {
    lock.acquire();
    rounds++;
    lock.release();
  }
  return rounds;
};

/** Main's side: acquire and release a Lock another thread takes in a loop too (waits often sleep). */
export function contendedLock(): { loop: (n: number) => void; stop: () => void } {
  const lock = new Lock();
  const stop = new SharedValue('int32', 0);
  const thread = new Thread<number>({ target: lockTarget, args: [lock, stop], daemon: true, name: 'bench-lock-contender' });
  thread.start();
  return {
    loop: (n: number): void => {
      for (let i = 0; i < n; i++) {
        lock.acquire();
        lock.release();
      }
    },
    stop: () => {
      stop.value = 1;
      thread.join();
    },
  };
}

function conditionPingPong(): (n: number) => void {
  const cond = new Condition();
  const turn = new SharedValue('int32', 0);
  new Thread({ target: conditionTarget, args: [cond, turn], daemon: true, name: 'bench-condition-pong' }).start();
  return (n: number): void => {
    cond.acquire();
    for (let i = 0; i < n; i++) {
      turn.value = 1;
      cond.notify();
      while (turn.value === 1) cond.wait();
    }
    cond.release();
  };
}

export function poolRoundTrip(pool: ThreadPoolExecutor): (n: number) => void {
  return (n: number): void => {
    for (let i = 0; i < n; i++) pool.submit((x: number) => x + 1, i).result();
  };
}

/** Best of PASSES interleaved measurements of `loop` with detection off and on (ns per round). */
function offAndOn(loop: (n: number) => void): [number, number] {
  const best: [number, number] = [Infinity, Infinity];
  loop(100);
  for (let pass = 0; pass < PASSES; pass++) {
    for (const [i, mode] of [[0, 'off'], [1, 'raise']] as const) {
      configureThreads({ deadlockDetection: mode });
      try {
        best[i] = Math.min(best[i], measure(loop, { minMs: MIN_MS / PASSES }));
      } finally {
        configureThreads({ deadlockDetection: 'off' });
      }
    }
  }
  return best;
}

export async function run(): Promise<Row[]> {
  const contended = contendedLock();
  const lock = offAndOn(contended.loop);
  contended.stop();
  const condition = offAndOn(conditionPingPong());
  const pool = new ThreadPoolExecutor({ maxWorkers: 1 });
  const tasks = offAndOn(poolRoundTrip(pool));
  pool.shutdown();
  const row = (work: string, [off, on]: [number, number], note: string): Row => ({
    group: 'detection',
    work,
    unit: 'µs',
    threadkit: on / 1000,
    anchorName: 'detection off',
    anchor: off / 1000,
    note: `deadlockDetection 'raise' against 'off'; goal within 10% (≤ 1.10x): ${on / off <= 1.1 ? 'met' : 'MISSED'}; ${note}`,
  });
  return [
    row('contended Lock acquire + release (2 threads)', lock, 'a Lock wait has a holder: the graph is read at every sleep'),
    row('Condition ping-pong round trip', condition, 'a Condition wait has no holder'),
    row('pool submit + result() round trip', tasks, '1 worker; the Future wait is followed to the pool thread'),
  ];
}

if (isMain(import.meta.url)) await runAlone(run);
