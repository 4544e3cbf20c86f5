/**
 * The machinery every threadkit queue shares. One block in the shared heap holds the queue's
 * state (two lock-and-counter words, waiter counts, the futex words sleepers wait on), a second
 * block owned by the queue holds the items as records. An item is encoded once, by the putter,
 * straight into that storage (numbers, booleans, null, undefined and strings in a record format
 * of their own; anything else with the value codec; an item whose encoding is larger than
 * INLINE_MAX in a Bytes block of its own, referenced from its record) and decoded once by the
 * getter. `QueueCore` holds put/get/qsize/shutdown and their async twins, and the FIFO storage:
 * a byte ring with a put lock and a get lock, so one producer and one consumer never take the
 * same lock. LifoQueue and PriorityQueue replace the storage hooks (`_insert`, `_take`, …) and
 * guard both ends with the put lock.
 *
 * Where the parts live: the queue block's slots and who writes each in layout.ts, the flavors
 * and their registry in flavors.ts, the record format in records.ts, the operations on the
 * lock-and-counter words in counted-lock.ts, the sleeps of getters and putters in waits.ts, the
 * FIFO ring in ring.ts (called from the storage hooks here), the options in options.ts. This
 * file keeps the protocol that ties them: put, get, their async twins, qsize, shutdown.
 *
 * Lock-and-counter words: `count × 8 + WAIT (bit 2) + lock state (bits 0-1)`, the lock state
 * being the three-state mutex of shm/mutex.ts (0 free, 1 held, 2 held and maybe slept on).
 * Taking the lock is one compareExchange that keeps the count; releasing it is one
 * compareExchange that writes the new count with the lock free, so releasing *is* publishing:
 * a getter that reads the put word and sees a count sees every record written before it. Counts
 * wrap (29 bits); differences are taken modulo 2^32 (`((a & -8) - (b & -8) | 0) >> 3`), so a
 * queue holds at most 2^28 items. `qsize = put count - get count`, `unfinishedTasks = put count
 * - DONE_WORD / 8`. For LIFO and priority the put word's lock guards both ends and the get
 * word is only a counter (with WAIT).
 *
 * Each end keeps a copy of the other end's word (PUT_CACHE, GET_CACHE) and a FIFO putter a
 * copy of the get end's position (HEAD_CACHE), re-read only when the copy says "empty", "full"
 * or "no room": a copy can only lag, so it errs on the safe side. The getter publishes its
 * position (HEAD_PUB) only every quarter ring, so a get writes one shared word, not two; a
 * putter therefore sees up to a quarter of the ring as used when it is free, and the ring grows
 * a little earlier than it must.
 *
 * Waking (the rule at every Atomics call below, in counted-lock.ts and in waits.ts). A getter
 * that must sleep registers in GET_WAITERS, reads its futex word NOT_EMPTY_SEQ, sets WAIT on the
 * put word, re-checks the count, and sleeps only while NOT_EMPTY_SEQ still holds what it read
 * (putters: PUT_WAITERS, NOT_FULL_SEQ, WAIT on the get word). A put publishes with a
 * compareExchange from the value it locked: if WAIT was set before that, the exchange fails or
 * WAIT was already in the locked value, and the putter takes the slow release (releaseSlow): it
 * bumps NOT_EMPTY_SEQ, wakes one sleeper, and keeps WAIT set while others stay registered. If
 * WAIT is set after the publish, the sleeper's re-check (which follows its WAIT) sees the item.
 * These are all sequentially consistent atomics, so the hot path pays nothing for sleepers (no
 * waiter count is read) and no wake is lost. One notify wakes one sleeper per item (or per freed
 * slot): a woken thread takes the item or, if another thread took it first, sleeps again; a
 * thread whose wait timed out is not one a notify can pick (Atomics.notify wakes only threads
 * still asleep). An async waiter that is aborted wakes every sleeper on its word (futexWaitAsync
 * does), so it cannot swallow a wake meant for another. shutdown() and a raised maxsize bump the
 * words and wake everyone.
 */

