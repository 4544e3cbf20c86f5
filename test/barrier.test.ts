/**
 * Barrier contract, after CPython's Lib/test/lock_tests.py (BarrierTests), in our own words,
 * run within one thread and across real threads (the main thread takes part as one party).
 *
 * A barrier action is sent as source text and runs in whichever thread arrives last, so it can
 * use nothing but globals. To observe it, every participant first stores the same shared
 * Semaphore (used as an atomic counter) in its own `globalThis`; the action counts itself there,
 * and also bumps a per-thread global, which tells which thread ran it.
 * Ordering never depends on sleeps: a thread is known to be waiting when `nWaiting` says so
 * (it is counted under the barrier's lock, which it gives up only inside its wait).
 * Shared objects are compared with `assert.ok(a === b)`: a failing `assert.equal` would print a
 * diff of the whole shared heap.
 */

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Barrier, BrokenBarrierError, Event, Semaphore, ThreadError, type Thread } from 'threadkit';
import { since, sleep, sleepSync, startThread } from './helpers.js';

/** A bound for waits that must succeed: a bug shows as a failed assertion, not a hung test. */
const LONG = 10_000;

type BarrierGlobals = { __barrierRuns?: Semaphore; __ranActionHere?: number };

/** The observable action: counts one run in the shared counter and one in this thread. */
const countingAction = (): void => {
  const g = globalThis as BarrierGlobals;
  g.__barrierRuns!.release();
  g.__ranActionHere = (g.__ranActionHere ?? 0) + 1;
};

function joinAll(threads: Thread[]): void {
  for (const t of threads) t.join();
}

/** Polls (this is not a race: nWaiting only grows until the barrier trips) until n threads wait. */
function awaitWaiting(barrier: Barrier, n: number): void {
  const deadline = performance.now() + LONG;
  while (barrier.nWaiting < n) {
    assert.ok(performance.now() < deadline, `nWaiting never reached ${n} (it is ${barrier.nWaiting})`);
    sleepSync(1);
  }
}

/** Runs `target` in `threads` threads and in the main thread, and returns all results, main's last. */
function runWithMain<R>(threads: number, target: (...args: any[]) => R, args: unknown[]): R[] {
  const started = Array.from({ length: threads }, () => startThread<R>(target, args));
  const mine = target(...args);
  joinAll(started);
  return [...started.map((t) => t.result as R), mine];
}

const describeError = (error: unknown): string => `${(error as Error).name}: ${(error as Error).message}`;

/** Module-level: a barrier action that uses it cannot see it (actions travel as source text). */
const outsideTheAction = { runs: 0 };

