/**
 * Queue: CPython's `queue.Queue` (3.13, with `shutdown`) in shared memory, a FIFO that any
 * thread can put to and get from, and that travels between threads by reference (inside thread
 * args, other queue items, task results…). `maxsize <= 0` means unbounded; `maxsize` can be read
 * and changed at any time (raising it wakes blocked putters). Task tracking as in Python: every
 * put adds an unfinished task, `taskDone()` finishes one, `join()` waits until none is left.
 * The storage (ring.ts) and every put/get rule (core.ts) live elsewhere; this file adds what
 * Queue has and SimpleQueue has not (maxsize, full, taskDone, join, unfinishedTasks).
 *
 * Task counting uses two counters of the queue block (see core.ts): unfinishedTasks =
 * PUT_WORD - DONE_WORD. A put makes its task visible in the same store that publishes the
 * item, so a getter can never call taskDone() for an item before the task is counted.
 */

import { deadlineAfter, timeoutOrZero } from '../shm/futex.js';
import { WaitKind, beginWait, endWait, park, parkAsync } from '../shm/wait-site.js';
import { isReviving, reviveAs } from '../shm/handles.js';
import { QueueCore } from './core.js';
import { ONE, itemsBetween, withPutLock } from './counted-lock.js';
import { Flavor, registerFlavor } from './flavors.js';
import { DONE_WORD, JOIN_WAITERS, MAXSIZE, NOT_FULL_SEQ, PUT_WORD } from './layout.js';
import { type QueueJoinOptions, checkMaxsize } from './options.js';
import { destroyFifo } from './ring.js';
import { wake } from '../shm/trace-ring.js';

export class Queue<T = unknown> extends QueueCore<T> {
  /** @internal which storage the class uses (subclasses override). */
  static readonly _flavor: Flavor = Flavor.Fifo;

  /**
   * @param maxsize the most items the queue holds; `<= 0` (the default) or `Infinity`: unbounded.
   * @throws TypeError when maxsize is not a number; RangeError when it is NaN.
   */
  constructor(maxsize = 0) {
    const flavor = (new.target as unknown as typeof Queue)._flavor;
    super(flavor, isReviving() ? 0 : checkMaxsize(maxsize, `${flavorName(flavor)}(maxsize)`));
  }

  get _name(): string {
    return 'Queue';
  }

  /** The most items the queue holds (`<= 0`: unbounded). Raising it wakes blocked putters. */
  get maxsize(): number {
    // An instant's answer; putters read the bound under the put lock.
    return Atomics.load(this._heap.i32, this._base + MAXSIZE);
  }

  set maxsize(value: number) {
    const stored = checkMaxsize(value, `${this._name}.maxsize`);
    const i32 = this._heap.i32;
    // Under the put lock: putters read the bound there with a plain read.
    withPutLock(i32, this._base, () => Atomics.store(i32, this._base + MAXSIZE, stored));
    // The bound changed before the bump: a sleeping putter re-checks fullness after waking, and
    // one about to sleep either sees the new bound or sleeps on a word that changed already.
    Atomics.add(i32, this._base + NOT_FULL_SEQ, 1);
    Atomics.notify(i32, this._base + NOT_FULL_SEQ);
  }

  /** True when the queue is bounded and holds maxsize items or more (an instant's answer). */
  full(): boolean {
    const max = this.maxsize;
    return max > 0 && this.qsize() >= max;
  }

  /** Tasks put and not yet marked done with `taskDone()`. */
  get unfinishedTasks(): number {
    const i32 = this._heap.i32;
    // DONE_WORD first: a put word read later counts at least every task done before it.
    const done = Atomics.load(i32, this._base + DONE_WORD);
    return Math.max(0, itemsBetween(Atomics.load(i32, this._base + PUT_WORD), done));
  }