import { inspect } from 'node:util';
import { QueueEmpty, QueueFull, QueueShutDown } from '../errors.js';
import { decodeReceived } from '../shm/codec.js';
import { deadlineAfter } from '../shm/futex.js';
import { Kind, SharedObject } from '../shm/handles.js';
import { HeapExhaustedError } from '../shm/heap.js';
import { ONE, itemsBetween, lockCounted, lockCountedAsync, publishCount, releaseKeep, releasePublish, tryLockCounted } from './counted-lock.js';
import { Flavor } from './flavors.js';
import { CAP, DONE_WORD, FLAVOR, GET_CACHE, GET_WAITERS, GET_WORD, JOIN_WAITERS, MAXSIZE, NOT_EMPTY_SEQ, NOT_FULL_SEQ, PUT_CACHE, PUT_WAITERS, PUT_WORD, QUEUE_BLOCK_BYTES, STATE } from './layout.js';
import { type QueueAsyncOptions, type QueueOptions, negativeTimeout, optBlock, optTimeout, parseOptions } from './options.js';
import { DECODE_BLOCK, DECODE_ITEM, DECODE_SCRATCH, R, STAGE, Staged, receiveBlock, scratch, scratchLength, stageItem, takenBlock, unstage } from './records.js';
import { SHRINK_ABOVE, detachFifo, drainFifo, insertFifo, maybeShrink, resetStorage, takeFifo } from './ring.js';
import { available, waitForEnd, waitForEndAsync } from './waits.js';
import { COUNTER_QUEUE_DEPTH, TraceType, traceEvent, wake } from '../shm/trace-ring.js';
import { S_TRACE } from '../shm/heap.js';
import { enterInternal, leaveInternal } from '../shm/kill-guard.js';

// ---- the core class --------------------------------------------------------------------------------

const PUT_OK = 0;
const PUT_SHUT = 1;
const PUT_FULL = 2;
/** A get attempt found no item. */
const NONE: unique symbol = Symbol('none');

/**
 * What every queue class is made of. The public methods here are the ones all four share;
 * Queue adds maxsize, full, taskDone, join and unfinishedTasks.
 * @internal
 */
export abstract class QueueCore<T = unknown> extends SharedObject {
  /** @internal Int32 slot of the block's first field. */
  readonly _base: number;
  /** @internal LIFO and priority: the put word's lock guards both ends. */
  readonly _oneLock: boolean;
  /** @internal the value this thread last released the put / get word with (its CAS guess). */
  _putGuess = 0;
  _getGuess = 0;
  /** @internal a recent put word, for taskDone's "too many times" check. */
  _putSeen = 0;

  protected constructor(flavor: Flavor, maxsize: number) {
    super(Kind.Queue, QUEUE_BLOCK_BYTES);
    this._base = this._offset >> 2;
    this._oneLock = flavor === Flavor.Lifo || flavor === Flavor.Priority;
    if (this._fresh) {
      const i32 = this._heap.i32;
      i32[this._base + FLAVOR] = flavor;
      i32[this._base + MAXSIZE] = maxsize;
    }
  }

  /** @internal class name for messages and toString. */
  abstract get _name(): string;

  // ---- storage hooks (the FIFO ring of ring.ts here; LifoQueue and PriorityQueue override) ------------

  /** @internal Stages an item for `_insert` (the priority queue builds its item block here). */
  _stage(st: Staged, item: unknown, op: string): Staged {
    return stageItem(st, item, this._name, op, false, this._offset);
  }

  /**
   * @internal Writes the staged item into the storage. The caller holds the put lock and has
   * checked that the queue is open and not full; it publishes the item afterwards. May throw
   * (heap exhausted; priority TypeError) leaving the storage as it was.
   */
  _insert(st: Staged): void {
    insertFifo(this._heap, this._base, st, this);
  }

  /**
   * @internal Takes the oldest item; the caller holds the get lock and has seen one there.
   * Returns the value, or a DECODE_* marker for work to do once the lock is released.
   */
  _take(): unknown {
    return takeFifo(this._heap, this._base);
  }

