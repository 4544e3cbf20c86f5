/**
 * ThreadPoolExecutor#stats() (API.md, "Timelines"): the shape of what it returns; threads, idle
 * and queued at moments the test holds the pool in (tasks wait on Events); the counts after a
 * mix of tasks that return, throw, are cancelled while queued or running (cancel({ interrupt })),
 * time out, or whose thread dies; the same numbers read from another thread.
 *
 * No fixed sleep synchronises anything, and the only assertions on durations are sanity ones
 * (p50 <= p99 <= max, 0 <= mean <= max) and lower bounds that hold by construction (a task that
 * sleeps 20 ms ran at least 20 ms). Every wait that must end is bounded.
 */

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CancelledError, Event, Thread, ThreadError, ThreadPoolExecutor, TimeoutError, sleepAsync } from 'threadkit';
import { LONG, until } from './helpers/waiting.js';

type Stats = ReturnType<ThreadPoolExecutor['stats']>;
type Durations = Stats['waitTime'];

/** Sets `started`, then waits (bounded) until `gate` is set. */
const hold = (started: Event, gate: Event, long: number): string => {
  started.set();
  gate.wait(long);
  return 'released';
};

const double = (x: number): number => x * 2;

/** pool.stats() read in a thread of its own (the pool travels by reference). */
function statsFromThread(pool: ThreadPoolExecutor): Stats {
  const thread = new Thread({ target: (p: ThreadPoolExecutor) => p.stats(), args: [pool] }) as Thread<Stats>;
  thread.start();
  thread.join(LONG);
  assert.equal(thread.isAlive(), false, 'the reading thread ended');
  return thread.result as Stats;
}

/** Sanity of a distribution: an integer count; without samples all 0; else p50 <= p99 <= max and 0 <= mean <= max. */
function assertSane(d: Durations, what: string): void {
  assert.ok(Number.isInteger(d.count) && d.count >= 0, `${what}.count: ${d.count}`);
  if (d.count === 0) {
    assert.deepEqual(d, { count: 0, mean: 0, p50: 0, p99: 0, max: 0 }, what);
    return;
  }
  assert.ok(d.mean >= 0 && d.mean <= d.max, `${what}: 0 <= mean ${d.mean} <= max ${d.max}`);
  assert.ok(d.p50 > 0 && d.p50 <= d.p99 && d.p99 <= d.max, `${what}: 0 < p50 ${d.p50} <= p99 ${d.p99} <= max ${d.max}`);
}

/** The counts of `stats` (what does not depend on timing). */
function counts(stats: Stats): Record<string, number> {
  const { threads, idle, queued, completed, failed, cancelled, waitTime, runTime } = stats;
  return { threads, idle, queued, completed, failed, cancelled, started: waitTime.count, ran: runTime.count };
}

