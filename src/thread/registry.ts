/**
 * The live-thread table, in the shared heap so every thread sees every other:
 * `enumerate()`, `activeCount()`, and the count of live non-daemon threads that keeps the
 * process alive (Python's "the process exits when only daemon threads are left").
 *
 * Root slots (heap header, from S_ROOTS):
 *
 * | slot | field      | meaning                                                        |
 * |------|------------|----------------------------------------------------------------|
 * | +0   | LOCK       | mutex word guarding the list                                   |
 * | +1   | HEAD       | first thread block of the live list (each holds a reference)   |
 * | +2   | LIVE       | number of blocks in the list                                   |
 * | +3   | NON_DAEMON | what holds the process: live non-daemon threads other than     |
 * |      |            | main and pool threads, plus pools with tasks queued or running |
 * |      |            | (futex word: the main thread's keep-alive sleeps on it;        |
 * |      |            | changers notify)                                               |
 * | +4   | MAIN       | the main thread's block                                        |
 */

import { heap } from '../shm/current.js';
import { S_ROOTS } from '../shm/heap.js';
import { internalLock, internalUnlock } from '../shm/mutex.js';
import { dropReference } from '../shm/handles.js';
import { DAEMON, FLAGS, MAIN, NEXT, POOL, PREV } from './thread-block.js';

const LOCK = S_ROOTS;
const HEAD = S_ROOTS + 1;
const LIVE = S_ROOTS + 2;
export const NON_DAEMON = S_ROOTS + 3;
export const MAIN_BLOCK = S_ROOTS + 4;

function withRegistry<T>(body: (i32: Int32Array) => T): T {
  const h = heap();
  internalLock(h.i32, LOCK);
  try {
    h.ensureMapped(h.topBytes());
    return body(h.i32);
  } finally {
    internalUnlock(h.i32, LOCK);
  }
}

/** Adds a started thread's block to the live list (the list takes a reference). */
export function registerThread(block: number): void {
  const h = heap();
  h.retain(block);
  withRegistry((i32) => {
    const b = block >> 2;
    const head = i32[HEAD]!;
    i32[b + NEXT] = head;
    i32[b + PREV] = 0;
    if (head !== 0) i32[(head >> 2) + PREV] = block;
    i32[HEAD] = block;
    i32[LIVE] = i32[LIVE]! + 1;
  });
  if ((h.i32[(block >> 2) + FLAGS]! & (DAEMON | MAIN | POOL)) === 0) holdProcess(1);
}

/**
 * Counts `n` (±1) things that hold the process open: a non-daemon thread, or a pool with
 * tasks queued or running (TaskQueue.work: a pool never shut down lets the process exit once
 * its work is done, as CPython's does at exit, and an idle pool never holds it). A pool's
 * 0 → 1 and 1 → 0 may arrive here in either order, so the count may pass through -1.
 */
export function holdProcess(n: number): void {
  const i32 = heap().i32;
  // The main thread's keep-alive sleeps on this word while it holds the non-zero value it
  // read, and cares only for 0: whoever brings it to 0 stored it before this notify, so the
  // keep-alive sees the 0 before it sleeps or is woken. (Other changes need no notify.)
  if (Atomics.add(i32, NON_DAEMON, n) + n === 0) Atomics.notify(i32, NON_DAEMON);
}

/** Removes a stopped thread's block from the live list, once (returns false if it was not there). */
export function unregisterThread(block: number): boolean {
  const h = heap();
  const removed = withRegistry((i32) => {
    const b = block >> 2;
    const next = i32[b + NEXT]!;
    const previous = i32[b + PREV]!;
    if (previous === -1) return false; // already removed
    if (previous === 0) {
      if (i32[HEAD] !== block) return false;
      i32[HEAD] = next;
    } else {
      i32[(previous >> 2) + NEXT] = next;
    }
    if (next !== 0) i32[(next >> 2) + PREV] = previous;
    i32[b + PREV] = -1;
    i32[b + NEXT] = 0;
    i32[LIVE] = i32[LIVE]! - 1;
    return true;
  });
  if (!removed) return false;
  if ((h.i32[(block >> 2) + FLAGS]! & (DAEMON | MAIN | POOL)) === 0) holdProcess(-1);
  dropReference(block);
  return true;
}

/** The blocks of all live threads, each with one reference added for the caller. */
export function liveThreadBlocks(): number[] {
  const h = heap();
  return withRegistry((i32) => {
    const blocks: number[] = [];
    for (let block = i32[HEAD]!; block !== 0; block = i32[(block >> 2) + NEXT]!) {
      h.retain(block);
      blocks.push(block);
    }
    return blocks;
  });
}

/** Live threads, including the main thread. */
export function liveCount(): number {
  return Atomics.load(heap().i32, LIVE);
}
