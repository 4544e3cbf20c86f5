/**
 * The pool's shared task queue: a ring of task records that idle pool threads sleep on, plus the
 * table of functions the pool has been given (each shipped once, compiled once per pool thread).
 *
 * A task record is one block: [future offset (one reference), function id << 1 | chunked flag],
 * then the encoded arguments (the submit time, for the pool's waitTime, is in the future's
 * block). The future travels as a bare offset so that the pool thread can wrap it without
 * tracking (it drops the reference itself when the task is settled: a pool thread never returns
 * to its event loop, where finalizers would run).
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
 * | 12   | FINISHING  | pool threads settling a task, about to take the next (idle soon)  |
 * | 13   | WORK       | tasks queued or running (see work(): the process is held while >0)|
 * | 14   | MAX_QUEUE  | maxQueue: put() refuses (FULL) while this many are queued; 0: none |
 * | 15   | ROOM       | futex word: bumped by every take (when MAX_QUEUE) and by shutdown  |
 * | 16   | ROOM_WAITERS | submitters waiting for room (a take notifies only when > 0)     |
 * | 17   | NO_SPIN    | 1: idle threads sleep at once (tasks come slowly: a Redis worker) |
 * | 18-23| OUTCOMES   | Float64 × 3, by pool-stats.ts Outcome: tasks that left the pool   |
 * |      |            | outside a pool thread's stats shard (a take of a cancelled task,  |
 * |      |            | shutdown's cancelFutures, a broken pool, a dead thread's task)    |
 *
 * No lost wake-up: a thread reads AVAILABLE and counts itself in SLEEPERS under LOCK, then
 * sleeps only while AVAILABLE still holds what it read; a putter bumps AVAILABLE under LOCK and
 * notifies when SLEEPERS > 0, so either the sleeper sees the bump or the putter sees the sleeper.
 */

import { decodeValue, dropEncoded, encodeToBlock } from '../shm/codec.js';
import type { Heap } from '../shm/heap.js';
import { READY, WaitKind, type WaitLoop, park, parkUntil, parkUntilAsync } from '../shm/wait-site.js';
import { Kind, type SharedObject, dropReference, reviveHandle } from '../shm/handles.js';
import { internalLock, internalUnlock } from '../shm/mutex.js';
import { holdProcess } from '../thread/registry.js';
import { CANCELLED_TASK, type Outcome, type StatsTotals, sharedClock } from './pool-stats.js';
import { SUBMITTED_F64 } from './future.js';

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
const FINISHING = 12;
const WORK = 13;
const MAX_QUEUE = 14;
const ROOM = 15;
const ROOM_WAITERS = 16;
export const NO_SPIN = 17;
/** Float64 slot (from the block's offset >> 3) of the first of the three OUTCOMES. */
const OUTCOMES_F64 = 9;
/** Slots the executor (thread-pool.ts) keeps after the queue's own. */
export const QUEUE_SLOTS = 24;

export const REFUSED = 0;
export const QUEUED = 1;
export const NEEDS_THREAD = 2;
/** maxQueue tasks are queued: wait for room (waitForRoom), then put again. */
export const FULL = 3;
export type PutResult = typeof REFUSED | typeof QUEUED | typeof NEEDS_THREAD | typeof FULL;

/**
 * Task record layout: two words, then the encoded arguments. (Kept small: a record of a small
 * argument fits a 32-byte block; the submit time lives in the future's block instead.)
 */
const REC_FUTURE = 0;
/** The function id << 1, | 1 for a chunk of argument lists. */
const REC_FUNCTION = 1;
const REC_ARGS = 8;

/** A future's STATE slot and its mask (future.ts): a queued record's future may be cancelled already. */
const FUTURE_STATE = 0;
const FUTURE_STATE_MASK = 7;
/** Its first done state (CANCELLED; then CANCELLED_AND_NOTIFIED, FINISHED). */
const FUTURE_DONE = 2;

const INITIAL_CAPACITY = 64;
/**
 * A ring of at least this many slots goes back to INITIAL_CAPACITY when it empties, so that a
 * burst of queued tasks does not keep its memory (smaller rings stay: no churn on small bursts).
 */
