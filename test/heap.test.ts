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
    const before = heapStats();
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
    const after = heapStats();
    // (The two new isolates, kept warm for reuse, keep their mailbox and their held-references
    // ledger: 256 bytes each of this allowance.)
    assert.ok(after.usedBytes - before.usedBytes < 4096 + 512, `used bytes grew from ${before.usedBytes} to ${after.usedBytes}`);
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

describe('memory freed at one size serves every size (buddy allocator)', () => {
  it('bursts of every size through a 16 MiB heap: each drains back, and afterwards Locks fill nearly the whole heap', async () => {
    const { runNode, show } = await import('./fixtures/run-node.js');
    const run = await runNode('heap-bursts.ts', [], { nodeArgs: ['--expose-gc'], timeoutMs: 120_000, env: { THREADKIT_HEAP_MAX: '16m' } });
    assert.equal(run.code, 0, show(run));
    const steps = new Map<string, { used: number; max: number; items?: number; message?: string }>();
    for (const line of run.stdout.trim().split('\n')) {
      const step = JSON.parse(line) as { step: string; used: number; max: number; items?: number; message?: string };
      steps.set(step.step, step);
    }
    const max = 16 * 1024 * 1024;
    for (const chars of [8, 100, 1_000, 10_000, 100_000, 1_000_000, 3]) {
      const full = steps.get(`full of ${chars}-char items`)!;
      assert.ok(full.items! > 0, `no ${chars}-char item fit\n${show(run)}`);
      assert.match(full.message!, /threadkit heap exhausted: no room for a block of \d+ bytes/);
      // Large items fill the heap; small ones stop when the queue's ring cannot double.
      if (chars >= 10_000) assert.ok(full.used > 0.85 * max, `${chars}-char items filled only ${full.used} bytes\n${show(run)}`);
      assert.ok(steps.get(`drained ${chars}-char items`)!.used < 64 * 1024, show(run));
    }
    const locks = steps.get('full of Locks')!;
    assert.ok(locks.used > 0.99 * max, `Locks filled only ${locks.used} of ${max} bytes after the bursts\n${show(run)}`);
    assert.match(locks.message!, /no room for a block of 16 bytes/);
    assert.equal(steps.get('Locks dropped')!.used, 0, show(run));
    assert.equal(steps.get('65k Locks made and dropped')!.used, 0, show(run));
    assert.ok(steps.get('full of 1000-char items again')!.items! >= steps.get('full of 1000-char items')!.items!, show(run));
  });
});
