/**
 * Queue, LifoQueue, PriorityQueue and SimpleQueue contract, after CPython 3.13's
 * Lib/test/test_queue.py (BaseQueueTestMixin, the shutdown tests, BaseSimpleQueueTest), in our
 * own words, across real threads; plus what threadkit adds: items that carry shared objects,
 * every kind of value as an item, Python's ordering in PriorityQueue, async twins, bad input.
 *
 * "Blocked" is observed, never guessed from a sleep: a thread that must act while another one
 * is blocked waits until the queue counts a registered sleeper (`_waiters`, a test hook) and
 * reports how many it saw. Shared objects are compared with `assert.ok(a === b)`: a failing
 * `assert.equal` would print a diff of the whole shared heap.
 */

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setImmediate as tick } from 'node:timers/promises';
import {
  Barrier,
  Event,
  HeapExhaustedError,
  LifoQueue,
  Lock,
  PriorityQueue,
  Queue,
  QueueEmpty,
  QueueFull,
  QueueShutDown,
  Semaphore,
  SharedValue,
  SimpleQueue,
  type Thread,
  configureHeap,
  heapStats,
} from 'threadkit';
import { runThreads, since, startThread } from './helpers.js';

// A small heap (this file's process only), so that "larger than the heap" is a small item.
configureHeap({ maxBytes: 64 * 1024 * 1024 });

/** A bound for waits that must succeed: a bug shows as a failed assertion, not a hung test. */
const LONG = 10_000;
const QUEUE_SIZE = 5;

type AnyQueue = Queue<unknown>;
type Make = (maxsize?: number) => AnyQueue;

function joinAll(threads: Thread[]): void {
  for (const t of threads) t.join();
}

/**
 * Thread target: waits until `q` counts a thread registered to sleep in `which` ('get', 'put'
 * or 'join'), then does `action` and returns the number of sleepers it saw (0 means it gave up
 * waiting: the other thread never blocked). Self-contained: it is sent as source text.
 */
const afterBlocked = (q: Queue<unknown>, which: 'get' | 'put' | 'join', action: string, arg: unknown): number => {
  const nap = new Int32Array(new SharedArrayBuffer(4));
  let seen = q._waiters(which);
  for (let i = 0; seen < 1 && i < 10_000; i++) {
    Atomics.wait(nap, 0, 0, 1);
    seen = q._waiters(which);
  }
  if (action === 'get') q.get();
  else if (action === 'put') q.put(arg);
  else if (action === 'shutdown') q.shutdown(arg === true);
  else if (action === 'maxsize') q.maxsize = arg as number;
  else if (action === 'taskDone') q.taskDone();
  return seen;
};

/** Runs `block` in this thread while a thread waits for it to block in `which`, then acts. */
function blockingCase<R>(q: AnyQueue, which: 'get' | 'put', block: () => R, action: string, arg?: unknown): R {
  const t = startThread<number>(afterBlocked, [q, which, action, arg]);
  try {
    return block();
  } finally {
    t.join();
    assert.ok((t.result ?? 0) >= 1, `the blocking call returned before it blocked (the trigger saw ${t.result} sleepers)`);
  }
}

function expectedOrder(q: AnyQueue, items: number[]): number[] {
  if (q instanceof PriorityQueue) return [...items].sort((a, b) => a - b);
  if (q instanceof LifoQueue) return [...items].reverse();
  return items;
}

