/**
 * Event contract, after CPython's Lib/test/lock_tests.py (EventTests), in our own words, run
 * within one thread and across real threads.
 *
 * Progress across threads is observed through counters (Semaphores used as atomic counters),
 * never through sleeps; sleeps only give a thread time to misbehave before checking it did not.
 * Shared objects are compared with `assert.ok(a === b)`: a failing `assert.equal` would print a
 * diff of the whole shared heap.
 */

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Event, Semaphore, type Thread } from 'threadkit';
import { runThreads, since, sleep, sleepSync, startThread } from './helpers.js';

/** A bound for waits that must succeed: a bug shows as a failed assertion, not a hung test. */
const LONG = 10_000;

function take(counter: Semaphore, n: number, what: string): void {
  for (let i = 0; i < n; i++) assert.equal(counter.acquire({ timeout: LONG }), true, `${what}: only ${i} of ${n} happened`);
}

function joinAll(threads: Thread[]): void {
  for (const t of threads) t.join();
}

/**
 * White-box: blocks until `n` threads are asleep in a blocking `wait()` on `event`, the only way
 * to know that a thread has read the event's state and gone to sleep. It wakes the sleepers on
 * the event's futex word (its first Int32 slot) and counts them; a spurious wake-up is part of
 * the contract (a woken waiter re-checks and sleeps again), so the probe changes nothing.
 */
function awaitSleepers(event: Event, n: number): void {
  const word = new Int32Array(event._heap.sab, event._offset, 1);
  const deadline = performance.now() + LONG;
  while (Atomics.notify(word, 0) < n) {
    assert.ok(performance.now() < deadline, `never saw ${n} threads asleep on the event`);
    sleepSync(2);
  }
}

