/**
 * The raw mutex word (Rust std's futex mutex / Drepper's "Futexes are tricky", mutex 2):
 *
 * | value | state     | meaning                                          |
 * |-------|-----------|--------------------------------------------------|
 * | 0     | UNLOCKED  | free                                             |
 * | 1     | LOCKED    | held, nobody sleeping                            |
 * | 2     | CONTENDED | held, and a thread may be sleeping on the word   |
 *
 * Taking it: one compareExchange 0→1 (the fast path, inlined by callers). Giving it back:
 * exchange to 0, and notify one sleeper only when the old value was CONTENDED.
 * Lock, RLock and the heap's allocator are built on it.
 */

import { SPIN_LIMIT, futexWait, futexWaitAsync } from './futex.js';

export const UNLOCKED = 0;
export const LOCKED = 1;
export const CONTENDED = 2;

/** One attempt: true when the word went 0→1 and the caller now holds it. */
export function mutexTryLock(i32: Int32Array, index: number): boolean {
  return Atomics.compareExchange(i32, index, UNLOCKED, LOCKED) === UNLOCKED;
}

/** Spins briefly: a holder on another core usually releases within a few hundred ns. */
function spinForUnlock(i32: Int32Array, index: number): boolean {
  for (let spin = 0; spin < SPIN_LIMIT; spin++) {
    if (Atomics.load(i32, index) === UNLOCKED && mutexTryLock(i32, index)) return true;
  }
  return false;
}

/**
 * The slow path: spin, then sleep until the word is ours or `deadline` passes.
 * We mark the word CONTENDED (exchange) before sleeping and sleep only while it is still
 * CONTENDED, so an unlock between the exchange and the sleep makes the sleep return at once,
 * and every unlock that follows a sleeper's exchange sees CONTENDED and notifies.
 * A thread that got the word through the exchange holds it as CONTENDED (conservatively:
 * its unlock may notify with nobody asleep, which is harmless).
 */
export function mutexLockSlow(i32: Int32Array, index: number, deadline: number): boolean {
  if (spinForUnlock(i32, index)) return true;
  while (Atomics.exchange(i32, index, CONTENDED) !== UNLOCKED) {
    if (futexWait(i32, index, CONTENDED, deadline) === 'timed-out') {
      // One last try, so a timed acquire never fails while the word is free.
      return Atomics.compareExchange(i32, index, UNLOCKED, CONTENDED) === UNLOCKED;
    }
  }
  return true;
}

/** The Promise twin of `mutexLockSlow`: never blocks the event loop. */
export async function mutexLockAsync(i32: Int32Array, index: number, deadline: number, signal?: AbortSignal): Promise<boolean> {
  while (Atomics.exchange(i32, index, CONTENDED) !== UNLOCKED) {
    if ((await futexWaitAsync(i32, index, CONTENDED, deadline, signal)) === 'timed-out') {
      return Atomics.compareExchange(i32, index, UNLOCKED, CONTENDED) === UNLOCKED;
    }
  }
  return true;
}

/**
 * Releases the word. Returns the previous value (UNLOCKED means it was not held: the caller
 * reports the misuse). Sleepers wait on CONTENDED, and only an unlock that saw CONTENDED
 * notifies, so an uncontended unlock is a single exchange.
 */
export function mutexUnlock(i32: Int32Array, index: number): number {
  const previous = Atomics.exchange(i32, index, UNLOCKED);
  if (previous === CONTENDED) Atomics.notify(i32, index, 1);
  return previous;
}