function describeQueueContract(name: string, make: Make): void {
  describe(`${name} contract`, () => {
    it('queues in its order, fills to maxsize, and blocks and times out at both ends', () => {
      const q = make(QUEUE_SIZE);
      // Twice on the same queue, as CPython does.
      for (let round = 0; round < 2; round++) {
        assert.equal(q.qsize(), 0);
        assert.equal(q.empty(), true);
        assert.equal(q.full(), false);
        for (const item of [111, 333, 222]) q.put(item);
        assert.deepEqual([q.get(), q.get(), q.get()], expectedOrder(q, [111, 333, 222]));
        for (let i = 0; i < QUEUE_SIZE - 1; i++) {
          q.put(i);
          assert.ok(q.qsize() > 0);
        }
        assert.equal(q.full(), false);
        q.put(2 * QUEUE_SIZE);
        assert.equal(q.full(), true);
        assert.equal(q.empty(), false);
        assert.throws(() => q.put(99, { block: false }), QueueFull);
        const t0 = performance.now();
        assert.throws(() => q.put(99, { timeout: 10 }), QueueFull);
        assert.ok(since(t0) >= 10, `a timed put returned after ${since(t0)} ms`);
        // A blocking put, released by a get in another thread (twice: without and with a timeout).
        blockingCase(q, 'put', () => q.put(99), 'get');
        blockingCase(q, 'put', () => q.put(99, { block: true, timeout: LONG }), 'get');
        for (let i = 0; i < QUEUE_SIZE; i++) q.get();
        assert.equal(q.qsize(), 0);
        assert.throws(() => q.get({ block: false }), QueueEmpty);
        const t1 = performance.now();
        assert.throws(() => q.get({ timeout: 10 }), QueueEmpty);
        assert.ok(since(t1) >= 10, `a timed get returned after ${since(t1)} ms`);
        assert.equal(blockingCase(q, 'get', () => q.get(), 'put', 'empty'), 'empty');
        assert.equal(blockingCase(q, 'get', () => q.get({ timeout: LONG }), 'put', 'empty'), 'empty');
      }
      // Every put counted a task; none was marked done.
      assert.equal(q.unfinishedTasks, 2 * (3 + QUEUE_SIZE + 2 + 2));
    });

    it('taskDone() called too often is a RangeError', () => {
      const q = make();
      assert.throws(() => q.taskDone(), { name: 'RangeError', message: 'taskDone() called too many times' });
      q.put(1);
      q.get();
      q.taskDone();
      assert.throws(() => q.taskDone(), { name: 'RangeError', message: 'taskDone() called too many times' });
    });

    it('join() waits until two worker threads marked every task done, and can join twice', () => {
      const q = make();
      const sum = new SharedValue('int32');
      const workers = [0, 1].map(() =>
        startThread(
          (queue: Queue<number>, total: SharedValue<'int32'>) => {
            for (;;) {
              const x = queue.get();
              if (x < 0) {
                queue.taskDone();
                return;
              }
              total.add(x);
              queue.taskDone();
            }
          },
          [q, sum],
        ),
      );
      for (let round = 0; round < 2; round++) {
        sum.store(0);
        for (let i = 0; i < 100; i++) q.put(i);
        q.join();
        assert.equal(sum.load(), 4950, 'join() returned before every task was done');
      }
      q.put(-1);
      q.put(-1);
      q.join();
      joinAll(workers);
      assert.equal(q.unfinishedTasks, 0);
      assert.throws(() => q.taskDone(), { message: 'taskDone() called too many times' });
    });

    it('a negative timeout is a RangeError, as CPython raises ValueError', () => {
      const q = make(QUEUE_SIZE);
      assert.throws(() => q.put(1, { timeout: -1 }), { name: 'RangeError', message: /'timeout' must be a non-negative number/ });
      assert.equal(q.qsize(), 0, 'the failed put left no item');
      q.put(1);
      assert.throws(() => q.get({ timeout: -1 }), { name: 'RangeError', message: /'timeout' must be a non-negative number/ });
      // With block: false the timeout is ignored, as in CPython.
      assert.equal(q.get({ block: false, timeout: -1 }), 1);
    });

    it('putNowait and getNowait fail at once when full / empty', () => {
      const q = make(QUEUE_SIZE);
      for (let i = 0; i < QUEUE_SIZE; i++) q.putNowait(1);
      assert.throws(() => q.putNowait(1), QueueFull);
      for (let i = 0; i < QUEUE_SIZE; i++) q.getNowait();
      assert.throws(() => q.getNowait(), QueueEmpty);
    });

    it('maxsize can shrink below the current size (issue 10110) and grow, waking blocked putters', () => {
      const q = make(3);
      q.put(1);
      q.put(2);
      q.put(3);
      assert.throws(() => q.putNowait(4), QueueFull);
      assert.equal(q.qsize(), 3);
      q.maxsize = 2;
      assert.equal(q.maxsize, 2);
      assert.throws(() => q.putNowait(4), QueueFull);
      assert.equal(q.full(), true);
      // A put blocked on the full queue completes when maxsize is raised, with no get at all.
      blockingCase(q, 'put', () => q.put(4), 'maxsize', 4);
      assert.equal(q.qsize(), 4);
      q.maxsize = 0;
      for (let i = 0; i < 100; i++) q.putNowait(i);
      assert.equal(q.full(), false, 'maxsize 0 is unbounded');
    });

    it('shutdown on an empty queue: puts and gets raise QueueShutDown', () => {
      const q = make();
      q.shutdown();
      assert.throws(() => q.put('data'), QueueShutDown);
      assert.throws(() => q.get(), QueueShutDown);
    });

    it('shutdown on a non-empty queue: gets drain it, then raise', () => {
      const q = make();
      q.put('data');
      q.shutdown();
      assert.equal(q.get(), 'data');
      assert.throws(() => q.get(), QueueShutDown);
    });

    it('shutdown(immediate) empties the queue at once', () => {
      const q = make();
      q.put('data');
      q.shutdown(true);
      assert.throws(() => q.get(), QueueShutDown);
      assert.equal(q.qsize(), 0);
    });

    it('isShutdown goes from false to true, and shutdown may be repeated in any mode', () => {
      const q = make();
      assert.equal(q.isShutdown, false);
      q.shutdown();
      assert.equal(q.isShutdown, true);
      q.shutdown(true);
      assert.equal(q.isShutdown, true);
      q.shutdown(false);
      assert.equal(q.isShutdown, true);
    });

    for (const immediate of [false, true]) {
      it(`every method after shutdown(${immediate}) in one thread`, () => {
        const q = make(2);
        q.put('L');
        q.putNowait('O');
        q.shutdown(immediate);
        assert.throws(() => q.put('E'), QueueShutDown);
        assert.throws(() => q.putNowait('W'), QueueShutDown);
        if (immediate) {
          assert.throws(() => q.get(), QueueShutDown);
          assert.throws(() => q.getNowait(), QueueShutDown);
          assert.throws(() => q.taskDone(), RangeError);
          q.join();
        } else {
          assert.ok('LO'.includes(q.get() as string));
          q.taskDone();
          assert.ok('LO'.includes(q.get() as string));
          q.taskDone();
          q.join();
          assert.throws(() => q.get(), QueueShutDown);
          assert.throws(() => q.getNowait(), QueueShutDown);
          assert.throws(() => q.get({ block: true, timeout: 1000 }), QueueShutDown);
        }
      });

      it(`shutdown(${immediate}) in the middle of 4 writers, 6 readers${immediate ? ' and 2 joiners' : ''}`, () => {
        const q = make();
        const writers = 4;
        const readers = 6;
        const joiners = immediate ? 2 : 0;
        const perWriter = 4096;
        const start = new Barrier(writers + readers + joiners);
        const shutdownAt = new Event();
        const closed = new Event();
        const shutdownDone = new Semaphore(0);
        // A writer that reaches the middle asks for the shutdown and waits for it, so that its
        // next put is refused whatever the scheduling (CPython's version leaves that to luck).
        const writer = startThreads(writers, (queue: Queue<unknown>, n: number, go: Barrier, at: Event, done: Event) => {
          for (let i = 0; i < n / 4; i++) queue.put([i, 'LOYD']);
          go.wait();
          let refused = false;
          for (let i = n / 4; i < n; i++) {
            try {
              queue.put([i, 'YDLO']);
            } catch (error) {
              if ((error as Error).name !== 'QueueShutDown') throw error;
              refused = true;
              break;
            }
            if (i === n / 2) {
              at.set();
              done.wait();
            }
          }
          return refused;
        }, [q, perWriter, start, shutdownAt, closed]);
        const reader = startThreads(readers, (queue: Queue<unknown>, go: Barrier) => {
          const nap = new Int32Array(new SharedArrayBuffer(4));
          queue.get();
          queue.taskDone();
          go.wait();
          for (;;) {
            try {
              queue.get({ block: false });
              queue.taskDone();
            } catch (error) {
              if ((error as Error).name === 'QueueShutDown') return true;
              if ((error as Error).name !== 'QueueEmpty') throw error;
              Atomics.wait(nap, 0, 0, 0.05);
            }
          }
        }, [q, start]);
        const joiner = startThreads(joiners, (queue: Queue<unknown>, go: Barrier) => {
          go.wait();
          queue.join();
          return true;
        }, [q, start]);
        const closer = startThread<boolean>(
          (queue: Queue<unknown>, at: Event, imm: boolean, done: Semaphore, closedEvent: Event) => {
            at.wait();
            queue.shutdown(imm);
            const empty = queue.qsize() === 0;
            done.release();
            closedEvent.set();
            return empty;
          },
          [q, shutdownAt, immediate, shutdownDone, closed],
        );
        joinAll([...writer, ...reader, ...joiner, closer]);
        assert.equal(shutdownDone.value, 1);
        assert.ok(writer.every((t) => t.result === true), 'every writer had a put refused after the shutdown');
        assert.deepEqual(reader.map((t) => t.result), reader.map(() => true), 'every reader ended with QueueShutDown');
        assert.ok(joiner.every((t) => t.result === true));
        if (immediate) {
          assert.equal(closer.result, true);
          assert.equal(q.empty(), true);
        }
      });

      it(`shutdown(${immediate}) releases getters blocked on a full queue's items as CPython does`, () => {
        const q = make(2);
        q.put('Y');
        q.put('D');
        const go = new Event();
        const getters = startThreads(immediate ? 2 : 3, (queue: Queue<unknown>, g: Event) => {
          g.wait();
          try {
            queue.get();
            return 'item';
          } catch (error) {
            return (error as Error).name;
          }
        }, [q, go]);
        q.shutdown(immediate);
        go.set();
        joinAll(getters);
        const results = getters.map((t) => t.result as string).sort();
        assert.deepEqual(results, immediate ? ['QueueShutDown', 'QueueShutDown'] : ['QueueShutDown', 'item', 'item']);
      });

      it(`shutdown(${immediate}) makes pending and later puts raise`, () => {
        const q = make(2);
        q.put('Y');
        q.put('D');
        const go = new Event();
        const putters = startThreads(2, (queue: Queue<unknown>, g: Event, item: string) => {
          g.wait();
          try {
            queue.put(item);
            return 'put';
          } catch (error) {
            return (error as Error).name;
          }
        }, [q, go, 'E']);
        q.shutdown(immediate);
        go.set();
        joinAll(putters);
        assert.deepEqual(putters.map((t) => t.result), ['QueueShutDown', 'QueueShutDown']);
      });

      it(`shutdown(${immediate}) and join(): joiners return once the tasks are done (or dropped)`, () => {
        const q = make();
        q.put('Y');
        const joiners = startThreads(2, (queue: Queue<unknown>) => {
          queue.join();
          return true;
        }, [q]);
        let worker: Thread | undefined;
        if (!immediate) {
          worker = startThread(
            (queue: Queue<unknown>) => {
              queue.get();
              queue.taskDone();
            },
            [q],
          );
        }
        q.shutdown(immediate);
        joinAll(worker ? [...joiners, worker] : joiners);
        assert.deepEqual(joiners.map((t) => t.result), [true, true]);
      });

      it(`shutdown(${immediate}) with a pending put and a joiner`, () => {
        const q = make(2);
        q.put('Y');
        const go = new Event();
        const putter = startThread<string>(
          (queue: Queue<unknown>, g: Event) => {
            g.wait();
            try {
              queue.put('E');
              return 'put';
            } catch (error) {
              return (error as Error).name;
            }
          },
          [q, go],
        );
        const joiner = startThread<boolean>(
          (queue: Queue<unknown>) => {
            queue.join();
            return true;
          },
          [q],
        );
        assert.equal(q.unfinishedTasks, 1);
        q.shutdown(immediate);
        go.set();
        if (immediate) {
          assert.throws(() => q.getNowait(), QueueShutDown);
        } else {
          assert.equal(q.get(), 'Y');
          q.taskDone();
        }
        joinAll([putter, joiner]);
        assert.equal(putter.result, 'QueueShutDown');
        assert.equal(joiner.result, true);
      });
    }

    it('shutdown() with getters that mark their tasks done and joiners', () => {
      const q = make(2);
      q.put('Y');
      q.put('D');
      assert.equal(q.unfinishedTasks, q.qsize());
      const go = new Event();
      const workers = startThreads(2, (queue: Queue<unknown>, g: Event) => {
        g.wait();
        try {
          queue.get();
          queue.taskDone();
          return true;
        } catch {
          return false;
        }
      }, [q, go]);
      const joiners = startThreads(2, (queue: Queue<unknown>) => {
        queue.join();
        return true;
      }, [q]);
      go.set();
      q.shutdown(false);
      joinAll([...workers, ...joiners]);
      assert.deepEqual([...workers, ...joiners].map((t) => t.result), [true, true, true, true]);
    });

    it('shutdown() wakes a getter blocked on an empty queue with QueueShutDown', () => {
      const q = make();
      const getter = startThread<string>(
        (queue: Queue<unknown>) => {
          try {
            return String(queue.get());
          } catch (error) {
            return (error as Error).name;
          }
        },
        [q],
      );
      const closer = startThread<number>(afterBlocked, [q, 'get', 'shutdown', false]);
      joinAll([getter, closer]);
      assert.ok((closer.result ?? 0) >= 1, 'the getter was blocked when the queue shut down');
      assert.equal(getter.result, 'QueueShutDown');
    });

    it('a failed put (item that cannot be cloned) leaves the queue as it was, locks included', () => {
      const q = make(QUEUE_SIZE);
      for (let i = 0; i < QUEUE_SIZE - 1; i++) q.put(i);
      const bad = { ok: 1, fn: () => 1 };
      assert.throws(() => q.put(bad, { block: false }), { name: 'TypeError', message: /item\.fn: .*could not be cloned/ });
      assert.throws(() => q.put(bad, { timeout: 100 }), TypeError);
      assert.equal(q.qsize(), QUEUE_SIZE - 1);
      assert.equal(q.unfinishedTasks, QUEUE_SIZE - 1);
      q.put(100);
      assert.equal(q.full(), true);
      // The queue still blocks and wakes as before.
      blockingCase(q, 'put', () => q.put(101), 'get');
      assert.throws(() => q.put(bad), TypeError);
      assert.equal(q.qsize(), QUEUE_SIZE);
      for (let i = 0; i < QUEUE_SIZE; i++) q.get();
      assert.equal(q.qsize(), 0);
    });
  });
}