describe('Barrier', () => {
  it('has parties, nWaiting and broken, and shows them in toString', () => {
    const barrier = new Barrier(3);
    assert.equal(barrier.parties, 3);
    assert.equal(barrier.nWaiting, 0);
    assert.equal(barrier.broken, false);
    assert.match(String(barrier), /^<threadkit\.Barrier at 0x[0-9a-f]+: waiters=0\/3>$/);
    barrier.abort();
    assert.equal(barrier.broken, true);
    assert.match(String(barrier), /: broken>$/);
  });

  it('rejects bad constructor arguments with clear errors', () => {
    assert.throws(() => new Barrier(0), { name: 'RangeError', message: /parties must be >= 1, got 0/ });
    assert.throws(() => new Barrier(-2), { name: 'RangeError', message: /got -2/ });
    assert.throws(() => new Barrier(1.5), { name: 'TypeError', message: /expected an integer, got 1\.5/ });
    assert.throws(() => new Barrier('3' as never), { name: 'TypeError', message: /got "3"/ });
    assert.throws(() => new Barrier(2, 5 as never), { name: 'TypeError', message: /options must be an object, got 5/ });
    assert.throws(() => new Barrier(2, { timeout: Number.NaN }), { name: 'TypeError', message: /NaN/ });
    assert.throws(() => new Barrier(2, { timeout: 1e300 }), { name: 'RangeError', message: /TIMEOUT_MAX/ });
    assert.throws(() => new Barrier(2, { action: 5 as never }), { name: 'TypeError', message: /action must be a function or \{ module, name \}, got 5/ });
    const barrier = new Barrier(2);
    assert.throws(() => barrier.wait(Number.NaN), { name: 'TypeError', message: /NaN/ });
    assert.throws(() => barrier.wait('1' as never), { name: 'TypeError', message: /got "1"/ });
    assert.equal(barrier.broken, false, 'a rejected wait() leaves the barrier alone');
    assert.equal(barrier.nWaiting, 0);
  });

  it('a one-party barrier passes at once, every time, running its action each time', () => {
    const g = globalThis as BarrierGlobals;
    g.__barrierRuns = new Semaphore(0);
    g.__ranActionHere = 0;
    try {
      const barrier = new Barrier(1, { action: countingAction });
      assert.equal(barrier.wait(), 0);
      assert.equal(barrier.wait(), 0);
      assert.equal(barrier.wait(-5), 0, 'the last arrival does not wait, whatever its timeout');
      assert.equal(g.__barrierRuns.value, 3);
      assert.equal(g.__ranActionHere, 3);
      assert.equal(barrier.broken, false);
    } finally {
      delete g.__barrierRuns;
      delete g.__ranActionHere;
    }
  });

  it('20 generations in lockstep (3 threads + main): indices, action once per generation by the last arrival', () => {
    const PARTIES = 4;
    const GENERATIONS = 20;
    const barrier = new Barrier(PARTIES, { action: countingAction });
    const arrived = new Semaphore(0); // every arrival counts itself before waiting
    const runs = new Semaphore(0); // the action counts itself here
    const participant = (b: Barrier, arrived: Semaphore, runs: Semaphore, generations: number): number[][] => {
      const g = globalThis as { __barrierRuns?: Semaphore; __ranActionHere?: number };
      g.__barrierRuns = runs;
      g.__ranActionHere = 0;
      const log: number[][] = [];
      for (let gen = 0; gen < generations; gen++) {
        arrived.release();
        const ranBefore = g.__ranActionHere;
        const index = b.wait(10_000);
        // Read before this thread arrives again, so generation gen+1 cannot have tripped yet.
        log.push([index, runs.value, g.__ranActionHere - ranBefore, arrived.value]);
      }
      return log;
    };
    let logs: number[][][];
    try {
      logs = runWithMain(PARTIES - 1, participant, [barrier, arrived, runs, GENERATIONS]);
    } finally {
      delete (globalThis as BarrierGlobals).__barrierRuns;
      delete (globalThis as BarrierGlobals).__ranActionHere;
    }
    for (const log of logs) assert.equal(log?.length, GENERATIONS, 'a participant failed');
    for (let gen = 0; gen < GENERATIONS; gen++) {
      const entries = logs.map((log) => log[gen]!);
      assert.deepEqual(
        entries.map(([index]) => index).sort(),
        [0, 1, 2, 3],
        `generation ${gen}: arrival indices are not a permutation of 0..3`,
      );
      for (const [index, runsSeen, ranHere, arrivedSeen] of entries) {
        assert.equal(runsSeen, gen + 1, `generation ${gen}: the action ran ${runsSeen} times before release`);
        assert.equal(ranHere, index === PARTIES - 1 ? 1 : 0, `generation ${gen}: index ${index} ran the action ${ranHere} times`);
        assert.ok(arrivedSeen! >= (gen + 1) * PARTIES, `generation ${gen}: released before everyone arrived (${arrivedSeen})`);
        assert.ok(arrivedSeen! < (gen + 2) * PARTIES, `generation ${gen}: others passed the next generation (${arrivedSeen})`);
      }
    }
    assert.equal(runs.value, GENERATIONS);
    assert.equal(barrier.nWaiting, 0);
    assert.equal(barrier.broken, false);
  });

  it('nWaiting counts the threads inside wait()', () => {
    const barrier = new Barrier(3);
    const waiter = (b: Barrier): number => b.wait(10_000);
    const a = startThread<number>(waiter, [barrier]);
    awaitWaiting(barrier, 1);
    assert.equal(barrier.nWaiting, 1);
    const b = startThread<number>(waiter, [barrier]);
    awaitWaiting(barrier, 2);
    assert.match(String(barrier), /waiters=2\/3/);
    const mine = barrier.wait(LONG);
    joinAll([a, b]);
    assert.deepEqual([a.result, b.result, mine], [0, 1, 2], 'indices follow arrival order');
    assert.equal(barrier.nWaiting, 0);
  });

  it('an action that throws breaks the barrier: its thread gets the error, the others BrokenBarrierError', () => {
    const barrier = new Barrier(3, {
      action: () => {
        throw new RangeError('action failed');
      },
    });
    const results = runWithMain(
      2,
      (b: Barrier) => {
        try {
          return `passed ${b.wait(10_000)}`;
        } catch (error) {
          return `${(error as Error).name}: ${(error as Error).message}`;
        }
      },
      [barrier],
    );
    assert.deepEqual(results.sort(), ['BrokenBarrierError: the barrier is broken', 'BrokenBarrierError: the barrier is broken', 'RangeError: action failed']);
    assert.equal(barrier.broken, true);
    assert.equal(barrier.nWaiting, 0);
  });

  it('an action that uses an outer variable is refused by the constructor, with an explanation', () => {
    assert.throws(
      () =>
        new Barrier(1, {
          action: () => {
            outsideTheAction.runs++;
          },
        }),
      { name: 'TypeError', message: /^Barrier action uses "outsideTheAction", which is not defined in the thread: .*pass it in args/ },
    );
    assert.equal(outsideTheAction.runs, 0);
  });


  it('abort() breaks the barrier for every waiter, current and future (CPython’s test_abort)', () => {
    const barrier = new Barrier(4);
    const results = runWithMain(
      3,
      (b: Barrier) => {
        try {
          if (b.wait(10_000) === 1) {
            b.abort();
            return 'aborted';
          }
          b.wait(10_000);
          return 'passed';
        } catch (error) {
          return (error as Error).name;
        }
      },
      [barrier],
    );
    assert.deepEqual(results.sort(), ['BrokenBarrierError', 'BrokenBarrierError', 'BrokenBarrierError', 'aborted']);
    assert.equal(barrier.broken, true);
    assert.equal(barrier.nWaiting, 0);
    assert.throws(() => barrier.wait(LONG), (error: unknown) => error instanceof BrokenBarrierError && error.message === 'the barrier is broken');
  });

  it('reset() while threads wait gives them BrokenBarrierError, then the barrier works again (CPython’s test_reset)', () => {
    const barrier = new Barrier(4);
    const results = runWithMain(
      3,
      (b: Barrier) => {
        const out: string[] = [];
        try {
          if (b.wait(10_000) === 1) {
            // Wait until the other three are in their second wait, then reset under them.
            const deadline = performance.now() + 10_000;
            while (b.nWaiting < 3) {
              if (performance.now() > deadline) return ['nWaiting never reached 3'];
              Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1);
            }
            b.reset();
            out.push('reset');
          } else {
            try {
              b.wait(10_000);
              out.push('passed');
            } catch (error) {
              out.push((error as Error).name);
            }
          }
          b.wait(10_000);
          out.push('passed again');
        } catch (error) {
          out.push(`unexpected ${(error as Error).name}`);
        }
        return out;
      },
      [barrier],
    );
    assert.deepEqual(
      results.map((r) => r.join(', ')).sort(),
      ['BrokenBarrierError, passed again', 'BrokenBarrierError, passed again', 'BrokenBarrierError, passed again', 'reset, passed again'],
    );
    assert.equal(barrier.broken, false);
    assert.equal(barrier.nWaiting, 0);
  });

  it('a broken barrier can be reset and used again (CPython’s test_abort_and_reset)', () => {
    const barrier = new Barrier(4);
    const sync = new Barrier(4);
    const results = runWithMain(
      3,
      (b: Barrier, sync: Barrier) => {
        let first: string;
        try {
          if (b.wait(10_000) === 1) {
            b.abort();
            first = 'aborted';
          } else {
            b.wait(10_000);
            first = 'passed';
          }
        } catch (error) {
          first = (error as Error).name;
        }
        try {
          // Everyone has left `b` before the reset, and nobody enters it before the reset.
          if (sync.wait(10_000) === 1) b.reset();
          sync.wait(10_000);
          b.wait(10_000);
          return `${first}, passed again`;
        } catch (error) {
          return `${first}, unexpected ${(error as Error).name}`;
        }
      },
      [barrier, sync],
    );
    assert.deepEqual(results.sort(), ['BrokenBarrierError, passed again', 'BrokenBarrierError, passed again', 'BrokenBarrierError, passed again', 'aborted, passed again']);
    assert.equal(barrier.broken, false);
  });

  it('reset() of an idle or broken barrier makes it whole', () => {
    const barrier = new Barrier(2);
    barrier.reset();
    assert.equal(barrier.broken, false);
    barrier.abort();
    assert.equal(barrier.broken, true);
    barrier.reset();
    assert.equal(barrier.broken, false);
    const t = startThread<number>((b: Barrier) => b.wait(10_000), [barrier]);
    const mine = barrier.wait(LONG);
    t.join();
    assert.deepEqual([t.result, mine].sort(), [0, 1]);
  });

  it('a per-call timeout that runs out breaks the barrier, never early', () => {
    const barrier = new Barrier(3);
    const other = startThread<string>(
      (b: Barrier) => {
        try {
          return `passed ${b.wait(10_000)}`;
        } catch (error) {
          return (error as Error).name;
        }
      },
      [barrier],
    );
    const t0 = performance.now();
    assert.throws(() => barrier.wait(60), { name: 'BrokenBarrierError', message: /timed out/ });
    assert.ok(since(t0) >= 60, `wait(60) gave up after ${since(t0)} ms`);
    other.join();
    assert.equal(other.result, 'BrokenBarrierError');
    assert.equal(barrier.broken, true);
    assert.equal(barrier.nWaiting, 0);
    assert.throws(() => barrier.wait(LONG), { name: 'BrokenBarrierError', message: 'the barrier is broken' });
  });

  it('the default timeout breaks the barrier, never early; a per-call timeout overrides it', () => {
    const barrier = new Barrier(3, { timeout: 60 });
    // The other party waits longer than the default, so that the main thread is the one to time out.
    const other = startThread<string>(
      (b: Barrier) => {
        try {
          return `passed ${b.wait(10_000)}`;
        } catch (error) {
          return (error as Error).name;
        }
      },
      [barrier],
    );
    const t0 = performance.now();
    assert.throws(() => barrier.wait(), { name: 'BrokenBarrierError', message: /timed out/ });
    assert.ok(since(t0) >= 60, `wait() with a default timeout of 60 gave up after ${since(t0)} ms`);
    other.join();
    assert.equal(other.result, 'BrokenBarrierError');
    assert.equal(barrier.broken, true);

    const patient = new Barrier(2, { timeout: 10 });
    const ready = new Event();
    const t = startThread<number>(
      (b: Barrier, ready: Event) => {
        ready.set();
        return b.wait(10_000);
      },
      [patient, ready],
    );
    assert.equal(ready.wait(LONG), true);
    sleepSync(50); // far past the default timeout of 10
    const mine = patient.wait(LONG);
    t.join();
    assert.deepEqual([t.result, mine].sort(), [0, 1]);
    assert.equal(patient.broken, false);
  });

  it('a negative per-call timeout counts as 0', () => {
    const barrier = new Barrier(2);
    assert.throws(() => barrier.wait(-5), { name: 'BrokenBarrierError', message: /timed out/ });
    assert.equal(barrier.broken, true);
  });

  it('waitAsync takes part like wait() and runs the action once, without blocking the event loop', async () => {
    const g = globalThis as BarrierGlobals;
    const runs = new Semaphore(0);
    g.__barrierRuns = runs;
    try {
      const barrier = new Barrier(2, { action: countingAction });
      const go = new Event();
      const t = startThread<number>(
        (b: Barrier, go: Event, runs: Semaphore) => {
          (globalThis as { __barrierRuns?: Semaphore }).__barrierRuns = runs;
          if (!go.wait(10_000)) return -1;
          return b.wait(10_000);
        },
        [barrier, go, runs],
      );
      setTimeout(() => go.set(), 5); // runs only if the event loop is free
      const mine = await barrier.waitAsync({ timeout: LONG });
      t.join();
      assert.deepEqual([mine, t.result].sort(), [0, 1]);
      assert.equal(runs.value, 1);
      // Both sides again: the thread is first this time.
      const t2 = startThread<number>(
        (b: Barrier, runs: Semaphore) => {
          (globalThis as { __barrierRuns?: Semaphore }).__barrierRuns = runs;
          return b.wait(10_000);
        },
        [barrier, runs],
      );
      awaitWaiting(barrier, 1);
      assert.equal(await barrier.waitAsync(), 1);
      t2.join();
      assert.equal(t2.result, 0);
      assert.equal(runs.value, 2);
    } finally {
      delete g.__barrierRuns;
    }
  });

  it('waitAsync: a timeout breaks the barrier, never early', async () => {
    const barrier = new Barrier(2);
    const t0 = performance.now();
    await assert.rejects(barrier.waitAsync({ timeout: 40 }), { name: 'BrokenBarrierError', message: /timed out/ });
    assert.ok(since(t0) >= 40, `waitAsync({ timeout: 40 }) gave up after ${since(t0)} ms`);
    assert.equal(barrier.broken, true);
    await assert.rejects(barrier.waitAsync(), { name: 'BrokenBarrierError' });
    await assert.rejects(new Barrier(2).waitAsync({ timeout: Number.NaN }), { name: 'TypeError', message: /NaN/ });
  });

  it('waitAsync: an abort rejects with the reason and breaks the barrier for the others', async () => {
    const barrier = new Barrier(3);
    const other = startThread<string>(
      (b: Barrier) => {
        try {
          return `passed ${b.wait(10_000)}`;
        } catch (error) {
          return (error as Error).name;
        }
      },
      [barrier],
    );
    awaitWaiting(barrier, 1);
    const controller = new AbortController();
    const pending = barrier.waitAsync({ signal: controller.signal });
    await sleep(10);
    controller.abort(new Error('stop'));
    await assert.rejects(pending, /stop/);
    other.join();
    assert.equal(other.result, 'BrokenBarrierError');
    assert.equal(barrier.broken, true);
    assert.equal(barrier.nWaiting, 0);
    // An already-aborted signal rejects before arriving: the barrier is not touched.
    const whole = new Barrier(2);
    await assert.rejects(whole.waitAsync({ signal: AbortSignal.abort(new Error('early')) }), /early/);
    assert.equal(whole.broken, false);
    assert.equal(whole.nWaiting, 0);
  });

  it('arrives in a thread as the same barrier, and comes back as the same object', () => {
    const barrier = new Barrier(2);
    const t = startThread<[Barrier, number]>((b: Barrier) => [b, b.wait(10_000)], [barrier]);
    const mine = barrier.wait(LONG);
    t.join();
    const [back, theirs] = t.result!;
    assert.ok(back === barrier, 'came back as another object');
    assert.deepEqual([mine, theirs].sort(), [0, 1]);
  });

  it('BrokenBarrierError is a ThreadError', () => {
    const error = new BrokenBarrierError();
    assert.ok(error instanceof ThreadError);
    assert.equal(error.name, 'BrokenBarrierError');
    assert.equal(error.message, 'the barrier is broken');
    assert.equal(describeError(error), 'BrokenBarrierError: the barrier is broken');
  });
});