  /** @internal Forgets the storage (both ends locked; the queue is empty or was drained). */
  _resetStorage(i32: Int32Array): void {
    resetStorage(i32, this._base);
  }

  /**
   * @internal Detaches the storage and everything in it (both ends locked). Returns what
   * `_dropDetached` needs to drop the items once the locks are released.
   */
  _detachAll(i32: Int32Array): number[] {
    return detachFifo(i32, this._base);
  }

  /** @internal Drops items detached by `_detachAll`, then their storage. */
  _dropDetached(detached: number[]): void {
    drainFifo(this._heap, detached[0]!, detached[1]!, detached[2]!, detached[3]!);
  }

  // ---- put ------------------------------------------------------------------------------------------

  /**
   * Puts `item` at the tail of the queue. Blocks while the queue is full (never for an unbounded
   * queue), at most `timeout` ms; with `block: false` fails at once.
   * @throws QueueFull when there was no free slot in time; QueueShutDown after `shutdown()`;
   *   TypeError when the item cannot be sent to another thread (the path is named);
   *   HeapExhaustedError when it does not fit in the shared heap; RangeError for a negative
   *   timeout (on a bounded queue, as CPython).
   */
  put(item: T, options?: QueueOptions): void {
    // Encoded and queued in one kill-safe section (shm/kill-guard.ts): a kill never loses the item's blocks.
    enterInternal();
    try {
      this._put(item, options);
    } finally {
      leaveInternal();
    }
  }

  private _put(item: T, options: QueueOptions | undefined): void {
    if (options === undefined) {
      const st = this._stage(STAGE, item, 'put');
      if (this._putOnce(st) !== PUT_OK) this._putWait(st, true, undefined, 'put');
      return;
    }
    // The options before the item is staged (as putAsync): a getter in them that puts on a
    // queue uses STAGE and the option words itself.
    parseOptions(options, this._name, 'put');
    const block = optBlock;
    const timeout = optTimeout;
    // CPython checks a negative timeout of a blocking put on a bounded queue before it looks
    // for room (after the shutdown check).
    if (block && timeout !== undefined && timeout < 0 && this._bounded()) {
      if (this.isShutdown) throw new QueueShutDown();
      throw negativeTimeout(this._name, 'put');
    }
    this._putWait(this._stage(STAGE, item, 'put'), block, timeout, 'put');
  }

  /** `put(item, { block: false })`. @throws QueueFull when full; QueueShutDown after shutdown. */
  putNowait(item: T): void {
    const st = this._stage(STAGE, item, 'putNowait');
    const status = this._putOnce(st);
    if (status === PUT_OK) return;
    unstage(st);
    throw status === PUT_SHUT ? new QueueShutDown() : new QueueFull();
  }

  /** @internal Whether the queue has a bound (puts may wait). */
  protected _bounded(): boolean {
    // An instant's answer for argument checks; nothing waits on it.
    return Atomics.load(this._heap.i32, this._base + MAXSIZE) > 0;
  }

  /** Attempts until the put succeeds, fails (non-blocking, shut down) or times out. */
  private _putWait(st: Staged, block: boolean, timeout: number | undefined, op: string): void {
    let deadline = NaN;
    for (;;) {
      const status = this._putOnce(st);
      if (status === PUT_OK) return;
      if (status === PUT_SHUT) {
        unstage(st);
        throw new QueueShutDown();
      }
      if (!block) {
        unstage(st);
        throw new QueueFull();
      }
      if (timeout !== undefined && timeout < 0) {
        unstage(st);
        throw negativeTimeout(this._name, op);
      }
      if (Number.isNaN(deadline)) deadline = deadlineAfter(timeout ?? Infinity);
      let room: boolean;
      try {
        room = waitForEnd(this._heap, this._base, false, deadline);
      } catch (error) {
        unstage(st); // interrupted: the item was never put
        throw error;
      }
      if (!room) {
        const last = this._putOnce(st);
        if (last === PUT_OK) return;
        unstage(st);
        throw last === PUT_SHUT ? new QueueShutDown() : new QueueFull();
      }
    }
  }