describeQueueContract('Queue', (maxsize) => new Queue(maxsize));
describeQueueContract('LifoQueue', (maxsize) => new LifoQueue(maxsize));
describeQueueContract('PriorityQueue', (maxsize) => new PriorityQueue(maxsize));

/** Starts `n` threads on the same target and args. */
function startThreads<R = unknown>(n: number, target: (...args: any[]) => R, args: unknown[]): Thread<R>[] {
  return Array.from({ length: n }, () => startThread<R>(target, args));
}

// ---- SimpleQueue ---------------------------------------------------------------------------------

describe('SimpleQueue contract', () => {
  it('put, get, qsize and empty; Empty when nothing is there', () => {
    const q = new SimpleQueue<number>();
    assert.equal(q.empty(), true);
    assert.equal(q.qsize(), 0);
    q.put(1);
    assert.equal(q.empty(), false);
    assert.equal(q.qsize(), 1);
    q.put(2);
    q.putNowait(3);
    q.put(4);
    assert.equal(q.qsize(), 4);
    assert.equal(q.get(), 1);
    assert.equal(q.qsize(), 3);
    assert.equal(q.getNowait(), 2);
    assert.equal(q.get({ block: false }), 3);
    assert.equal(q.get({ timeout: 100 }), 4);
    assert.equal(q.empty(), true);
    assert.throws(() => q.get({ block: false }), QueueEmpty);
    assert.throws(() => q.get({ timeout: 1 }), QueueEmpty);
    assert.throws(() => q.getNowait(), QueueEmpty);
    assert.equal(q.qsize(), 0);
    assert.equal(q.full(), false);
  });

  it('has no maxsize, taskDone, join or unfinishedTasks, and takes no constructor argument', () => {
    const q = new SimpleQueue() as unknown as Record<string, unknown>;
    for (const name of ['maxsize', 'taskDone', 'join', 'joinAsync', 'unfinishedTasks']) assert.equal(name in q, false, name);
    assert.equal(SimpleQueue.length, 0);
  });

  it('a negative get timeout is a RangeError; put ignores block and timeout (it never blocks)', () => {
    const q = new SimpleQueue<number>();
    q.put(1);
    assert.throws(() => q.get({ timeout: -1 }), { name: 'RangeError', message: /'timeout' must be a non-negative number/ });
    q.put(2, { timeout: -1 });
    q.put(3, { block: false });
    assert.equal(q.qsize(), 3);
  });

  /** Feeders pop inputs from a shared counter; consumers use get, get(block: false) or get(timeout). */
  function runFeedersAndConsumers(nThreads: number, total: number, mode: 'block' | 'nonblock' | 'timeout'): number[] {
    const q = new SimpleQueue<number | null>();
    const next = new SharedValue('int32');
    const feeders = startThreads(nThreads, (queue: SimpleQueue<number | null>, counter: SharedValue<'int32'>, n: number, seed: number) => {
      let rnd = seed;
      const nap = new Int32Array(new SharedArrayBuffer(4));
      for (;;) {
        const i = counter.add(1);
        if (i >= n) {
          queue.put(null);
          return;
        }
        queue.put(i);
        rnd = (rnd * 1103515245 + 12345) & 0x7fffffff;
        if (rnd % 64 === 0) Atomics.wait(nap, 0, 0, 1);
      }
    }, [q, next, total, 42]);
    const consumers = startThreads(nThreads, (queue: SimpleQueue<number | null>, how: string) => {
      const got: number[] = [];
      const nap = new Int32Array(new SharedArrayBuffer(4));
      for (;;) {
        let value: number | null;
        for (;;) {
          try {
            value = how === 'nonblock' ? queue.get({ block: false }) : how === 'timeout' ? queue.get({ timeout: 0.01 }) : queue.get();
            break;
          } catch (error) {
            if ((error as Error).name !== 'QueueEmpty') throw error;
            if (how === 'nonblock') Atomics.wait(nap, 0, 0, 0.01);
          }
        }
        if (value === null) return got;
        got.push(value);
      }
    }, [q, mode]);
    joinAll([...feeders, ...consumers]);
    assert.equal(q.empty(), true);
    assert.equal(q.qsize(), 0);
    return consumers.flatMap((t) => t.result as number[]);
  }

  it('one feeder and one consumer: items come out in order', () => {
    const results = runFeedersAndConsumers(1, 100, 'block');
    assert.deepEqual(results, Array.from({ length: 100 }, (_, i) => i));
  });

  for (const mode of ['block', 'nonblock', 'timeout'] as const) {
    it(`8 feeders and 8 consumers (${mode} gets): every item exactly once`, () => {
      const results = runFeedersAndConsumers(8, 10_000, mode);
      assert.deepEqual(results.sort((a, b) => a - b), Array.from({ length: 10_000 }, (_, i) => i));
    });
  }

  it('shutdown ends gets once drained, and puts at once (a threadkit addition)', () => {
    const q = new SimpleQueue<number>();
    q.put(1);
    q.shutdown();
    assert.equal(q.isShutdown, true);
    assert.throws(() => q.put(2), QueueShutDown);
    assert.equal(q.get(), 1);
    assert.throws(() => q.get(), QueueShutDown);
  });
});

