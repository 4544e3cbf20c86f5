/**
 * Condition contract, after CPython's Lib/test/lock_tests.py (ConditionTests), in our own words,
 * run within one thread and across real threads, over a Lock and over an RLock.
 *
 * Ordering never depends on sleeps. The handshake used throughout: a thread signals "about to
 * wait" while it still holds the condition's lock, so once the main thread has acquired that
 * lock the thread is known to be inside `wait()` (its only way to give the lock up) and queued.
 * Shared counters are Semaphores: `release()` adds one atomically and `value` reads it.
 * Sleeps appear only to give a thread time to misbehave before checking that it did not.
 */

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Condition, Event, Lock, RLock, Semaphore, ThreadError, type Thread } from 'threadkit';
import { since, sleep, sleepSync, startThread } from './helpers.js';

/** A bound for waits that must succeed: a bug shows as a failed assertion, not a hung test. */
const LONG = 10_000;

/** Takes `n` permits, each within LONG ms (used as "wait until n things have happened"). */
function take(sem: Semaphore, n: number, what: string): void {
  for (let i = 0; i < n; i++) assert.equal(sem.acquire({ timeout: LONG }), true, `${what}: only ${i} of ${n} happened`);
}

function joinAll(threads: Thread[]): void {
  for (const t of threads) t.join();
}

/**
 * CPython's _check_notify: 5 threads wait twice; notify(3), then notify(5) (the two still in
 * their first wait plus the three in their second), then notifyAll for the last two. A woken
 * thread records the notifier's phase, which the notifier advances while still holding the lock,
 * so a thread that returned from wait() before the notifier released the lock would record an
 * older phase. FIFO: the three woken first are the first three to have entered wait().
 */
function checkNotify(cond: Condition): void {
  const N = 5;
  const entered = new Semaphore(0); // entry sequence, read and advanced under the lock
  const ready = new Semaphore(0); // one permit per "about to wait", given under the lock
  const woke = new Semaphore(0); // one permit per return from wait()
  const phase = new Semaphore(0); // the notifier's phase, advanced under the lock after notifying
  const threads = Array.from({ length: N }, () =>
    startThread<{ seq: number; log: [boolean, number][] }>(
      (c: Condition, entered: Semaphore, ready: Semaphore, woke: Semaphore, phase: Semaphore) => {
        const log: [boolean, number][] = [];
        c.acquire();
        const seq = entered.value;
        entered.release();
        for (let round = 0; round < 2; round++) {
          if (round > 0) c.acquire();
          ready.release();
          const notified = c.wait(10_000);
          log.push([notified, phase.value]);
          c.release();
          woke.release();
        }
        return { seq, log };
      },
      [cond, entered, ready, woke, phase],
    ),
  );
  take(ready, 5, 'threads in their first wait');
  cond.acquire(); // every ready thread has released the lock, so it is queued in wait()
  cond.notify(3);
  phase.release(); // phase 1
  cond.release();
  take(woke, 3, 'woken by notify(3)');
  sleepSync(30);
  assert.equal(woke.value, 0, 'notify(3) woke more than three threads');
  take(ready, 3, 'threads back in their second wait');
  cond.acquire();
  cond.notify(5);
  phase.release(); // phase 2
  cond.release();
  take(woke, 5, 'woken by notify(5)');
  take(ready, 2, 'threads back in their second wait');
  cond.acquire();
  cond.notifyAll();
  phase.release(); // phase 3
  cond.release();
  take(woke, 2, 'woken by notifyAll');
  joinAll(threads);
  const results = threads.map((t) => t.result!).sort((a, b) => a.seq - b.seq);
  assert.deepEqual(
    results.map((r) => r.log),
    [
      [[true, 1], [true, 2]],
      [[true, 1], [true, 2]],
      [[true, 1], [true, 2]],
      [[true, 2], [true, 3]],
      [[true, 2], [true, 3]],
    ],
  );
}

