/**
 * The lock-and-counter words of a queue block (PUT_WORD, GET_WORD; their format and the wake
 * rule are in core.ts's header): taking and releasing the lock in a word (sync, one attempt,
 * async), releasing that publishes a new count and wakes one sleeper of the other end, a
 * sleeper's WAIT announcement, and the count arithmetic.
 */

import { WaitKind, park, parkAsync } from '../shm/wait-site.js';
import { enterInternal, leaveInternal } from '../shm/kill-guard.js';
import { PUT_WORD } from './layout.js';
import { wake } from '../shm/trace-ring.js';

/** Lock states in the low 2 bits of a lock-and-counter word (as shm/mutex.ts). */
const HELD = 1;
const CONTENDED = 2;
/** Bit 2: a thread of the other end may sleep waiting for this end's count to move. */
const WAIT = 4;
/** One item in a lock-and-counter word (the count is in bits 3..31). */
export const ONE = 8;

/** Items between two counter words (`a` not behind `b`), modulo 2^29. */
export function itemsBetween(a: number, b: number): number {
  return (((a & -8) - (b & -8)) | 0) >> 3;
}

/**
 * Takes the lock of a lock-and-counter word; returns the word's value while held (count, WAIT
 * and the lock state). `guess` is the value this thread last released it with: when nobody
 * used the word since, one compareExchange does it. Contended: spin briefly, then sleep (the
 * mutex protocol of shm/mutex.ts on the whole word: a sleeper marks the word CONTENDED and
 * sleeps only while it still holds exactly that value; the holder's release sees CONTENDED and
 * notifies, and a release between the mark and the sleep changes the value: no sleep).
 */
export function lockCounted(i32: Int32Array, index: number, guess: number): number {
  enterInternal(); // (kill-guard.ts: released with releasePublish / releaseKeep)
  // Taking a free lock wakes nobody and makes nobody sleep: no wake-up to lose here.
  const seen = Atomics.compareExchange(i32, index, guess, guess | HELD);
  if (seen === guess) return guess | HELD;
  if ((seen & 3) === 0 && Atomics.compareExchange(i32, index, seen, seen | HELD) === seen) return seen | HELD;
  return lockCountedSlow(i32, index);
}

function lockCountedSlow(i32: Int32Array, index: number): number {
  // Spin first (a holder on another core releases within ~100 ns): nothing sleeps yet.
  for (let spin = 0; spin < 100; spin++) {
    const v = Atomics.load(i32, index);
    if ((v & 3) === 0 && Atomics.compareExchange(i32, index, v, v | HELD) === v) return v | HELD;
  }
  for (;;) {
    const v = Atomics.load(i32, index);
    const state = v & 3;
    // Free: take it, as CONTENDED (others may sleep: our release must notify).
    if (state === 0) {
      if (Atomics.compareExchange(i32, index, v, v | CONTENDED) === v) return v | CONTENDED;
      continue;
    }
    // Mark CONTENDED, then sleep only while the word is exactly that: the holder's release
    // changes the word, and notifies because it sees CONTENDED.
    const marked = (v & -4) | CONTENDED;
    if (state === HELD && Atomics.compareExchange(i32, index, v, marked) !== v) continue;
    park(i32, index, marked, Infinity, WaitKind.Internal, 0);
  }
}

/** One attempt (for callers that must not block: async paths, a getter trying the put lock); -1 if held. */
export function tryLockCounted(i32: Int32Array, index: number, guess: number): number {
  enterInternal();
  // Never sleeps: no wake-up to lose.
  const seen = Atomics.compareExchange(i32, index, guess, guess | HELD);
  if (seen === guess) return guess | HELD;
  if ((seen & 3) === 0 && Atomics.compareExchange(i32, index, seen, seen | HELD) === seen) return seen | HELD;
  leaveInternal();
  return -1;
}

/** The Promise twin of lockCountedSlow (same protocol, waiting with futexWaitAsync). */
export async function lockCountedAsync(i32: Int32Array, index: number): Promise<number> {
  for (;;) {
    const v = Atomics.load(i32, index);
    const state = v & 3;
    if (state === 0) {
      enterInternal(); // (before the attempt: kill-guard.ts)
      if (Atomics.compareExchange(i32, index, v, v | CONTENDED) === v) return v | CONTENDED;
      leaveInternal();
      continue;
    }
    // As lockCountedSlow: mark CONTENDED, sleep only while the word is exactly that.
    const marked = (v & -4) | CONTENDED;
    if (state === HELD && Atomics.compareExchange(i32, index, v, marked) !== v) continue;
    await parkAsync(i32, index, marked, Infinity, undefined, false); // internal: never interrupted
  }
}

