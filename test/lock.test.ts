/**
 * Lock and RLock contract, after CPython's Lib/test/lock_tests.py (BaseLockTests, LockTests,
 * RLockTests), in our own words, run within one thread and across real threads.
 */

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Event, Lock, RLock, SharedValue, ThreadError, TimeoutError } from 'threadkit';
import { runThreads, since, sleepSync, startThread } from './helpers.js';

type AnyLock = Lock | RLock;

function describeLockContract(name: string, makeLock: () => AnyLock): void {
  describe(`${name} contract`, () => {
    it('acquires and releases; locked() tells', () => {
      const lock = makeLock();
      assert.equal(lock.locked(), false);
      assert.equal(lock.acquire(), true);
      assert.equal(lock.locked(), true);
      lock.release();
      assert.equal(lock.locked(), false);
    });

    it('a non-blocking acquire fails while another thread holds it', () => {
      const lock = makeLock();
      lock.acquire();
      const [got] = runThreads<boolean>((l: AnyLock) => l.acquire({ blocking: false }), [[lock]]);
      assert.equal(got, false);
      lock.release();
      const [again] = runThreads<boolean>((l: AnyLock) => {
        const ok = l.acquire({ blocking: false });
        if (ok) l.release();
        return ok;
      }, [[lock]]);
      assert.equal(again, true);
    });

    it('a blocked acquire is released by another thread', () => {
      const lock = makeLock();
      const started = new Event();
      lock.acquire();
      const t = startThread<number>(
        (l: AnyLock, s: Event) => {
          // t0 before the set: main holds on for 50 ms after it sees the set, however late
          // this thread gets the core back.
          const t0 = performance.now();
          s.set();
          l.acquire();
          l.release();
          return performance.now() - t0;
        },
        [lock, started],
      );
      started.wait();
      sleepSync(50);
      assert.equal(t.isAlive(), true, 'the thread must still be blocked');
      lock.release();
      t.join();
      assert.ok((t.result ?? 0) >= 40, `waited ${t.result} ms`);
    });

    it('a timed acquire never returns early', () => {
      const lock = makeLock();
      lock.acquire();
      const [waited] = runThreads<[boolean, number]>((l: AnyLock) => {
        const t0 = performance.now();
        const ok = l.acquire({ timeout: 80 });
        return [ok, performance.now() - t0];
      }, [[lock]]);
      assert.equal(waited![0], false);
      assert.ok(waited![1] >= 80, `returned after ${waited![1]} ms`);
      lock.release();
    });

    it('acquire({ timeout: 0 }) and blocking: false do not wait', () => {
      const lock = makeLock();
      lock.acquire();
      const [r] = runThreads<boolean[]>((l: AnyLock) => [l.acquire({ timeout: 0 }), l.acquire({ blocking: false })], [[lock]]);
      assert.deepEqual(r, [false, false]);
      lock.release();
    });

    it('rejects bad options with clear errors', () => {
      const lock = makeLock();
      assert.throws(() => lock.acquire({ blocking: false, timeout: 10 }), { name: 'RangeError', message: /can't specify a timeout for a non-blocking call/ });
      assert.throws(() => lock.acquire({ timeout: -5 }), { name: 'RangeError', message: /non-negative.*-5/ });
      assert.throws(() => lock.acquire({ timeout: NaN }), { name: 'TypeError', message: /NaN/ });
      assert.throws(() => lock.acquire({ timeout: 1e300 }), { name: 'RangeError', message: /TIMEOUT_MAX/ });
      assert.throws(() => lock.acquire(5 as never), { name: 'TypeError', message: /options object/ });
      assert.equal(lock.locked(), false);
      assert.equal(lock.acquire({ timeout: -1 }), true, '-1 means forever');
      lock.release();
    });

    it('hold() releases at the end of a using block and throws TimeoutError when it cannot', () => {
      const lock = makeLock();
      {
        using _held = lock.hold();
        assert.equal(lock.locked(), true);
      }
      assert.equal(lock.locked(), false);
      lock.acquire();
      const [message] = runThreads<string>((l: AnyLock) => {
        try {
          l.hold({ timeout: 10 });
          return 'acquired';
        } catch (error) {
          return `${(error as Error).name}`;
        }
      }, [[lock]]);
      assert.equal(message, 'TimeoutError');
      lock.release();
      assert.ok(TimeoutError);
    });

    it('acquireAsync waits without blocking the event loop, and honours timeout and signal', async () => {
      const lock = makeLock();
      const held = new Event();
      const release = new Event();
      const holder = startThread(
        (l: AnyLock, h: Event, r: Event) => {
          l.acquire();
          h.set();
          r.wait();
          l.release();
        },
        [lock, held, release],
      );
      assert.equal(await held.waitAsync({ timeout: 10_000 }), true);
      let settled = false;
      const pending = lock.acquireAsync({ timeout: 10_000 }).then((ok) => {
        settled = true;
        return ok;
      });
      // A timer fires while the acquire waits: the event loop is free.
      await new Promise((resolve) => setTimeout(resolve, 30));
      assert.equal(settled, false, 'the lock is still held by the thread');
      release.set();
      assert.equal(await pending, true);
      holder.join();
      lock.release();

      lock.acquire();
      const contender = startThread((l: AnyLock) => l.acquire({ timeout: 10_000 }), [lock]);
      const t0 = performance.now();
      // Held by this thread: an RLock would re-enter, so ask for it from another angle.
      if (lock instanceof Lock) {
        assert.equal(await lock.acquireAsync({ timeout: 30 }), false);
        assert.ok(since(t0) >= 30);
        const controller = new AbortController();
        const pending = lock.acquireAsync({ signal: controller.signal });
        controller.abort(new Error('stop'));
        await assert.rejects(pending, /stop/);
      }
      lock.release();
      contender.join();
      assert.equal(contender.result, true, 'the thread got the lock after the aborted async waiter left');
    });

    it('mutual exclusion holds across 4 threads (a non-atomic increment stays exact)', () => {
      const lock = makeLock();
      const counter = new SharedValue('int32');
      const inside = new SharedValue('int32');
      const violations = runThreads<number>(
        (l: AnyLock, c: SharedValue<'int32'>, inn: SharedValue<'int32'>, n: number) => {
          let bad = 0;
          for (let i = 0; i < n; i++) {
            l.acquire();
            if (inn.add(1) !== 0) bad++;
            c.value = c.value + 1;
            inn.sub(1);
            l.release();
          }
          return bad;
        },
        [0, 1, 2, 3].map(() => [lock, counter, inside, 25_000]),
      );
      assert.deepEqual(violations, [0, 0, 0, 0]);
      assert.equal(counter.value, 100_000);
    });
  });
}

describeLockContract('Lock', () => new Lock());
describeLockContract('RLock', () => new RLock());

describe('Lock specifics', () => {
  it('is not re-entrant', () => {
    const lock = new Lock();
    lock.acquire();
    assert.equal(lock.acquire({ blocking: false }), false);
    lock.release();
  });

  it('can be released by a thread that did not acquire it', () => {
    const lock = new Lock();
    lock.acquire();
    runThreads((l: Lock) => l.release(), [[lock]]);
    assert.equal(lock.locked(), false);
  });

  it('release of an unlocked lock is a ThreadError', () => {
    const lock = new Lock();
    assert.throws(() => lock.release(), { name: 'ThreadError', message: 'release unlocked lock' });
    assert.ok(new ThreadError('x') instanceof Error);
  });

  it('toString shows the state', () => {
    const lock = new Lock();
    assert.match(String(lock), /^<unlocked threadkit\.Lock object at 0x[0-9a-f]+>$/);
    lock.acquire();
    assert.match(String(lock), /^<locked /);
    lock.release();
  });

  it('arrives in another thread as the same lock, and comes back as the same object', () => {
    const lock = new Lock();
    const [back] = runThreads<Lock>((l: Lock) => {
      l.acquire();
      return l;
    }, [[lock]]);
    assert.equal(back, lock);
    assert.equal(lock.locked(), true);
    lock.release();
  });
});

describe('RLock specifics', () => {
  it('is re-entrant and needs as many releases', () => {
    const lock = new RLock();
    assert.equal(lock.acquire(), true);
    assert.equal(lock.acquire(), true);
    assert.equal(lock.acquire({ blocking: false }), true);
    lock.release();
    lock.release();
    assert.equal(lock.locked(), true);
    assert.match(String(lock), /owner=\d+ count=1/);
    lock.release();
    assert.equal(lock.locked(), false);
    assert.throws(() => lock.release(), { name: 'ThreadError', message: 'cannot release un-acquired lock' });
  });

  it('only the owner may release', () => {
    const lock = new RLock();
    lock.acquire();
    const [message] = runThreads<string>((l: RLock) => {
      try {
        l.release();
        return 'released';
      } catch (error) {
        return `${(error as Error).name}: ${(error as Error).message}`;
      }
    }, [[lock]]);
    assert.equal(message, 'ThreadError: cannot release un-acquired lock');
    lock.release();
  });

  it('a thread holding it nested blocks others until fully released', () => {
    const lock = new RLock();
    const [blocked] = runThreads<boolean>((l: RLock) => {
      l.acquire();
      l.acquire();
      l.release();
      return true;
    }, [[lock]]);
    assert.equal(blocked, true);
    // The thread ended holding one level: the lock stays held by that (dead) thread.
    assert.equal(lock.acquire({ blocking: false }), false);
  });
});