function describeConditionContract(name: string, makeCondition: () => Condition): void {
  describe(`Condition over ${name}`, () => {
    it('notify(n), notifyAll and FIFO wake-up follow CPython, twice on the same condition', () => {
      const cond = makeCondition();
      checkNotify(cond);
      checkNotify(cond);
    });

    it('notify() wakes the longest waiter, one at a time; notify(0) wakes nobody', () => {
      const cond = makeCondition();
      const N = 4;
      const woken = new Semaphore(0); // wake position, read and advanced under the lock
      const done = new Semaphore(0);
      const threads: Thread<[number, boolean]>[] = [];
      for (let i = 0; i < N; i++) {
        const entered = new Event();
        threads.push(
          startThread(
            (c: Condition, entered: Event, woken: Semaphore, done: Semaphore) => {
              c.acquire();
              entered.set();
              const notified = c.wait(10_000);
              const position = woken.value;
              woken.release();
              c.release();
              done.release();
              return [position, notified];
            },
            [cond, entered, woken, done],
          ),
        );
        assert.equal(entered.wait(LONG), true);
        cond.acquire(); // thread i is now queued behind threads 0 … i-1
        cond.release();
      }
      cond.acquire();
      cond.notify(0);
      cond.release();
      sleepSync(30);
      assert.equal(done.value, 0, 'notify(0) woke a thread');
      assert.ok(threads.every((t) => t.isAlive()));
      for (let i = 0; i < N; i++) {
        cond.acquire();
        cond.notify();
        cond.release();
        take(done, 1, `wake-up ${i}`);
      }
      joinAll(threads);
      assert.deepEqual(
        threads.map((t) => t.result),
        [
          [0, true],
          [1, true],
          [2, true],
          [3, true],
        ],
        'thread i (the i-th to wait) must be the i-th woken',
      );
    });

    it('notify(n) with fewer waiters wakes them all; notify without waiters does nothing', () => {
      const cond = makeCondition();
      cond.acquire();
      cond.notify();
      cond.notify(10);
      cond.notifyAll();
      cond.release();
      const ready = new Semaphore(0);
      const threads = [0, 1].map(() =>
        startThread<boolean>(
          (c: Condition, ready: Semaphore) => {
            c.acquire();
            ready.release();
            const notified = c.wait(10_000);
            c.release();
            return notified;
          },
          [cond, ready],
        ),
      );
      take(ready, 2, 'threads waiting');
      cond.acquire();
      cond.notify(100);
      cond.release();
      joinAll(threads);
      assert.deepEqual(
        threads.map((t) => t.result),
        [true, true],
      );
    });

    it('wait(timeout) returns false, never early, in several threads at once', () => {
      const cond = makeCondition();
      const threads = [0, 1, 2].map(() =>
        startThread<[boolean, number, boolean]>(
          (c: Condition) => {
            c.acquire();
            const t0 = performance.now();
            const notified = c.wait(80);
            const elapsed = performance.now() - t0;
            // The lock is held again after a timeout: this release must not throw.
            let released = true;
            try {
              c.release();
            } catch {
              released = false;
            }
            return [notified, elapsed, released];
          },
          [cond],
        ),
      );
      joinAll(threads);
      for (const t of threads) {
        const [notified, elapsed, released] = t.result!;
        assert.equal(notified, false);
        assert.ok(elapsed >= 80, `wait(80) returned after ${elapsed} ms`);
        assert.equal(released, true, 'the lock must be held again after a timed-out wait');
      }
    });

    it('wait(timeout) within one thread: never early; 0 and negative timeouts do not wait', () => {
      const cond = makeCondition();
      cond.acquire();
      const t0 = performance.now();
      assert.equal(cond.wait(50), false);
      assert.ok(since(t0) >= 50, `wait(50) returned after ${since(t0)} ms`);
      assert.equal(cond.wait(0), false);
      assert.equal(cond.wait(-10), false, 'a negative timeout counts as 0');
      cond.release();
      assert.throws(() => cond.release(), { name: 'ThreadError' });
    });

    it('a timed-out waiter leaves the queue, so the next notify reaches the next waiter', () => {
      const cond = makeCondition();
      const readyA = new Event();
      const readyB = new Event();
      const waiter = (c: Condition, ready: Event, timeout: number): boolean => {
        c.acquire();
        ready.set();
        const notified = c.wait(timeout);
        c.release();
        return notified;
      };
      const a = startThread<boolean>(waiter, [cond, readyA, 50]);
      assert.equal(readyA.wait(LONG), true);
      cond.acquire(); // A is queued first
      cond.release();
      const b = startThread<boolean>(waiter, [cond, readyB, 10_000]);
      assert.equal(readyB.wait(LONG), true);
      a.join(); // A has timed out and left
      assert.equal(a.result, false);
      cond.acquire(); // B is queued
      cond.notify(1);
      cond.release();
      b.join();
      assert.equal(b.result, true, 'the notify went to the departed waiter');
    });

    it('waitFor returns the predicate’s last value once it holds, re-checking after each notify', () => {
      const cond = makeCondition();
      const state = new Semaphore(0); // changed and read under the lock
      const ready = new Event();
      const t = startThread<[unknown, number[]]>(
        (c: Condition, state: Semaphore, ready: Event) => {
          c.acquire();
          ready.set();
          const seen: number[] = [];
          const result = c.waitFor(() => {
            seen.push(state.value);
            return state.value >= 4 ? `state=${state.value}` : 0;
          }, 10_000);
          c.release();
          return [result, seen];
        },
        [cond, state, ready],
      );
      assert.equal(ready.wait(LONG), true);
      for (let i = 0; i < 4; i++) {
        cond.acquire();
        state.release();
        cond.notify();
        cond.release();
      }
      t.join();
      const [result, seen] = t.result!;
      assert.equal(result, 'state=4');
      assert.equal(seen[0], 0, 'the predicate is checked before the first wait');
      assert.equal(seen.at(-1), 4);
      assert.deepEqual(
        seen,
        [...seen].sort((x, y) => x - y),
      );
    });

    it('waitFor with a timeout returns the falsy last value, never early, despite notifies', () => {
      const cond = makeCondition();
      const state = new Semaphore(0);
      const ready = new Event();
      const t = startThread<[unknown, number]>(
        (c: Condition, state: Semaphore, ready: Event) => {
          c.acquire();
          ready.set();
          const t0 = performance.now();
          const result = c.waitFor(() => (state.value >= 4 ? 'reached' : ''), 100);
          const elapsed = performance.now() - t0;
          c.release();
          return [result, elapsed];
        },
        [cond, state, ready],
      );
      assert.equal(ready.wait(LONG), true);
      for (let i = 0; i < 3; i++) {
        cond.acquire();
        state.release();
        cond.notify();
        cond.release();
      }
      t.join();
      const [result, elapsed] = t.result!;
      assert.equal(result, '');
      assert.ok(elapsed >= 100, `waitFor(…, 100) returned after ${elapsed} ms`);
    });

    it('waitFor within one thread', () => {
      const cond = makeCondition();
      cond.acquire();
      assert.equal(cond.waitFor(() => 'yes'), 'yes');
      const t0 = performance.now();
      assert.equal(cond.waitFor(() => 0, 40), 0);
      assert.ok(since(t0) >= 40, `waitFor(…, 40) returned after ${since(t0)} ms`);
      assert.equal(cond.waitFor(() => null, 0), null);
      assert.equal(cond.waitFor(() => undefined, -5), undefined);
      cond.release();
    });

    it('wait and notify without holding the lock are ThreadErrors with CPython’s messages', async () => {
      const cond = makeCondition();
      assert.throws(() => cond.wait(), { name: 'ThreadError', message: 'cannot wait on un-acquired lock' });
      assert.throws(() => cond.wait(10), { name: 'ThreadError', message: 'cannot wait on un-acquired lock' });
      assert.throws(() => cond.waitFor(() => false, 10), { name: 'ThreadError', message: 'cannot wait on un-acquired lock' });
      assert.throws(() => cond.notify(), { name: 'ThreadError', message: 'cannot notify on un-acquired lock' });
      assert.throws(() => cond.notifyAll(), { name: 'ThreadError', message: 'cannot notify on un-acquired lock' });
      await assert.rejects(cond.waitAsync({ timeout: 10 }), { name: 'ThreadError', message: 'cannot wait on un-acquired lock' });
      assert.ok(new ThreadError('x') instanceof Error);
      // The failed calls changed nothing: the condition still works.
      cond.acquire();
      assert.equal(cond.wait(0), false);
      cond.notify();
      cond.release();
    });

    it('acquire/release/hold operate the underlying lock', async () => {
      const cond = makeCondition();
      assert.equal(cond.acquire(), true);
      assert.equal(cond.lock.locked(), true);
      cond.release();
      assert.equal(cond.lock.locked(), false);
      {
        using _held = cond.hold();
        assert.equal(cond.lock.locked(), true);
        cond.notify(); // we hold it
      }
      assert.equal(cond.lock.locked(), false);
      {
        await using _held = await cond.holdAsync({ timeout: 100 });
        assert.equal(cond.lock.locked(), true);
      }
      assert.equal(cond.lock.locked(), false);
      cond.acquire();
      const got = startThread<string>((c: Condition) => {
        try {
          c.hold({ timeout: 20 });
          return 'acquired';
        } catch (error) {
          return (error as Error).name;
        }
      }, [cond]);
      got.join();
      assert.equal(got.result, 'TimeoutError');
      cond.release();
    });

    it('waitAsync is woken by another thread’s notify without blocking the event loop', async () => {
      const cond = makeCondition();
      const go = new Event();
      cond.acquire();
      // The thread notifies only after `go`, which a timer sets: the event loop must keep running.
      const t = startThread(
        (c: Condition, go: Event) => {
          if (!go.wait(10_000)) return 'go never came';
          c.acquire(); // succeeds once waitAsync has queued us and released the lock
          c.notify();
          c.release();
          return 'notified';
        },
        [cond, go],
      );
      setTimeout(() => go.set(), 5);
      const notified = await cond.waitAsync({ timeout: LONG });
      assert.equal(notified, true);
      cond.release(); // the lock is ours again
      t.join();
      assert.equal(t.result, 'notified');
    });

    it('waitAsync with a timeout resolves false, never early, with the lock held again', async () => {
      const cond = makeCondition();
      cond.acquire();
      const t0 = performance.now();
      assert.equal(await cond.waitAsync({ timeout: 40 }), false);
      assert.ok(since(t0) >= 40, `waitAsync({ timeout: 40 }) resolved after ${since(t0)} ms`);
      assert.equal(await cond.waitAsync({ timeout: -1 }), false);
      cond.release();
      assert.throws(() => cond.release());
    });

    it('waitAsync rejects with the signal’s reason and re-acquires the lock first', async () => {
      const cond = makeCondition();
      cond.acquire();
      const controller = new AbortController();
      const pending = cond.waitAsync({ signal: controller.signal });
      await sleep(10);
      controller.abort(new Error('stop'));
      await assert.rejects(pending, /stop/);
      cond.release(); // held again: this must not throw
      assert.equal(cond.lock.locked(), false);
      // An already-aborted signal rejects at once and leaves the lock alone.
      cond.acquire();
      await assert.rejects(cond.waitAsync({ signal: AbortSignal.abort(new Error('early')) }), /early/);
      cond.release();
      assert.equal(cond.lock.locked(), false);
    });

    it('an aborted waitAsync that had been notified hands the notify to the next waiter', async () => {
      const cond = makeCondition();
      const ready = new Event();
      const controller = new AbortController();
      cond.acquire();
      const pending = cond.waitAsync({ signal: controller.signal }); // queued first; lock released
      const b = startThread<boolean>(
        (c: Condition, ready: Event) => {
          c.acquire();
          ready.set();
          const notified = c.wait(5_000);
          c.release();
          return notified;
        },
        [cond, ready],
      );
      assert.equal(ready.wait(LONG), true);
      cond.acquire(); // B is queued behind us
      cond.notify(1); // reaches our async waiter, the longest waiting
      controller.abort(new Error('changed my mind')); // synchronous: wins over the wake-up
      cond.release();
      await assert.rejects(pending, /changed my mind/);
      cond.release(); // waitAsync re-acquired the lock before rejecting
      b.join();
      assert.equal(b.result, true, 'the notify consumed by the aborted waiter was lost');
    });

    it('waitForAsync: a thread makes the predicate true; timeout; signal', async () => {
      const cond = makeCondition();
      const state = new Semaphore(0);
      cond.acquire();
      const t = startThread(
        (c: Condition, state: Semaphore) => {
          for (let i = 0; i < 3; i++) {
            c.acquire();
            state.release();
            c.notify();
            c.release();
          }
        },
        [cond, state],
      );
      const result = await cond.waitForAsync(() => (state.value >= 3 ? state.value : 0), { timeout: LONG });
      assert.equal(result, 3);
      t.join();
      const t0 = performance.now();
      assert.equal(await cond.waitForAsync(() => state.value > 3 && 'never', { timeout: 40 }), false);
      assert.ok(since(t0) >= 40, `waitForAsync({ timeout: 40 }) resolved after ${since(t0)} ms`);
      const controller = new AbortController();
      const pending = cond.waitForAsync(() => false, { signal: controller.signal });
      setTimeout(() => controller.abort(new Error('abandon')), 10);
      await assert.rejects(pending, /abandon/);
      cond.release();
      assert.equal(cond.lock.locked(), false);
    });

    it('rejects bad timeouts with clear errors, before touching the lock', async () => {
      const cond = makeCondition();
      cond.acquire();
      assert.throws(() => cond.wait(Number.NaN), { name: 'TypeError', message: /NaN/ });
      assert.throws(() => cond.wait('5' as never), { name: 'TypeError', message: /"5"/ });
      assert.throws(() => cond.wait(1e300), { name: 'RangeError', message: /TIMEOUT_MAX/ });
      assert.throws(() => cond.waitFor(() => false, Number.NaN), { name: 'TypeError', message: /NaN/ });
      await assert.rejects(cond.waitAsync({ timeout: 'soon' as never }), { name: 'TypeError', message: /"soon"/ });
      await assert.rejects(cond.waitForAsync(() => false, { timeout: 1e300 }), { name: 'RangeError', message: /TIMEOUT_MAX/ });
      assert.equal(cond.lock.locked(), true, 'still held by us');
      cond.release();
      assert.equal(cond.lock.locked(), false);
    });
  });
}