  /** One attempt: take the put lock, then `_putLocked`. */
  private _putOnce(st: Staged): number {
    return this._putLocked(st, lockCounted(this._heap.i32, this._base + PUT_WORD, this._putGuess));
  }

  /**
   * With the put lock held (`word`): check state and room, write, publish, wake a getter.
   * Always releases the lock. Returns PUT_*; on a throw the item is unstaged.
   */
  private _putLocked(st: Staged, word: number): number {
    const h = this._heap;
    const i32 = h.i32;
    const b = this._base;
    const put = word & -8;
    // STATE and MAXSIZE are written under the put lock, which we hold (plain reads suffice: the
    // lock's compareExchange ordered us after the writer's release); no put follows a shutdown.
    if (i32[b + STATE] !== 0) {
      this._putGuess = word & -4;
      releaseKeep(i32, b + PUT_WORD, word);
      return PUT_SHUT;
    }
    const max = i32[b + MAXSIZE]!;
    if (max > 0 && itemsBetween(put, i32[b + GET_CACHE]!) >= max) {
      // The get word is released after the getter has read its record: the slot is free.
      const got = Atomics.load(i32, b + GET_WORD);
      i32[b + GET_CACHE] = got;
      if (itemsBetween(put, got) >= max) {
        this._putGuess = word & -4;
        releaseKeep(i32, b + PUT_WORD, word);
        return PUT_FULL;
      }
    }
    try {
      this._insert(st);
    } catch (error) {
      this._putGuess = word & -4;
      releaseKeep(h.i32, b + PUT_WORD, word);
      unstage(st);
      throw error;
    }
    const next = (put + ONE) | 0;
    this._putGuess = next;
    // Releasing publishes the item (a getter that reads the new count sees the record) and
    // wakes a sleeping getter if one announced itself (releasePublish).
    releasePublish(h.i32, b + PUT_WORD, word, next, b + GET_WAITERS, b + NOT_EMPTY_SEQ);
    st.clear();
    // Tracing: the queue's depth after the put (off, one plain load).
    if (h.i32[S_TRACE] !== 0) traceEvent(TraceType.Counter, 0, this._offset, COUNTER_QUEUE_DEPTH, this.qsize());
    return PUT_OK;
  }

  // ---- get ------------------------------------------------------------------------------------------

  /**
   * Removes and returns the next item. Blocks while the queue is empty, at most `timeout` ms;
   * with `block: false` fails at once. After `shutdown()` it still returns the items left, then
   * throws QueueShutDown.
   * @throws QueueEmpty when no item came in time; QueueShutDown when shut down and empty;
   *   RangeError for a negative timeout.
   */
  get(options?: QueueOptions): T {
    // Taken and decoded in one kill-safe section (shm/kill-guard.ts).
    enterInternal();
    try {
      return this._get(options);
    } finally {
      leaveInternal();
    }
  }

  private _get(options: QueueOptions | undefined): T {
    if (options === undefined) {
      const value = this._getOnce();
      if (value !== NONE) return this._finish(value) as T;
      return this._getWait(true, undefined, 'get');
    }
    parseOptions(options, this._name, 'get');
    const block = optBlock;
    const timeout = optTimeout;
    return this._getWait(block, timeout, 'get');
  }

  /** `get({ block: false })`. @throws QueueEmpty when empty; QueueShutDown when shut down and empty. */
  getNowait(): T {
    let value = this._getOnce();
    if (value === NONE) value = this._shutOrNone();
    if (value !== NONE) return this._finish(value) as T;
    throw new QueueEmpty();
  }

  /**
   * After an attempt found the queue empty: if it is shut down, one more attempt (a put that
   * finished before the shutdown may have come after our attempt; none can come after the
   * shutdown) and QueueShutDown if that finds nothing either. Else NONE.
   */
  private _shutOrNone(): unknown {
    if (!this.isShutdown) return NONE;
    const value = this._getOnce();
    if (value !== NONE) return value;
    throw new QueueShutDown();
  }