  /**
   * Marks one task (one item got earlier) as done; when none is left, `join()` returns.
   * @throws RangeError "taskDone() called too many times" when no task is unfinished.
   */
  taskDone(): void {
    const i32 = this._heap.i32;
    const b = this._base;
    for (;;) {
      // Nothing sleeps here; the wake rule for joiners is at the notify below.
      const done = Atomics.load(i32, b + DONE_WORD);
      // A put word seen earlier can only lag behind the real one: if it already shows an
      // unfinished task, there is one. Otherwise read the real word.
      let put = this._putSeen;
      if (itemsBetween(put, done) <= 0) {
        put = Atomics.load(i32, b + PUT_WORD);
        this._putSeen = put;
        if (itemsBetween(put, done) <= 0) throw new RangeError('taskDone() called too many times');
      }
      // The compareExchange is the change joiners wait for (they sleep while DONE_WORD holds `done`).
      if (Atomics.compareExchange(i32, b + DONE_WORD, done, (done + ONE) | 0) !== done) continue;
      // DONE_WORD changed before we look for joiners: a joiner registered before this load is
      // woken; one registering after it reads the new DONE_WORD and sees no task left.
      if (itemsBetween(put, done) === 1 && itemsBetween(Atomics.load(i32, b + PUT_WORD), done) === 1 && Atomics.load(i32, b + JOIN_WAITERS) > 0) {
        wake(i32, b + DONE_WORD);
      }
      return;
    }
  }

  /** Blocks until every task put so far is done (`taskDone()` called once per item). */
  join(): void {
    const i32 = this._heap.i32;
    const b = this._base;
    if (this.unfinishedTasks === 0) return;
    // Register, then read DONE_WORD, then re-check: the taskDone() that finishes the last task
    // stores DONE_WORD before it reads JOIN_WAITERS, so it sees us or we see it.
    const outer = beginWait();
    Atomics.add(i32, b + JOIN_WAITERS, 1);
    try {
      for (;;) {
        // Read DONE_WORD, then the put word; sleep only while DONE_WORD still holds what we read.
        const done = Atomics.load(i32, b + DONE_WORD);
        if (itemsBetween(Atomics.load(i32, b + PUT_WORD), done) <= 0) return;
        park(i32, b + DONE_WORD, done, Infinity, WaitKind.QueueJoin, this._offset);
      }
    } finally {
      // Deregistering late costs at most a needless notify.
      Atomics.sub(i32, b + JOIN_WAITERS, 1);
      endWait(outer);
    }
  }

  /**
   * The Promise twin of `join`: resolves to true once every task is done, or to false when
   * `timeout` ms passed first. Rejects with `signal.reason` on abort.
   */
  async joinAsync(options: QueueJoinOptions = {}): Promise<boolean> {
    const deadline = deadlineAfter(timeoutOrZero(options.timeout, `${this._name}.joinAsync`));
    options.signal?.throwIfAborted();
    const i32 = this._heap.i32;
    const b = this._base;
    if (this.unfinishedTasks === 0) return true;
    // Same registration rule as join().
    Atomics.add(i32, b + JOIN_WAITERS, 1);
    try {
      for (;;) {
        // Read DONE_WORD, then the put word; sleep only while DONE_WORD still holds what we read.
        const done = Atomics.load(i32, b + DONE_WORD);
        if (itemsBetween(Atomics.load(i32, b + PUT_WORD), done) <= 0) return true;
        if ((await parkAsync(i32, b + DONE_WORD, done, deadline, options.signal)) === 'timed-out') return this.unfinishedTasks === 0;
      }
    } finally {
      // Deregistering late costs at most a needless notify.
      Atomics.sub(i32, b + JOIN_WAITERS, 1);
    }
  }

  protected override _bounded(): boolean {
    return this.maxsize > 0;
  }

  protected override _describeSize(): string {
    return `qsize=${this.qsize()}/maxsize=${this.maxsize}`;
  }
}

function flavorName(flavor: Flavor): string {
  return flavor === Flavor.Lifo ? 'LifoQueue' : flavor === Flavor.Priority ? 'PriorityQueue' : 'Queue';
}

registerFlavor(Flavor.Fifo, (offset) => reviveAs(offset, () => new Queue()), destroyFifo);