describeConditionContract('an RLock (the default)', () => new Condition());
describeConditionContract('a Lock', () => new Condition(new Lock()));

describe('Condition specifics', () => {
  it('uses a new RLock by default, or the lock it is given', () => {
    const cond = new Condition();
    assert.ok(cond.lock instanceof RLock);
    cond.acquire();
    cond.acquire(); // re-entrant
    cond.release();
    cond.release();
    const lock = new Lock();
    const over = new Condition(lock);
    assert.ok(over.lock === lock);
    over.acquire();
    assert.equal(lock.acquire({ blocking: false }), false);
    over.release();
    assert.equal(lock.acquire({ blocking: false }), true);
    assert.equal(over.acquire({ blocking: false }), false);
    lock.release();
    const rlock = new RLock();
    assert.ok(new Condition(rlock).lock === rlock);
  });

  it('Condition(non-lock) is a TypeError naming the value', () => {
    assert.throws(() => new Condition(42 as never), { name: 'TypeError', message: /expected a Lock or an RLock, got 42/ });
    assert.throws(() => new Condition('lock' as never), { name: 'TypeError', message: /got "lock"/ });
    assert.throws(() => new Condition({} as never), { name: 'TypeError', message: /got \{\}/ });
  });

  it('Condition(another shared object) is a TypeError with a short message naming its class', () => {
    let error: unknown;
    const t0 = performance.now();
    try {
      new Condition(new Semaphore(1) as never);
    } catch (caught) {
      error = caught;
    }
    const elapsed = since(t0);
    assert.ok(error instanceof TypeError);
    const message = error.message;
    assert.ok(message.length < 500, `the message is ${message.length} characters long (built in ${Math.round(elapsed)} ms): ${message.slice(0, 120)}…`);
    assert.match(message, /Semaphore/);
  });

  it('wait releases a recursively held RLock completely and restores the recursion level', () => {
    const cond = new Condition();
    const ready = new Event();
    const t = startThread<[boolean, string, string]>(
      (c: Condition, ready: Event) => {
        c.acquire();
        c.acquire();
        c.acquire();
        ready.set();
        const notified = c.wait(10_000);
        const state = String(c.lock);
        c.release();
        c.release();
        c.release();
        try {
          c.release();
          return [notified, state, 'a fourth release succeeded'];
        } catch (error) {
          return [notified, state, `${(error as Error).name}: ${(error as Error).message}`];
        }
      },
      [cond, ready],
    );
    assert.equal(ready.wait(LONG), true);
    // Succeeds only when all three levels were given up by wait().
    assert.equal(cond.acquire({ timeout: LONG }), true);
    cond.notify();
    cond.release();
    t.join();
    const [notified, state, fourth] = t.result!;
    assert.equal(notified, true);
    assert.match(state, /^<locked threadkit\.RLock object owner=\d+ count=3 /);
    assert.equal(fourth, 'ThreadError: cannot release un-acquired lock');
  });

  it('wait restores the recursion level within one thread too', () => {
    const cond = new Condition();
    cond.acquire();
    cond.acquire();
    assert.equal(cond.wait(10), false);
    assert.match(String(cond.lock), /count=2/);
    cond.release();
    cond.release();
    assert.throws(() => cond.release(), { name: 'ThreadError', message: 'cannot release un-acquired lock' });
  });

  it('wait over a Lock releases it for others and holds it again on return', () => {
    const lock = new Lock();
    const cond = new Condition(lock);
    const ready = new Event();
    const t = startThread<[boolean, boolean]>(
      (c: Condition, ready: Event) => {
        c.acquire();
        ready.set();
        const notified = c.wait(10_000);
        const locked = c.lock.locked();
        c.release();
        return [notified, locked];
      },
      [cond, ready],
    );
    assert.equal(ready.wait(LONG), true);
    assert.equal(lock.acquire({ timeout: LONG }), true, 'wait() did not release the Lock');
    cond.notify();
    lock.release();
    t.join();
    assert.deepEqual(t.result, [true, true]);
  });

  it('an RLock held by another thread does not count as acquired', () => {
    const cond = new Condition();
    const t = startThread((c: Condition) => {
      c.acquire(); // the thread ends holding it
    }, [cond]);
    t.join();
    assert.equal(cond.lock.locked(), true);
    assert.throws(() => cond.wait(0), { name: 'ThreadError', message: 'cannot wait on un-acquired lock' });
    assert.throws(() => cond.notify(), { name: 'ThreadError', message: 'cannot notify on un-acquired lock' });
  });

  it('a Lock held by any thread counts as acquired (CPython’s _is_owned for a plain Lock)', () => {
    const lock = new Lock();
    const cond = new Condition(lock);
    const t = startThread((l: Lock) => {
      l.acquire();
    }, [lock]);
    t.join();
    cond.notify(); // no waiters, no error
    cond.notifyAll();
    lock.release();
    assert.throws(() => cond.notify(), { name: 'ThreadError', message: 'cannot notify on un-acquired lock' });
  });

  it('arrives in a thread as the same condition over the same lock', () => {
    const cond = new Condition();
    const t = startThread<[Condition, boolean]>(
      (c: Condition) => {
        c.acquire();
        const held = c.lock.locked();
        c.release();
        return [c, held];
      },
      [cond],
    );
    t.join();
    const [back, held] = t.result!;
    assert.ok(back === cond, 'came back as another object');
    assert.equal(held, true);
    assert.equal(cond.lock.locked(), false);
  });

  it('its lock comes back from a thread as the same object as cond.lock', () => {
    const cond = new Condition();
    const t = startThread<RLock>((c: Condition) => c.lock, [cond]);
    t.join();
    const back = t.result!;
    assert.ok(back instanceof RLock);
    // (assert.ok, not assert.equal: a diff of two wrappers would print the whole shared heap)
    assert.ok(back === cond.lock, 'the lock reached through cond.lock came back as a second wrapper object');
  });

  it('toString shows the lock and the number of waiters', () => {
    const cond = new Condition(new Lock());
    assert.match(String(cond), /^<threadkit\.Condition\(<unlocked threadkit\.Lock object at 0x[0-9a-f]+>, 0\)>$/);
  });
});
