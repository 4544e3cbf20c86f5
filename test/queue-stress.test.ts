/**
 * Queue stress and memory: many threads, many items, blocking, timed and non-blocking calls
 * mixed at random. The invariants are checked at the end: every item consumed exactly once (a
 * shared tally per item, incremented atomically), join() returns, nothing is left in the queue,
 * and the shared heap's used bytes (and the process RSS) come back to where they started.
 */

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setImmediate as tick } from 'node:timers/promises';
import { LifoQueue, PriorityQueue, Queue, Semaphore, SharedValue, SimpleQueue, type Thread, configureThreads, heapStats, sharedArray } from 'threadkit';
import { startThread } from './helpers.js';

// A pooled isolate keeps the wrappers its last thread received until it collects garbage or
// idles out; isolates that end with their thread give every reference back at once, which is
// what "the heap comes back to its baseline" can be checked against.
configureThreads({ keepIdleMs: 0 });

const gc = (globalThis as { gc?: () => void }).gc;

/**
 * Collects garbage and lets the finalizers run, until the heap stops shrinking (at least three
 * rounds: an object put into a WeakRef during the current job survives a gc() in that job).
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

/**
 * Settles until the heap's used bytes are within `slack` of `baseline` (the isolates of ended
 * threads release what they held as they exit, a little after join() returns), at most LONG ms;
 * returns the used bytes reached.
 */
async function settleTo(baseline: number, slack: number): Promise<number> {
  const deadline = performance.now() + LONG;
  for (;;) {
    await settle();
    const used = heapStats().usedBytes;
    if (used - baseline < slack || performance.now() > deadline) return used;
  }
}

/** A bound for waits that must succeed: a bug shows as a failed assertion, not a hung test. */
const LONG = 10_000;

/**
 * Settles until the used bytes have not changed for 100 ms (the isolates of ended threads have
 * exited and released what they held), at most LONG ms. For baselines: a baseline taken too
 * early is only too high, which makes the check after a run more lenient, never flaky.
 */