// ---- what crosses: items and shared objects inside them -----------------------------------------------

describe('queue items', () => {
  it('every cloneable kind of value comes back equal, through another thread', () => {
    const big = 'x'.repeat(5000);
    const items: unknown[] = [
      0, -0, 1, -1, 2 ** 31, -(2 ** 31), 2 ** 31 - 1, 1.5, NaN, Infinity, -Infinity, Number.MAX_VALUE,
      '', 'a', 'hello, world', 'é', '日本語', '🎉 emoji', 'x'.repeat(64), 'x'.repeat(65), 'é'.repeat(300), big,
      true, false, null, undefined, 10n, -(2n ** 100n),
      [1, 'two', [3]], { a: 1, b: { c: [null, undefined] } }, new Map([[1, 'one']]), new Set(['s']),
      new Date(86_400_000), /ab+c/gi, new Uint8Array([1, 2, 3]), new Float64Array([1.5]),
      new QueueEmpty('empty!'), new RangeError('range'), Array.from({ length: 500 }, (_, i) => ({ i })),
    ];
    const q = new Queue<unknown>();
    const back = new Queue<unknown>();
    const echo = startThread(
      (input: Queue<unknown>, output: Queue<unknown>, n: number) => {
        for (let i = 0; i < n; i++) output.put(input.get());
      },
      [q, back, items.length],
    );
    for (const item of items) q.put(item);
    echo.join();
    for (const item of items) {
      const got = back.get();
      if (typeof item === 'number' && Number.isNaN(item)) assert.ok(Number.isNaN(got));
      else if (item instanceof Error) {
        assert.equal((got as Error).constructor, item.constructor);
        assert.equal((got as Error).message, item.message);
      } else assert.deepStrictEqual(got, item);
    }
    assert.ok(Object.is(items[1], -0));
    assert.equal(back.qsize(), 0);
  });

  it('a request carrying its own reply Queue and an Event: the consumer thread answers through them', () => {
    const requests = new Queue<{ n: number; reply: Queue<number>; done: Event } | null>();
    const server = startThread(
      (q: Queue<{ n: number; reply: Queue<number>; done: Event } | null>) => {
        let served = 0;
        for (;;) {
          const request = q.get();
          if (request === null) return served;
          request.reply.put(request.n * 2);
          request.done.set();
          q.taskDone();
          served++;
        }
      },
      [requests],
    );
    const pending = Array.from({ length: 20 }, (_, n) => ({ n, reply: new Queue<number>(), done: new Event() }));
    for (const request of pending) requests.put(request);
    for (const request of pending) {
      assert.equal(request.done.wait(LONG), true);
      assert.equal(request.reply.get({ timeout: LONG }), request.n * 2);
    }
    requests.join();
    requests.put(null);
    server.join();
    assert.equal(server.result, 20);
  });

  it('a queue travels by reference and comes back as the same object', () => {
    const q = new LifoQueue<number>(7);
    const [back] = runThreads<LifoQueue<number>>((queue: LifoQueue<number>) => {
      queue.put(queue.constructor.name === 'LifoQueue' ? queue.maxsize : -1);
      return queue;
    }, [[q]]);
    assert.ok(back === q);
    assert.equal(q.get(), 7);
  });

  it('queues inside queue items, several levels deep', () => {
    const outer = new SimpleQueue<{ inner: Queue<SimpleQueue<string>> }>();
    const inner = new Queue<SimpleQueue<string>>();
    const leaf = new SimpleQueue<string>();
    leaf.put('deep');
    inner.put(leaf);
    outer.put({ inner });
    const [got] = runThreads<string>((q: SimpleQueue<{ inner: Queue<SimpleQueue<string>> }>) => q.get().inner.get().get(), [[outer]]);
    assert.equal(got, 'deep');
  });
});

