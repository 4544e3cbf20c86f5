/**
 * How a queue's getters and putters sleep until the other end moves: the sleeper's side of the
 * wake rule in core.ts's header (spin a few µs unregistered; then register, read the futex word,
 * announce WAIT on the other end's word, re-check, sleep only on the value read), sync and async,
 * and the instant checks they re-check with.
 */

import { WaitKind, park, parkAsync } from '../shm/wait-site.js';
import type { Heap } from '../shm/heap.js';
import { itemsBetween, setWait } from './counted-lock.js';
import { GET_WAITERS, GET_WORD, MAXSIZE, NOT_EMPTY_SEQ, NOT_FULL_SEQ, PUT_WAITERS, PUT_WORD, STATE } from './layout.js';

/** How long a getter or putter re-reads the words before it registers to sleep (µs). */
const SPIN_MICROS = 20;

/** Sleeps until a slot may be free (or the queue is shut down); false once `deadline` passed. */
export function waitNotFull(h: Heap, b: number, deadline: number): boolean {
  const i32 = h.i32;
  if (spinFor(h, b, false, deadline)) return true;
  // Register, read the futex word, announce WAIT on the get word, re-check, sleep only on the
  // value read: a getter that frees a slot after the announcement wakes us (releasePublish);
  // one that freed it before, the re-check sees.
  Atomics.add(i32, b + PUT_WAITERS, 1);
  try {
    for (;;) {
      // Read the futex word before the re-check (and again after every wake).
      const seq = Atomics.load(i32, b + NOT_FULL_SEQ);
      setWait(i32, b + GET_WORD);
      if (!isFull(h, b) || Atomics.load(i32, b + STATE) !== 0) return true;
      if (park(i32, b + NOT_FULL_SEQ, seq, deadline, WaitKind.QueuePut, b << 2) === 'timed-out') return false;
    }
  } finally {
    // Deregistering late costs at most one needless wake (the woken thread re-checks).
    Atomics.sub(i32, b + PUT_WAITERS, 1);
  }
}

/**
 * Re-reads the words for a few µs before registering to sleep: when the other end is busy,
 * the item (or slot) usually comes sooner than a futex wake-up would, and a waiter that has
 * not registered costs the other end no notify. True when the condition may now hold.
 */
function spinFor(h: Heap, b: number, empty: boolean, deadline: number): boolean {
  const i32 = h.i32;
  const until = performance.now() + SPIN_MICROS / 1000;
  if (until > deadline) return false;
  // One look per clock read (~30 ns apart): looking in a tight loop would take the line the
  // other end is about to write away from it between its lock and its release.
  do {
    // Only reads: this thread is not registered and sleeps nowhere, so no wake is owed to it.
    if ((empty ? available(h, b) : !isFull(h, b)) || Atomics.load(i32, b + STATE) !== 0) return true;
  } while (performance.now() < until);
  return false;
}

/** An instant's answer: is there an item? (The get word first: see QueueCore.qsize.) */
export function available(h: Heap, b: number): boolean {
  const i32 = h.i32;
  // Instant reads, done after registering (or while spinning unregistered): see waitNotEmpty.
  const got = Atomics.load(i32, b + GET_WORD);
  return itemsBetween(Atomics.load(i32, b + PUT_WORD), got) > 0;
}

/** An instant's answer: is the queue bounded and full? */
export function isFull(h: Heap, b: number): boolean {
  const i32 = h.i32;
  // Instant reads, done after registering (or while spinning unregistered): see waitNotFull.
  const max = Atomics.load(i32, b + MAXSIZE);
  if (max <= 0) return false;
  // The get word first, as QueueCore.qsize.
  const got = Atomics.load(i32, b + GET_WORD);
  return itemsBetween(Atomics.load(i32, b + PUT_WORD), got) >= max;
}

/** Sleeps until an item may be there (or the queue is shut down); false once `deadline` passed. */
export function waitNotEmpty(h: Heap, b: number, deadline: number): boolean {
  const i32 = h.i32;
  if (spinFor(h, b, true, deadline)) return true;
  // Register, read the futex word, announce WAIT on the put word, re-check, sleep only on the
  // value read (core.ts's header).
  Atomics.add(i32, b + GET_WAITERS, 1);
  try {
    for (;;) {
      // Read the futex word before the re-check (and again after every wake).
      const seq = Atomics.load(i32, b + NOT_EMPTY_SEQ);
      setWait(i32, b + PUT_WORD);
      if (available(h, b) || Atomics.load(i32, b + STATE) !== 0) return true;
      if (park(i32, b + NOT_EMPTY_SEQ, seq, deadline, WaitKind.QueueGet, b << 2) === 'timed-out') return false;
    }
  } finally {
    // Deregistering late costs at most one needless wake (the woken thread re-checks).
    Atomics.sub(i32, b + GET_WAITERS, 1);
  }
}

/** The async sleep of getters (`empty`) and putters, with the sync sleep's registration rule. */
export async function waitAsync(h: Heap, b: number, waiters: number, word: number, empty: boolean, deadline: number, signal: AbortSignal | undefined): Promise<boolean> {
  const i32 = h.i32;
  // Register, read the futex word, announce WAIT, re-check, sleep only on the value read. An
  // abort wakes every sleeper on the word (futexWaitAsync): it never swallows a wake.
  Atomics.add(i32, b + waiters, 1);
  try {
    for (;;) {
      // Read the futex word before the re-check (and again after every wake).
      const seq = Atomics.load(i32, b + word);
      setWait(i32, b + (empty ? PUT_WORD : GET_WORD));
      if ((empty ? available(h, b) : !isFull(h, b)) || Atomics.load(i32, b + STATE) !== 0) return true;
      if ((await parkAsync(i32, b + word, seq, deadline, signal)) === 'timed-out') return false;
    }
  } finally {
    // Deregistering late costs at most one needless wake (the woken thread re-checks).
    Atomics.sub(i32, b + waiters, 1);
  }
}
