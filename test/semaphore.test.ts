/**
 * Semaphore and BoundedSemaphore contract, after CPython's Lib/test/lock_tests.py
 * (BaseSemaphoreTests, SemaphoreTests, BoundedSemaphoreTests), in our own words, run within one
 * thread and across real threads.
 *
 * Progress across threads is observed through counters (Semaphores used as atomic counters:
 * `release()` adds one, `value` reads, `acquire({ timeout })` waits for "one more happened"),
 * never through sleeps. Sleeps only give a thread time to misbehave before checking it did not.
 * Shared objects are compared with `assert.ok(a === b)`: a failing `assert.equal` would print a
 * diff of the whole shared heap.
 */

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BoundedSemaphore, Event, Semaphore, TimeoutError, type Thread } from 'threadkit';
import { runThreads, since, sleep, sleepSync, startThread } from './helpers.js';

/** A bound for waits that must succeed: a bug shows as a failed assertion, not a hung test. */
const LONG = 10_000;

/** Takes `n` permits from a counter, each within LONG ms: "wait until n more things happened". */
function take(counter: Semaphore, n: number, what: string): void {
  for (let i = 0; i < n; i++) assert.equal(counter.acquire({ timeout: LONG }), true, `${what}: only ${i} of ${n} happened`);
}

function joinAll(threads: Thread[]): void {
  for (const t of threads) t.join();
}

type Make = (value?: number) => Semaphore;