// ---- PriorityQueue ordering ---------------------------------------------------------------------------

describe('PriorityQueue order', () => {
  function drain<T>(q: PriorityQueue<T>): T[] {
    const out: T[] = [];
    while (!q.empty()) out.push(q.get());
    return out;
  }

  it('numbers, bigints (with numbers), strings by code point and Dates by value', () => {
    const q = new PriorityQueue<number | bigint>();
    for (const x of [5, 3n, -1, 2.5, 10n ** 20n, -Infinity, 0]) q.put(x);
    assert.deepEqual(drain(q), [-Infinity, -1, 0, 2.5, 3n, 5, 10n ** 20n]);
    const s = new PriorityQueue<string>();
    for (const x of ['b', 'a', 'ab', '', '\u{1F600}', '\uFFFF', 'B']) s.put(x);
    // Code point order, as Python: U+FFFF before U+1F600 (UTF-16 order would put it after).
    assert.deepEqual(drain(s), ['', 'B', 'a', 'ab', 'b', '\uFFFF', '\u{1F600}']);
    const d = new PriorityQueue<Date>();
    d.put(new Date(2000));
    d.put(new Date(1000));
    assert.deepEqual(drain(d).map((x) => x.getTime()), [1000, 2000]);
  });

  it('arrays element by element, a shorter prefix first: [priority, data] works', () => {
    const r = new PriorityQueue<unknown[]>();
    for (const x of [[2, 'b'], [1, 'z'], [1, 'a'], [1], [2, 'a', 0]]) r.put(x);
    assert.deepEqual(drain(r), [[1], [1, 'a'], [1, 'z'], [2, 'a', 0], [2, 'b']]);
    const nested = new PriorityQueue<unknown[]>();
    for (const x of [[[1, 2], 'c'], [[1, 1], 'b'], [[0], 'a']]) nested.put(x);
    assert.deepEqual(drain(nested).map((x) => x[1]), ['a', 'b', 'c']);
  });

  it('is stable: equal items come out in insertion order, objects as data included', () => {
    const q = new PriorityQueue<[number, { id: string }]>();
    const ids = ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j'];
    ids.forEach((id, i) => q.put([i % 2, { id }]));
    const out = drain(q).map(([p, { id }]) => `${p}${id}`);
    assert.deepEqual(out, ['0a', '0c', '0e', '0g', '0i', '1b', '1d', '1f', '1h', '1j']);
    const n = new PriorityQueue<number | bigint>();
    n.put(1);
    n.put(1n);
    n.put(true as unknown as number);
    assert.deepEqual(drain(n), [1, 1n, true]);
  });

  it('items that cannot be compared raise TypeError in put, naming them; the queue is unchanged', () => {
    const q = new PriorityQueue<unknown>();
    q.put(1);
    q.put(2);
    assert.throws(() => q.put('x'), { name: 'TypeError', message: /'<' not supported between instances of 'string' and 'number'.*"x".*(1|2)/ });
    assert.throws(() => q.put([1]), { name: 'TypeError', message: /'array' and 'number'/ });
    assert.equal(q.qsize(), 2);
    assert.equal(q.unfinishedTasks, 2);
    assert.deepEqual(drain(q), [1, 2]);
    const o = new PriorityQueue<unknown>();
    o.put({ a: 1 });
    assert.throws(() => o.put({ b: 2 }), { name: 'TypeError', message: /'object' and 'object'/ });
    const t = new PriorityQueue<unknown>();
    t.put([1, 'x']);
    assert.throws(() => t.put([1, 2]), { name: 'TypeError', message: /\[1, 2\].*\[1, "x"\]/ });
    assert.equal(t.qsize(), 1);
  });

  it('orders across threads: 4 threads put shuffled numbers, the order is global', () => {
    const q = new PriorityQueue<number>();
    runThreads(
      (queue: PriorityQueue<number>, offset: number) => {
        for (let i = 0; i < 500; i++) queue.put(((i * 7919) % 500) * 4 + offset);
      },
      [[q, 0], [q, 1], [q, 2], [q, 3]],
    );
    const out = drain(q);
    assert.deepEqual(out, Array.from({ length: 2000 }, (_, i) => i));
  });
});

