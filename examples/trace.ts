/**
 * Timelines: record a real run and look at it. Two producers share a Lock around a counter and
 * feed a bounded Queue; a consumer takes the items and hands the slow ones to a pool. The trace
 * shows each thread as a track, every wait on the lock with the thread that held it, an arrow
 * from each release or put to the wait it ended, the pool's tasks, and the queue's depth.
 *
 * Run: node --import tsx examples/trace.ts   (then open the printed .html in a browser, or the
 * .json in https://ui.perfetto.dev; or trace any program: THREADKIT_TRACE=out node app.js)
 */

import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Barrier, Lock, Queue, SharedValue, Thread, ThreadPoolExecutor, isMainThread, moduleFunction, sleep, startTrace, stopTrace } from 'threadkit';

/** Puts `count` items, each after bumping the shared counter under the lock (held a little while). */
export function produce(lock: Lock, counter: SharedValue<'int32'>, queue: Queue<number>, count: number, both: Barrier): void {
  both.wait(); // (both producers running: they overlap on the lock)
  for (let i = 0; i < count; i++) {
    lock.acquire();
    try {
      counter.value += 1;
      sleep(1); // holding the lock: the other producer waits for it
    } finally {
      lock.release();
    }
    queue.put(i);
  }
}

/** A slow step a pool thread does for some items. */
export function digest(item: number): number {
  sleep(3);
  return item * 2;
}

export async function main(): Promise<string[]> {
  const lines: string[] = [];
  startTrace();
  const lock = new Lock();
  const counter = new SharedValue('int32');
  const queue = new Queue<number>(4);
  const both = new Barrier(2);
  const producers = ['producer-1', 'producer-2'].map((name) => new Thread({ name, target: moduleFunction(import.meta.url, 'produce', produce), args: [lock, counter, queue, 20, both] }));
  const pool = new ThreadPoolExecutor({ maxWorkers: 2, threadNamePrefix: 'digest' });
  for (const p of producers) p.start();
  const digests = [];
  for (let i = 0; i < 40; i++) {
    const item = await queue.getAsync();
    if (item % 5 === 0) digests.push(pool.submit(moduleFunction(import.meta.url, 'digest', digest), item));
  }
  await Promise.all(digests);
  for (const p of producers) await p.joinAsync();
  pool.shutdown();
  const trace = stopTrace();

  const json = trace.toJSON();
  const spans = json.traceEvents.filter((e) => e.ph === 'X');
  const tracks = json.traceEvents.filter((e) => e.ph === 'M' && e.name === 'thread_name').map((e) => String(e.args?.name));
  const lockWaits = spans.filter((e) => e.cat === 'wait' && e.name === 'Lock');
  const holders = new Set(lockWaits.map((e) => String(e.args?.holder)));
  lines.push(`counter: ${counter.value} (2 producers x 20)`);
  lines.push(`traced ${trace.events} events on ${tracks.length} threads: ${tracks.sort().join(', ')}`);
  lines.push(`waits on the lock: ${lockWaits.length > 0 ? 'yes' : 'none'}, each naming its holder (${[...holders].sort().join(' or ')})`);
  lines.push(`hand-off arrows (a release, put or set to the wait it ended): ${json.traceEvents.some((e) => e.ph === 's') ? 'yes' : 'none'}`);
  lines.push(`pool tasks: ${spans.filter((e) => e.cat === 'task').length} spans named ${[...new Set(spans.filter((e) => e.cat === 'task').map((e) => e.name))].join(', ')}`);
  lines.push(`queue depth counter: ${json.traceEvents.some((e) => e.ph === 'C' && /^queue at/.test(e.name)) ? 'yes' : 'none'}`);
  const out = join(tmpdir(), 'threadkit-example-trace');
  trace.writeJSON(`${out}.json`);
  trace.writeHTML(`${out}.html`, 'threadkit example: producers, a lock, a queue, a pool');
  lines.push(`written: ${out}.html (open it in a browser) and ${out}.json (ui.perfetto.dev)`);
  return lines;
}

if (isMainThread && process.argv[1] === fileURLToPath(import.meta.url)) {
  for (const line of await main()) console.log(line);
}