function describeSemaphoreContract(name: string, make: Make): void {
  describe(`${name} contract`, () => {
    it('the default value is 1; a second acquire blocks until a release', () => {
      const sem = make();
      assert.equal(sem.value, 1);
      assert.equal(sem.acquire(), true);
      assert.equal(sem.value, 0);
      const started = new Event();
      const t = startThread<boolean>(
        (s: Semaphore, started: Event) => {
          started.set();
          const ok = s.acquire({ timeout: 10_000 });
          s.release();
          return ok;
        },
        [sem, started],
      );
      assert.equal(started.wait(LONG), true);
      sleepSync(50);
      assert.equal(t.isAlive(), true, 'the second acquire must block');
      sem.release();
      t.join();
      assert.equal(t.result, true);
      assert.equal(sem.value, 1);
    });

    it('counts permits: acquire takes one, release gives one back', () => {
      const sem = make(2);
      assert.equal(sem.acquire({ blocking: false }), true);
      assert.equal(sem.value, 1);
      assert.equal(sem.acquire({ blocking: false }), true);
      assert.equal(sem.value, 0);
      assert.equal(sem.acquire({ blocking: false }), false);
      assert.equal(sem.value, 0, 'a failed acquire takes nothing');
      sem.release();
      assert.equal(sem.value, 1);
      assert.equal(sem.acquire({ blocking: false }), true);
      sem.release(2);
      assert.equal(sem.value, 2);
      assert.equal(make(0).value, 0);
    });

    it('non-blocking acquires from 5 threads take exactly the 3 permits left', () => {
      const sem = make(4);
      sem.acquire();
      const results = runThreads<boolean[]>((s: Semaphore) => [s.acquire({ blocking: false }), s.acquire({ blocking: false })], [[sem], [sem], [sem], [sem], [sem]]);
      const flat = results.flat().sort();
      assert.deepEqual(flat, [...Array(7).fill(false), ...Array(3).fill(true)]);
      assert.equal(sem.value, 0);
    });

    it('blocked acquirers get exactly the permits released, phase by phase (CPython’s acquire_contended)', () => {
      const sem = make(7);
      sem.acquire(); // 6 left for the threads
      const got = new Semaphore(0); // one permit per acquisition a thread made
      const phase = new Semaphore(0); // advanced by the main thread before each batch of releases
      const threads = Array.from({ length: 5 }, () =>
        startThread<number[]>(
          (s: Semaphore, got: Semaphore, phase: Semaphore) => {
            const seen: number[] = [];
            for (let i = 0; i < 2; i++) {
              if (!s.acquire({ timeout: 10_000 })) return seen;
              seen.push(phase.value);
              got.release();
            }
            return seen;
          },
          [sem, got, phase],
        ),
      );
      take(got, 6, 'acquisitions of the 6 initial permits');
      sleepSync(30);
      assert.equal(got.value, 0, 'more acquisitions than permits');
      phase.release(); // phase 1
      for (let i = 0; i < 3; i++) sem.release();
      take(got, 3, 'acquisitions after 3 releases');
      sleepSync(30);
      assert.equal(got.value, 0, 'more acquisitions than releases');
      assert.equal(sem.acquire({ blocking: false }), false, 'the semaphore is still empty');
      phase.release(); // phase 2
      sem.release();
      take(got, 1, 'the last acquisition');
      joinAll(threads);
      const seen = threads.flatMap((t) => t.result!).sort();
      assert.deepEqual(seen, [0, 0, 0, 0, 0, 0, 1, 1, 1, 2]);
      assert.equal(sem.value, 0);
    });

    it('release(n) wakes exactly n blocked threads', () => {
      const sem = make(5);
      for (let i = 0; i < 5; i++) assert.equal(sem.acquire({ blocking: false }), true);
      const ready = new Semaphore(0);
      const passed = new Semaphore(0);
      const threads = Array.from({ length: 5 }, () =>
        startThread<boolean>(
          (s: Semaphore, ready: Semaphore, passed: Semaphore) => {
            ready.release();
            const ok = s.acquire({ timeout: 10_000 });
            if (ok) passed.release();
            return ok;
          },
          [sem, ready, passed],
        ),
      );
      take(ready, 5, 'threads about to acquire');
      sleepSync(30); // let them block (not needed for correctness, only for the wake-up path)
      assert.equal(passed.value, 0, 'an acquire passed an empty semaphore');
      sem.release(3);
      take(passed, 3, 'acquisitions after release(3)');
      sleepSync(30);
      assert.equal(passed.value, 0, 'release(3) let more than 3 threads through');
      assert.equal(sem.value, 0);
      sem.release(2);
      take(passed, 2, 'acquisitions after release(2)');
      joinAll(threads);
      assert.deepEqual(
        threads.map((t) => t.result),
        [true, true, true, true, true],
      );
      assert.equal(sem.value, 0);
    });

    it('never admits more than its value at once (4 threads × 2000 rounds through a Semaphore(2))', () => {
      const sem = make(2);
      // A second gate with 2 permits, taken without blocking inside the section: failing to get
      // one means a third thread is inside.
      const inside = new BoundedSemaphore(2);
      const results = runThreads<[number, number]>(
        (s: Semaphore, inside: BoundedSemaphore, rounds: number) => {
          let overfull = 0;
          let timedOut = 0;
          for (let i = 0; i < rounds; i++) {
            if (!s.acquire({ timeout: 10_000 })) {
              timedOut++;
              continue;
            }
            if (inside.acquire({ blocking: false })) inside.release();
            else overfull++;
            s.release();
          }
          return [overfull, timedOut];
        },
        [
          [sem, inside, 2000],
          [sem, inside, 2000],
          [sem, inside, 2000],
          [sem, inside, 2000],
        ],
      );
      assert.deepEqual(results, [
        [0, 0],
        [0, 0],
        [0, 0],
        [0, 0],
      ]);
      assert.equal(sem.value, 2);
      assert.equal(inside.value, 2);
    });

    it('a timed acquire fails after the timeout, never early (CPython’s acquire_timeout)', () => {
      const sem = make(2);
      assert.equal(sem.acquire({ timeout: 5 }), true);
      assert.equal(sem.acquire({ timeout: 5 }), true);
      assert.equal(sem.acquire({ timeout: 5 }), false);
      sem.release();
      assert.equal(sem.acquire({ timeout: 5 }), true);
      const t0 = performance.now();
      assert.equal(sem.acquire({ timeout: 60 }), false);
      assert.ok(since(t0) >= 60, `acquire({ timeout: 60 }) returned after ${since(t0)} ms`);
      const [waited] = runThreads<[boolean, number]>((s: Semaphore) => {
        const t0 = performance.now();
        const ok = s.acquire({ timeout: 70 });
        return [ok, performance.now() - t0];
      }, [[sem]]);
      assert.equal(waited![0], false);
      assert.ok(waited![1] >= 70, `acquire({ timeout: 70 }) in a thread returned after ${waited![1]} ms`);
      assert.equal(sem.value, 0);
    });

    it('a negative timeout (even -1) counts as 0', () => {
      const sem = make(1);
      assert.equal(sem.acquire({ timeout: -5 }), true);
      assert.equal(sem.acquire({ timeout: -5 }), false);
      assert.equal(sem.acquire({ timeout: -1 }), false, '-1 is not "forever" for a semaphore');
      assert.equal(sem.acquire({ timeout: 0 }), false);
      sem.release();
      assert.equal(sem.value, 1);
    });

    it('rejects bad acquire options with clear errors', () => {
      const sem = make(0);
      assert.throws(() => sem.acquire({ blocking: false, timeout: 10 }), { name: 'RangeError', message: /can't specify timeout for non-blocking acquire \(got timeout 10\)/ });
      assert.throws(() => sem.acquire({ timeout: Number.NaN }), { name: 'TypeError', message: /timeout must be a number of milliseconds, got NaN/ });
      assert.throws(() => sem.acquire({ timeout: '10' as never }), { name: 'TypeError', message: /got "10"/ });
      assert.throws(() => sem.acquire({ timeout: 1e300 }), { name: 'RangeError', message: /TIMEOUT_MAX/ });
      assert.throws(() => sem.acquire({ blocking: 'no' as never }), { name: 'TypeError', message: /blocking must be a boolean, got "no"/ });
      assert.throws(() => sem.acquire(5 as never), { name: 'TypeError', message: /expected an options object.*got 5/ });
      assert.equal(sem.value, 0);
    });

    it('an acquire rejected for bad options takes no permit', () => {
      // CPython checks the arguments before it looks at the counter.
      const sem = make(3);
      assert.throws(() => sem.acquire({ blocking: false, timeout: 10 }), { name: 'RangeError' });
      assert.throws(() => sem.acquire({ timeout: Number.NaN }), { name: 'TypeError' });
      assert.throws(() => sem.acquire(5 as never), { name: 'TypeError' });
      assert.equal(sem.value, 3, 'a call that threw must not have taken a permit');
    });

    it('rejects bad constructor values and release counts with clear errors', () => {
      assert.throws(() => make(-1), { name: 'RangeError', message: /semaphore initial value must be >= 0, got -1/ });
      assert.throws(() => make(-(2 ** 31)), { name: 'RangeError', message: /must be >= 0/ });
      assert.throws(() => make(1.5), { name: 'TypeError', message: /expected an integer, got 1\.5/ });
      assert.throws(() => make('3' as never), { name: 'TypeError', message: /got "3"/ });
      assert.throws(() => make(2 ** 31), { name: 'RangeError', message: /2147483648/ });
      const sem = make(1);
      sem.acquire();
      assert.throws(() => sem.release(0), { name: 'RangeError', message: /n must be one or more, got 0/ });
      assert.throws(() => sem.release(-2), { name: 'RangeError', message: /n must be one or more, got -2/ });
      assert.throws(() => sem.release(1.5), { name: 'TypeError', message: /expected an integer, got 1\.5/ });
      assert.throws(() => sem.release('1' as never), { name: 'TypeError', message: /got "1"/ });
      assert.equal(sem.value, 0, 'a rejected release gives nothing back');
    });

    it('hold() keeps one permit for a using block, even one left by an exception', () => {
      const sem = make(2);
      {
        using _a = sem.hold();
        assert.equal(sem.value, 1);
        {
          using _b = sem.hold();
          assert.equal(sem.value, 0);
          assert.throws(() => sem.hold({ blocking: false }), (error: unknown) => error instanceof TimeoutError && /non-blocking/.test(error.message));
          assert.throws(() => sem.hold({ timeout: 10 }), { name: 'TimeoutError', message: /could not be acquired within 10 ms/ });
        }
        assert.equal(sem.value, 1);
      }
      assert.equal(sem.value, 2);
      assert.throws(() => {
        using _c = sem.hold();
        throw new TypeError('inside');
      }, TypeError);
      assert.equal(sem.value, 2);
      const held = sem.hold();
      held.release();
      held[Symbol.dispose](); // already released: a no-op
      assert.equal(sem.value, 2);
    });

    it('acquireAsync is satisfied by another thread’s release without blocking the event loop', async () => {
      const sem = make(1);
      sem.acquire();
      const go = new Event();
      const t = startThread(
        (s: Semaphore, go: Event) => {
          if (!go.wait(10_000)) return 'go never came';
          s.release();
          return 'released';
        },
        [sem, go],
      );
      setTimeout(() => go.set(), 5); // runs only if the event loop is free
      assert.equal(await sem.acquireAsync({ timeout: LONG }), true);
      t.join();
      assert.equal(t.result, 'released');
      assert.equal(sem.value, 0);
      sem.release();
      assert.equal(await sem.acquireAsync(), true, 'a free permit resolves at once');
      sem.release();
    });

    it('acquireAsync: timeout (never early), negative timeout, blocking: false, bad options', async () => {
      const sem = make(1);
      sem.acquire();
      const t0 = performance.now();
      assert.equal(await sem.acquireAsync({ timeout: 40 }), false);
      assert.ok(since(t0) >= 40, `acquireAsync({ timeout: 40 }) resolved after ${since(t0)} ms`);
      assert.equal(await sem.acquireAsync({ timeout: -5 }), false);
      assert.equal(await sem.acquireAsync({ blocking: false }), false);
      await assert.rejects(sem.acquireAsync({ blocking: false, timeout: 5 }), { name: 'RangeError', message: /can't specify timeout/ });
      await assert.rejects(sem.acquireAsync({ timeout: Number.NaN }), { name: 'TypeError', message: /NaN/ });
      assert.equal(sem.value, 0);
      sem.release();
    });

    it('an aborted acquireAsync rejects with the reason, takes nothing, and steals no wake-up', async () => {
      const sem = make(1);
      sem.acquire();
      const ready = new Event();
      const t = startThread<boolean>(
        (s: Semaphore, ready: Event) => {
          ready.set();
          return s.acquire({ timeout: 10_000 });
        },
        [sem, ready],
      );
      assert.equal(ready.wait(LONG), true);
      const controller = new AbortController();
      const pending = sem.acquireAsync({ signal: controller.signal });
      await sleep(10);
      controller.abort(new Error('stop'));
      await assert.rejects(pending, /stop/);
      assert.equal(sem.value, 0);
      sem.release(); // must reach the blocked thread
      t.join();
      assert.equal(t.result, true);
      assert.equal(sem.value, 0);
      // An already-aborted signal rejects even when a permit is free, and takes none.
      sem.release();
      await assert.rejects(sem.acquireAsync({ signal: AbortSignal.abort(new Error('early')) }), /early/);
      assert.equal(sem.value, 1);
    });

    it('holdAsync keeps one permit for an await using block', async () => {
      const sem = make(1);
      {
        await using _held = await sem.holdAsync();
        assert.equal(sem.value, 0);
        await assert.rejects(sem.holdAsync({ timeout: 10 }), { name: 'TimeoutError' });
      }
      assert.equal(sem.value, 1);
    });
  });
}

describeSemaphoreContract('Semaphore', (value) => new Semaphore(value));
describeSemaphoreContract('BoundedSemaphore', (value) => new BoundedSemaphore(value));

describe('Semaphore specifics', () => {
  it('may be released past its initial value (CPython’s release_unacquired)', () => {
    const sem = new Semaphore(1);
    sem.release();
    assert.equal(sem.value, 2);
    assert.equal(sem.acquire({ blocking: false }), true);
    assert.equal(sem.acquire({ blocking: false }), true);
    assert.equal(sem.acquire({ blocking: false }), false);
    sem.release(5);
    assert.equal(sem.value, 5);
  });

  it('a permit acquired in one thread may be released by another', () => {
    const sem = new Semaphore(0);
    runThreads((s: Semaphore) => s.release(), [[sem], [sem]]);
    assert.equal(sem.value, 2);
  });

  it('arrives in a thread as the same semaphore, and comes back as the same object', () => {
    const sem = new Semaphore(3);
    const [result] = runThreads<[Semaphore, string, number]>(
      (s: Semaphore) => {
        s.acquire();
        return [s, s.constructor.name, s.value];
      },
      [[sem]],
    );
    assert.ok(result![0] === sem, 'came back as another object');
    assert.equal(result![1], 'Semaphore');
    assert.equal(result![2], 2);
    assert.equal(sem.value, 2);
  });

  it('toString shows the value', () => {
    const sem = new Semaphore(3);
    assert.match(String(sem), /^<threadkit\.Semaphore at 0x[0-9a-f]+: value=3>$/);
  });
});

describe('BoundedSemaphore specifics', () => {
  it('release past the initial value is a RangeError (CPython’s release_unacquired)', () => {
    const sem = new BoundedSemaphore();
    assert.throws(() => sem.release(), { name: 'RangeError', message: 'Semaphore released too many times' });
    sem.acquire();
    sem.release();
    assert.throws(() => sem.release(), { name: 'RangeError', message: 'Semaphore released too many times' });
    assert.equal(sem.value, 1);
    assert.throws(() => new BoundedSemaphore(0).release(), { name: 'RangeError', message: 'Semaphore released too many times' });
  });

  it('release(n) that would overshoot is refused as a whole', () => {
    const sem = new BoundedSemaphore(3);
    sem.acquire();
    sem.acquire();
    assert.equal(sem.value, 1);
    assert.throws(() => sem.release(3), { name: 'RangeError', message: 'Semaphore released too many times' });
    assert.equal(sem.value, 1, 'a refused release(n) gives back nothing');
    sem.release(2);
    assert.equal(sem.value, 3);
    assert.equal(sem.initialValue, 3);
  });

  it('arrives in a thread as a BoundedSemaphore that keeps its bound there', () => {
    const sem = new BoundedSemaphore(2);
    sem.acquire();
    const [result] = runThreads<[string, string, string]>(
      (s: BoundedSemaphore) => {
        s.release();
        let second: string;
        try {
          s.release();
          second = 'released';
        } catch (error) {
          second = `${(error as Error).name}: ${(error as Error).message}`;
        }
        return [s.constructor.name, second, String(s.initialValue)];
      },
      [[sem]],
    );
    assert.deepEqual(result, ['BoundedSemaphore', 'RangeError: Semaphore released too many times', '2']);
    assert.equal(sem.value, 2);
  });

  it('toString shows the value and the bound', () => {
    const sem = new BoundedSemaphore(3);
    sem.acquire();
    assert.match(String(sem), /^<threadkit\.BoundedSemaphore at 0x[0-9a-f]+: value=2\/3>$/);
  });
});
