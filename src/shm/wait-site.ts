/**
 * The one wait site: every blocking call in threadkit sleeps through `park` (the Promise waits
 * through `parkAsync`). Before a thread sleeps, `park` writes into the thread's shared block
 * what it waits on (the kind of wait, the shared object, when it began) and clears it after,
 * so any thread can see who waits on what (thread dumps), and an observer can look at the
 * wait-for graph before the sleep (deadlock detection) or record the stack. The uncontended fast paths never come here.
 *
 * The wait record, in the calling thread's block (thread-block.ts reserves the slots):
 *
 * | slot     | field    | meaning                                                          |
 * |----------|----------|------------------------------------------------------------------|
 * | W_KIND   | kind     | WaitKind of the wait under way (0: none), TIMED bit when bounded |
 * | W_OBJECT | object   | offset of the shared object waited on (0: none)                  |
 * | W_ADDR   | address  | the Int32 index slept on (for a waker that must reach the sleeper)|
 * | W_ASYNC  | async    | Promise waits of this thread now pending                         |
 * | W_SINCE  | since    | Date.now() when the wait began (a float64 over two slots)        |
 *
 * Background watchers nobody waits in (an idle isolate waiting for its next thread, the watcher
 * that notices a started thread's end, done-callback watchers) use futex.ts directly.
 *
 * The record is written by its thread only and read by others without a lock: a reader may see
 * a wait that has just ended, never a wait that was not there.
 */

import { type WaitResult, futexWait, futexWaitAsync } from './futex.js';
import { heap } from './current.js';

export const enum WaitKind {
  None = 0,
  Lock = 1,
  RLock = 2,
  Condition = 3,
  Semaphore = 4,
  Event = 5,
  Barrier = 6,
  QueueGet = 7,
  QueuePut = 8,
  QueueJoin = 9,
  Future = 10,
  Join = 11,
  Sleep = 12,
  Wait = 13,
  Internal = 14,
  Work = 15,
}

/** The names dumps print, by WaitKind. */
export const WAIT_KIND_NAMES = ['', 'Lock', 'RLock', 'Condition', 'Semaphore', 'Event', 'Barrier', 'Queue.get', 'Queue.put', 'Queue.join', 'Future', 'join', 'sleep', 'wait', 'internal lock', 'work (an idle pool thread)'];

/** Set in W_KIND for a wait with a deadline (it cannot be part of a deadlock). */
export const TIMED = 0x100;

// Slots of the wait record in a thread block (after the thread's own fields, before its name).
export const W_KIND = 11;
export const W_OBJECT = 12;
export const W_ADDR = 13;
export const W_ASYNC = 14;
/** Float64 slot index (Int32 slot 16): thread blocks are 512-byte aligned, so it is 8-aligned. */
export const W_SINCE = 16;
export const WAIT_RECORD_END = 18;

/** The calling thread's block (0 until the thread is known: then waits are not recorded). */
let myBlock = 0;

export function setWaitRecordBlock(block: number): void {
  myBlock = block;
}

export function waitRecordBlock(): number {
  return myBlock;
}

/**
 * Watches every recorded wait (thread/deadlock.ts registers it): `beforeSleep` runs once the
 * record is written, before the sleep, and may throw (a DeadlockError: the wait then ends with
 * that error, its record cleared); `afterWake` runs after the sleep, before the record clears.
 */
export interface ParkObserver {
  beforeSleep(kind: WaitKind, object: number, forever: boolean): void;
  afterWake(): void;
}
let observer: ParkObserver | undefined;

export function setParkObserver(o: ParkObserver | undefined): void {
  observer = o;
}

/** The last wait this thread recorded, and when it ended (a loop that sleeps again keeps its start). */
let lastKind = 0;
let lastObject = 0;
let lastEnded = 0;
let lastSince = 0;
/** A wait that sleeps again within this long on the same object is the same wait (ms). */
const SAME_WAIT_MS = 5;

function record(kind: WaitKind, object: number, index: number, forever: boolean): void {
  const h = heap();
  const base = myBlock >> 2;
  const now = Date.now();
  if (kind !== lastKind || object !== lastObject || now - lastEnded > SAME_WAIT_MS) lastSince = now;
  lastKind = kind;
  lastObject = object;
  h.f64[(myBlock >> 3) + (W_SINCE >> 1)] = lastSince;
  h.i32[base + W_OBJECT] = object;
  h.i32[base + W_ADDR] = index;
  // The kind last: a reader that sees it sees the rest (a release store).
  Atomics.store(h.i32, base + W_KIND, forever ? kind : kind | TIMED);
}

function clear(): void {
  lastEnded = Date.now();
  Atomics.store(heap().i32, (myBlock >> 2) + W_KIND, 0);
}

/**
 * Sleeps while `i32[index] === expected`, until woken or `deadline`, as `futexWait` does
 * (spurious 'ok' possible, 'timed-out' only once the deadline has passed), recording the wait
 * in the thread's block meanwhile. `forever`: the caller's own wait has no deadline (a wait in
 * slices passes a slice as `deadline`). The caller's protocol decides why no wake-up is lost
 * (it read `expected` after announcing itself); park adds nothing between its read and the
 * sleep that could miss a change: Atomics.wait compares the word itself.
 */
export function park(
  i32: Int32Array,
  index: number,
  expected: number,
  deadline: number,
  kind: WaitKind,
  object: number,
  forever = deadline === Infinity,
  spinMicros?: number,
): WaitResult {
  if (myBlock === 0) return futexWait(i32, index, expected, deadline, spinMicros);
  // A nested park (a wait inside a wait's bookkeeping) keeps the outer record.
  const outer = Atomics.load(heap().i32, (myBlock >> 2) + W_KIND) !== 0;
  if (outer) return futexWait(i32, index, expected, deadline, spinMicros);
  record(kind, object, index, forever);
  try {
    if (observer === undefined) return futexWait(i32, index, expected, deadline, spinMicros);
    observer.beforeSleep(kind, object, forever);
    try {
      return futexWait(i32, index, expected, deadline, spinMicros);
    } finally {
      observer.afterWake();
    }
  } finally {
    clear();
  }
}

/**
 * The Promise twin of `park`: `futexWaitAsync`, counted in the thread's W_ASYNC while pending
 * (a Promise wait does not block its thread, so it is counted, not recorded as the wait).
 */
export async function parkAsync(
  i32: Int32Array,
  index: number,
  expected: number,
  deadline: number,
  signal?: AbortSignal,
  holdLoopOpen = true,
): Promise<WaitResult> {
  if (myBlock === 0) return futexWaitAsync(i32, index, expected, deadline, signal, holdLoopOpen);
  const slot = (myBlock >> 2) + W_ASYNC;
  Atomics.add(heap().i32, slot, 1);
  try {
    return await futexWaitAsync(i32, index, expected, deadline, signal, holdLoopOpen);
  } finally {
    Atomics.sub(heap().i32, slot, 1);
  }
}