const SHRINK_CAPACITY = 1024;
/** How long an idle pool thread spins for the next task before it sleeps (µs). */
const TAKE_SPIN_MICROS = 100;

/** Operations on the task-queue slots at the start of a block (`base` = block offset >> 2). */
export class TaskQueue {
  /**
   * Set by take(): the record it returned has a future that was done already (cancelled while
   * queued). It is counted as cancelled, and the taker as idle (FINISHING: pass true to the next
   * take), in the same step under LOCK: stats() never sees it neither queued nor counted.
   */
  tookDone = false;

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
    internalLock(i32, this.base + LOCK);
    try {
      this.h.ensureMapped(this.h.topBytes());
      return body(this.h.i32);
    } finally {
      internalUnlock(this.h.i32, this.base + LOCK);
    }
  }

  get(slot: number): number {
    return Atomics.load(this.h.i32, this.base + slot);
  }

  /** Tasks queued now. */
  size(): number {
    return this.get(COUNT);
  }

  /** Counts `n` tasks that left the pool as `outcome` (outside a pool thread's stats shard). Under LOCK. */
  countLocked(outcome: Outcome, n: number): void {
    this.h.f64[(this.base >> 1) + OUTCOMES_F64 + outcome]! += n;
  }

  /** Adds OUTCOMES to `totals`. Under LOCK. */
  addOutcomesLocked(totals: StatsTotals): void {
    for (const outcome of [0, 1, 2] as const) totals.addOutcomes(outcome, this.h.f64[(this.base >> 1) + OUTCOMES_F64 + outcome]!);
  }

  /** Pool threads idle now (asleep or spinning for a task, or settling one: about to take the next). Under LOCK. */
  idleLocked(): number {
    return this.h.i32[this.base + SLEEPERS]! + Atomics.load(this.h.i32, this.base + FINISHING);
  }

  /**
   * Of the tasks queued now, how many have a future that is done already (cancelled while
   * queued: a pool thread skips it when it takes it). Reads every queued record: O(queued).
   * Under LOCK (records leave the ring only under it).
   */
  doneInQueueLocked(): number {
    const i32 = this.h.i32;
    const capacity = i32[this.base + CAPACITY]!;
    const ring = i32[this.base + RING]! >> 2;
    const head = i32[this.base + HEAD]!;
    let done = 0;
    for (let i = 0, count = i32[this.base + COUNT]!; i < count; i++) {
      if (recordFutureDone(this.h, i32[ring + ((head + i) % capacity)]!)) done++;
    }
    return done;
  }

  /** A pool thread is about to settle its task and come back for another (counts as idle). */
  finishing(): void {
    // A count put() reads under LOCK; nobody sleeps on it.
    Atomics.add(this.h.i32, this.base + FINISHING, 1);
  }

  /**
   * Counts `n` (±1) tasks queued or running. The pool holds the process open while it has any
   * (registry.ts): only its 0 → 1 and 1 → 0 changes touch the process-wide count, so a stream of
   * tasks costs one atomic on the pool's own block per submit and per completion. Two changes
   * racing (a submit's 0 → 1, a completion's 1 → 0) may reach the process count in either order;
   * it may pass through -1 but never shows 0 while work is left (thread/registry.ts).
   */
  work(n: number): void {
    const before = Atomics.add(this.h.i32, this.base + WORK, n);
    if (before === 0 && n > 0) holdProcess(1);
    else if (before + n === 0) holdProcess(-1);
  }

  /** A pool thread that called finishing() will not take another task (its isolate is exiting). */
  notFinishing(): void {
    Atomics.sub(this.h.i32, this.base + FINISHING, 1);
  }

  /**
   * Queues a task record (its block is owned by the queue from now on). Returns REFUSED, and
   * queues nothing, once the pool is shut down or broken: checked under LOCK, which close()
   * also takes, so a record is either queued before the close (and drained or run after it)
   * or refused. Returns NEEDS_THREAD when, counted under LOCK, more tasks are queued than pool
   * threads are idle (CPython's test for starting a thread), else QUEUED.
   */
  put(record: number): PutResult {
    const result = this.locked((i32): PutResult => {
      if (i32[this.base + SHUTDOWN]) return REFUSED;
      const max = i32[this.base + MAX_QUEUE]!;
      if (max > 0 && i32[this.base + COUNT]! >= max) return FULL;
      if (i32[this.base + COUNT] === i32[this.base + CAPACITY]) this.growRing();
      const capacity = this.h.i32[this.base + CAPACITY]!;
      const ring = this.h.i32[this.base + RING]! >> 2;
      const tail = (this.h.i32[this.base + HEAD]! + this.h.i32[this.base + COUNT]!) % capacity;
      this.h.i32[ring + tail] = record;
      const count = this.h.i32[this.base + COUNT]! + 1;
      this.h.i32[this.base + COUNT] = count;
      // Bumped under LOCK: a taker read AVAILABLE under LOCK before sleeping on it, so it either
      // saw this record or sleeps on the old value and is woken below.
      Atomics.add(this.h.i32, this.base + AVAILABLE, 1);
      // Takers move between SLEEPERS, FINISHING and taking a record under LOCK, so this count is
      // exact (finishing() may add at any time: at worst one thread fewer is started).
      const idle = this.h.i32[this.base + SLEEPERS]! + Atomics.load(this.h.i32, this.base + FINISHING);
      return count > idle ? NEEDS_THREAD : QUEUED;
    });
    // SLEEPERS is raised under LOCK before a taker reads AVAILABLE: a taker that can miss the
    // bump above is already counted here.
    if ((result === QUEUED || result === NEEDS_THREAD) && Atomics.load(this.h.i32, this.base + SLEEPERS) > 0) Atomics.notify(this.h.i32, this.base + AVAILABLE, 1);
    return result;
  }

  /** Sets maxQueue (0: unbounded). Before the pool is shared. */
  setMaxQueue(max: number): void {
    this.h.i32[this.base + MAX_QUEUE] = max;
  }

  get maxQueue(): number {
    return this.get(MAX_QUEUE);
  }

  /** Blocks until fewer than maxQueue tasks are queued (or the pool is shut down). */
  waitForRoom(pool: number): void {
    parkUntil(this.roomLoop(pool), Infinity);
  }

  /** The Promise twin of waitForRoom. */
  async waitForRoomAsync(pool: number): Promise<void> {
    await parkUntilAsync(this.roomLoop(pool), Infinity, undefined);
  }

  /**
   * Why no wake is lost: a waiter counts itself in ROOM_WAITERS, then reads ROOM, then COUNT; a
   * take lowers COUNT, then bumps ROOM, then reads ROOM_WAITERS. Either the waiter sees the
   * lower COUNT, or it sleeps on a ROOM the take changes (and notifies, having seen the waiter).
   */
  private roomLoop(pool: number): WaitLoop {
    const i32 = this.h.i32;
    const base = this.base;
    return {
      i32,
      waiters: base + ROOM_WAITERS,
      word: base + ROOM,
      kind: WaitKind.QueuePut,
      object: pool,
      prepare(): number {
        const seen = Atomics.load(i32, base + ROOM);
        if (Atomics.load(i32, base + SHUTDOWN) !== 0 || Atomics.load(i32, base + COUNT) < Atomics.load(i32, base + MAX_QUEUE)) return READY;
        return seen;
      },
    };
  }

  /**
   * Takes the oldest task record, waiting until `deadline` (performance.now() ms) while there
   * is none. Returns the record, 0 once the queue is shut down and empty (the pool thread then
   * ends), or -1 when the deadline passed: the thread then still counts as idle (FINISHING)
   * and passes `wasFinishing` to its next take(), as after finishing(). See also tookDone.
   */
  take(deadline: number, wasFinishing: boolean): number {
    let counted: 'finishing' | 'sleeping' | undefined = wasFinishing ? 'finishing' : undefined;
    let timedOut = false;
    this.tookDone = false;
    for (;;) {
      const seen = this.locked((i32): { record: number } | { available: number } => {
        // Leave the idle count we are in and, in the same step under LOCK, take a record or
        // count ourselves again: put() never sees this thread neither idle nor busy.
        if (counted === 'finishing') Atomics.sub(i32, this.base + FINISHING, 1); // (finishing() adds outside LOCK)
        if (counted === 'sleeping') i32[this.base + SLEEPERS] = i32[this.base + SLEEPERS]! - 1;
        counted = undefined;
        if (i32[this.base + COUNT]! > 0) {
          const record = this.popLocked();
          this.tookDone = recordFutureDone(this.h, record);
          if (this.tookDone) {
            this.countLocked(CANCELLED_TASK, 1);
            // (A count put() reads for its idle estimate; nobody sleeps on it: no wake owed.)
            Atomics.add(i32, this.base + FINISHING, 1);
          }
          return { record };
        }
        if (i32[this.base + SHUTDOWN]) return { record: 0 };
        if (timedOut) {
          Atomics.add(i32, this.base + FINISHING, 1);
          return { record: -1 };
        }
        i32[this.base + SLEEPERS] = i32[this.base + SLEEPERS]! + 1;
        counted = 'sleeping';
        return { available: i32[this.base + AVAILABLE]! };
      });
      if ('record' in seen) return seen.record;
      try {
        // Sleep only while AVAILABLE holds what we read under LOCK (see put). Spin a while
        // first: under a steady stream of tasks the next one comes within microseconds.
        // (A setting, read before the park: it only picks how long to spin; nobody waits on it.)
        const spin = Atomics.load(this.h.i32, this.base + NO_SPIN) === 0 ? TAKE_SPIN_MICROS : 0;
        timedOut = park(this.h.i32, this.base + AVAILABLE, seen.available, deadline, WaitKind.Work, 0, false, spin) === 'timed-out';
      } catch (error) {
        this.locked((i32) => {
          i32[this.base + SLEEPERS] = i32[this.base + SLEEPERS]! - 1;
        });
        throw error;
      }
    }
  }

  /**
   * Removes and returns every queued record (shutdown with cancelFutures, a broken pool);
   * `whileLocked` sees them before LOCK is released (the pool counts them in the same step).
   */
  drain(whileLocked?: (records: number[]) => void): number[] {
    return this.locked((i32) => {
      const records: number[] = [];
      while (i32[this.base + COUNT]! > 0) records.push(this.popLocked());
      whileLocked?.(records);
      return records;
    });
  }

  /**
   * Marks shutdown (and broken, when `broken` is non-zero: why, thread-pool.ts) and wakes every
   * sleeping pool thread. Returns true when this call is the one that broke the pool.
   */
  close(broken: number): boolean {
    const brokeNow = this.locked((i32) => {
      i32[this.base + SHUTDOWN] = 1;
      // Bumped under LOCK, as put() does: a taker that read AVAILABLE before sleeps on the old value and is woken below.
      Atomics.add(i32, this.base + AVAILABLE, 1);
      this.announceRoom(Infinity); // every submitter waiting for room sees the shutdown
      if (broken === 0 || i32[this.base + BROKEN] !== 0) return false;
      i32[this.base + BROKEN] = broken;
      return true;
    });
    Atomics.notify(this.h.i32, this.base + AVAILABLE);
    return brokeNow;
  }

  /** Adds a function descriptor (encoded block) to the table; returns its id. */
  addFunction(descriptor: unknown): number {
    const block = encodeToBlock(this.h, descriptor, 'function');
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
    for (const record of this.drain()) {
      this.work(-1); // a queued task holds the process until it leaves the pool
      dropRecord(this.h, record);
    }
    dropReference(this.h.i32[this.base + RING]!);
    const table = this.h.i32[this.base + FUNCTIONS]! >> 2;
    for (let id = 0; id < this.h.i32[this.base + FN_COUNT]!; id++) dropReference(this.h.i32[table + id]!);
    dropReference(this.h.i32[this.base + FUNCTIONS]!);
  }

  /** A task left the queue (or it closed): wake a submitter waiting for room (see roomLoop). */
  private announceRoom(wake = 1): void {
    // Bump, then read the waiters (roomLoop's header): a waiter counted before our read is
    // notified; one counted after it reads COUNT after our bump, and sees the room.
    Atomics.add(this.h.i32, this.base + ROOM, 1);
    if (Atomics.load(this.h.i32, this.base + ROOM_WAITERS) > 0) Atomics.notify(this.h.i32, this.base + ROOM, wake);
  }

  private popLocked(): number {
    const i32 = this.h.i32;
    const capacity = i32[this.base + CAPACITY]!;
    const head = i32[this.base + HEAD]!;
    const record = i32[(i32[this.base + RING]! >> 2) + head]!;
    i32[this.base + HEAD] = (head + 1) % capacity;
    const count = i32[this.base + COUNT]! - 1;
    i32[this.base + COUNT] = count;
    if (count === 0 && capacity >= SHRINK_CAPACITY) this.shrinkEmptyRing();
    if (i32[this.base + MAX_QUEUE] !== 0) this.announceRoom();
    return record;
  }

  /** Swaps the empty ring for a small one (under LOCK); keeps the big one if none can be had. */
  private shrinkEmptyRing(): void {
    const h = this.h;
    let small: number;
    try {
      small = h.alloc(INITIAL_CAPACITY * 4, Kind.Bytes);
    } catch {
      return;
    }
    dropReference(h.i32[this.base + RING]!);
    h.i32[this.base + RING] = small;
    h.i32[this.base + HEAD] = 0;
    h.i32[this.base + CAPACITY] = INITIAL_CAPACITY;
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

/**
 * Builds a task record: the future (one reference for the record), the function id, and the
 * encoded `args` (a chunk of argument lists when `chunked`); `root` names the args in errors.
 * @throws TypeError naming the path of an argument that cannot be sent (nothing is queued).
 */
export function encodeRecord(h: Heap, future: SharedObject, functionId: number, args: unknown, chunked: boolean, root: string): number {
  const block = encodeToBlock(h, args, root, REC_ARGS);
  h.retain(future._offset);
  const at = block >> 2;
  h.i32[at + REC_FUTURE] = future._offset;
  h.i32[at + REC_FUNCTION] = (functionId << 1) | (chunked ? 1 : 0);
  h.f64[(future._offset >> 3) + SUBMITTED_F64] = sharedClock(); // (published with the record, under the queue's lock)
  return block;
}

/** What a pool thread reads from a record before it runs the task. */
export interface TaskHeader {
  /** The future's block: the record's reference is now the reader's. */
  future: number;
  functionId: number;
  chunked: boolean;
  /** When it was submitted (sharedClock() ms). */
  submitted: number;
}

export function readHeader(h: Heap, block: number): TaskHeader {
  h.ensureMapped(h.topBytes());
  const at = block >> 2;
  const fn = h.i32[at + REC_FUNCTION]!;
  const future = h.i32[at + REC_FUTURE]!;
  return { future, functionId: fn >>> 1, chunked: (fn & 1) === 1, submitted: h.f64[(future >> 3) + SUBMITTED_F64]! };
}

/** Decodes a record's arguments and frees the record (the decode adopts the handles inside). */
export function takeArgs(h: Heap, block: number): unknown {
  h.ensureMapped(h.topBytes());
  try {
    return decodeValue(h.buf, block + REC_ARGS);
  } finally {
    dropReference(block);
  }
}

/** Frees a record whose task will not run, except for the future reference (already taken). */
export function dropArgs(h: Heap, block: number): void {
  h.ensureMapped(h.topBytes());
  dropEncoded(h.buf, block + REC_ARGS);
  dropReference(block);
}

/** Takes a record that will not run (cancelled, broken pool): this thread's wrapper of its future. */
export function recordFuture(h: Heap, block: number): SharedObject {
  const { future } = readHeader(h, block);
  dropArgs(h, block);
  return reviveHandle(future);
}

/** True when the future of a record that has not run is done already (cancelled while queued). */
export function recordFutureDone(h: Heap, block: number): boolean {
  const future = h.i32[(block >> 2) + REC_FUTURE]!;
  return (Atomics.load(h.i32, (future >> 2) + FUTURE_STATE) & FUTURE_STATE_MASK) >= FUTURE_DONE;
}

/** Frees a record without running it. */
export function dropRecord(h: Heap, block: number): void {
  const { future } = readHeader(h, block);
  dropArgs(h, block);
  dropReference(future);
}
