/**
 * Hostile input: objects that only look like threadkit's, and user code (getters, Proxy traps)
 * that runs in the middle of an operation and calls into threadkit again. Nothing may write
 * into the heap for a fake object, and a re-entrant call must not change the outer one.
 */

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Condition, Future, LifoQueue, Lock, PriorityQueue, Queue, RLock, SimpleQueue, Thread } from 'threadkit';

describe('objects that only look like threadkit objects', () => {
  it('Condition refuses a Lock or RLock made from the prototype alone, and the heap stays usable', () => {
    for (const Class of [Lock, RLock]) {
      assert.throws(() => new Condition(Object.create(Class.prototype) as Lock), { name: 'TypeError', message: /made with its constructor/ });
    }
    const thread = new Thread({ target: () => 'still works' });
    thread.start();
    thread.join(10_000);
    assert.equal(thread.isAlive(), false);
    assert.equal(thread.result, 'still works');
  });
});

type AnyQueue = Queue<unknown> | LifoQueue<unknown> | PriorityQueue<unknown> | SimpleQueue<unknown>;

const QUEUES: [string, () => AnyQueue, (items: string[]) => string[]][] = [
  ['Queue', () => new Queue(), (items) => items],
  ['LifoQueue', () => new LifoQueue(), (items) => [...items].reverse()],
  ['SimpleQueue', () => new SimpleQueue(), (items) => items],
  ['PriorityQueue', () => new PriorityQueue(), (items) => [...items].sort()],
];

function drain(queue: AnyQueue): unknown[] {
  const out: unknown[] = [];
  while (!queue.empty()) out.push(queue.get());
  return out;
}

describe('re-entrant calls from getters and Proxy traps', () => {
  for (const [name, make, order] of QUEUES) {
    it(`${name}: a getter in an item that puts to the same queue changes neither item`, () => {
      const queue = make();
      queue.put(['a5', 'x']);
      queue.put([
        'b',
        {
          get x() {
            queue.put(['a', 'inner']);
            return 1;
          },
        },
      ]);
      queue.put(['c', 'y']);
      const firsts = drain(queue).map((item) => (item as [string])[0]);
      assert.deepEqual(firsts, order(['a5', 'a', 'b', 'c']));
    });

    it(`${name}: a getter in an item that gets from the queue (and puts the item back) loses nothing`, () => {
      const queue = make();
      queue.put(['first']);
      queue.put([
        'second',
        {
          get x() {
            const got = queue.get();
            queue.put(got);
            return 2;
          },
        },
      ]);
      const items = drain(queue) as unknown[][];
      assert.deepEqual(items.map((item) => JSON.stringify(item)).sort(), ['["first"]', '["second",{"x":2}]']);
    });

    it(`${name}: a Proxy array whose traps put to the queue`, () => {
      const queue = make();
      const inner = ['p', 'inner'];
      const proxy = new Proxy(['q', 'outer'], {
        get(target, key, receiver) {
          if (key === '1') queue.put(inner);
          return Reflect.get(target, key, receiver) as unknown;
        },
      });
      queue.put(proxy);
      const items = drain(queue) as string[][];
      assert.deepEqual(items.map((item) => item.join(':')).sort(), ['p:inner', 'q:outer']);
    });
  }

  it('Queue.put options whose getters put to a queue with options of their own', () => {
    const queue = new Queue(1);
    const other = new Queue();
    queue.put('a', {
      get block() {
        other.put('inner', { block: false, timeout: 1 });
        return undefined as unknown as boolean;
      },
      timeout: 5_000,
    });
    assert.deepEqual(drain(other), ['inner']);
    // The outer put kept its own options: a blocking put with a timeout on a full queue.
    const started = performance.now();
    assert.throws(() =>
      queue.put('b', {
        get timeout() {
          other.put('inner 2', { block: false });
          return 50;
        },
      }),
    );
    assert.ok(performance.now() - started >= 49, 'the outer put waited for its own timeout (not the inner block: false)');
    assert.deepEqual(drain(other), ['inner 2']);
  });

  it('Future.setResult: a getter in the result that settles another future', () => {
    const outer = new Future<unknown>();
    const inner = new Future<unknown>();
    outer.setResult({
      get v() {
        inner.setResult({ w: 'inner' });
        return 'outer';
      },
    });
    assert.deepEqual(outer.result(), { v: 'outer' });
    assert.deepEqual(inner.result(), { w: 'inner' });
  });
});

describe('values threadkit refuses to send', () => {
  it('a shared object made from its prototype alone, anywhere in a value: TypeError naming the path, nothing written', async () => {
    const { Queue, Thread, Lock, Future, wait } = await import('threadkit');
    const fake = Object.create(Lock.prototype) as InstanceType<typeof Lock>;
    const queue = new Queue();
    assert.throws(() => queue.put({ lock: fake }), { name: 'TypeError', message: /^item\.lock: a Lock made from its prototype alone is not a shared object/ });
    assert.equal(queue.qsize(), 0);
    assert.throws(() => new Thread({ target: (..._: unknown[]) => 1, args: [1, [fake]] }).start(), { name: 'TypeError', message: /^args\[1\]\[0\]: a Lock made from its prototype alone/ });
    assert.throws(() => wait([Object.create(Future.prototype) as InstanceType<typeof Future>]), { name: 'TypeError', message: /made from Future\.prototype alone/ });
  });

  it('a queue inside its own items, a future inside its own result: refused (a cycle in shared memory is never freed)', async () => {
    const { Queue, PriorityQueue, SimpleQueue, Future } = await import('threadkit');
    for (const queue of [new Queue(), new SimpleQueue(), new PriorityQueue()]) {
      assert.throws(() => queue.put(queue as never), { name: 'TypeError', message: /^item: the \w+ itself: a shared object that holds itself is a reference cycle/ });
      assert.throws(() => queue.put([1, { back: queue }] as never), { name: 'TypeError', message: /^item\[1\]\.back: the \w+ itself/ });
      assert.equal(queue.qsize(), 0);
      queue.put([2, 'fine'] as never);
      assert.equal(queue.qsize(), 1);
    }
    const future = new Future();
    assert.throws(() => future.setResult({ self: future }), { name: 'TypeError', message: /^result\.self: the future itself/ });
    assert.equal(future.done(), false);
    const other = new Future();
    future.setResult({ other });
    assert.equal((future.result() as { other: unknown }).other, other);
  });
});