// ---- async twins ------------------------------------------------------------------------------------

describe('queue async twins', () => {
  it('getAsync waits without blocking the event loop; putAsync waits for room', async () => {
    const q = new Queue<number>(1);
    let ticks = 0;
    const timer = setInterval(() => ticks++, 2);
    const producer = startThread(
      (queue: Queue<number>) => {
        const nap = new Int32Array(new SharedArrayBuffer(4));
        Atomics.wait(nap, 0, 0, 30);
        queue.put(1);
        queue.put(2);
      },
      [q],
    );
    assert.equal(await q.getAsync({ timeout: LONG }), 1);
    assert.equal(await q.getAsync(), 2);
    producer.join();
    clearInterval(timer);
    assert.ok(ticks > 0, 'the event loop ran while getAsync waited');
    await q.putAsync(3);
    const consumer = startThread<number>(afterBlocked, [q as AnyQueue, 'put', 'get', undefined]);
    await q.putAsync(4, { timeout: LONG });
    await consumer.joinAsync();
    assert.ok((consumer.result ?? 0) >= 1);
    assert.equal(q.get(), 4);
  });

  it('async timeouts and nowait fail like the blocking forms; none returns early', async () => {
    const q = new Queue<number>(1);
    await assert.rejects(q.getAsync({ block: false }), QueueEmpty);
    const t0 = performance.now();
    await assert.rejects(q.getAsync({ timeout: 20 }), QueueEmpty);
    assert.ok(since(t0) >= 20);
    await q.putAsync(1);
    await assert.rejects(q.putAsync(2, { block: false }), QueueFull);
    const t1 = performance.now();
    await assert.rejects(q.putAsync(2, { timeout: 20 }), QueueFull);
    assert.ok(since(t1) >= 20);
    await assert.rejects(q.getAsync({ timeout: -1 }), RangeError);
    assert.equal(q.qsize(), 1);
  });

  it('an aborted getAsync takes nothing, an aborted putAsync puts nothing', async () => {
    const q = new Queue<string>(1);
    const controller = new AbortController();
    const pending = q.getAsync({ signal: controller.signal });
    await tick();
    controller.abort(new Error('stop'));
    await assert.rejects(pending, /stop/);
    q.put('kept');
    assert.equal(q.get(), 'kept');
    q.put('full');
    const c2 = new AbortController();
    const blocked = q.putAsync('never', { signal: c2.signal });
    await tick();
    c2.abort(new Error('no'));
    await assert.rejects(blocked, /no/);
    assert.equal(q.qsize(), 1);
    assert.equal(q.get(), 'full');
    await assert.rejects(q.getAsync({ signal: AbortSignal.abort(new Error('early')) }), /early/);
  });

  it('joinAsync resolves true when the tasks are done, false on timeout', async () => {
    const q = new Queue<number>();
    assert.equal(await q.joinAsync(), true);
    q.put(1);
    assert.equal(await q.joinAsync({ timeout: 10 }), false);
    const worker = startThread(
      (queue: Queue<number>) => {
        queue.get();
        queue.taskDone();
      },
      [q],
    );
    assert.equal(await q.joinAsync({ timeout: LONG }), true);
    await worker.joinAsync();
  });

  it('for await yields the items until the queue is shut down and drained', async () => {
    const q = new SimpleQueue<number>();
    const producer = startThread(
      (queue: SimpleQueue<number>) => {
        for (let i = 0; i < 100; i++) queue.put(i);
        queue.shutdown();
      },
      [q],
    );
    const seen: number[] = [];
    for await (const x of q) seen.push(x);
    await producer.joinAsync();
    assert.deepEqual(seen, Array.from({ length: 100 }, (_, i) => i));
  });

  it('shutdown wakes an async getter', async () => {
    const q = new Queue<number>();
    const pending = q.getAsync();
    const closer = startThread<number>(afterBlocked, [q as AnyQueue, 'get', 'shutdown', false]);
    await assert.rejects(pending, QueueShutDown);
    await closer.joinAsync();
    assert.ok((closer.result ?? 0) >= 1);
  });
});

