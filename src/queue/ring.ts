/**
 * The FIFO storage of Queue and SimpleQueue: a byte ring of records (records.ts) in a Bytes
 * block, written at TAIL under the put lock and read at HEAD under the get lock, that grows
 * (doubling, compacted) when a put finds no room and is given back when a get empties a large
 * one. QueueCore's storage hooks call these (LifoQueue and PriorityQueue replace the hooks);
 * resetStorage and maybeShrink serve every flavor.
 */

import { Kind, dropReference } from '../shm/handles.js';
import type { Heap } from '../shm/heap.js';
import { itemsBetween, lockCounted, releaseKeep, tryLockCounted } from './counted-lock.js';
import { CAP, GET_WORD, HEAD, HEAD_CACHE, HEAD_PUB, HEAD_SHOWN, PUT_WORD, STORE, TAIL } from './layout.js';
import { R, type Staged, dropRecord, explainExhausted, readPayload, round4, writePayload } from './records.js';

/** First FIFO ring (bytes). It is allocated at the first put, so an unused queue costs 512 bytes. */
const FIRST_RING = 1024;
/** A storage larger than this is given back when the queue becomes empty. */
export const SHRINK_ABOVE = 64 * 1024;

/** The smallest power of two >= n (n >= 1). */
export function nextPow2(n: number): number {
  return n <= 1 ? 1 : 2 ** (32 - Math.clz32(n - 1));
}

/** What a growing ring needs from its queue (QueueCore): this thread's get-word guess, the name for errors. */
export interface RingOwner {
  readonly _getGuess: number;
  readonly _name: string;
}

/**
 * QueueCore's `_insert`: writes the record at TAIL (a PAD first when it would cross the ring's
 * end), making room first when HEAD_PUB says there is none. The caller holds the put lock.
 */
export function insertFifo(h: Heap, b: number, st: Staged, q: RingOwner): void {
  const need = 4 + round4(st.len);
  let i32 = h.i32;
  let cap = i32[b + CAP]!;
  let tail = i32[b + TAIL]!;
  let idx = tail & (cap - 1);
  let room = cap - idx;
  let total = need <= room ? need : room + need;
  if (cap === 0 || ((tail - i32[b + HEAD_CACHE]!) | 0) + total > cap) {
    // HEAD_PUB is stored by a getter after it has read the bytes it frees: they are ours now.
    const head = Atomics.load(i32, b + HEAD_PUB);
    i32[b + HEAD_CACHE] = head;
    if (cap === 0 || ((tail - head) | 0) + total > cap) {
      makeRoom(h, b, need, q);
      i32 = h.i32;
      cap = i32[b + CAP]!;
      tail = i32[b + TAIL]!;
      idx = tail & (cap - 1);
      room = cap - idx;
      total = need <= room ? need : room + need;
    }
  }
  const store = i32[b + STORE]!;
  h.ensureMapped(store + cap);
  if (need > room) {
    h.i32[(store + idx) >> 2] = R.PAD;
    idx = 0;
  }
  const p = store + idx;
  const len = writePayload(h, st, p + 4);
  h.i32[p >> 2] = st.type | (len << 4);
  // TAIL is ours (put lock); the record becomes visible when the put word is released.
  h.i32[b + TAIL] = (tail + total - need + 4 + round4(len)) | 0;
}

/** QueueCore's `_take`: reads the record at HEAD and moves HEAD past it (the caller holds the get lock). */
export function takeFifo(h: Heap, b: number): unknown {
  const store = h.i32[b + STORE]!;
  const cap = h.i32[b + CAP]!;
  h.ensureMapped(store + cap);
  const i32 = h.i32;
  let head = i32[b + HEAD]!;
  let idx = head & (cap - 1);
  let header = i32[(store + idx) >> 2]!;
  if ((header & 15) === R.PAD) {
    head = (head + cap - idx) | 0;
    idx = 0;
    header = i32[store >> 2]!;
  }
  const len = header >>> 4;
  const value = readPayload(h, header & 15, len, store + idx + 4);
  head = (head + 4 + round4(len)) | 0;
  i32[b + HEAD] = head;
  if (((head - i32[b + HEAD_SHOWN]!) | 0) >= cap >> 2) {
    i32[b + HEAD_SHOWN] = head;
    // After the reads above: the bytes before `head` are free for the putters from here on.
    Atomics.store(i32, b + HEAD_PUB, head);
  }
  return value;
}

/**
 * A put found no room by HEAD_PUB: look at the real HEAD (under the get lock, taken after the
 * put lock: the one lock order) and either publish it, if that is room enough, or move the
 * records to a ring twice as large (or larger), compacted to start at 0.
 */