  /** Attempts until an item comes, or failure (non-blocking, shut down and empty, timeout). */
  private _getWait(block: boolean, timeout: number | undefined, op: string): T {
    if (block && timeout !== undefined && timeout < 0) {
      if (this.isShutdown && !available(this._heap, this._base)) throw new QueueShutDown();
      throw negativeTimeout(this._name, op);
    }
    let deadline = NaN;
    for (;;) {
      let value = this._getOnce();
      if (value === NONE) value = this._shutOrNone();
      if (value !== NONE) return this._finish(value) as T;
      if (!block) throw new QueueEmpty();
      if (Number.isNaN(deadline)) deadline = deadlineAfter(timeout ?? Infinity);
      if (!waitForEnd(this._heap, this._base, true, deadline)) {
        let last = this._getOnce();
        if (last === NONE) last = this._shutOrNone();
        if (last !== NONE) return this._finish(last) as T;
        throw new QueueEmpty();
      }
    }
  }

  /** One attempt: take the get lock (the put lock for one-lock queues), then `_getLocked`. */
  private _getOnce(): unknown {
    const i32 = this._heap.i32;
    const b = this._base;
    if (this._oneLock) return this._getLocked(lockCounted(i32, b + PUT_WORD, this._putGuess));
    return this._getLocked(lockCounted(i32, b + GET_WORD, this._getGuess));
  }

  /**
   * With the get lock held (`word`: the get word's value, or the put word's for one-lock
   * queues): take an item if there is one, publish, wake a putter. Always releases the lock.
   */
  private _getLocked(word: number): unknown {
    const h = this._heap;
    let i32 = h.i32;
    const b = this._base;
    const oneLock = this._oneLock;
    const lockWord = oneLock ? b + PUT_WORD : b + GET_WORD;
    // One-lock queues: putters may set WAIT on the get word without the lock, hence the atomic read.
    const getWord = oneLock ? Atomics.load(i32, b + GET_WORD) : word;
    const got = getWord & -8;
    let left: number;
    if (oneLock) {
      left = itemsBetween(word, got);
    } else {
      left = itemsBetween(i32[b + PUT_CACHE]!, got);
      if (left <= 0) {
        // The put word is released after the record is written: reading it makes it visible.
        const put = Atomics.load(i32, b + PUT_WORD);
        i32[b + PUT_CACHE] = put;
        left = itemsBetween(put, got);
      }
    }
    if (left <= 0) {
      if (oneLock) this._putGuess = word & -4;
      else this._getGuess = word & -4;
      releaseKeep(i32, lockWord, word);
      return NONE;
    }
    const value = this._take();
    i32 = h.i32;
    const next = (got + ONE) | 0;
    if (left === 1 && i32[b + CAP]! > SHRINK_ABOVE) maybeShrink(h, b, next, oneLock ? word : -1, this._putGuess);
    i32 = h.i32;
    // Publishing the new get count frees a slot and wakes a putter that announced itself.
    if (oneLock) {
      publishCount(i32, b + GET_WORD, getWord, next, b + PUT_WAITERS, b + NOT_FULL_SEQ);
      this._putGuess = word & -4;
      releaseKeep(i32, lockWord, word);
    } else {
      releasePublish(i32, b + GET_WORD, word, next, b + PUT_WAITERS, b + NOT_FULL_SEQ);
      this._getGuess = next;
    }
    if (h.i32[S_TRACE] !== 0) traceEvent(TraceType.Counter, 0, this._offset, COUNTER_QUEUE_DEPTH, this.qsize());
    return value;
  }

  /**
   * Turns a `_take` marker into the item (decoding happens with no lock held). An item that
   * fails to decode here is put back (`_putBack`) and the get throws.
   */
  private _finish(value: unknown): unknown {
    if (typeof value !== 'symbol') return value;
    if (value === DECODE_SCRATCH) return this._receiveScratch(scratchLength);
    if (value === DECODE_BLOCK) return this._receiveBlock(takenBlock);
    if (value === DECODE_ITEM) return this._decodeItem(takenBlock);
    return value;
  }