// ---- bad input, representation, memory ------------------------------------------------------------------

describe('queue arguments and representation', () => {
  it('maxsize must be a number', () => {
    assert.throws(() => new Queue('5' as never), { name: 'TypeError', message: /Queue\(maxsize\): maxsize must be a number, got "5"/ });
    assert.throws(() => new PriorityQueue(NaN), { name: 'RangeError', message: /PriorityQueue\(maxsize\): maxsize/ });
    const q = new LifoQueue();
    assert.throws(() => {
      q.maxsize = null as never;
    }, { name: 'TypeError', message: /LifoQueue\.maxsize: maxsize must be a number, got null/ });
    assert.equal(new Queue(-3).full(), false);
    assert.equal(new Queue(Infinity).maxsize, 0);
  });

  it('options must be an object of a boolean block and a number timeout', () => {
    const q = new Queue<number>();
    assert.throws(() => q.get(5 as never), { name: 'TypeError', message: /Queue\.get: expected an options object/ });
    assert.throws(() => q.get({ block: 'no' as never }), { name: 'TypeError', message: /block must be a boolean/ });
    assert.throws(() => q.get({ timeout: NaN }), { name: 'TypeError', message: /timeout must be a number/ });
    assert.throws(() => q.put(1, { timeout: '1' as never }), { name: 'TypeError', message: /Queue\.put: timeout must be a number/ });
    assert.throws(() => q.get({ timeout: 1e300 }), { name: 'RangeError', message: /TIMEOUT_MAX/ });
    assert.equal(q.qsize(), 0, 'a put with bad options put nothing');
  });

  it('an item larger than the heap can hold is refused with a clear error; the queue is unchanged', () => {
    for (const q of [new Queue<unknown>(), new LifoQueue<unknown>(), new PriorityQueue<unknown>(), new SimpleQueue<unknown>()]) {
      q.put(1);
      const huge = new Uint8Array(heapStats().maxBytes + 1);
      assert.throws(() => q.put(huge), (error: Error) => error instanceof HeapExhaustedError && /does not fit in the shared heap/.test(error.message) && /THREADKIT_HEAP_MAX/.test(error.message));
      assert.equal(q.qsize(), 1);
      assert.equal(q.get(), 1);
    }
  });

  it('toString shows the size (and the bound), like CPython repr', () => {
    const q = new Queue<number>(3);
    q.put(1);
    assert.match(String(q), /^<threadkit\.Queue at 0x[0-9a-f]+: qsize=1\/maxsize=3>$/);
    assert.match(String(new LifoQueue()), /^<threadkit\.LifoQueue at 0x[0-9a-f]+: qsize=0\/maxsize=0>$/);
    assert.match(String(new PriorityQueue(2)), /^<threadkit\.PriorityQueue at 0x[0-9a-f]+: qsize=0\/maxsize=2>$/);
    assert.match(String(new SimpleQueue()), /^<threadkit\.SimpleQueue at 0x[0-9a-f]+: qsize=0>$/);
  });

  it('a dropped queue frees its items and the shared objects inside them', async () => {
    await settle();
    const before = heapStats().usedBytes;
    (() => {
      for (const make of [() => new Queue<unknown>(), () => new LifoQueue<unknown>(), () => new PriorityQueue<unknown>(), () => new SimpleQueue<unknown>()]) {
        const q = make();
        for (let i = 0; i < 200; i++) q.put(q instanceof PriorityQueue ? [i, { lock: new Lock(), pad: 'y'.repeat(i * 10) }] : { lock: new Lock(), pad: 'y'.repeat(i * 10) });
        q.put(q instanceof PriorityQueue ? [999, 'z'.repeat(5000)] : 'z'.repeat(5000));
        for (let i = 0; i < 50; i++) q.get();
      }
    })();
    await settle();
    const after = heapStats().usedBytes;
    assert.ok(after - before < 2048, `used bytes grew from ${before} to ${after}`);
  });

  it('shutdown(immediate) drops the items it removes', async () => {
    await settle();
    const before = heapStats().usedBytes;
    const q = new Queue<unknown>();
    for (let i = 0; i < 100; i++) q.put({ lock: new Lock(), big: 'q'.repeat(2000) });
    q.shutdown(true);
    await settle();
    const after = heapStats().usedBytes;
    // The queue itself (a block and no storage) is all that is left.
    assert.ok(after - before <= 1024, `used bytes grew from ${before} to ${after}`);
    assert.equal(q.qsize(), 0);
  });
});

const gc = (globalThis as { gc?: () => void }).gc;

/**
 * Collects garbage and lets the finalizers run, until the heap stops shrinking. At least three
 * rounds: objects that were put into a WeakRef during the current job (every shared object that
 * was encoded) survive a gc() in that job, so the first round may free nothing.
 */
async function settle(): Promise<void> {
  let last = -1;
  for (let round = 0; round < 20 && (round < 3 || heapStats().usedBytes !== last); round++) {
    last = heapStats().usedBytes;
    gc?.();
    await tick();
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}
