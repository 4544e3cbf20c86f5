/**
 * CPython's last details and the first things a newcomer uses: sleep, nativeId right after
 * start(), names, enumerate() order, the excepthook's argument, error messages.
 */

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { captureStderr } from './fixtures/futures-helpers.js';
import { Event, QueueEmpty, QueueFull, QueueShutDown, Thread, currentThread, enumerate, excepthook, getIdent, getNativeId, mainThread, setExcepthook, sleep, sleepAsync, type ExceptHookArgs } from 'threadkit';

describe('sleep and sleepAsync', () => {
  it('sleep(ms) blocks the calling thread at least that long, main thread included', () => {
    for (const ms of [0, 1, 15, 40]) {
      const t0 = performance.now();
      sleep(ms);
      assert.ok(performance.now() - t0 >= ms, `sleep(${ms}) returned early`);
    }
  });

  it('sleep in a thread', () => {
    const t = new Thread<number>({
      target: async () => {
        const { sleep } = await import('threadkit');
        const t0 = performance.now();
        sleep(30);
        return performance.now() - t0;
      },
    });
    t.start();
    t.join();
    assert.ok((t.result ?? 0) >= 30);
  });

  it('sleepAsync resolves after at least ms, and leaves the event loop free meanwhile', async () => {
    let ticks = 0;
    const timer = setInterval(() => ticks++, 1);
    const t0 = performance.now();
    await sleepAsync(40);
    clearInterval(timer);
    assert.ok(performance.now() - t0 >= 40);
    assert.ok(ticks > 0, 'the event loop ran while it slept');
  });

  it('sleepAsync rejects with the signal reason, at once for an aborted signal', async () => {
    const controller = new AbortController();
    const sleeping = sleepAsync(10_000, { signal: controller.signal });
    setTimeout(() => controller.abort(new Error('woken')), 10);
    await assert.rejects(sleeping, /woken/);
    await assert.rejects(sleepAsync(10, { signal: AbortSignal.abort(new Error('already')) }), /already/);
  });

  it('bad lengths: RangeError for negative (as CPython), TypeError for non-numbers', async () => {
    assert.throws(() => sleep(-1), { name: 'RangeError', message: /must be non-negative, got -1/ });
    assert.throws(() => sleep('5' as never), { name: 'TypeError', message: /expected a number of milliseconds, got "5"/ });
    assert.throws(() => sleep(NaN), { name: 'TypeError' });
    await assert.rejects(sleepAsync(-5), { name: 'RangeError' });
  });
});

describe('CPython details', () => {
  it('nativeId is a number as soon as start() returns (new and warm isolates), and is the thread\'s own', () => {
    for (let i = 0; i < 3; i++) {
      const go = new Event();
      const t = new Thread<number>({
        args: [go],
        target: async (go: Event) => {
          go.wait();
          return (await import('threadkit')).getNativeId();
        },
      });
      t.start();
      const id = t.nativeId;
      assert.equal(typeof id, 'number', 'nativeId right after start()');
      assert.notEqual(id, getNativeId());
      go.set();
      t.join();
      assert.equal(t.result, id);
    }
  });

  it('enumerate() lists MainThread first, then threads in start order', () => {
    const gate = new Event();
    const threads = [0, 1, 2].map((i) => new Thread({ name: `ordered-${i}`, args: [gate], target: (gate: Event) => void gate.wait() }));
    for (const t of threads) t.start();
    try {
      const names = enumerate().map((t) => t.name);
      assert.equal(names[0], 'MainThread');
      const ours = names.filter((n) => n.startsWith('ordered-'));
      assert.deepEqual(ours, ['ordered-0', 'ordered-1', 'ordered-2']);
    } finally {
      gate.set();
      for (const t of threads) t.join();
    }
    assert.equal(enumerate()[0], mainThread());
  });

  it('the excepthook argument unpacks as a tuple, and a hook called with no thread names the caller by ident', () => {
    let unpacked: unknown[] = [];
    setExcepthook((args) => {
      const [excType, excValue, excTraceback, thread] = args;
      unpacked = [excType, excValue, typeof excTraceback, (thread as Thread | undefined)?.name];
    });
    try {
      const t = new Thread({ name: 'unpacked', target: () => {
        throw new RangeError('boom');
      } });
      t.start();
      t.join();
    } finally {
      setExcepthook(undefined);
    }
    assert.equal(unpacked[0], 'RangeError');
    assert.ok(unpacked[1] instanceof RangeError);
    assert.equal(unpacked[2], 'string');
    assert.equal(unpacked[3], 'unpacked');
    const text = captureStderr(() => excepthook({ excType: 'Error', excValue: new Error('x'), excTraceback: 'Error: x', thread: undefined } as ExceptHookArgs));
    assert.equal(text, `Exception in thread ${getIdent()}:\nError: x\n`);
    assert.equal(currentThread().name, 'MainThread');
  });

  it('map({ timeout }) names the timeout it was given, not the time that was left', async () => {
    const { ThreadPoolExecutor, TimeoutError } = await import('threadkit');
    const pool = new ThreadPoolExecutor({ maxWorkers: 1 });
    try {
      const results = pool.map(
        async (ms: number) => {
          (await import('threadkit')).sleep(ms);
          return ms;
        },
        [0, 2_000],
        { timeout: 300 },
      );
      assert.equal(results.next().value, 0);
      assert.throws(() => results.next(), (error: unknown) => error instanceof TimeoutError && error.message === 'ThreadPoolExecutor.map: a result was not ready within the timeout of 300 ms given to map()');
    } finally {
      pool.shutdown({ cancelFutures: true });
    }
  });

  it('queue errors have messages', () => {
    assert.equal(new QueueEmpty().message, 'the queue is empty');
    assert.equal(new QueueFull().message, 'the queue is full');
    assert.equal(new QueueShutDown().message, 'the queue is shut down');
  });
});