describe('Event', () => {
  it('isSet follows set and clear, each idempotent', () => {
    const event = new Event();
    assert.equal(event.isSet(), false);
    event.set();
    assert.equal(event.isSet(), true);
    event.set();
    assert.equal(event.isSet(), true);
    event.clear();
    assert.equal(event.isSet(), false);
    event.clear();
    assert.equal(event.isSet(), false);
  });

  it('set() wakes every waiting thread, before and after a set/clear cycle', () => {
    const event = new Event();
    const check = (): void => {
      const started = new Semaphore(0);
      const threads = Array.from({ length: 4 }, () =>
        startThread<boolean[]>(
          (e: Event, started: Semaphore) => {
            started.release();
            return [e.wait(10_000), e.wait(10_000)];
          },
          [event, started],
        ),
      );
      take(started, 4, 'threads started');
      sleepSync(50);
      assert.ok(
        threads.every((t) => t.isAlive()),
        'a wait returned before set()',
      );
      event.set();
      joinAll(threads);
      assert.deepEqual(
        threads.map((t) => t.result),
        Array(4).fill([true, true]),
      );
    };
    check();
    event.set();
    event.clear();
    check();
  });

  it('wait(timeout) returns false after the timeout (never early), true at once when set', () => {
    const event = new Event();
    const waiter = (e: Event): [boolean, boolean, number] => {
      const immediate = e.wait(0);
      const t0 = performance.now();
      const timed = e.wait(80);
      return [immediate, timed, performance.now() - t0];
    };
    const unset = runThreads<[boolean, boolean, number]>(waiter, [[event], [event], [event]]);
    for (const [immediate, timed, elapsed] of unset) {
      assert.equal(immediate, false);
      assert.equal(timed, false);
      assert.ok(elapsed >= 80, `wait(80) returned after ${elapsed} ms`);
    }
    event.set();
    const set = runThreads<[boolean, boolean, number]>(waiter, [[event], [event], [event]]);
    for (const [immediate, timed] of set) {
      assert.equal(immediate, true);
      assert.equal(timed, true);
    }
  });

  it('wait within one thread: timeout never early; 0 and negative timeouts do not wait', () => {
    const event = new Event();
    const t0 = performance.now();
    assert.equal(event.wait(50), false);
    assert.ok(since(t0) >= 50, `wait(50) returned after ${since(t0)} ms`);
    assert.equal(event.wait(0), false);
    assert.equal(event.wait(-1), false, 'a negative timeout counts as 0');
    event.set();
    assert.equal(event.wait(), true);
    assert.equal(event.wait(-1), true);
    assert.equal(event.wait(0), true);
  });

  it('a blocked wait() woken by set() returns true even if clear() follows at once', () => {
    const event = new Event();
    const N = 4;
    const threads = Array.from({ length: N }, () =>
      startThread<boolean>((e: Event) => e.wait(10_000), [event]),
    );
    awaitSleepers(event, N); // all N have read the unset state and sleep
    event.set();
    event.clear();
    joinAll(threads);
    assert.deepEqual(
      threads.map((t) => t.result),
      Array(N).fill(true),
    );
    assert.equal(event.isSet(), false);
  });

  it('a pending waitAsync woken by set() resolves true even if clear() follows at once', async () => {
    const event = new Event();
    const N = 3;
    // waitAsync reads the state and registers its wake-up synchronously, before it first awaits,
    // so a thread that signals `ready` after calling it is known to be waiting.
    const ready = new Semaphore(0);
    const threads = Array.from({ length: N }, () =>
      startThread<boolean>(
        async (e: Event, ready: Semaphore) => {
          const pending = e.waitAsync({ timeout: 10_000 });
          ready.release();
          return await pending;
        },
        [event, ready],
      ),
    );
    const mine = event.waitAsync({ timeout: LONG });
    take(ready, N, 'threads waiting');
    event.set();
    event.clear();
    assert.equal(await mine, true);
    joinAll(threads);
    assert.deepEqual(
      threads.map((t) => t.result),
      Array(N).fill(true),
    );
  });

  it('ping-pong: 200 set/clear hand-offs between two threads lose no wake-up', () => {
    const ping = new Event();
    const pong = new Event();
    const t = startThread<number>(
      (ping: Event, pong: Event, rounds: number) => {
        for (let i = 0; i < rounds; i++) {
          if (!ping.wait(10_000)) return i;
          ping.clear();
          pong.set();
        }
        return rounds;
      },
      [ping, pong, 200],
    );
    let done = 0;
    for (; done < 200; done++) {
      ping.set();
      if (!pong.wait(LONG)) break;
      pong.clear();
    }
    t.join();
    assert.equal(done, 200);
    assert.equal(t.result, 200);
  });

  it('waitAsync resolves when another thread sets it, without blocking the event loop', async () => {
    const event = new Event();
    const go = new Event();
    const t = startThread(
      (e: Event, go: Event) => {
        if (!go.wait(10_000)) return 'go never came';
        e.set();
        return 'set';
      },
      [event, go],
    );
    setTimeout(() => go.set(), 5); // runs only if the event loop is free
    assert.equal(await event.waitAsync({ timeout: LONG }), true);
    t.join();
    assert.equal(t.result, 'set');
    assert.equal(await event.waitAsync(), true, 'already set: resolves at once');
  });

  it('waitAsync: timeout (never early), 0 and negative timeouts', async () => {
    const event = new Event();
    const t0 = performance.now();
    assert.equal(await event.waitAsync({ timeout: 40 }), false);
    assert.ok(since(t0) >= 40, `waitAsync({ timeout: 40 }) resolved after ${since(t0)} ms`);
    assert.equal(await event.waitAsync({ timeout: 0 }), false);
    assert.equal(await event.waitAsync({ timeout: -5 }), false);
    event.set();
    assert.equal(await event.waitAsync({ timeout: 0 }), true);
  });

  it('waitAsync rejects with the signal’s reason; the event keeps working', async () => {
    const event = new Event();
    // A thread blocked in wait() first: the abort must not end its wait.
    const t = startThread<boolean>((e: Event) => e.wait(10_000), [event]);
    awaitSleepers(event, 1);
    const controller = new AbortController();
    const pending = event.waitAsync({ signal: controller.signal });
    await sleep(10);
    controller.abort(new Error('stop'));
    await assert.rejects(pending, /stop/);
    assert.equal(event.isSet(), false);
    await assert.rejects(event.waitAsync({ signal: AbortSignal.abort(new Error('early')) }), /early/);
    sleepSync(30);
    assert.equal(t.isAlive(), true, 'the abort ended another thread’s wait');
    const later = event.waitAsync({ timeout: LONG, signal: new AbortController().signal });
    event.set();
    assert.equal(await later, true);
    t.join();
    assert.equal(t.result, true);
    await assert.rejects(event.waitAsync({ signal: AbortSignal.abort(new Error('set, but aborted')) }), /set, but aborted/);
  });

  it('rejects bad timeouts with clear errors', async () => {
    const event = new Event();
    assert.throws(() => event.wait(Number.NaN), { name: 'TypeError', message: /Event\.wait: timeout must be a number of milliseconds, got NaN/ });
    assert.throws(() => event.wait('10' as never), { name: 'TypeError', message: /got "10"/ });
    assert.throws(() => event.wait(1e300), { name: 'RangeError', message: /TIMEOUT_MAX/ });
    await assert.rejects(event.waitAsync({ timeout: Number.NaN }), { name: 'TypeError', message: /NaN/ });
    await assert.rejects(event.waitAsync({ timeout: 1e300 }), { name: 'RangeError', message: /TIMEOUT_MAX/ });
    event.set();
    assert.throws(() => event.wait(Number.NaN), { name: 'TypeError' }, 'checked even when set');
  });

  it('arrives in a thread as the same event, and comes back as the same object', () => {
    const event = new Event();
    const [result] = runThreads<[Event, boolean]>(
      (e: Event) => {
        e.set();
        return [e, e.isSet()];
      },
      [[event]],
    );
    assert.ok(result![0] === event, 'came back as another object');
    assert.equal(result![1], true);
    assert.equal(event.isSet(), true);
  });

  it('toString shows the state', () => {
    const event = new Event();
    assert.match(String(event), /^<threadkit\.Event at 0x[0-9a-f]+: unset>$/);
    event.set();
    assert.match(String(event), /: set>$/);
  });
});
