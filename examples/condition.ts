/**
 * Condition: the classic wait/notify. Consumers wait, holding the condition's lock, until a
 * predicate about shared state is true (`waitFor` re-checks it after every wake-up); the
 * producer changes the state under the same lock and calls notify().
 */

import { fileURLToPath } from 'node:url';
import { Condition, SharedValue, Thread, isMainThread } from 'threadkit';

/** A consumer: takes `want` items from the shared stock, waiting whenever it is empty. */
export function consume(cond: Condition, stock: SharedValue<'int32'>, want: number): { took: number; waited: number } {
  let waited = 0;
  for (let took = 0; took < want; took++) {
    using _ = cond.hold(); // `with cond:`
    if (stock.value === 0) waited++;
    cond.waitFor(() => stock.value > 0); // releases the lock while it sleeps
    stock.value -= 1;
  }
  return { took: want, waited };
}

/** The producer: adds `count` items one at a time, notifying one waiter each time. */
export function produce(cond: Condition, stock: SharedValue<'int32'>, count: number): number {
  for (let i = 0; i < count; i++) {
    if (i % 10 === 0) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 2); // a slow producer
    using _ = cond.hold();
    stock.value += 1;
    cond.notify();
  }
  return count;
}

export function main(): string[] {
  const lines: string[] = [];
  const cond = new Condition(); // over a new RLock
  const stock = new SharedValue('int32');

  // A predicate that never becomes true: waitFor returns its last value when the timeout runs out.
  cond.acquire();
  lines.push(`waitFor(stock > 0, 50 ms) on an empty stock: ${cond.waitFor(() => stock.value > 0, 50)}`);
  cond.release();
  try {
    cond.wait(10);
  } catch (error) {
    lines.push(`wait() without holding the lock: ${(error as Error).name}: ${(error as Error).message}`);
  }

  const here = import.meta.url;
  const consumers = [1, 2, 3].map((i) => new Thread<{ took: number; waited: number }>({ name: `consumer-${i}`, target: { module: here, name: 'consume' }, args: [cond, stock, 40] }));
  const producer = new Thread<number>({ name: 'producer', target: { module: here, name: 'produce' }, args: [cond, stock, 120] });
  consumers.forEach((t) => t.start());
  producer.start();
  producer.join();
  consumers.forEach((t) => t.join());

  lines.push(`producer added ${producer.result} items`);
  for (const t of consumers) lines.push(`${t.name} took ${t.result?.took} items (found the stock empty and waited ${t.result?.waited} times)`);
  lines.push(`stock left: ${stock.value}`);
  return lines;
}

if (isMainThread && process.argv[1] === fileURLToPath(import.meta.url)) {
  for (const line of main()) console.log(line);
}
