/**
 * Condition: CPython's `threading.Condition` in shared memory: a lock (an RLock by default)
 * plus a FIFO list of waiters. `notify(n)` wakes exactly the n longest waiters; there are no
 * spurious wake-ups; `wait` releases a recursively held RLock completely and restores it.
 *
 * Block layout (Int32 slots):
 *
 * | slot | field  | meaning                                            |
 * |------|--------|----------------------------------------------------|
 * | 0    | lock   | offset of the Lock / RLock block (one reference)   |
 * | 1    | head   | first waiter node, 0 when none                     |
 * | 2    | tail   | last waiter node                                   |
 * | 3    | count  | number of nodes in the list                        |
 * | 4    | gone   | nodes in the list whose waiter's isolate ended     |
 *
 * A waiter node is a small block of its own: [state (0 waiting, 1 notified, 2 abandoned), next]. The list is
 * only read or changed by a thread that holds the condition's lock (wait appends before it
 * releases the lock and unlinks after it re-acquires it; notify requires the lock), so the lock
 * orders every list access. A waiter sleeps on its own node's state and only while it is 0;
 * notify sets it to 1 before waking it, so a notify that comes between the unlock and the
 * sleep is never lost. The waiter frees its node after re-acquiring the lock, so notify never
 * touches a freed node.
 *
 * A waiter whose isolate ends while it waits (process.exit() in its thread) cannot take the
 * lock to unlink its node. Its exit hook marks the node abandoned with a compareExchange from 0
 * (and counts it in GONE); notify's own compareExchange from 0 to 1 decides between the two: a
 * notify that finds an abandoned node frees it and goes on to the next waiter, so the dead
 * waiter swallows no notify; an exit hook that finds its node notified (already unlinked) frees
 * it. `nWaiting` leaves abandoned nodes out.
 */

import { inspect } from 'node:util';
import { ThreadError } from '../errors.js';
import { deadlineAfter, describe, timeoutOrZero } from '../shm/futex.js';
import { WaitKind, beginWait, endWait, park, parkAsync, withoutRaising } from '../shm/wait-site.js';
import { Kind, SharedObject, dropReference, isGenuine, isReviving, onIsolateExit, registerKind, rememberIdentity, reviveAs, wrapperFor } from '../shm/handles.js';
import { Lock } from './lock.js';
import { type AcquireOptions, type AsyncAcquireOptions, type Held, heldBy, holdTimeout, lockAcquireOptions } from './options.js';
import { RLock } from './rlock.js';
import { wake } from '../shm/trace-ring.js';

const LOCK = 0;
const HEAD = 1;
const TAIL = 2;
const COUNT = 3;
const GONE = 4;
const BLOCK_BYTES = 20;
const NODE_STATE = 0;
const NODE_NEXT = 1;
const WAITING = 0;
const NOTIFIED = 1;
const ABANDONED = 2;

/** This isolate's waiter nodes still in a list, with their condition's words: abandoned at isolate exit. */
const pendingNodes = new Map<number, { i32: () => Int32Array; base: number }>();

onIsolateExit(() => {
  for (const [node, { i32, base }] of pendingNodes) {
    const words = i32();
    // Either notify set it to NOTIFIED (and unlinked it: ours to free), or we mark it and a
    // later notify frees it (see the module comment).
    if (Atomics.compareExchange(words, (node >> 2) + NODE_STATE, WAITING, ABANDONED) === WAITING) Atomics.add(words, base + GONE, 1);
    else dropReference(node);
  }
  pendingNodes.clear();
});

export interface WaitOptions {
  /** Wait at most this many milliseconds (negative counts as 0). `undefined` waits forever. */
  timeout?: number;
  signal?: AbortSignal;
}

export class Condition extends SharedObject {
  /** The lock this condition uses (an RLock unless one was given). */
  readonly lock: Lock | RLock;
  private readonly base: number;

  /** @internal What a wait records in its thread's block (a Barrier's condition records the Barrier). */
  _waitKind: WaitKind = WaitKind.Condition;
  /** @internal */
  _waitObject = 0;

  /**
   * @param lock the Lock or RLock to use; a new RLock by default.
   * @throws TypeError when `lock` is not a Lock or RLock.
   */
  constructor(lock?: Lock | RLock) {
    if (!isReviving() && lock !== undefined) {
      if (!(lock instanceof Lock) && !(lock instanceof RLock)) throw new TypeError(`Condition(lock): expected a Lock or an RLock, got ${describe(lock)}`);
      if (!isGenuine(lock, lock instanceof Lock ? Kind.Lock : Kind.RLock)) {
        throw new TypeError(`Condition(lock): expected a Lock or an RLock made with its constructor, got an object that only has its prototype (or whose block was freed)`);
      }
    }
    super(Kind.Condition, BLOCK_BYTES);
    this.base = this._offset >> 2;
    this._waitObject = this._offset;
    if (this._fresh) {
      this.lock = lock ?? new RLock();
      this._heap.retain(this.lock._offset);
      // `cond.lock` sent back from a thread must come back as this same object.
      rememberIdentity(this.lock);
      this.i32[this.base + LOCK] = this.lock._offset;
    } else {
      this.lock = wrapperFor(this.i32[this.base + LOCK]!) as Lock | RLock;
    }
  }