  private _receiveScratch(length: number): unknown {
    try {
      return decodeReceived(scratch, 0, true);
    } catch (error) {
      const st = new Staged();
      st.type = R.CODEC;
      st.len = length;
      st.bytes = Uint8Array.prototype.slice.call(scratch, 0, length);
      throw this._putBack(st, error);
    }
  }

  private _receiveBlock(block: number): unknown {
    try {
      return receiveBlock(this._heap, block);
    } catch (error) {
      const st = new Staged();
      st.type = R.BLOCK;
      st.len = 4;
      st.block = block;
      throw this._putBack(st, error);
    }
  }

  /**
   * @internal A got item failed to decode in this thread: it goes back into the queue (a FIFO
   * queue's tail, a LIFO queue's top, its place by priority), so nothing is lost, and the
   * error for the get to throw is returned. It ignores maxsize and shutdown (the item was in
   * the queue already) and is not counted as a new unfinished task.
   */
  _putBack(st: Staged, error: unknown): Error {
    const why = error instanceof Error ? error.message : String(error);
    const h = this._heap;
    const b = this._base;
    const word = lockCounted(h.i32, b + PUT_WORD, this._putGuess);
    try {
      this._insert(st);
    } catch (insertError) {
      this._putGuess = word & -4;
      releaseKeep(h.i32, b + PUT_WORD, word);
      unstage(st);
      this._lostTaskDone();
      return new HeapExhaustedError(`${this._name}.get: an item could not be decoded in this thread (${why}), and the shared heap had no room to put it back: it is lost`, { cause: insertError });
    }
    const next = ((word & -8) + ONE) | 0;
    this._putGuess = next;
    // As a put: releasing publishes the item and wakes a getter that announced itself.
    releasePublish(h.i32, b + PUT_WORD, word, next, b + GET_WAITERS, b + NOT_EMPTY_SEQ);
    // The put above counted the item's task a second time: count one done. After the put, so
    // that unfinishedTasks never dips to 0 on the way (joiners need no wake-up: it stays > 0).
    Atomics.add(h.i32, b + DONE_WORD, ONE);
    const where = this._oneLock ? '' : ' (at its tail)';
    const Kind = error instanceof RangeError ? RangeError : TypeError;
    return new Kind(`${this._name}.get: the item could not be decoded in this thread; it is back in the queue${where}: ${why}`, { cause: error });
  }

  /**
   * A got item that is lost (it failed to decode and could not go back) counts as a task done:
   * nobody will call taskDone() for it, and join() must not wait for it for ever.
   */
  private _lostTaskDone(): void {
    const i32 = this._heap.i32;
    const b = this._base;
    // As taskDone(): DONE_WORD moves with a compareExchange (joiners sleep on its value) and,
    // when that leaves no task unfinished, joiners are woken.
    for (;;) {
      const done = Atomics.load(i32, b + DONE_WORD);
      const next = (done + ONE) | 0;
      if (Atomics.compareExchange(i32, b + DONE_WORD, done, next) !== done) continue;
      if (itemsBetween(Atomics.load(i32, b + PUT_WORD), next) <= 0) wake(i32, b + DONE_WORD);
      return;
    }
  }

  /** @internal PriorityQueue: decode and free a taken item block. */
  _decodeItem(_block: number): unknown {
    return undefined;
  }

  // ---- async twins --------------------------------------------------------------------------------

