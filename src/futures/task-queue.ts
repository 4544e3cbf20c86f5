/**
 * The pool's shared task queue: a ring of task records (each an encoded
 * `[future, functionId, args, chunked]` block) that idle pool threads sleep on, plus the table of
 * functions the pool has been given (each shipped once, compiled once per pool thread).
 *
 * | slot | field      | meaning                                                           |
 * |------|------------|-------------------------------------------------------------------|
 * | 0    | LOCK       | mutex word guarding every other slot and the ring                 |
 * | 1    | HEAD       | ring index of the oldest task                                     |
 * | 2    | COUNT      | tasks queued                                                      |
 * | 3    | CAPACITY   | ring slots                                                        |
 * | 4    | RING       | block holding CAPACITY task-record offsets (one reference each)   |
 * | 5    | AVAILABLE  | futex word: bumped by every put and by shutdown                   |
 * | 6    | SLEEPERS   | pool threads asleep on AVAILABLE (idle threads)                   |
 * | 7    | SHUTDOWN   | 1 once shutdown() was called (threads leave when the ring is empty)|
 * | 8    | BROKEN     | 1 once an initializer failed                                      |
 * | 9    | FUNCTIONS  | block of function-descriptor block offsets                        |
 * | 10   | FN_COUNT   | functions in the table                                            |
 * | 11   | FN_CAP     | table slots                                                       |
 *
 * No lost wake-up: a thread reads AVAILABLE and counts itself in SLEEPERS under LOCK, then
 * sleeps only while AVAILABLE still holds what it read; a putter bumps AVAILABLE under LOCK and
 * notifies when SLEEPERS > 0, so either the sleeper sees the bump or the putter sees the sleeper.
 */

import { decodeValue, dropEncoded, encodeInternal, encodeValue } from '../shm/codec.js';
import type { Heap } from '../shm/heap.js';
import { futexWait } from '../shm/futex.js';
import { Kind, dropReference } from '../shm/handles.js';
import { mutexLockSlow, mutexTryLock, mutexUnlock } from '../shm/mutex.js';

export const LOCK = 0;
const HEAD = 1;
const COUNT = 2;
const CAPACITY = 3;
const RING = 4;
const AVAILABLE = 5;
const SLEEPERS = 6;
export const SHUTDOWN = 7;
export const BROKEN = 8;
const FUNCTIONS = 9;
const FN_COUNT = 10;
const FN_CAP = 11;
/** Slots the executor (thread-pool.ts) keeps after the queue's own. */
export const QUEUE_SLOTS = 12;

const INITIAL_CAPACITY = 64;
/** How long an idle pool thread spins for the next task before it sleeps (µs). */
const TAKE_SPIN_MICROS = 100;

/** Operations on the task-queue slots at the start of a block (`base` = block offset >> 2). */
export class TaskQueue {
  constructor(
    private readonly h: Heap,
    private readonly base: number,
  ) {}

  /** Sets up a fresh block. */
  init(): void {
    this.h.i32[this.base + CAPACITY] = INITIAL_CAPACITY;
    this.h.i32[this.base + RING] = this.h.alloc(INITIAL_CAPACITY * 4, Kind.Bytes);
    this.h.i32[this.base + FN_CAP] = 16;
    this.h.i32[this.base + FUNCTIONS] = this.h.alloc(16 * 4, Kind.Bytes);
  }

  /** Runs `body` with LOCK held and the whole heap mapped. */
  locked<T>(body: (i32: Int32Array) => T): T {
    const i32 = this.h.i32;
    if (!mutexTryLock(i32, this.base + LOCK)) mutexLockSlow(i32, this.base + LOCK, Infinity);
    try {
      this.h.ensureMapped(this.h.topBytes());
      return body(this.h.i32);
    } finally {
      mutexUnlock(this.h.i32, this.base + LOCK);
    }
  }

  get(slot: number): number {
    return Atomics.load(this.h.i32, this.base + slot);
  }

  /** Tasks queued now. */
  size(): number {
    return this.get(COUNT);
  }

  /** Idle pool threads (asleep waiting for a task). */
  idleThreads(): number {
    return this.get(SLEEPERS);
  }

  /** Queues an encoded task record (its block is owned by the queue from now on). */
  put(record: number): void {
    this.locked((i32) => {
      if (i32[this.base + COUNT] === i32[this.base + CAPACITY]) this.growRing();
      const capacity = this.h.i32[this.base + CAPACITY]!;
      const ring = this.h.i32[this.base + RING]! >> 2;
      const tail = (this.h.i32[this.base + HEAD]! + this.h.i32[this.base + COUNT]!) % capacity;
      this.h.i32[ring + tail] = record;
      this.h.i32[this.base + COUNT] = this.h.i32[this.base + COUNT]! + 1;
      Atomics.add(this.h.i32, this.base + AVAILABLE, 1);
    });
    if (Atomics.load(this.h.i32, this.base + SLEEPERS) > 0) Atomics.notify(this.h.i32, this.base + AVAILABLE, 1);
  }