  /**
   * The heap's current view. Waiter nodes are allocated after this condition, possibly by
   * another thread after the heap grew, so list walkers map the whole heap first.
   */
  private get i32(): Int32Array {
    return this._heap.i32;
  }

  private mapAllNodes(): void {
    this._heap.ensureMapped(this._heap.topBytes());
  }

  /** Acquires the underlying lock (same options and result as its `acquire`). */
  acquire(options?: AcquireOptions): boolean {
    return this.lock.acquire(options);
  }

  acquireAsync(options?: AsyncAcquireOptions): Promise<boolean> {
    return this.lock.acquireAsync(options);
  }

  /** Releases the underlying lock. */
  release(): void {
    this.lock.release();
  }

  /** `using _ = cond.hold();` — holds the underlying lock for the block. */
  hold(options?: AcquireOptions): Held {
    if (!this.lock.acquire(options)) throw holdTimeout('Condition', lockAcquireOptions(options, 'Condition.hold'));
    return heldBy(() => this.lock.release());
  }

  async holdAsync(options?: AsyncAcquireOptions): Promise<Held & AsyncDisposable> {
    if (!(await this.lock.acquireAsync(options))) throw holdTimeout('Condition', lockAcquireOptions(options, 'Condition.holdAsync'));
    return heldBy(() => this.lock.release());
  }

  /**
   * Releases the lock, sleeps until notified or `timeout` ms pass, then re-acquires the lock
   * (fully restoring a recursively held RLock). Returns false only on timeout.
   * @throws ThreadError "cannot wait on un-acquired lock" when the caller does not hold the lock.
   */
  wait(timeout?: number): boolean {
    const deadline = deadlineAfter(timeoutOrZero(timeout, 'Condition.wait'));
    const node = this.enqueueWaiter('wait');
    const saved = this.lock._releaseSave();
    const state = node >> 2;
    const outer = beginWait();
    let interrupted: { error: unknown } | undefined;
    try {
      while (Atomics.load(this.i32, state + NODE_STATE) === 0) {
        if (park(this.i32, state + NODE_STATE, 0, deadline, this._waitKind, this._waitObject) === 'timed-out') break;
      }
    } catch (error) {
      interrupted = { error }; // InterruptedError: left with the lock held again, as on return
    } finally {
      endWait(outer);
      // Never ends with an error: the caller's `finally { release() }` needs the lock held
      // (an interrupt stays pending for the next wait; deadlock detection prints the cycle).
      withoutRaising(() => this.lock._acquireRestore(saved));
    }
    const notified = this.leaveWaiters(node);
    if (interrupted === undefined) return notified;
    // We are leaving without consuming a notify that reached us: hand it to the next waiter.
    if (notified) this.notify(1);
    throw interrupted.error;
  }

  /**
   * The Promise twin of `wait`. On abort the lock is re-acquired before the Promise rejects,
   * so the caller's `finally { release() }` stays correct.
   */
  async waitAsync(options: WaitOptions = {}): Promise<boolean> {
    const deadline = deadlineAfter(timeoutOrZero(options.timeout, 'Condition.waitAsync'));
    options.signal?.throwIfAborted();
    const node = this.enqueueWaiter('wait');
    const saved = this.lock._releaseSave();
    const state = node >> 2;
    let abort: { reason: unknown } | undefined;
    try {
      while (Atomics.load(this.i32, state + NODE_STATE) === 0) {
        if ((await parkAsync(this.i32, state + NODE_STATE, 0, deadline, options.signal)) === 'timed-out') break;
      }
    } catch (reason) {
      abort = { reason };
    }
    await this.lock._acquireRestoreAsync(saved);
    const notified = this.leaveWaiters(node);
    if (abort === undefined) return notified;
    // We are leaving without consuming a notify that reached us: hand it to the next waiter.
    if (notified) this.notify(1);
    throw abort.reason;
  }

  /**
   * Waits until `predicate()` is truthy (checked first, then after every wake-up), at most
   * `timeout` ms in all. Returns the predicate's last value.
   */
  waitFor<T>(predicate: () => T, timeout?: number): T {
    let result = predicate();
    if (result) return result;
    const deadline = deadlineAfter(timeoutOrZero(timeout, 'Condition.waitFor'));
    while (!result) {
      const left = deadline - performance.now();
      if (deadline !== Infinity && left <= 0) break;
      this.wait(deadline === Infinity ? undefined : left);
      result = predicate();
    }
    return result;
  }

