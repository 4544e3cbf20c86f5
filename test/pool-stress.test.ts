/**
 * Stress for futures and the pool: a million trivial tasks (checksum, then the heap back to its
 * baseline), random cancels racing the pool threads (every future settles exactly once), many
 * threads submitting to one pool, and thousands of awaits of futures completed by another thread.
 */

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setImmediate as tick } from 'node:timers/promises';
import { CancelledError, Event, Future, SharedValue, Thread, ThreadPoolExecutor, configureThreads, heapStats, waitAsync } from 'threadkit';
import { settle } from './fixtures/futures-helpers.js';
import { runThreads, startThread } from './helpers.js';

// Let isolates exit as soon as their thread ends: nothing a pool thread held outlives the
// shutdown, so memory can be measured right after it.
configureThreads({ keepIdleMs: 0 });

/** Settles until the heap's use is back within `slack` bytes of `baseline` (at most ~10 s). */
async function settleTo(baseline: number, slack: number): Promise<number> {
  let used = heapStats().usedBytes;
  for (let round = 0; round < 200 && used - baseline >= slack; round++) {
    await settle();
    used = heapStats().usedBytes;
  }
  return used;
}

/**
 * Submits n tasks in batches to a 4-worker pool, checks and sums the results, shuts the pool
 * down. (A function of its own, so that nothing of the pool stays reachable from the caller.)
 */
function runTrivialTasks(n: number, batch: number): { checksum: number; wrong: number } {
  const pool = new ThreadPoolExecutor({ maxWorkers: 4 });
  const futures: Future<number>[] = new Array(batch);
  let checksum = 0;
  let wrong = 0;
  for (let start = 0; start < n; start += batch) {
    for (let i = 0; i < batch; i++) futures[i] = pool.submit((x: number) => 2 * x + 1, start + i);
    for (let i = 0; i < batch; i++) {
      const value = futures[i]!.result();
      if (value !== 2 * (start + i) + 1) wrong++;
      checksum += value;
    }
  }
  pool.shutdown({ wait: true });
  return { checksum, wrong };
}

