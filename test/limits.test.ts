/**
 * Counts, sizes and indexes the API takes: a value the shared word cannot hold is a RangeError
 * naming the limit, never a silent wrap (a Semaphore count wrapped to -2^31 once made acquire
 * spin for ever; a pool of 2^31 workers was stored as -2^31 and never started a thread).
 */

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Barrier, BoundedSemaphore, Condition, Semaphore, ThreadPoolExecutor, stackSize } from 'threadkit';

describe('values the shared words cannot hold', () => {
  it('Semaphore.release(n) refuses to pass 2^31 - 1 permits and keeps the count it had', () => {
    const sem = new Semaphore(1);
    assert.throws(() => sem.release(2 ** 31 - 1), { name: 'RangeError', message: 'Semaphore.release(2147483647): the count would pass 2147483647 (it holds 1 permits)' });
    assert.equal(sem.value, 1);
    assert.equal(sem.acquire({ timeout: 50 }), true);
    assert.equal(sem.acquire({ timeout: 50 }), false, 'no permit appeared from a wrapped count');
    sem.release(2 ** 31 - 1);
    assert.equal(sem.value, 2 ** 31 - 1);
    assert.throws(() => sem.release(), { name: 'RangeError', message: /would pass 2147483647/ });
    assert.throws(() => sem.release(2 ** 31), { name: 'RangeError', message: /at most 2147483647, got 2147483648/ });
    assert.throws(() => new Semaphore(2 ** 32), { name: 'RangeError', message: /at most 2147483647/ });
    assert.throws(() => new BoundedSemaphore(2 ** 40), { name: 'RangeError', message: /at most 2147483647/ });
  });

  it('ThreadPoolExecutor maxWorkers above 2^31 - 1 is a RangeError naming the limit', () => {
    for (const n of [2 ** 31, 2 ** 32, 2 ** 40]) {
      assert.throws(() => new ThreadPoolExecutor({ maxWorkers: n }), { name: 'RangeError', message: `ThreadPoolExecutor: maxWorkers must be at most 2147483647, got ${n}` });
    }
    const pool = new ThreadPoolExecutor({ maxWorkers: 2 ** 31 - 1 });
    try {
      assert.equal(pool.maxWorkers, 2 ** 31 - 1);
      assert.equal(pool.submit((x: number) => x + 1, 1).result(), 2);
    } finally {
      pool.shutdown();
    }
  });

  it('Barrier parties: too few and too many get their own messages', () => {
    assert.throws(() => new Barrier(0), { name: 'RangeError', message: 'Barrier(parties): parties must be >= 1, got 0' });
    assert.throws(() => new Barrier(2 ** 40), { name: 'RangeError', message: 'Barrier(parties): parties must be at most 2147483647, got 1099511627776' });
  });

  it('Condition.notify(n) takes a number (Infinity wakes everyone)', () => {
    const cond = new Condition();
    cond.acquire();
    try {
      assert.throws(() => cond.notify('2' as unknown as number), { name: 'TypeError', message: /n must be a number of waiters, got "2"/ });
      assert.throws(() => cond.notify(NaN), { name: 'TypeError' });
      cond.notify(Infinity);
      cond.notify(2 ** 40);
    } finally {
      cond.release();
    }
  });

  it('stackSize refuses sizes no thread could start with', () => {
    assert.throws(() => stackSize(2 ** 40), { name: 'RangeError', message: /at most 1073741824/ });
    assert.equal(stackSize(), 0);
  });
});