  /** The Promise twin of `waitFor`. */
  async waitForAsync<T>(predicate: () => T, options: WaitOptions = {}): Promise<T> {
    let result = predicate();
    if (result) return result;
    const deadline = deadlineAfter(timeoutOrZero(options.timeout, 'Condition.waitForAsync'));
    while (!result) {
      const left = deadline - performance.now();
      if (deadline !== Infinity && left <= 0) break;
      await this.waitAsync({ timeout: deadline === Infinity ? undefined : left, signal: options.signal });
      result = predicate();
    }
    return result;
  }

  /**
   * Wakes the `n` longest-waiting threads (fewer if fewer wait).
   * @throws ThreadError "cannot notify on un-acquired lock" when the caller does not hold the lock.
   */
  notify(n = 1): void {
    if (typeof n !== 'number' || Number.isNaN(n)) throw new TypeError(`Condition.notify(n): n must be a number of waiters, got ${describe(n)}`);
    if (!this.lock._isOwned()) throw new ThreadError('cannot notify on un-acquired lock');
    this.mapAllNodes();
    const i32 = this.i32;
    while (n > 0) {
      const node = i32[this.base + HEAD]!;
      if (node === 0) return;
      i32[this.base + HEAD] = i32[(node >> 2) + NODE_NEXT]!;
      if (i32[this.base + HEAD] === 0) i32[this.base + TAIL] = 0;
      i32[(node >> 2) + NODE_NEXT] = -1; // unlinked
      i32[this.base + COUNT] = i32[this.base + COUNT]! - 1;
      // State first, then wake: the waiter sleeps only while the state is WAITING. A node whose
      // waiter's isolate ended is freed instead, and the notify goes to the next waiter.
      if (Atomics.compareExchange(i32, (node >> 2) + NODE_STATE, WAITING, NOTIFIED) !== WAITING) {
        Atomics.sub(i32, this.base + GONE, 1);
        dropReference(node);
        continue;
      }
      wake(i32, (node >> 2) + NODE_STATE, 1);
      n--;
    }
  }

  /** Wakes every waiting thread. */
  notifyAll(): void {
    this.notify(Infinity);
  }

  /** Number of threads waiting (an instant's answer). */
  get nWaiting(): number {
    return Atomics.load(this.i32, this.base + COUNT) - Atomics.load(this.i32, this.base + GONE);
  }

  /** Appends a new waiter node; the caller must hold the lock. */
  private enqueueWaiter(what: string): number {
    if (!this.lock._isOwned()) throw new ThreadError(`cannot ${what} on un-acquired lock`);
    const node = this._heap.alloc(8, Kind.CondWaiter);
    this.mapAllNodes();
    const i32 = this.i32;
    const tail = i32[this.base + TAIL]!;
    if (tail === 0) i32[this.base + HEAD] = node;
    else i32[(tail >> 2) + NODE_NEXT] = node;
    i32[this.base + TAIL] = node;
    i32[this.base + COUNT] = i32[this.base + COUNT]! + 1;
    pendingNodes.set(node, { i32: () => this.i32, base: this.base });
    return node;
  }

  /**
   * With the lock held again: unlink the node if notify did not, free it, and report whether
   * it was notified. A notify that arrived after the timeout but before we got the lock back
   * still counts (returns true), so no notify is ever lost.
   */
  private leaveWaiters(node: number): boolean {
    pendingNodes.delete(node);
    const i32 = this.i32;
    const notified = Atomics.load(i32, (node >> 2) + NODE_STATE) === NOTIFIED;
    if (!notified && i32[(node >> 2) + NODE_NEXT] !== -1) this.unlink(node);
    dropReference(node);
    return notified;
  }

  private unlink(node: number): void {
    this.mapAllNodes();
    const i32 = this.i32;
    let previous = 0;
    for (let at = i32[this.base + HEAD]!; at !== 0; previous = at, at = i32[(at >> 2) + NODE_NEXT]!) {
      if (at !== node) continue;
      const next = i32[(node >> 2) + NODE_NEXT]!;
      if (previous === 0) i32[this.base + HEAD] = next;
      else i32[(previous >> 2) + NODE_NEXT] = next;
      if (i32[this.base + TAIL] === node) i32[this.base + TAIL] = previous;
      i32[(node >> 2) + NODE_NEXT] = -1;
      i32[this.base + COUNT] = i32[this.base + COUNT]! - 1;
      return;
    }
  }

  override toString(): string {
    return `<threadkit.Condition(${this.lock.toString()}, ${this.nWaiting})>`;
  }

  [inspect.custom](): string {
    return this.toString();
  }
}

registerKind(Kind.Condition, {
  name: 'Condition',
  revive: (offset) => reviveAs(offset, () => new Condition()),
  destroy: (heap, offset) => {
    // Nodes left in the list belong to waiters whose isolates ended (abandoned): free them.
    heap.ensureMapped(heap.topBytes());
    for (let node = heap.i32[(offset >> 2) + HEAD]!; node !== 0; ) {
      const next = heap.i32[(node >> 2) + NODE_NEXT]!;
      dropReference(node);
      node = next;
    }
    dropReference(heap.i32[(offset >> 2) + LOCK]!);
  },
});
