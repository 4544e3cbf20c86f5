/**
 * The raw mutex word (Rust std's futex mutex / Drepper's "Futexes are tricky", mutex 2), with
 * the holder's ident in it:
 *
 * | value           | state     | meaning                                                  |
 * |-----------------|-----------|----------------------------------------------------------|
 * | 0               | UNLOCKED  | free                                                     |
 * | ident << 1      | held      | held by thread `ident`, nobody sleeping                  |
 * | ident << 1 | 1  | CONTENDED | held by thread `ident`, and a thread may be sleeping     |
 *
 * Taking it: one compareExchange 0 → this thread's word (the fast path, inlined by callers).
 * Giving it back: exchange to 0, and notify one sleeper only when the old value had CONTENDED.
 * The holder's ident costs nothing on the fast path and lets dumps and deadlock detection name
 * who holds a lock. Lock, RLock and threadkit's internal locks are built on it.
 */

import { myLockWord } from './current.js';
import { SPIN_LIMIT } from './futex.js';
import { WaitKind, beginWait, endWait, park, parkAsync } from './wait-site.js';
import { enterInternal, leaveInternal } from './kill-guard.js';
import { wake } from './trace-ring.js';

export const UNLOCKED = 0;
/** The low bit of a held word: a thread may be sleeping on it, its unlock must notify. */
export const CONTENDED = 1;

/** One attempt: true when the word went 0 → held and the caller now holds it. */
export function mutexTryLock(i32: Int32Array, index: number): boolean {
  return Atomics.compareExchange(i32, index, UNLOCKED, myLockWord) === UNLOCKED;
}

/** The ident of the thread that holds a mutex word (0: unlocked). */
export function mutexOwner(word: number): number {
  return word >>> 1;
}

/** Takes the word, however long that takes (Lock and RLock's blocking acquire). */
export function mutexLock(i32: Int32Array, index: number, kind: WaitKind, object: number): void {
  if (!mutexTryLock(i32, index)) mutexLockSlow(i32, index, Infinity, kind, object);
}

/** Takes one of threadkit's internal locks (never while its isolate may be killed: kill-guard.ts). */
export function internalLock(i32: Int32Array, index: number): void {
  enterInternal();
  if (!mutexTryLock(i32, index)) mutexLockSlow(i32, index, Infinity, WaitKind.Internal, 0);
}

/** Releases an internal lock taken with internalLock. */
export function internalUnlock(i32: Int32Array, index: number): void {
  mutexUnlock(i32, index);
  leaveInternal();
}

/** Spins briefly: a holder on another core usually releases within a few hundred ns. */
function spinForUnlock(i32: Int32Array, index: number): boolean {
  for (let spin = 0; spin < SPIN_LIMIT; spin++) {
    if (Atomics.load(i32, index) === UNLOCKED && mutexTryLock(i32, index)) return true;
  }
  return false;
}

/**
 * One step of the slow path: takes the word if it is free (true), or marks it CONTENDED and
 * returns the value to sleep on (a number). A word taken here is taken as CONTENDED: threads
 * that slept on an earlier holder's word may still be asleep, and our unlock must wake one.
 */
function takeOrMark(i32: Int32Array, index: number): true | number {
  for (;;) {
    const word = Atomics.load(i32, index);
    if (word === UNLOCKED) {
      if (Atomics.compareExchange(i32, index, UNLOCKED, myLockWord | CONTENDED) === UNLOCKED) return true;
      continue;
    }
    // Mark it CONTENDED (the holder's ident kept), then sleep only while it is exactly that:
    // an unlock between the mark and the sleep changes the word, so the sleep returns at once,
    // and every unlock after the mark sees CONTENDED and notifies.
    if ((word & CONTENDED) !== 0 || Atomics.compareExchange(i32, index, word, word | CONTENDED) === word) return word | CONTENDED;
  }
}

/** One last try after a timed-out sleep, so a timed acquire never fails while the word is free. */
function lastTry(i32: Int32Array, index: number): boolean {
  return Atomics.compareExchange(i32, index, UNLOCKED, myLockWord | CONTENDED) === UNLOCKED;
}

/** The slow path: spin, then sleep until the word is ours or `deadline` passes. */
export function mutexLockSlow(i32: Int32Array, index: number, deadline: number, kind: WaitKind = WaitKind.Internal, object = 0): boolean {
  if (spinForUnlock(i32, index)) return true;
  const outer = beginWait();
  try {
    for (;;) {
      const marked = takeOrMark(i32, index);
      if (marked === true) return true;
      if (park(i32, index, marked, deadline, kind, object) === 'timed-out') return lastTry(i32, index);
    }
  } finally {
    endWait(outer);
  }
}

/** The Promise twin of `mutexLockSlow`: never blocks the event loop. */
export async function mutexLockAsync(i32: Int32Array, index: number, deadline: number, signal?: AbortSignal, interruptible = true): Promise<boolean> {
  for (;;) {
    const marked = takeOrMark(i32, index);
    if (marked === true) return true;
    if ((await parkAsync(i32, index, marked, deadline, signal, interruptible)) === 'timed-out') return lastTry(i32, index);
  }
}

/**
 * Releases the word. Returns the previous value (UNLOCKED means it was not held: the caller
 * reports the misuse). Sleepers wait on a CONTENDED word, and only an unlock that saw CONTENDED
 * notifies, so an uncontended unlock is a single exchange.
 */
export function mutexUnlock(i32: Int32Array, index: number): number {
  const previous = Atomics.exchange(i32, index, UNLOCKED);
  if ((previous & CONTENDED) !== 0) wake(i32, index, 1);
  return previous;
}
