/**
 * How a queue's getters and putters sleep until the other end moves: the sleeper's side of the
 * wake rule in core.ts's header (spin a few µs unregistered; then register, read the futex word,
 * announce WAIT on the other end's word, re-check, sleep only on the value read), sync and async,
 * and the instant checks they re-check with.
 */

import { READY, WaitKind, type WaitLoop, parkUntil, parkUntilAsync } from '../shm/wait-site.js';
import type { Heap } from '../shm/heap.js';
import { itemsBetween, setWait } from './counted-lock.js';
import { GET_WAITERS, GET_WORD, MAXSIZE, NOT_EMPTY_SEQ, NOT_FULL_SEQ, PUT_WAITERS, PUT_WORD, STATE } from './layout.js';

/** How long a getter or putter re-reads the words before it registers to sleep (µs). */
const SPIN_MICROS = 20;

/** The two ends of a queue, as their waits see them. */
interface End {
  /** Count of this end's registered sleepers (the other end notifies only when it is non-zero). */
  waiters: number;
  /** The futex word this end sleeps on (bumped by the other end when it makes room or an item). */
  seq: number;
  /** The other end's lock word, where this end announces WAIT. */
  announce: number;
  kind: WaitKind;
  /** True: a getter (waiting for an item); false: a putter (waiting for room). */
  empty: boolean;
}

const GETTER: End = { waiters: GET_WAITERS, seq: NOT_EMPTY_SEQ, announce: PUT_WORD, kind: WaitKind.QueueGet, empty: true };
const PUTTER: End = { waiters: PUT_WAITERS, seq: NOT_FULL_SEQ, announce: GET_WORD, kind: WaitKind.QueuePut, empty: false };

/**
 * The sleep of one end: register, read the futex word, announce WAIT on the other end's word,
 * re-check, sleep only on the value read. The other end, releasing its lock, sees WAIT and
 * notifies (releasePublish): a change after the announcement wakes us; one before it, the
 * re-check sees.
 */
function endLoop(h: Heap, b: number, end: End): WaitLoop {
  const i32 = h.i32;
  return {
    i32,
    waiters: b + end.waiters,
    word: b + end.seq,
    kind: end.kind,
    object: b << 2,
    prepare: () => {
      // Read the futex word before the re-check (and again after every wake).
      const seq = Atomics.load(i32, b + end.seq);
      setWait(i32, b + end.announce);
      return ready(h, b, end.empty) ? READY : seq;
    },
  };
}

/** Sleeps until an item may be there (`empty`) or a slot free (or the queue is shut down); false once `deadline` passed. */
export function waitForEnd(h: Heap, b: number, empty: boolean, deadline: number): boolean {
  if (spinFor(h, b, empty, deadline)) return true;
  return parkUntil(endLoop(h, b, empty ? GETTER : PUTTER), deadline);
}

/** The Promise twin of `waitForEnd`: an abort wakes every sleeper on the word, so it never swallows a wake. */
export function waitForEndAsync(h: Heap, b: number, empty: boolean, deadline: number, signal: AbortSignal | undefined): Promise<boolean> {
  return parkUntilAsync(endLoop(h, b, empty ? GETTER : PUTTER), deadline, signal);
}

/** What an end waits for, or the queue shut down: an instant's answer. */
function ready(h: Heap, b: number, empty: boolean): boolean {
  return (empty ? available(h, b) : !isFull(h, b)) || Atomics.load(h.i32, b + STATE) !== 0;
}

/**
 * Re-reads the words for a few µs before registering to sleep: when the other end is busy,
 * the item (or slot) usually comes sooner than a futex wake-up would, and a waiter that has
 * not registered costs the other end no notify. True when the condition may now hold.
 */
function spinFor(h: Heap, b: number, empty: boolean, deadline: number): boolean {
  const until = performance.now() + SPIN_MICROS / 1000;
  if (until > deadline) return false;
  // One look per clock read (~30 ns apart): looking in a tight loop would take the line the
  // other end is about to write away from it between its lock and its release.
  do {
    // Only reads: this thread is not registered and sleeps nowhere, so no wake is owed to it.
    if (ready(h, b, empty)) return true;
  } while (performance.now() < until);
  return false;
}

/** An instant's answer: is there an item? (The get word first: see QueueCore.qsize.) */
export function available(h: Heap, b: number): boolean {
  const i32 = h.i32;
  // Instant reads, done after registering (or while spinning unregistered): see endLoop.
  const got = Atomics.load(i32, b + GET_WORD);
  return itemsBetween(Atomics.load(i32, b + PUT_WORD), got) > 0;
}

/** An instant's answer: is the queue bounded and full? */
export function isFull(h: Heap, b: number): boolean {
  const i32 = h.i32;
  // Instant reads, done after registering (or while spinning unregistered): see endLoop.
  const max = Atomics.load(i32, b + MAXSIZE);
  if (max <= 0) return false;
  // The get word first, as QueueCore.qsize.
  const got = Atomics.load(i32, b + GET_WORD);
  return itemsBetween(Atomics.load(i32, b + PUT_WORD), got) >= max;
}