/**
 * Releases a word held as `held`, writing the count `next` (no WAIT, lock free): this publishes
 * the new count. When we took the lock as plain HELD (not CONTENDED: a lock taken in the slow
 * path may have sleepers to wake) with WAIT clear, and nobody touched the word since, one
 * compareExchange does it, and proves that no sleeper of the other end had set WAIT before it:
 * a sleeper sets WAIT after
 * registering and before its last check, so a sleeper that sets it later finds our item in that
 * check. Otherwise (WAIT set, or CONTENDED) `releaseSlow`.
 */
export function releasePublish(i32: Int32Array, index: number, held: number, next: number, waiters: number, seq: number): void {
  // The compareExchange fails if anyone marked the word (WAIT, CONTENDED) since we took it.
  if ((held & (WAIT | 3)) !== HELD || Atomics.compareExchange(i32, index, held, next) !== held) releaseSlow(i32, index, next, waiters, seq, true);
  leaveInternal();
}

/**
 * Publishes a new count on a word that is not locked (the get word of one-lock queues, whose
 * lock is the put word): `seen` is its value as read under that lock. Same wake rule as
 * releasePublish; only WAIT (set by a putter without the lock) can have changed it.
 */
export function publishCount(i32: Int32Array, index: number, seen: number, next: number, waiters: number, seq: number): void {
  // The compareExchange fails if a sleeper set WAIT since we read the word.
  if ((seen & WAIT) !== 0 || Atomics.compareExchange(i32, index, seen, next) !== seen) releaseSlow(i32, index, next, waiters, seq, true);
}

/** Releases a word held as `held` without publishing: count and WAIT stay, the lock is freed. */
export function releaseKeep(i32: Int32Array, index: number, held: number): void {
  // As releasePublish: a lock taken as CONTENDED, or a word marked since, goes the slow way.
  if ((held & 3) !== HELD || Atomics.compareExchange(i32, index, held, held & -4) !== held) releaseSlow(i32, index, 0, 0, 0, false);
  leaveInternal();
}

/**
 * The release when the word changed while held. Publishing with WAIT set: wake one sleeper (bump
 * its futex word, then notify one) and keep WAIT in the new value while more than one is
 * registered, so the next publish wakes the next one; a sleeper that registers after our read of
 * the waiter count sets WAIT itself, which makes our compareExchange fail and retry. Not
 * publishing: only the lock bits change. CONTENDED: wake one thread waiting for the lock.
 */
function releaseSlow(i32: Int32Array, index: number, next: number, waiters: number, seq: number, publish: boolean): void {
  for (;;) {
    // The value we replace tells who may sleep; the compareExchange makes it the one replaced.
    const v = Atomics.load(i32, index);
    let value: number;
    if (!publish) value = v & -4;
    else value = next | ((v & WAIT) !== 0 && Atomics.load(i32, waiters) > 1 ? WAIT : 0);
    if (Atomics.compareExchange(i32, index, v, value) !== v) continue;
    // The word changed before these notifies: a lock sleeper wakes or finds it changed.
    if ((v & 3) === CONTENDED) wake(i32, index, 1);
    if (publish && (v & WAIT) !== 0) {
      // Bump first: a sleeper between its read of `seq` and its sleep does not sleep.
      Atomics.add(i32, seq, 1);
      wake(i32, seq, 1);
    }
    return;
  }
}

/**
 * A sleeper's announcement on the other end's word (after registering in its waiter count and
 * reading its futex word, before its last check of the condition): the next publishing release
 * of that word takes the slow path and wakes it.
 */
export function setWait(i32: Int32Array, index: number): void {
  for (;;) {
    // Set (or find set) WAIT; a release that replaced the word before this sees no WAIT, but
    // then our re-check, which comes after, sees what that release published.
    const v = Atomics.load(i32, index);
    if ((v & WAIT) !== 0 || Atomics.compareExchange(i32, index, v, v | WAIT) === v) return;
  }
}

/** Runs `fn` with the put lock of queue block `base` held (rare writes that putters read under it). */
export function withPutLock(i32: Int32Array, base: number, fn: () => void): void {
  const held = lockCounted(i32, base + PUT_WORD, 0);
  try {
    fn();
  } finally {
    releaseKeep(i32, base + PUT_WORD, held);
  }
}
