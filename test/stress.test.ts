/**
 * Stress: many threads, many iterations, random timeouts mixed in; the invariants (exact
 * counts, mutual exclusion, no lost hand-off, at most N inside a semaphore) are checked at the end.
 */

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Barrier, BoundedSemaphore, Condition, Event, Lock, RLock, Semaphore, SharedValue } from 'threadkit';
import { runThreads } from './helpers.js';

describe('stress', () => {
  it('4 threads x 100k Lock-protected non-atomic increments end at exactly 400k', () => {
    const lock = new Lock();
    const counter = new SharedValue('int32');
    const timeouts = runThreads<number>(
      (l: Lock, c: SharedValue<'int32'>, n: number) => {
        let timedOut = 0;
        for (let i = 0; i < n; i++) {
          // Every 64th acquire is a short timed one; a timeout just retries.
          if ((i & 63) === 0) {
            while (!l.acquire({ timeout: Math.random() })) timedOut++;
          } else {
            l.acquire();
          }
          c.value = c.value + 1;
          l.release();
        }
        return timedOut;
      },
      [0, 1, 2, 3].map(() => [lock, counter, 100_000]),
    );
    assert.equal(counter.value, 400_000);
    assert.equal(lock.locked(), false);
    assert.equal(timeouts.length, 4);
  });

  it('4 threads x 25k nested RLock sections keep mutual exclusion', () => {
    const lock = new RLock();
    const counter = new SharedValue('int32');
    const inside = new SharedValue('int32');
    const violations = runThreads<number>(
      (l: RLock, c: SharedValue<'int32'>, inn: SharedValue<'int32'>, n: number) => {
        let bad = 0;
        for (let i = 0; i < n; i++) {
          l.acquire();
          l.acquire();
          if (inn.add(1) !== 0) bad++;
          l.acquire({ timeout: 5 }); // owned: re-entry never waits
          c.value = c.value + 1;
          l.release();
          inn.sub(1);
          l.release();
          l.release();
        }
        return bad;
      },
      [0, 1, 2, 3].map(() => [lock, counter, inside, 25_000]),
    );
    assert.deepEqual(violations, [0, 0, 0, 0]);
    assert.equal(counter.value, 100_000);
    assert.equal(lock.locked(), false);
  });

  it('Condition producer/consumer: 100k hand-offs through one slot, none lost or doubled', () => {
    const cond = new Condition(new Lock());
    const slot = new SharedValue('int32'); // the item
    const full = new SharedValue('int32'); // 1 while the slot holds an item
    const n = 100_000;
    const [produced, consumed] = runThreads<number>(
      (c: Condition, s: SharedValue<'int32'>, f: SharedValue<'int32'>, count: number, role: string) => {
        let sum = 0;
        for (let i = 1; i <= count; i++) {
          c.acquire();
          if (role === 'producer') {
            // Random short timeouts: a timed-out wait re-checks and waits again.
            while (f.value === 1) c.wait(Math.random() < 0.01 ? Math.random() : undefined);
            s.value = i;
            f.value = 1;
            sum += i;
          } else {
            while (f.value === 0) c.wait(Math.random() < 0.01 ? Math.random() : undefined);
            sum += s.value;
            f.value = 0;
          }
          c.notify();
          c.release();
        }
        return sum;
      },
      [
        [cond, slot, full, n, 'producer'],
        [cond, slot, full, n, 'consumer'],
      ],
    );
    assert.equal(produced, (n * (n + 1)) / 2);
    assert.equal(consumed, produced);
  });

  it('a Semaphore(2) never admits more than 2 of 4 threads', () => {
    const sem = new BoundedSemaphore(2);
    const inside = new SharedValue('int32');
    const peak = new SharedValue('int32');
    const entries = runThreads<number>(
      (s: Semaphore, inn: SharedValue<'int32'>, p: SharedValue<'int32'>, n: number) => {
        let got = 0;
        for (let i = 0; i < n; i++) {
          if (!s.acquire({ timeout: Math.random() < 0.1 ? 0.5 : undefined })) continue;
          got++;
          const now = inn.add(1) + 1;
          for (let seen = p.load(); now > seen; seen = p.load()) if (p.compareExchange(seen, now) === seen) break;
          inn.sub(1);
          s.release();
        }
        return got;
      },
      [0, 1, 2, 3].map(() => [sem, inside, peak, 20_000]),
    );
    assert.ok(peak.value <= 2, `peak ${peak.value}`);
    assert.ok(peak.value >= 1);
    assert.equal(sem.value, 2);
    assert.ok(entries.every((n) => n > 0));
  });

  it('Barrier: 4 threads through 20 generations, indices a permutation each time', () => {
    const barrier = new Barrier(4);
    const results = runThreads<number[]>(
      (b: Barrier, generations: number) => {
        const indices: number[] = [];
        for (let g = 0; g < generations; g++) indices.push(b.wait());
        return indices;
      },
      [0, 1, 2, 3].map(() => [barrier, 20]),
    );
    for (let g = 0; g < 20; g++) {
      assert.deepEqual(results.map((r) => r[g]).sort(), [0, 1, 2, 3], `generation ${g}`);
    }
    assert.equal(barrier.broken, false);
    assert.equal(barrier.nWaiting, 0);
  });

  it('Event set/clear storm: every waiter woken by a set returns true; none hangs', () => {
    const event = new Event();
    const done = new SharedValue('int32');
    const start = new Barrier(3);
    const results = runThreads<[number, number]>(
      (e: Event, d: SharedValue<'int32'>, go: Barrier, role: string) => {
        let trues = 0;
        let falses = 0;
        go.wait();
        if (role === 'setter') {
          for (let i = 0; i < 20_000; i++) {
            e.set();
            e.clear();
          }
          d.store(1);
          e.set();
          return [0, 0];
        }
        do {
          if (e.wait(Math.random() * 2)) trues++;
          else falses++;
        } while (d.load() === 0);
        // After the final set(), a wait must see it.
        return [trues + (e.wait() ? 0 : -1_000_000), falses];
      },
      [[event, done, start, 'setter'], [event, done, start, 'waiter'], [event, done, start, 'waiter']],
    );
    assert.equal(event.isSet(), true);
    for (const [trues, falses] of results.slice(1)) assert.ok(trues >= 0 && trues + falses > 0, `waiter saw ${trues} sets, ${falses} timeouts`);
  });
});
