/**
 * Kill safety: a pool task's isolate may be terminated by its owner (`killAfter`,
 * futures/task-stopper.ts), and V8 stops it wherever it is. It must never stop inside one of
 * threadkit's internal locked sections (a heap allocation, a queue's lock, a future's state
 * change, the thread registry): that lock would stay held for every other thread. So each such
 * section is bracketed here, and the owner terminates only a thread that is outside all of them.
 *
 * The protocol (a Dekker pair, seq-cst on both sides): the thread stores W_INSIDE (its depth of
 * sections) before it takes the lock, then reads W_KILL_TASK; the owner marks W_KILL_TASK
 * negative (its decision), then reads W_INSIDE, and terminates only when it is 0. Either the
 * owner sees the thread inside (and waits for it to leave), or the thread sees the decision
 * before it takes anything, and waits to be terminated holding nothing. A thread that leaves its
 * last section while the decision stands waits there too.
 */

import { heap } from './current.js';

/** Thread-block slots (thread-block.ts): the kill decision and the depth of internal sections. */
export const W_KILL_TASK = 24;
export const W_INSIDE = 26;

/** The calling pool thread's block >> 2, or -1 (not a pool thread: never killed, nothing to record). */
let guardBase = -1;
let depth = 0;

export function setGuardBlock(block: number): void {
  guardBase = block === 0 ? -1 : block >> 2;
  depth = 0;
}

/** Before taking an internal lock. */
export function enterInternal(): void {
  if (guardBase < 0) return;
  if (depth++ > 0) return; // (nested: the outer entry published it)
  const i32 = heap().i32;
  // A seq-cst store (a full fence), then the read: see the header.
  Atomics.store(i32, guardBase + W_INSIDE, 1);
  if (Atomics.load(i32, guardBase + W_KILL_TASK) < 0) {
    depth = 0;
    Atomics.store(i32, guardBase + W_INSIDE, 0);
    awaitTermination();
  }
}

/** After releasing it. */
export function leaveInternal(): void {
  if (guardBase < 0 || --depth > 0) return;
  const i32 = heap().i32;
  // The owner polls this word (nobody sleeps on it): no wake is owed.
  Atomics.store(i32, guardBase + W_INSIDE, 0);
  if (Atomics.load(i32, guardBase + W_KILL_TASK) < 0) awaitTermination();
}

/**
 * Around a sleep in a user-level wait (park: never while an internal lock is held) inside a
 * section (a queue's put waiting for room): the thread can be killed while it sleeps (it holds no
 * internal lock; what it was sending is lost), so a task that never ends its waits stays killable.
 * Returns what `resumeInside` needs.
 */
export function suspendInside(): number {
  if (guardBase < 0 || depth === 0) return 0;
  // The owner polls W_INSIDE (nobody sleeps on it): no wake is owed.
  Atomics.store(heap().i32, guardBase + W_INSIDE, 0);
  return depth;
}

export function resumeInside(saved: number): void {
  if (saved === 0) return;
  const i32 = heap().i32;
  // As enterInternal: a seq-cst store, then the read (the Dekker pair); polled, no wake owed.
  Atomics.store(i32, guardBase + W_INSIDE, 1);
  if (Atomics.load(i32, guardBase + W_KILL_TASK) < 0) {
    Atomics.store(i32, guardBase + W_INSIDE, 0);
    awaitTermination();
  }
}

/** Whether the thread whose block is `block` is inside an internal section now. */
export function isInside(block: number): boolean {
  return Atomics.load(heap().i32, (block >> 2) + W_INSIDE) !== 0;
}

/** This isolate is about to be terminated by its owner: nothing more runs here. */
export function awaitTermination(): never {
  const never = new Int32Array(new SharedArrayBuffer(4));
  for (;;) Atomics.wait(never, 0, 0); // nobody notifies it: terminate() ends the wait
}