describe('a Barrier whose action is a module function', () => {
  const action = { module: new URL('./fixtures/module-functions.ts', import.meta.url), name: 'countBarrierRun' };

  it('runs once per generation, in the last thread to arrive (each thread imported it before its target ran)', async () => {
    const { Barrier, Thread } = await import('threadkit');
    const barrier = new Barrier(3, { action });
    const threads = [0, 1, 2].map(
      () =>
        new Thread<number>({
          args: [barrier],
          target: (barrier: InstanceType<typeof Barrier>) => {
            const before = (globalThis as { barrierActionRuns?: number }).barrierActionRuns ?? 0;
            barrier.wait();
            barrier.wait();
            return ((globalThis as { barrierActionRuns?: number }).barrierActionRuns ?? 0) - before;
          },
        }),
    );
    for (const t of threads) t.start();
    for (const t of threads) t.join();
    assert.equal(threads.reduce((sum, t) => sum + (t.result ?? 0), 0), 2, 'two generations, one action run each');
  });

  it('waitAsync waits for the import; a sync wait() before this thread imported it says what to do', async () => {
    const { Barrier, ThreadError } = await import('threadkit');
    const early = new Barrier(1, { action });
    assert.throws(() => early.wait(), (error: unknown) => error instanceof ThreadError && /is still being imported in this thread.*waitAsync\(\)/.test(error.message));
    assert.equal(early.broken, true, 'as any failing action, it breaks the barrier');
    const later = new Barrier(1, { action });
    const runs = (globalThis as { barrierActionRuns?: number }).barrierActionRuns ?? 0;
    assert.equal(await later.waitAsync(), 0);
    assert.equal((globalThis as { barrierActionRuns?: number }).barrierActionRuns, runs + 1);
    assert.equal(later.wait(), 0, 'imported now: a sync wait runs it too');
    assert.equal((globalThis as { barrierActionRuns?: number }).barrierActionRuns, runs + 2);
  });
});