async function settleQuiet(): Promise<void> {
  const deadline = performance.now() + LONG;
  let last = -1;
  let since = performance.now();
  while (performance.now() < deadline) {
    await settle();
    const used = heapStats().usedBytes;
    if (used !== last) {
      last = used;
      since = performance.now();
    } else if (performance.now() - since >= 100) {
      return;
    }
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

function joinAll(threads: Thread[]): void {
  for (const t of threads) t.join();
}

/**
 * Producer (self-contained): puts the values [first, first + count) as ints, strings `v<n>` or
 * objects `{ v: n }` by value; one put in 8 is a putNowait and one in 8 a put with a random
 * timeout under 1 ms, each retried until it goes through. Returns how many attempts failed.
 */
const produce = (q: Queue<unknown>, first: number, count: number, seed: number): number => {
  let rnd = seed;
  let failed = 0;
  const nap = new Int32Array(new SharedArrayBuffer(4));
  for (let v = first; v < first + count; v++) {
    const item = v % 3 === 0 ? v : v % 3 === 1 ? `v${v}` : { v, tag: 'x' };
    rnd = (rnd * 1103515245 + 12345) & 0x7fffffff;
    const how = rnd & 7;
    for (;;) {
      try {
        if (how === 0) q.putNowait(item);
        else if (how === 1) q.put(item, { timeout: (rnd % 100) / 100 });
        else q.put(item);
        break;
      } catch (error) {
        if ((error as Error).name !== 'QueueFull') throw error;
        failed++;
        if (how === 0) Atomics.wait(nap, 0, 0, 0.02);
      }
    }
  }
  return failed;
};

/**
 * Consumer (self-contained): gets until it receives null, with getNowait, timed and blocking
 * gets mixed like the producers; tallies each value (atomically) and calls taskDone per item.
 */
const consume = (q: Queue<unknown>, tally: Uint8Array, sum: SharedValue<'float64'>, seed: number, taskDone: boolean): number => {
  let rnd = seed;
  let got = 0;
  let total = 0;
  const nap = new Int32Array(new SharedArrayBuffer(4));
  for (;;) {
    rnd = (rnd * 1103515245 + 12345) & 0x7fffffff;
    const how = rnd & 7;
    let item: unknown;
    for (;;) {
      try {
        item = how === 0 ? q.getNowait() : how === 1 ? q.get({ timeout: (rnd % 100) / 100 }) : q.get();
        break;
      } catch (error) {
        if ((error as Error).name !== 'QueueEmpty') throw error;
        if (how === 0) Atomics.wait(nap, 0, 0, 0.02);
      }
    }
    if (item === null) {
      if (taskDone) q.taskDone();
      sum.add(total);
      return got;
    }
    const v = typeof item === 'number' ? item : typeof item === 'string' ? Number(item.slice(1)) : (item as { v: number }).v;
    Atomics.add(tally, v, 1);
    total += v;
    got++;
    if (taskDone) q.taskDone();
  }
};

/** 4 producers and 4 consumers through `q`; checks every invariant. */
function runStress(q: Queue<unknown> | SimpleQueue<unknown>, total: number, taskDone: boolean): void {
  const producers = 4;
  const consumers = 4;
  const tally = sharedArray(Uint8Array, total);
  const sum = new SharedValue('float64');
  const per = total / producers;
  const p = Array.from({ length: producers }, (_, i) => startThread<number>(produce, [q, i * per, per, 17 + i]));
  const c = Array.from({ length: consumers }, (_, i) => startThread<number>(consume, [q, tally, sum, 91 + i, taskDone]));
  joinAll(p);
  if (taskDone) {
    // Every item put so far is got and marked done before join() returns.
    (q as Queue<unknown>).join();
    assert.equal(tally.reduce((a, b) => a + b, 0), total, 'join() returned before every item was processed');
  }
  for (let i = 0; i < consumers; i++) q.put(null);
  joinAll(c);
  if (taskDone) {
    (q as Queue<unknown>).join();
    assert.equal((q as Queue<unknown>).unfinishedTasks, 0);
  }
  assert.equal(c.reduce((a, t) => a + (t.result ?? 0), 0), total, 'items consumed');
  const twice = tally.findIndex((n) => n !== 1);
  assert.equal(twice, -1, `item ${twice} was consumed ${tally[twice]} times`);
  assert.equal(sum.value, (total * (total - 1)) / 2, 'checksum');
  assert.equal(q.qsize(), 0);
  assert.equal(q.empty(), true);
}

/** The same with a PriorityQueue: numbers only (the generic producer mixes kinds that do not compare). */
function runPriorityStress(total: number): void {
  const q = new PriorityQueue<number | null>(100);
  const tally = sharedArray(Uint8Array, total);
  const sum = new SharedValue('float64');
  const per = total / 4;
  const p = Array.from({ length: 4 }, (_, i) =>
    startThread(
      (queue: PriorityQueue<number>, first: number, count: number) => {
        for (let v = first; v < first + count; v++) {
          for (;;) {
            try {
              queue.put(v, { timeout: 0.5 });
              break;
            } catch (error) {
              if ((error as Error).name !== 'QueueFull') throw error;
            }
          }
        }
      },
      [q, i * per, per],
    ),
  );
  const c = Array.from({ length: 4 }, () =>
    startThread<number>(
      (queue: PriorityQueue<number | null>, t: Uint8Array, s: SharedValue<'float64'>) => {
        let got = 0;
        let sumHere = 0;
        for (;;) {
          const v = queue.get();
          queue.taskDone();
          if (v === null) break;
          Atomics.add(t, v, 1);
          sumHere += v;
          got++;
        }
        s.add(sumHere);
        return got;
      },
      [q, tally, sum],
    ),
  );
  joinAll(p);
  q.join();
  // null does not compare with numbers (nor with null): one sentinel at a time, each put once
  // the queue is empty and the previous one was taken and marked done.
  for (let i = 0; i < 4; i++) {
    q.put(null);
    q.join();
  }
  joinAll(c);
  assert.equal(c.reduce((a, t) => a + (t.result ?? 0), 0), total);
  assert.equal(tally.findIndex((n) => n !== 1), -1);
  assert.equal(sum.value, (total * (total - 1)) / 2);
  assert.equal(q.qsize(), 0);
}

// Memory checks: each thread's isolate exits when the thread ends and releases what it held,
// instead of idling (warm, for reuse) with that garbage until it collects.
configureThreads({ keepIdleMs: 0 });

describe('queue stress', () => {
  it('runs with --expose-gc (the memory checks need it)', () => {
    assert.equal(typeof gc, 'function');
  });

  it('Queue(1000): 4 producers x 4 consumers, 250k items with nowait and timeouts mixed in; join() returns; the heap comes back', async () => {
    // The first threads of the process create lasting state (the thread table…): not a leak.
    runStress(new Queue(1000), 4000, true);
    await settleQuiet();
    const before = heapStats().usedBytes;
    runStress(new Queue(1000), 250_000, true);
    const after = await settleTo(before, 8192);
    assert.ok(after - before < 8192, `used bytes grew from ${before} to ${after}`);
  });

  it('SimpleQueue: 4 producers x 4 consumers, 250k items', async () => {
    await settleQuiet();
    const before = heapStats().usedBytes;
    runStress(new SimpleQueue(), 250_000, false);
    const after = await settleTo(before, 8192);
    assert.ok(after - before < 8192, `used bytes grew from ${before} to ${after}`);
  });

  it('LifoQueue(100) and PriorityQueue(100): 4 producers x 4 consumers, 40k items each', async () => {
    await settleQuiet();
    const before = heapStats().usedBytes;
    runStress(new LifoQueue(100), 40_000, true);
    runPriorityStress(40_000);
    const after = await settleTo(before, 8192);
    assert.ok(after - before < 8192, `used bytes grew from ${before} to ${after}`);
  });
});

describe('queue memory', () => {
  /** One producer thread → one consumer thread; the producer stays at most 2 windows ahead. */
  function stream(q: SimpleQueue<number> | Queue<number>, n: number, window: number): number {
    const ahead = new Semaphore(2);
    const consumer = startThread<number>(
      (queue: SimpleQueue<number>, count: number, w: number, credit: Semaphore) => {
        let sum = 0;
        for (let i = 0; i < count; i++) {
          sum += queue.get();
          if (i % w === w - 1) credit.release();
        }
        return sum;
      },
      [q, n, window, ahead],
    );
    const producer = startThread(
      (queue: SimpleQueue<number>, count: number, w: number, credit: Semaphore) => {
        for (let i = 0; i < count; i++) {
          if (i % w === 0) credit.acquire();
          queue.put(i & 0xffff);
        }
      },
      [q, n, window, ahead],
    );
    producer.join();
    consumer.join();
    return consumer.result ?? -1;
  }

  function expected(n: number): number {
    const full = Math.floor(n / 65536);
    const rest = n % 65536;
    return full * ((65536 * 65535) / 2) + (rest * (rest - 1)) / 2;
  }

  it('10 million small items through a SimpleQueue and through a Queue(10000): heap and RSS back to baseline', async () => {
    // Warm up: the isolates the threads run on stay in the pool, so the baseline includes them.
    assert.equal(stream(new SimpleQueue<number>(), 100_000, 65_536), expected(100_000));
    await settleQuiet();
    const before = heapStats();
    const rssBefore = process.memoryUsage().rss;
    const n = 10_000_000;
    assert.equal(stream(new SimpleQueue<number>(), n, 65_536), expected(n));
    assert.equal(stream(new Queue<number>(10_000), n, 1 << 30), expected(n));
    await settleTo(before.usedBytes, 8192);
    const after = heapStats();
    const rssAfter = process.memoryUsage().rss;
    assert.ok(after.usedBytes - before.usedBytes < 8192, `used bytes grew from ${before.usedBytes} to ${after.usedBytes}`);
    assert.ok(after.liveBlocks - before.liveBlocks < 16, `live blocks grew from ${before.liveBlocks} to ${after.liveBlocks}`);
    // The ring stayed small (the producer is at most two windows ahead: 1 MiB of records, ~4 MiB
    // of blocks while it doubles its way there), so the shared heap did not grow much: 20 million
    // items leaked or buffered would be 160 MB of records at least.
    assert.ok(after.topBytes - before.topBytes < 16 * 1024 * 1024, `the heap's high-water mark grew by ${after.topBytes - before.topBytes} bytes`);
    // Allow V8's own heap noise (and the threads' isolates, gone by now or not).
    const growth = rssAfter - rssBefore;
    assert.ok(growth < 64 * 1024 * 1024, `rss grew by ${(growth / 1048576).toFixed(1)} MiB`);
  });
});
