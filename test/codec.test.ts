/**
 * What crosses between threads: structured-clone values are copied, shared objects travel by
 * reference, and a value that cannot cross is refused with the path to it.
 */

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BrokenBarrierError, Event, Lock, Semaphore, SharedValue, Thread, ThreadError, sharedArray } from 'threadkit';
import { runThreads } from './helpers.js';

const echo = (value: unknown): unknown => value;

describe('values crossing threads', () => {
  it('structured-clone types come back equal', () => {
    const cyclic: Record<string, unknown> = { name: 'loop' };
    cyclic.self = cyclic;
    const values: unknown[] = [
      undefined, null, true, false, 0, -0, 42, -7, 2 ** 40, 3.25, NaN, Infinity, -Infinity,
      '', 'ascii', 'ünïcödé ✓ 𝄞', 'x'.repeat(300), 123456789012345678901234567890n, -5n,
      [1, [2, [3]]], { a: 1, b: { c: 'd' } },
      new Map<unknown, unknown>([[1, 'one'], ['k', { v: 2 }]]), new Set([1, 'two', 3n]),
      new Date(1_700_000_000_000), /ab+c/gi, new Uint8Array([1, 2, 3]), new Float64Array([1.5, -2]),
      new BigInt64Array([1n, -1n]), new ArrayBuffer(4), new DataView(new ArrayBuffer(2)),
    ];
    const [back] = runThreads<unknown[]>(echo, [[values]]);
    assert.deepEqual(back, values);
    const [loop] = runThreads<Record<string, unknown>>(echo, [[cyclic]]);
    assert.equal(loop!.self, loop);
  });

  it('errors keep name, message, stack and cause; threadkit errors come back as their class', () => {
    const [errors] = runThreads<Error[]>(() => {
      const plain = new TypeError('bad', { cause: new Error('root') });
      const custom = new Error('custom');
      custom.name = 'MyError';
      (custom as Error & { code?: string }).code = 'E_MINE';
      return [plain, custom];
    }, [[]]);
    const [plain, custom] = errors!;
    assert.ok(plain instanceof TypeError);
    assert.equal(plain.message, 'bad');
    assert.match(plain.stack ?? '', /TypeError: bad/);
    assert.equal((plain.cause as Error).message, 'root');
    assert.equal(custom!.name, 'MyError');
    assert.equal((custom as Error & { code?: string }).code, 'E_MINE');
    const [ours] = runThreads<Error>((e: Error) => e, [[new BrokenBarrierError()]]);
    assert.ok(ours instanceof BrokenBarrierError);
    assert.ok(ours instanceof ThreadError);
  });

  it('shared objects travel by reference, also nested in values', () => {
    const lock = new Lock();
    const event = new Event();
    const sem = new Semaphore(3);
    const [back] = runThreads<{ items: unknown[] }>(
      (box: { inner: { lock: Lock; event: Event }; list: Semaphore[] }) => {
        box.inner.lock.acquire();
        box.inner.event.set();
        box.list[0]!.acquire();
        return { items: [box.inner.lock, box.inner.event, box.list[0]] };
      },
      [[{ inner: { lock, event }, list: [sem] }]],
    );
    assert.equal(lock.locked(), true);
    assert.equal(event.isSet(), true);
    assert.equal(sem.value, 2);
    assert.equal(back!.items[0], lock);
    assert.equal(back!.items[1], event);
    assert.equal(back!.items[2], sem);
    lock.release();
  });

  it('sharedArray and SharedValue are shared memory', () => {
    const counts = sharedArray(Int32Array, 4);
    const total = new SharedValue('float64', 0.5);
    runThreads((c: Int32Array, t: SharedValue<'float64'>, i: number) => {
      Atomics.add(c, i, 10);
      t.add(1.25);
    }, [[counts, total, 0], [counts, total, 3]]);
    assert.deepEqual([...counts], [10, 0, 0, 10]);
    assert.equal(total.value, 3);
    const big = new SharedValue('bigint64', 5n);
    assert.equal(big.add(2n), 5n);
    assert.equal(big.load(), 7n);
    assert.equal(total.compareExchange(3, 4), 3);
    assert.equal(total.load(), 4);
    assert.throws(() => new SharedValue('int33' as 'int32'), { name: 'TypeError', message: /int33/ });
  });

  it('a value that cannot cross is refused at start() with its path, and nothing is started', () => {
    const lock = new Lock();
    const t = new Thread({ target: () => 1, args: [1, { handler: () => 0, lock }] });
    assert.throws(() => t.start(), { name: 'TypeError', message: /^args\[1\]\.handler: function handler\(\) could not be cloned/ });
    assert.equal(t.isAlive(), false);
    assert.throws(() => new Thread({ target: () => 1, args: [Symbol('s')] }).start(), { name: 'TypeError', message: /args\[0\]: symbol/ });
    assert.throws(() => new Thread({ target: () => 1, args: [new SharedArrayBuffer(8)] }).start(), { name: 'TypeError', message: /sharedArray/ });
    assert.throws(() => new Thread({ target: () => 1, args: [new Map([['k', new WeakMap()]])] }).start(), { name: 'TypeError', message: /args\[0\]\.get\("k"\): a WeakMap/ });
  });
});
