/**
 * Semaphore: at most N threads inside at once (a connection pool, a rate limit). Eight threads
 * each enter a BoundedSemaphore(3) several times; a SharedValue counts who is inside, and we
 * report the most ever seen together. A BoundedSemaphore also catches a release too many.
 */

import { fileURLToPath } from 'node:url';
import { BoundedSemaphore, SharedValue, Thread, isMainThread } from 'threadkit';

export const SLOTS = 3;

/** Enters `rounds` times, staying inside ~5 ms each time; tracks the concurrency it sees. */
export function useSlot(slots: BoundedSemaphore, inside: SharedValue<'int32'>, most: SharedValue<'int32'>, rounds: number): number {
  for (let r = 0; r < rounds; r++) {
    using _ = slots.hold(); // `with slots:`
    const now = inside.add(1) + 1; // add() returns the previous value
    for (let seen = most.load(); now > seen; seen = most.load()) if (most.compareExchange(seen, now) === seen) break;
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 5); // "use the connection"
    inside.sub(1);
  }
  return rounds;
}

export function main(): string[] {
  const lines: string[] = [];
  const slots = new BoundedSemaphore(SLOTS);
  const inside = new SharedValue('int32');
  const most = new SharedValue('int32');
  const threads = Array.from({ length: 8 }, () => new Thread<number>({ target: { module: import.meta.url, name: 'useSlot' }, args: [slots, inside, most, 10] }));
  threads.forEach((t) => t.start());
  threads.forEach((t) => t.join());

  const entries = threads.reduce((n, t) => n + (t.result ?? 0), 0);
  lines.push(`8 threads entered ${entries} times through a BoundedSemaphore(${SLOTS})`);
  lines.push(`most threads inside at once: ${most.value} (never more than ${SLOTS})`);
  lines.push(`inside now: ${inside.value}, semaphore value back to ${slots.value}`);
  try {
    slots.release();
  } catch (error) {
    lines.push(`one release too many: ${(error as Error).name}: ${(error as Error).message}`);
  }
  return lines;
}

if (isMainThread && process.argv[1] === fileURLToPath(import.meta.url)) {
  for (const line of main()) console.log(line);
}
