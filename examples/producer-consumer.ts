/**
 * Producer/consumer with a bounded Queue: producers block in put() while the queue is full,
 * consumers block in get() while it is empty. Consumers call taskDone() per item so that
 * queue.join() can wait until every item has been processed; shutdown() then tells the
 * consumers to stop (get() raises QueueShutDown once the queue is drained).
 */

import { fileURLToPath } from 'node:url';
import { Queue, QueueShutDown, SharedValue, Thread, isMainThread } from 'threadkit';

const MAXSIZE = 5;

/** A producer: puts `count` numbers starting at `first`; records the largest qsize it saw. */
export function produce(queue: Queue<number>, first: number, count: number, peak: SharedValue<'int32'>): number {
  for (let i = 0; i < count; i++) {
    queue.put(first + i); // blocks while the queue holds MAXSIZE items
    const size = queue.qsize();
    for (let seen = peak.load(); size > seen; seen = peak.load()) if (peak.compareExchange(seen, size) === seen) break;
  }
  return count;
}

/** A consumer: takes items until the queue is shut down; returns how many it took and their sum. */
export function consume(queue: Queue<number>): { taken: number; sum: number } {
  let taken = 0;
  let sum = 0;
  for (;;) {
    let item: number;
    try {
      item = queue.get(); // blocks while the queue is empty
    } catch (error) {
      if (error instanceof QueueShutDown) return { taken, sum };
      throw error;
    }
    sum += item; // "process" the item
    taken++;
    queue.taskDone();
  }
}

export function main(): string[] {
  const lines: string[] = [];
  const queue = new Queue<number>(MAXSIZE);
  const peak = new SharedValue('int32');
  const here = import.meta.url;
  const consumers = [1, 2, 3].map((i) => new Thread<{ taken: number; sum: number }>({ name: `consumer-${i}`, target: { module: here, name: 'consume' }, args: [queue] }));
  const producers = [0, 1].map((i) => new Thread<number>({ name: `producer-${i + 1}`, target: { module: here, name: 'produce' }, args: [queue, i * 100, 50, peak] }));
  [...consumers, ...producers].forEach((t) => t.start());

  producers.forEach((t) => t.join());
  queue.join(); // every item put has been taken and marked done
  lines.push(`producers put ${producers.reduce((n, t) => n + (t.result ?? 0), 0)} items; queue.join() returned with unfinishedTasks=${queue.unfinishedTasks}`);
  queue.shutdown(); // consumers' next get() raises QueueShutDown
  consumers.forEach((t) => t.join());

  for (const t of consumers) lines.push(`${t.name} took ${t.result?.taken} items`);
  const taken = consumers.reduce((n, t) => n + (t.result?.taken ?? 0), 0);
  const sum = consumers.reduce((n, t) => n + (t.result?.sum ?? 0), 0);
  const expected = [0, 100].reduce((s, first) => s + 50 * first + (49 * 50) / 2, 0);
  lines.push(`consumed ${taken} items in all, sum ${sum} (expected ${expected})`);
  lines.push(`the queue never held more than ${peak.value} items (maxsize ${MAXSIZE})`);
  try {
    queue.put(1);
  } catch (error) {
    lines.push(`put() after shutdown: ${(error as Error).name}`);
  }
  return lines;
}

if (isMainThread && process.argv[1] === fileURLToPath(import.meta.url)) {
  for (const line of main()) console.log(line);
}