describe('ThreadPoolExecutor#stats()', () => {
  it('returns { threads, idle, queued, completed, failed, cancelled, waitTime, runTime }: numbers, and { count, mean, p50, p99, max } in ms; a new pool is all 0', () => {
    const pool = new ThreadPoolExecutor({ maxWorkers: 2 });
    try {
      const stats = pool.stats();
      assert.deepEqual(Object.keys(stats).sort(), ['cancelled', 'completed', 'failed', 'idle', 'queued', 'runTime', 'threads', 'waitTime']);
      for (const key of ['threads', 'idle', 'queued', 'completed', 'failed', 'cancelled'] as const) assert.equal(typeof stats[key], 'number', key);
      for (const key of ['waitTime', 'runTime'] as const) {
        assert.deepEqual(Object.keys(stats[key]).sort(), ['count', 'max', 'mean', 'p50', 'p99'], key);
        for (const value of Object.values(stats[key])) assert.equal(typeof value, 'number', key);
      }
      const none = { count: 0, mean: 0, p50: 0, p99: 0, max: 0 };
      assert.deepEqual(stats, { threads: 0, idle: 0, queued: 0, completed: 0, failed: 0, cancelled: 0, waitTime: none, runTime: none });
    } finally {
      pool.shutdown();
    }
  });

  it('the @example of stats(): three tasks awaited, three counted', async () => {
    const pool = new ThreadPoolExecutor({ maxWorkers: 2 });
    try {
      await Promise.all([1, 2, 3].map((x) => pool.submit((n: number) => n * 2, x)));
      const { completed, runTime } = pool.stats();
      assert.equal(completed, 3);
      assert.equal(runTime.count, 3);
    } finally {
      pool.shutdown();
    }
  });

  it('threads, idle and queued while tasks are held; a queued task cancelled counts at once; the same numbers from another thread', async () => {
    const pool = new ThreadPoolExecutor({ maxWorkers: 2 });
    const gate = new Event();
    try {
      const started = [new Event(), new Event()];
      const held = started.map((s) => pool.submit(hold, s, gate, LONG));
      for (const s of started) await until(s, 'a held task started');
      assert.deepEqual(counts(pool.stats()), { threads: 2, idle: 0, queued: 0, completed: 0, failed: 0, cancelled: 0, started: 2, ran: 0 });

      const behind = [1, 2, 3].map((i) => pool.submit(double, i));
      assert.deepEqual(counts(pool.stats()), { threads: 2, idle: 0, queued: 3, completed: 0, failed: 0, cancelled: 0, started: 2, ran: 0 });
      assert.equal(behind[0]!.cancel(), true);
      const whileHeld = pool.stats();
      assert.deepEqual(counts(whileHeld), { threads: 2, idle: 0, queued: 2, completed: 0, failed: 0, cancelled: 1, started: 2, ran: 0 });
      assert.deepEqual(statsFromThread(pool), whileHeld, 'read from another thread');

      gate.set();
      assert.deepEqual(await Promise.all(held), ['released', 'released']);
      assert.deepEqual(await Promise.all(behind.slice(1)), [4, 6]);
      // Counted before their futures settled; both threads are idle again (the cancelled task was skipped).
      const after = pool.stats();
      assert.deepEqual(counts(after), { threads: 2, idle: 2, queued: 0, completed: 4, failed: 0, cancelled: 1, started: 4, ran: 4 });
      assertSane(after.waitTime, 'waitTime');
      assertSane(after.runTime, 'runTime');
      assert.deepEqual(statsFromThread(pool), after, 'read from another thread');
    } finally {
      gate.set();
      pool.shutdown();
    }
    // The threads have ended; what they counted stays.
    assert.deepEqual(counts(pool.stats()), { threads: 0, idle: 0, queued: 0, completed: 4, failed: 0, cancelled: 1, started: 4, ran: 4 });
  });

  it('counts a mix: returned, threw, cancelled while queued, cancelled running by cancel({ interrupt }), timed out; from another thread too', async () => {
    const pool = new ThreadPoolExecutor({ maxWorkers: 2 });
    const gate = new Event(); // never set while the tasks that wait on it matter
    const blockerGate = new Event();
    try {
      const runningStarted = new Event();
      const running = pool.submit(hold, runningStarted, gate, LONG);
      const blockerStarted = new Event();
      const blocker = pool.submit(hold, blockerStarted, blockerGate, LONG);
      await until(runningStarted, 'the task to interrupt started');
      await until(blockerStarted, 'the blocker started');

      // Both threads are busy: this one is queued.
      const queued = pool.submit(double, 0);
      assert.equal(queued.cancel(), true);
      assert.equal(running.cancel({ interrupt: true }), true);
      await assert.rejects(running.resultAsync({ timeout: LONG }), CancelledError);
      const timedOut = pool.submitWith({ timeout: 50 }, hold, new Event(), gate, LONG);
      await assert.rejects(timedOut.resultAsync({ timeout: LONG }), TimeoutError);
      blockerGate.set();
      assert.equal(await blocker, 'released');

      const returned = [1, 2, 3].map((i) => pool.submit(double, i));
      const slept = pool.submit(async () => {
        const { sleep } = await import('threadkit');
        sleep(20);
        return 'slept';
      });
      const threw = [1, 2].map((i) =>
        pool.submit((x: number) => {
          throw new RangeError(`bad ${x}`);
        }, i),
      );
      assert.deepEqual(await Promise.all(returned), [2, 4, 6]);
      assert.equal(await slept, 'slept');
      for (const f of threw) await assert.rejects(f.resultAsync(), RangeError);

      // The timed-out task failed at its timeout; its thread counts it when the task ends (interrupted).
      pool.shutdown({ wait: true });
      const stats = pool.stats();
      // 10 submitted: 9 started (not the one cancelled while queued), and all 9 ended in their thread.
      assert.deepEqual(counts(stats), { threads: 0, idle: 0, queued: 0, completed: 5, failed: 3, cancelled: 2, started: 9, ran: 9 });
      assertSane(stats.waitTime, 'waitTime');
      assertSane(stats.runTime, 'runTime');
      assert.ok(stats.runTime.max >= 20, `the task that slept 20 ms ran that long at least: runTime.max ${stats.runTime.max}`);
      assert.deepEqual(statsFromThread(pool), stats, 'read from another thread');
    } finally {
      gate.set();
      blockerGate.set();
      pool.shutdown();
    }
  });

  it('shutdown({ cancelFutures: true }) counts the queued tasks as cancelled at once', async () => {
    const pool = new ThreadPoolExecutor({ maxWorkers: 1 });
    const gate = new Event();
    try {
      const started = new Event();
      const held = pool.submit(hold, started, gate, LONG);
      await until(started, 'the held task started');
      const queued = [1, 2, 3].map((i) => pool.submit(double, i));
      pool.shutdown({ cancelFutures: true, wait: false });
      assert.ok(queued.every((f) => f.cancelled()));
      assert.deepEqual(counts(pool.stats()), { threads: 1, idle: 0, queued: 0, completed: 0, failed: 0, cancelled: 3, started: 1, ran: 0 });
      gate.set();
      assert.equal(await held, 'released');
      // (The thread is leaving now that the queue is shut down and empty: threads and idle are moving.)
      const { queued: stillQueued, completed, cancelled, waitTime, runTime } = pool.stats();
      assert.deepEqual({ stillQueued, completed, cancelled, started: waitTime.count, ran: runTime.count }, { stillQueued: 0, completed: 1, cancelled: 3, started: 1, ran: 1 });
    } finally {
      gate.set();
      pool.shutdown();
    }
  });

  it('a task whose thread dies (process.exit) counts as failed; the new thread goes on counting', async () => {
    const pool = new ThreadPoolExecutor({ maxWorkers: 1 });
    try {
      const exiting = pool.submit(() => process.exit(3));
      await assert.rejects(exiting.resultAsync({ timeout: LONG }), ThreadError);
      assert.deepEqual(await Promise.all([1, 2].map((i) => pool.submit(double, i))), [2, 4]);
      const stats = pool.stats();
      assert.equal(stats.failed, 1);
      assert.equal(stats.completed, 2);
      assert.equal(stats.waitTime.count, 3);
      assert.equal(stats.runTime.count, 2, 'the task whose thread died has no run time');
    } finally {
      pool.shutdown();
    }
    assert.equal(pool.stats().threads, 0);
  });

  it('waitTime runs from submit (in the submitting thread) to the start (in the pool thread)', async () => {
    const pool = new ThreadPoolExecutor({ maxWorkers: 1 });
    const gate = new Event();
    try {
      const started = new Event();
      const held = pool.submit(hold, started, gate, LONG);
      await until(started, 'the held task started');
      const behind = pool.submit(double, 21);
      // A length of time, not a synchronisation: the task behind cannot start before the gate opens.
      await sleepAsync(20);
      gate.set();
      assert.equal(await held, 'released');
      assert.equal(await behind, 42);
      const { waitTime } = pool.stats();
      assert.equal(waitTime.count, 2);
      assert.ok(waitTime.max >= 20, `the task queued behind waited at least the 20 ms before the gate opened: waitTime.max ${waitTime.max}`);
      assertSane(waitTime, 'waitTime');
    } finally {
      gate.set();
      pool.shutdown();
    }
  });

  it('counts every task of a stream from several threads (nothing lost between the shards)', async () => {
    const pool = new ThreadPoolExecutor({ maxWorkers: 3 });
    try {
      const n = 3000;
      const results = await Promise.allSettled(
        Array.from({ length: n }, (_, i) =>
          pool.submit((x: number) => {
            if (x % 7 === 0) throw new Error(`task ${x}`);
            return x;
          }, i),
        ),
      );
      const failures = results.filter((r) => r.status === 'rejected').length;
      assert.equal(failures, Math.ceil(n / 7));
      const stats = pool.stats();
      assert.equal(stats.completed, n - failures);
      assert.equal(stats.failed, failures);
      assert.equal(stats.waitTime.count, n);
      assert.equal(stats.runTime.count, n);
      assert.equal(stats.queued, 0);
      assertSane(stats.waitTime, 'waitTime');
      assertSane(stats.runTime, 'runTime');
    } finally {
      pool.shutdown();
    }
  });
});