  /**
   * Takes the oldest task record, sleeping while there is none. Returns 0 once the queue is
   * shut down and empty (the pool thread then ends).
   */
  take(): number {
    for (;;) {
      const seen = this.locked((i32): { record: number } | { available: number } => {
        if (i32[this.base + COUNT]! > 0) return { record: this.popLocked() };
        if (i32[this.base + SHUTDOWN]) return { record: 0 };
        i32[this.base + SLEEPERS] = i32[this.base + SLEEPERS]! + 1;
        return { available: i32[this.base + AVAILABLE]! };
      });
      if ('record' in seen) return seen.record;
      try {
        // Spin a while first: under a steady stream of tasks the next one comes within microseconds.
        futexWait(this.h.i32, this.base + AVAILABLE, seen.available, Infinity, TAKE_SPIN_MICROS);
      } finally {
        this.locked((i32) => {
          i32[this.base + SLEEPERS] = i32[this.base + SLEEPERS]! - 1;
        });
      }
    }
  }

  /** Removes and returns every queued record (shutdown with cancelFutures, a broken pool). */
  drain(): number[] {
    return this.locked((i32) => {
      const records: number[] = [];
      while (i32[this.base + COUNT]! > 0) records.push(this.popLocked());
      return records;
    });
  }

  /** Marks shutdown (and broken) and wakes every sleeping pool thread. */
  close(broken: boolean): void {
    this.locked((i32) => {
      i32[this.base + SHUTDOWN] = 1;
      if (broken) i32[this.base + BROKEN] = 1;
      Atomics.add(i32, this.base + AVAILABLE, 1);
    });
    Atomics.notify(this.h.i32, this.base + AVAILABLE);
  }

  /** Adds a function descriptor (encoded block) to the table; returns its id. */
  addFunction(descriptor: unknown): number {
    const bytes = encodeValue(descriptor, 'function');
    const block = this.h.alloc(bytes.length, Kind.Bytes);
    this.h.u8.set(bytes, block);
    return this.locked((i32) => {
      if (i32[this.base + FN_COUNT] === i32[this.base + FN_CAP]) this.growFunctions();
      const id = this.h.i32[this.base + FN_COUNT]!;
      this.h.i32[(this.h.i32[this.base + FUNCTIONS]! >> 2) + id] = block;
      this.h.i32[this.base + FN_COUNT] = id + 1;
      return id;
    });
  }

  /** The descriptor of function `id` (decoded copy). */
  functionDescriptor(id: number): unknown {
    const block = this.locked((i32) => (id < i32[this.base + FN_COUNT]! ? this.h.i32[(this.h.i32[this.base + FUNCTIONS]! >> 2) + id]! : 0));
    if (block === 0) throw new RangeError(`threadkit pool: unknown function id ${id}`);
    return decodeValue(this.h.buf, block);
  }

  /** Frees everything the queue holds (the executor's destructor). */
  destroy(): void {
    for (const record of this.drain()) dropRecord(this.h, record);
    dropReference(this.h.i32[this.base + RING]!);
    const table = this.h.i32[this.base + FUNCTIONS]! >> 2;
    for (let id = 0; id < this.h.i32[this.base + FN_COUNT]!; id++) dropReference(this.h.i32[table + id]!);
    dropReference(this.h.i32[this.base + FUNCTIONS]!);
  }

  private popLocked(): number {
    const i32 = this.h.i32;
    const capacity = i32[this.base + CAPACITY]!;
    const head = i32[this.base + HEAD]!;
    const record = i32[(i32[this.base + RING]! >> 2) + head]!;
    i32[this.base + HEAD] = (head + 1) % capacity;
    i32[this.base + COUNT] = i32[this.base + COUNT]! - 1;
    return record;
  }

  private growRing(): void {
    const h = this.h;
    const capacity = h.i32[this.base + CAPACITY]!;
    const bigger = h.alloc(capacity * 2 * 4, Kind.Bytes);
    const old = h.i32[this.base + RING]! >> 2;
    const head = h.i32[this.base + HEAD]!;
    for (let i = 0; i < capacity; i++) h.i32[(bigger >> 2) + i] = h.i32[old + ((head + i) % capacity)]!;
    dropReference(h.i32[this.base + RING]!);
    h.i32[this.base + RING] = bigger;
    h.i32[this.base + HEAD] = 0;
    h.i32[this.base + CAPACITY] = capacity * 2;
  }

  private growFunctions(): void {
    const h = this.h;
    const capacity = h.i32[this.base + FN_CAP]!;
    const bigger = h.alloc(capacity * 2 * 4, Kind.Bytes);
    h.i32.copyWithin(bigger >> 2, h.i32[this.base + FUNCTIONS]! >> 2, (h.i32[this.base + FUNCTIONS]! >> 2) + capacity);
    dropReference(h.i32[this.base + FUNCTIONS]!);
    h.i32[this.base + FUNCTIONS] = bigger;
    h.i32[this.base + FN_CAP] = capacity * 2;
  }
}

/** Encodes a task record into its own block: `[future, functionId, args, chunked]`. */
export function encodeRecord(h: Heap, record: unknown[]): number {
  const bytes = encodeInternal(record, 'task');
  const block = h.alloc(bytes.length, Kind.Bytes);
  h.u8.set(bytes, block);
  return block;
}

/** Decodes and frees a task record (the handles inside are adopted by the decode). */
export function takeRecord(h: Heap, block: number): [unknown, number, unknown[], boolean] {
  h.ensureMapped(h.topBytes());
  try {
    return decodeValue(h.buf, block) as [unknown, number, unknown[], boolean];
  } finally {
    dropReference(block);
  }
}

/** Frees a task record without decoding it. */
export function dropRecord(h: Heap, block: number): void {
  dropEncoded(h.buf, block);
  dropReference(block);
}