  /**
   * The Promise twin of `put`: waits for a free slot without blocking the event loop.
   * Rejects as `put` throws, or with `signal.reason` on abort (the item is then not put).
   */
  async putAsync(item: T, options?: QueueAsyncOptions): Promise<void> {
    parseOptions(options, this._name, 'putAsync');
    const block = optBlock;
    const timeout = optTimeout;
    const signal = options?.signal;
    signal?.throwIfAborted();
    if (block && timeout !== undefined && timeout < 0 && this._bounded()) {
      if (this.isShutdown) throw new QueueShutDown();
      throw negativeTimeout(this._name, 'putAsync');
    }
    let st = this._stage(STAGE, item, 'putAsync');
    const h = this._heap;
    const b = this._base;
    let deadline = NaN;
    try {
      for (;;) {
        let word = tryLockCounted(h.i32, b + PUT_WORD, this._putGuess);
        if (word < 0) {
          if (st === STAGE) st = st.detach();
          // Never hold an internal lock across an await: wait for it, then finish synchronously.
          word = await lockCountedAsync(h.i32, b + PUT_WORD);
        }
        const status = this._putLocked(st, word);
        if (status === PUT_OK) return;
        if (status === PUT_SHUT) throw new QueueShutDown();
        if (!block) throw new QueueFull();
        if (timeout !== undefined && timeout < 0) throw negativeTimeout(this._name, 'putAsync');
        if (Number.isNaN(deadline)) deadline = deadlineAfter(timeout ?? Infinity);
        if (st === STAGE) st = st.detach();
        if (!(await waitForEndAsync(h, b, false, deadline, signal))) {
          const last = this._putOnce(st);
          if (last === PUT_OK) return;
          throw last === PUT_SHUT ? new QueueShutDown() : new QueueFull();
        }
      }
    } catch (error) {
      unstage(st);
      throw error;
    }
  }

  /**
   * The Promise twin of `get`: waits for an item without blocking the event loop.
   * Rejects as `get` throws, or with `signal.reason` on abort (no item is taken).
   */
  async getAsync(options?: QueueAsyncOptions): Promise<T> {
    parseOptions(options, this._name, 'getAsync');
    const block = optBlock;
    const timeout = optTimeout;
    const signal = options?.signal;
    signal?.throwIfAborted();
    if (block && timeout !== undefined && timeout < 0) {
      if (this.isShutdown && !available(this._heap, this._base)) throw new QueueShutDown();
      throw negativeTimeout(this._name, 'getAsync');
    }
    const h = this._heap;
    const lockWord = this._base + (this._oneLock ? PUT_WORD : GET_WORD);
    let deadline = NaN;
    for (;;) {
      let word = tryLockCounted(h.i32, lockWord, this._oneLock ? this._putGuess : this._getGuess);
      // Never hold an internal lock across an await: wait for it, then finish synchronously.
      if (word < 0) word = await lockCountedAsync(h.i32, lockWord);
      let value = this._getLocked(word);
      if (value === NONE) value = this._shutOrNone();
      if (value !== NONE) return this._finish(value) as T;
      if (!block) throw new QueueEmpty();
      if (Number.isNaN(deadline)) deadline = deadlineAfter(timeout ?? Infinity);
      if (!(await waitForEndAsync(h, this._base, true, deadline, signal))) {
        let last = this._getOnce();
        if (last === NONE) last = this._shutOrNone();
        if (last !== NONE) return this._finish(last) as T;
        throw new QueueEmpty();
      }
    }
  }

  /**
   * Yields items (each awaited with `getAsync`) until the queue is shut down and drained:
   * `for await (const item of queue) { … }`.
   */
  async *[Symbol.asyncIterator](): AsyncGenerator<T, void, undefined> {
    for (;;) {
      let item: T;
      try {
        item = await this.getAsync();
      } catch (error) {
        if (error instanceof QueueShutDown) return;
        throw error;
      }
      yield item;
    }
  }

  // ---- state ---------------------------------------------------------------------------------------

  /** The number of items in the queue (an instant's answer, as in Python: not reliable). */
  qsize(): number {
    const i32 = this._heap.i32;
    // The get word first: a put word read later counts at least every item taken before it.
    const got = Atomics.load(i32, this._base + GET_WORD);
    return itemsBetween(Atomics.load(i32, this._base + PUT_WORD), got);
  }

  /** True when the queue holds no item (an instant's answer). */
  empty(): boolean {
    return this.qsize() === 0;
  }

