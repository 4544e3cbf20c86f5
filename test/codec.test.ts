/**
 * What crosses between threads: structured-clone values are copied, shared objects travel by
 * reference, and a value that cannot cross is refused with the path to it.
 */

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BrokenBarrierError, Event, Future, Lock, Queue, Semaphore, SharedValue, Thread, ThreadError, ThreadPoolExecutor, sharedArray } from 'threadkit';
import { runThreads } from './helpers.js';

const echo = (value: unknown): unknown => value;

/** Waits in threads are bounded, so that a failing test cannot hang the suite. */
const LONG = 10_000;

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

  it('shared references and cycles keep their shape among hundreds of objects (the encoder tracks the first 64 in an array, the rest in a Map)', () => {
    const nodes = Array.from({ length: 300 }, (_, i) => ({ i, next: undefined as unknown }));
    for (const [i, node] of nodes.entries()) node.next = nodes[(i * 7 + 3) % nodes.length];
    // References to objects met early (array), late (Map), and the root itself.
    const value = { nodes, early: nodes[5], late: nodes[250], again: [nodes[5], nodes[250], nodes[63], nodes[64]], root: undefined as unknown };
    value.root = value;
    const [back] = runThreads<typeof value>(echo, [[value]]);
    assert.ok(back !== undefined && back !== value, 'a copy came back');
    assert.ok(back.root === back, 'the cycle through the root');
    assert.ok(back.early === back.nodes[5] && back.again[0] === back.nodes[5], 'an object met early is one object');
    assert.ok(back.late === back.nodes[250] && back.again[1] === back.nodes[250], 'an object met late is one object');
    assert.ok(back.again[2] === back.nodes[63] && back.again[3] === back.nodes[64], 'the objects either side of the switch');
    const wrong = back.nodes.findIndex((node, i) => node.i !== i || node.next !== back.nodes[(i * 7 + 3) % 300]);
    assert.equal(wrong, -1, `node ${wrong} lost its shape`);
  });

  it('values larger than the encoder\'s scratch buffer (4 KiB) cross intact: as thread args, task args and results, queue items', async () => {
    const big = { text: 'ü'.repeat(50_000), numbers: Array.from({ length: 20_000 }, (_, i) => i * 1.5), nested: Array.from({ length: 2_000 }, (_, i) => ({ i, s: `item-${i}` })) };
    const [fromThread] = runThreads<typeof big>(echo, [[big]]);
    assert.deepEqual(fromThread, big, 'thread args and result');
    const pool = new ThreadPoolExecutor({ maxWorkers: 1 });
    try {
      assert.deepEqual(await pool.submit((v: typeof big) => v, big), big, 'task args and result');
    } finally {
      pool.shutdown();
    }
    const queue = new Queue<typeof big>();
    queue.put(big);
    queue.put({ ...big, text: 'second' });
    assert.deepEqual(queue.get(), big, 'queue item');
    assert.equal(queue.get().text, 'second');
  });

  it('a shared object stored after strings, bigints, typed arrays, buffers and errors keeps one reference per decode (a future result read many times)', () => {
    const lock = new Lock();
    const future = new Future<unknown[]>();
    const before = [
      'ü', 'x'.repeat(300), 'ünïcödé '.repeat(40), 12n, new Uint8Array([1, 2, 3]), new ArrayBuffer(2),
      new DataView(new ArrayBuffer(1)), new Error('e', { cause: 'why' }), /re/g, new Map([['k', 'ü']]),
    ];
    future.setResult([...before, lock]);
    // Each read decodes the stored result again: it must retain the lock for its copy first
    // (else the reads drop references they never took, and the lock is freed under us).
    for (let i = 0; i < 5; i++) {
      const back = future.result();
      assert.deepEqual([...back.slice(0, 7), ...back.slice(8, -1)], [...before.slice(0, 7), ...before.slice(8)], `read ${i}`);
      assert.equal((back[7] as Error).message, 'e', `read ${i}: the error`);
      assert.ok(back.at(-1) === lock, `read ${i}: the same lock`);
    }
    assert.equal(lock.acquire({ blocking: false }), true, 'the lock is still a live lock');
    assert.equal(lock.locked(), true);
    lock.release();
    assert.ok(future.result().at(-1) === lock, 'and still in the result');
  });

  it('an error with extra fields after a long cause crosses (the encoder makes room for them)', () => {
    const error = Object.assign(new Error('x', { cause: '€'.repeat(5000) }), { code: 'E_LONG' });
    const [back] = runThreads<Error & { code?: string }>((e: Error) => e, [[error]]);
    assert.equal(back!.cause, '€'.repeat(5000));
    assert.equal(back!.code, 'E_LONG');
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

  it('two sharedArray views, one of them twice, then plain objects: every field decodes, and the repeated view is one object, there and back', () => {
    const v1 = sharedArray(Int32Array, 4);
    const v2 = sharedArray(Float64Array, 3);
    v1[0] = 7;
    v2[2] = 2.5;
    const d = { x: 1 };
    // The back-references after the views (c, f) count the views' places in the value.
    const sent = { a: v1, b: v2, c: v1, d, e: [1, 2], f: d, g: 'last' };
    type Sent = typeof sent;
    const [back] = runThreads<{ seen: Record<string, unknown>; value: Sent }>(
      (v: Sent) => {
        v.a[1] = 11; // shared memory: the main thread sees the write
        return {
          seen: {
            a: `${v.a?.constructor.name}(${v.a?.length}) [0]=${v.a?.[0]}`,
            b: `${v.b?.constructor.name}(${v.b?.length}) [2]=${v.b?.[2]}`,
            cIsA: v.c === v.a,
            d: v.d,
            e: v.e,
            fIsD: v.f === v.d,
            g: v.g,
          },
          value: v,
        };
      },
      [[sent]],
    );
    assert.deepEqual(back!.seen, { a: 'Int32Array(4) [0]=7', b: 'Float64Array(3) [2]=2.5', cIsA: true, d: { x: 1 }, e: [1, 2], fIsD: true, g: 'last' });
    const value = back!.value;
    assert.ok(value.a === v1, 'a comes back as the same array object');
    assert.ok(value.b === v2, 'b comes back as the same array object');
    assert.ok(value.c === v1, 'c comes back as the same array object');
    assert.deepEqual(value.d, { x: 1 });
    assert.ok(value.f === value.d, 'f and d are one object');
    assert.deepEqual(value.e, [1, 2]);
    assert.equal(value.g, 'last');
    assert.equal(v1[1], 11, 'the thread wrote through the shared array');
  });

  it('the same value through a Queue from one thread to another: every field decodes, and the repeated view is one object', () => {
    const q = new Queue<unknown>();
    const producer = new Thread({
      args: [q],
      target: async (queue: Queue<unknown>) => {
        const { sharedArray } = await import('threadkit');
        const v1 = sharedArray(Int32Array, 2);
        const v2 = sharedArray(Uint8Array, 3);
        v1[0] = 5;
        v2[2] = 9;
        const d = { x: 1 };
        queue.put({ a: v1, b: v2, c: v1, d, e: [1, 2], f: d, g: 'last' });
      },
    });
    const consumer = new Thread<Record<string, unknown>>({
      args: [q, LONG],
      target: (queue: Queue<Record<string, any>>, long: number) => {
        const v = queue.get({ timeout: long });
        return {
          a: `${v.a?.constructor.name}(${v.a?.length}) [0]=${v.a?.[0]}`,
          b: `${v.b?.constructor.name}(${v.b?.length}) [2]=${v.b?.[2]}`,
          cIsA: v.c === v.a,
          d: v.d,
          e: v.e,
          fIsD: v.f === v.d,
          g: v.g,
        };
      },
    });
    consumer.start();
    producer.start();
    producer.join();
    consumer.join();
    assert.deepEqual(consumer.result, { a: 'Int32Array(2) [0]=5', b: 'Uint8Array(3) [2]=9', cIsA: true, d: { x: 1 }, e: [1, 2], fIsD: true, g: 'last' });
  });

  it('a getter that puts on a queue while its object is encoded as thread args (re-entrant encode): both values arrive intact', () => {
    const q = new Queue<unknown>();
    const shared = { k: 'shared' };
    const outer = {
      first: 'before the getter',
      s: shared,
      get sends(): string {
        q.put({ nested: 'put from a getter', list: [4, 5, 6], map: new Map([['m', { deep: true }]]) });
        return 'getter value';
      },
      t: shared,
      after: { deep: [7, 8], text: 'x'.repeat(40) },
    };
    const [back] = runThreads<{ o: Record<string, unknown>; tIsS: boolean; nested: unknown }>(
      (o: Record<string, unknown>, queue: Queue<unknown>, long: number) => ({ o, tIsS: o.t === o.s, nested: queue.get({ timeout: long }) }),
      [[outer, q, LONG]],
    );
    assert.deepEqual(back!.o, { first: 'before the getter', s: { k: 'shared' }, sends: 'getter value', t: { k: 'shared' }, after: { deep: [7, 8], text: 'x'.repeat(40) } });
    assert.equal(back!.tIsS, true, 's and t are still one object');
    assert.deepEqual(back!.nested, { nested: 'put from a getter', list: [4, 5, 6], map: new Map([['m', { deep: true }]]) });
  });

  it('a getter in put() options that puts on the same queue: both items arrive intact, the nested one first', () => {
    const q = new Queue<unknown>(10);
    const options = {
      get timeout(): number {
        q.put({ from: 'the options getter', n: [1, 2] });
        return 1_000;
      },
    };
    q.put({ from: 'the outer put', n: [3] }, options);
    assert.equal(q.qsize(), 2);
    assert.deepEqual(q.getNowait(), { from: 'the options getter', n: [1, 2] });
    assert.deepEqual(q.getNowait(), { from: 'the outer put', n: [3] });
  });

  it('a getter that submits to a pool while its object is put on a queue (re-entrant encode): the item arrives intact and the task runs', () => {
    using pool = new ThreadPoolExecutor({ maxWorkers: 1 });
    const q = new Queue<unknown>();
    const box: { future?: Future<number> } = {};
    const list = [1, 2, 3];
    const item = {
      before: list,
      get submits(): string {
        box.future = pool.submit((x: number, label: string) => (label === 'from a getter' ? x * 2 : -1), 21, 'from a getter');
        return 'submitted';
      },
      again: list,
      after: { y: 'z', n: [9, 10] },
    };
    q.put(item);
    const got = q.get({ timeout: LONG }) as Record<string, unknown>;
    assert.deepEqual(got, { before: [1, 2, 3], submits: 'submitted', again: [1, 2, 3], after: { y: 'z', n: [9, 10] } });
    assert.ok(got.again === got.before, 'before and again are still one array');
    assert.ok(box.future !== undefined, 'the getter ran');
    assert.equal(box.future.result(LONG), 42);
  });

  it('a value that cannot cross is refused at start() with its path, and nothing is started', () => {
    const lock = new Lock();
    const t = new Thread({ target: (..._: unknown[]) => 1, args: [1, { handler: () => 0, lock }] });
    assert.throws(() => t.start(), { name: 'TypeError', message: /^args\[1\]\.handler: function handler\(\) could not be cloned/ });
    assert.equal(t.isAlive(), false);
    assert.throws(() => new Thread({ target: (..._: unknown[]) => 1, args: [Symbol('s')] }).start(), { name: 'TypeError', message: /args\[0\]: symbol/ });
    assert.throws(() => new Thread({ target: (..._: unknown[]) => 1, args: [new SharedArrayBuffer(8)] }).start(), { name: 'TypeError', message: /sharedArray/ });
    assert.throws(() => new Thread({ target: (..._: unknown[]) => 1, args: [new Map([['k', new WeakMap()]])] }).start(), { name: 'TypeError', message: /args\[0\]\.get\("k"\): a WeakMap/ });
  });
});