describe('pool stress', () => {
  it('1,000,000 trivial tasks through a 4-worker pool: every result right, the heap back to baseline', async (t) => {
    const N = 1_000_000;
    await settle();
    const baseline = heapStats().usedBytes;
    const t0 = performance.now();
    const { checksum, wrong } = runTrivialTasks(N, 10_000);
    const ms = performance.now() - t0;
    t.diagnostic(`${N} tasks in ${ms.toFixed(0)} ms: ${Math.round((N / ms) * 1000)} tasks/s`);
    assert.equal(wrong, 0);
    assert.equal(checksum, N * N); // the sum of 2i+1 for i < N
    const used = await settleTo(baseline, 64 * 1024);
    assert.ok(used - baseline < 64 * 1024, `used bytes: ${baseline} before, ${used} after`);
  });

  it('random cancels racing the pool threads: every future settles exactly once, cancelled XOR with its result', async () => {
    const N = 10_000;
    const pool = new ThreadPoolExecutor({ maxWorkers: 4 });
    // Hold the four threads at a gate while the tasks are queued and get their callbacks, so
    // that the cancels below race tasks that are still queued as well as running ones.
    const gate = new Event();
    const holders = [0, 1, 2, 3].map(() => pool.submit((g: Event) => g.wait(), gate));
    const futures: Future<number>[] = [];
    const calls = new Int32Array(N);
    let total = 0;
    const cancelledHere: boolean[] = [];
    for (let i = 0; i < N; i++) {
      const f = pool.submit((x: number) => x * 3, i);
      f.addDoneCallback(() => {
        calls[i]!++;
        total++;
      });
      futures.push(f);
      if (Math.random() < 0.1) cancelledHere[i] = f.cancel();
    }
    gate.set();
    // Cancel at random while the pool runs, here and in another thread (whose cancels wake this
    // thread's callbacks through its event loop).
    const canceller = new Thread({
      target: (fs: Future<number>[]) => {
        let n = 0;
        for (const f of fs) if (Math.random() < 0.2 && f.cancel()) n++;
        return n;
      },
      args: [futures],
    });
    canceller.start();
    for (let i = 0; i < N; i++) if (Math.random() < 0.2 && futures[i]!.cancel()) cancelledHere[i] = true;
    canceller.join();
    const { notDone } = await waitAsync<unknown>([...futures, ...holders]);
    assert.equal(notDone.size, 0);
    // Callbacks of futures settled elsewhere run from this event loop: give them time (bounded).
    const until = performance.now() + 20_000;
    while (total < N && performance.now() < until) await new Promise((resolve) => setTimeout(resolve, 1));
    for (let i = 0; i < 5; i++) await tick(); // a duplicate would show now
    const wrong = [...calls.keys()].filter((i) => calls[i] !== 1);
    assert.equal(wrong.length, 0, `callbacks not run exactly once for futures ${wrong.slice(0, 10).join(', ')}: ${wrong.slice(0, 10).map((i) => calls[i]).join(', ')} calls`);
    let cancelled = 0;
    for (const [i, f] of futures.entries()) {
      if (f.cancelled()) {
        cancelled++;
        assert.throws(() => f.result(0), CancelledError);
      } else {
        assert.equal(f.result(0), i * 3);
        assert.notEqual(cancelledHere[i], true, `future ${i}: cancel() returned true, yet it ran`);
      }
    }
    assert.ok(cancelled >= (canceller.result as number), `${cancelled} cancelled, ${String(canceller.result)} by the other thread alone`);
    pool.shutdown();
  });

  it('4 threads submit 10,000 tasks each to one 4-worker pool: every result right', () => {
    const pool = new ThreadPoolExecutor({ maxWorkers: 4 });
    const sums = runThreads<number>(
      (p: ThreadPoolExecutor, k: number, n: number) => {
        let sum = 0;
        for (let start = 0; start < n; start += 1000) {
          const fs = [];
          for (let i = start; i < start + 1000; i++) fs.push(p.submit((x: number, y: number) => x * y, k, i));
          for (const f of fs) sum += f.result();
        }
        return sum;
      },
      [1, 2, 3, 4].map((k) => [pool, k, 10_000]),
    );
    const triangle = (10_000 * 9_999) / 2;
    assert.deepEqual(sums, [1, 2, 3, 4].map((k) => k * triangle));
    pool.shutdown();
  });

  it('20,000 futures awaited here, completed and cancelled in random order by another thread', async () => {
    const N = 20_000;
    const futures = Array.from({ length: N }, () => new Future<number>());
    const awaited = Promise.allSettled(futures);
    const t = new Thread({
      target: (fs: Future<number>[]) => {
        const order = [...fs.keys()];
        for (let i = order.length - 1; i > 0; i--) {
          const j = Math.floor(Math.random() * (i + 1));
          [order[i], order[j]] = [order[j]!, order[i]!];
        }
        for (const i of order) {
          if (i % 7 === 0) fs[i]!.cancel();
          else if (i % 5 === 0) fs[i]!.setException(new RangeError(`no ${i}`));
          else fs[i]!.setResult(i);
        }
      },
      args: [futures],
    });
    t.start();
    const outcomes = await awaited;
    t.join();
    for (const [i, outcome] of outcomes.entries()) {
      if (i % 7 === 0) assert.ok(outcome.status === 'rejected' && outcome.reason instanceof CancelledError, `future ${i}`);
      else if (i % 5 === 0) assert.ok(outcome.status === 'rejected' && (outcome.reason as Error).message === `no ${i}`, `future ${i}`);
      else assert.ok(outcome.status === 'fulfilled' && outcome.value === i, `future ${i}`);
    }
  });

  it('pairs of futures awaited here, each pair completed at once by two threads, 2,000 rounds: no await is left hanging', async () => {
    // The await sleeps between rounds, so two completers race its going to sleep again and again
    // (the inbox's ASLEEP hand-off). A lost wake-up fails the round instead of hanging the suite.
    const ROUNDS = 2000;
    const pairs = Array.from({ length: ROUNDS }, () => [new Future<number>(), new Future<number>()] as const);
    const completer = (fs: Future<number>[], k: number): void => {
      const nap = new Int32Array(new SharedArrayBuffer(4));
      for (const [i, f] of fs.entries()) {
        // Until the round begins (or the test gave up and cancelled it), in naps of ~50 µs
        // that leave the cores to the other test files.
        while (!f.running() && !f.cancelled()) Atomics.wait(nap, 0, 0, 0.05);
        if (f.running()) f.setResult(i * 2 + k);
      }
    };
    const threads = [0, 1].map((k) => startThread(completer, [pairs.map((pair) => pair[k]), k]));
    try {
      for (const [round, pair] of pairs.entries()) {
        const both = Promise.all(pair.map((f) => f.resultAsync()));
        for (const f of pair) f.setRunningOrNotifyCancel(); // go
        let timer: NodeJS.Timeout | undefined;
        const late = new Promise<'late'>((resolve) => (timer = setTimeout(() => resolve('late'), 10_000)));
        const got = await Promise.race([both, late]);
        clearTimeout(timer);
        assert.deepEqual(got, [round * 2, round * 2 + 1], `round ${round}`);
      }
    } finally {
      for (const pair of pairs) for (const f of pair) if (!f.done()) f.cancel();
      for (const t of threads) t.join();
    }
  });

  it('done callbacks added while another thread completes the futures all run', async () => {
    const N = 20_000;
    let lost = 0;
    for (let round = 0; round < 3 && lost === 0; round++) {
      const futures = Array.from({ length: N }, () => new Future<number>());
      const progress = new SharedValue('int32', -1);
      const t = startThread(
        (fs: Future<number>[], p: SharedValue<'int32'>) => {
          for (let i = 0; i < fs.length; i++) {
            p.store(i);
            fs[i]!.setResult(i);
          }
        },
        [futures, progress],
      );
      const ran = new Uint8Array(N);
      for (let i = 0; i < N; i++) {
        // Add the callback just as the thread is about to complete this future.
        while (progress.load() < i && t.isAlive());
        futures[i]!.addDoneCallback(() => (ran[i] = 1));
      }
      t.join();
      for (let i = 0; i < 100; i++) await tick();
      lost = ran.filter((r) => r === 0).length;
    }
    assert.equal(lost, 0, `${lost} of ${N} callbacks never ran`);
  });
});