function makeRoom(h: Heap, b: number, need: number, q: RingOwner): void {
  const getHeld = lockCounted(h.i32, b + GET_WORD, q._getGuess);
  try {
    let i32 = h.i32;
    const oldStore = i32[b + STORE]!;
    const oldCap = i32[b + CAP]!;
    const head = i32[b + HEAD]!;
    const tail = i32[b + TAIL]!;
    const used = (tail - head) | 0;
    if (oldCap !== 0) {
      const room = oldCap - (tail & (oldCap - 1));
      if (used + (need <= room ? need : room + need) <= oldCap) {
        i32[b + HEAD_CACHE] = head;
        i32[b + HEAD_SHOWN] = head;
        Atomics.store(i32, b + HEAD_PUB, head);
        return;
      }
    }
    const cap = Math.max(FIRST_RING, nextPow2(used + need), oldCap * 2);
    let store: number;
    try {
      store = h.alloc(cap, Kind.Bytes);
    } catch (error) {
      throw explainExhausted(error, `${q._name}.put: the queue's storage cannot grow to ${cap} bytes`);
    }
    h.ensureMapped(oldStore + oldCap);
    i32 = h.i32;
    // Copy the live records in order, leaving PAD records behind: the new ring starts at 0.
    let at = 0;
    for (let pos = head; pos !== tail; ) {
      const idx = pos & (oldCap - 1);
      const header = i32[(oldStore + idx) >> 2]!;
      if ((header & 15) === R.PAD) {
        pos = (pos + oldCap - idx) | 0;
        continue;
      }
      const size = 4 + round4(header >>> 4);
      h.u8.copyWithin(store + at, oldStore + idx, oldStore + idx + size);
      at += size;
      pos = (pos + size) | 0;
    }
    i32[b + STORE] = store;
    i32[b + CAP] = cap;
    i32[b + TAIL] = at;
    i32[b + HEAD] = 0;
    i32[b + HEAD_SHOWN] = 0;
    i32[b + HEAD_CACHE] = 0;
    // Putters read HEAD_PUB under the put lock we hold; getters do not read it.
    Atomics.store(i32, b + HEAD_PUB, 0);
    if (oldStore !== 0) dropReference(oldStore);
  } finally {
    releaseKeep(h.i32, b + GET_WORD, getHeld);
  }
}

/** Forgets the storage (both ends locked; the queue is empty or was drained). */
export function resetStorage(i32: Int32Array, b: number): void {
  i32[b + STORE] = 0;
  i32[b + CAP] = 0;
  i32[b + TAIL] = 0;
  i32[b + HEAD_CACHE] = 0;
  i32[b + HEAD] = 0;
  i32[b + HEAD_SHOWN] = 0;
  // Putters read it under the put lock, which the caller holds.
  Atomics.store(i32, b + HEAD_PUB, 0);
}

/**
 * QueueCore's `_detachAll`: detaches the storage and everything in it (both ends locked).
 * Returns what drainFifo needs to drop the items once the locks are released.
 */
export function detachFifo(i32: Int32Array, b: number): number[] {
  const detached = [i32[b + STORE]!, i32[b + CAP]!, i32[b + HEAD]!, itemsBetween(i32[b + PUT_WORD]!, i32[b + GET_WORD]!)];
  resetStorage(i32, b);
  return detached;
}

/**
 * A get emptied a queue whose storage is larger than SHRINK_ABOVE: give the storage back. The
 * caller holds the get lock (for one-lock queues, the put lock: `putWord` is its value); the
 * put lock comes first in the lock order, so a FIFO getter only tries it.
 */
export function maybeShrink(h: Heap, b: number, nextGot: number, putWord: number, putGuess: number): void {
  let held = putWord;
  if (held < 0) {
    held = tryLockCounted(h.i32, b + PUT_WORD, putGuess);
    if (held < 0) return;
  }
  try {
    // No put is half done (we hold its lock): equal counts mean an empty queue.
    if (itemsBetween(held, nextGot) !== 0) return;
    const store = h.i32[b + STORE]!;
    resetStorage(h.i32, b);
    if (store !== 0) dropReference(store);
  } finally {
    if (putWord < 0) releaseKeep(h.i32, b + PUT_WORD, held);
  }
}

/** Drops `count` records of a FIFO ring starting at `head`, then frees the ring. */
export function drainFifo(h: Heap, store: number, cap: number, head: number, count: number): void {
  if (store === 0) return;
  h.ensureMapped(store + cap);
  try {
    for (let n = 0; n < count; n++) {
      let idx = head & (cap - 1);
      let header = h.i32[(store + idx) >> 2]!;
      if ((header & 15) === R.PAD) {
        head = (head + cap - idx) | 0;
        idx = 0;
        header = h.i32[store >> 2]!;
      }
      // Dropping may free other blocks (their destructors run), never move this ring.
      dropRecord(h, header & 15, store + idx + 4);
      head = (head + 4 + round4(header >>> 4)) | 0;
    }
  } finally {
    dropReference(store);
  }
}

/** The FIFO flavors' destructor: drop the items left in the ring, then the ring. */
export function destroyFifo(h: Heap, base: number): void {
  const i32 = h.i32;
  drainFifo(h, i32[base + STORE]!, i32[base + CAP]!, i32[base + HEAD]!, itemsBetween(i32[base + PUT_WORD]!, i32[base + GET_WORD]!));
}
