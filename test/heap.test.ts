/**
 * The shared heap: reference counting frees dropped objects, so creating and dropping a
 * million Locks and Events runs in bounded memory.
 */

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setImmediate as tick } from 'node:timers/promises';
import { Condition, Event, Lock, heapStats } from 'threadkit';
import { runThreads } from './helpers.js';

const gc = (globalThis as { gc?: () => void }).gc;

/**
 * Collects garbage and lets the finalizers run, until the heap's use has stayed the same for
 * three rounds in a row (one quiet round can just mean the finalizers have not run yet).
 */
async function settle(): Promise<void> {
  let last = -1;
  let quiet = 0;
  for (let round = 0; round < 50 && quiet < 3; round++) {
    gc?.();
    await tick();
    await new Promise((resolve) => setTimeout(resolve, 5));
    const used = heapStats().usedBytes;
    quiet = used === last ? quiet + 1 : 0;
    last = used;
  }
}

describe('shared heap', () => {
  it('runs with --expose-gc (the memory tests need it)', () => {
    assert.equal(typeof gc, 'function');
  });

  it('1,000,000 Locks and Events created and dropped: used bytes and RSS return to baseline', async () => {
    await settle();
    const before = heapStats();
    const rssBefore = process.memoryUsage().rss;
    let rssPeak = 0;
    for (let batch = 0; batch < 100; batch++) {
      for (let i = 0; i < 5_000; i++) {
        const lock = new Lock();
        lock.acquire();
        lock.release();
        new Event().set();
      }
      // Let finalizers run between batches, as a real program's event loop would.
      if (batch % 10 === 9) {
        await settle();
        rssPeak = Math.max(rssPeak, process.memoryUsage().rss);
      }
    }
    await settle();
    const after = heapStats();
    assert.ok(after.usedBytes - before.usedBytes < 64 * 1024, `used bytes grew from ${before.usedBytes} to ${after.usedBytes}`);
    assert.ok(after.liveBlocks - before.liveBlocks < 1000, `live blocks grew from ${before.liveBlocks} to ${after.liveBlocks}`);
    // RSS: allow for V8's own heap noise, but not for a leak (1M blocks would be >16 MB).
    assert.ok(rssPeak - rssBefore < 64 * 1024 * 1024, `rss grew by ${((rssPeak - rssBefore) / 1048576).toFixed(1)} MiB`);
  });

  it('objects sent to threads are freed once no thread holds them', async () => {
    await settle();
    const before = heapStats().usedBytes;
    {
      const cond = new Condition(new Lock());
      const event = new Event();
      runThreads((c: Condition, e: Event) => {
        c.acquire();
        e.set();
        c.release();
        return e; // comes back: the same object
      }, [[cond, event], [cond, event]]);
    }
    await settle();
    const after = heapStats().usedBytes;
    assert.ok(after - before < 4096, `used bytes grew from ${before} to ${after}`);
  });

  it('the heap grows on demand and every thread sees the new memory', () => {
    const big: Lock[] = [];
    const start = heapStats().mappedBytes;
    // Enough Locks to pass the initial size (16 bytes each).
    while (heapStats().mappedBytes === start) big.push(new Lock());
    const last = big[big.length - 1]!;
    last.acquire();
    const [seen] = runThreads<boolean>((l: Lock) => l.locked(), [[last]]);
    assert.equal(seen, true);
    last.release();
  });
});