  /** True once `shutdown()` was called. */
  get isShutdown(): boolean {
    // STATE only goes 0 → 1, before shutdown's wake-ups: a waiter re-checks it after each wake.
    return Atomics.load(this._heap.i32, this._base + STATE) !== 0;
  }

  /**
   * Shuts the queue down: puts raise QueueShutDown from now on, and so do gets once the queue is
   * empty; every blocked put and get wakes. With `immediate`, the items left are removed at once
   * (and dropped: shared objects inside lose the reference they held), each counting as a task
   * done, so `join()` returns; gets then raise at once.
   */
  shutdown(immediate = false): void {
    const h = this._heap;
    const b = this._base;
    let detached: number[] | undefined;
    // The lock order: put, then get.
    const putHeld = lockCounted(h.i32, b + PUT_WORD, this._putGuess);
    const getHeld = this._oneLock ? -1 : lockCounted(h.i32, b + GET_WORD, this._getGuess);
    const put = putHeld & -8;
    // One-lock queues: the get word is written under the put lock we hold (putters may only add WAIT).
    let got = (this._oneLock ? Atomics.load(h.i32, b + GET_WORD) : getHeld) & -8;
    const gotBefore = got;
    try {
      const i32 = h.i32;
      // Under both locks and before the wake-ups below: no put follows, every waiter sees it.
      Atomics.store(i32, b + STATE, 1);
      const count = itemsBetween(put, got);
      if (immediate && count > 0) {
        detached = this._detachAll(i32);
        got = put;
        // Each removed item counts as a task done, but unfinishedTasks never goes below 0.
        for (;;) {
          // taskDone() may move DONE_WORD meanwhile: compareExchange; joiners are woken below.
          const done = Atomics.load(i32, b + DONE_WORD);
          const next = (done + ONE * Math.max(0, Math.min(count, itemsBetween(put, done)))) | 0;
          if (Atomics.compareExchange(i32, b + DONE_WORD, done, next) === done) break;
        }
      }
    } finally {
      const i32 = h.i32;
      if (this._oneLock) {
        // Getters read it under the put lock we hold; putters may set WAIT on it meanwhile.
        if (got !== gotBefore) publishCount(i32, b + GET_WORD, Atomics.load(i32, b + GET_WORD), got, b + PUT_WAITERS, b + NOT_FULL_SEQ);
      } else if (got !== gotBefore) {
        releasePublish(i32, b + GET_WORD, getHeld, got, b + PUT_WAITERS, b + NOT_FULL_SEQ);
      } else {
        releaseKeep(i32, b + GET_WORD, getHeld);
      }
      releaseKeep(i32, b + PUT_WORD, putHeld);
    }
    const i32 = h.i32;
    // STATE (and the counts) changed before these bumps: every sleeper either saw the new state
    // in its re-check or sleeps on a word we change here, and we wake them all.
    Atomics.add(i32, b + NOT_EMPTY_SEQ, 1);
    Atomics.notify(i32, b + NOT_EMPTY_SEQ);
    Atomics.add(i32, b + NOT_FULL_SEQ, 1);
    Atomics.notify(i32, b + NOT_FULL_SEQ);
    // Joiners sleep on DONE_WORD while it holds what they read; if it changed, wake them.
    if (detached !== undefined) Atomics.notify(i32, b + DONE_WORD);
    if (detached !== undefined) this._dropDetached(detached);
  }

  /** @internal the number of threads registered to sleep in get / put / join (for tests). */
  _waiters(which: 'get' | 'put' | 'join'): number {
    const slot = which === 'get' ? GET_WAITERS : which === 'put' ? PUT_WAITERS : JOIN_WAITERS;
    // An instant's answer for tests; nothing waits on it.
    return Atomics.load(this._heap.i32, this._base + slot);
  }

  protected _describeSize(): string {
    return `qsize=${this.qsize()}`;
  }

  override toString(): string {
    return `<threadkit.${this._name} at 0x${this._offset.toString(16)}: ${this._describeSize()}>`;
  }

  [inspect.custom](): string {
    return this.toString();
  }
}
