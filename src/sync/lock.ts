/**
 * Lock: CPython's `threading.Lock` in shared memory. Not re-entrant; any thread may release it
 * (not only the one that acquired it). One Int32 mutex word (see shm/mutex.ts): an uncontended
 * acquire is one compareExchange, an uncontended release one exchange.
 */

import { inspect } from 'node:util';
import { ThreadError } from '../errors.js';
import { deadlineAfter } from '../shm/futex.js';
import { WaitKind } from '../shm/wait-site.js';
import { Kind, SharedObject, registerKind, reviveAs } from '../shm/handles.js';
import { mutexLock, mutexLockAsync, mutexLockSlow, mutexTryLock, mutexUnlock } from '../shm/mutex.js';
import { type AcquireOptions, type AsyncAcquireOptions, type Held, address, heldBy, holdTimeout, lockAcquireOptions } from './options.js';

export class Lock extends SharedObject {
  /** @internal */ readonly _i32: Int32Array;
  /** @internal */ readonly _word: number;

  /** A new, unlocked lock. It travels to other threads by reference. */
  constructor() {
    super(Kind.Lock, 4);
    this._i32 = this._heap.i32;
    this._word = this._offset >> 2;
  }

  /**
   * Acquires the lock. Blocks until it is free, at most `timeout` ms; with `blocking: false`
   * returns at once. Returns true when acquired, false on timeout.
   * @throws RangeError for a negative timeout (other than -1) or a timeout with `blocking: false`.
   * @example
   * const lock = new Lock();
   * if (lock.acquire({ timeout: 100 })) { try { work(); } finally { lock.release(); } }
   */
  acquire(options?: AcquireOptions): boolean {
    if (options === undefined && mutexTryLock(this._i32, this._word)) return true;
    const timeout = lockAcquireOptions(options, 'Lock.acquire');
    if (mutexTryLock(this._i32, this._word)) return true;
    if (timeout === 0) return false;
    return mutexLockSlow(this._i32, this._word, deadlineAfter(timeout), WaitKind.Lock, this._offset);
  }

  /** The Promise twin of `acquire`: waits without blocking the event loop. */
  async acquireAsync(options?: AsyncAcquireOptions): Promise<boolean> {
    const timeout = lockAcquireOptions(options, 'Lock.acquireAsync');
    options?.signal?.throwIfAborted();
    if (mutexTryLock(this._i32, this._word)) return true;
    if (timeout === 0) return false;
    return mutexLockAsync(this._i32, this._word, deadlineAfter(timeout), options?.signal);
  }

  /**
   * Releases the lock; any thread may release it.
   * @throws ThreadError "release unlocked lock" when it is not locked.
   */
  release(): void {
    if (mutexUnlock(this._i32, this._word) === 0) throw new ThreadError('release unlocked lock');
  }

  /** True when some thread holds the lock. */
  locked(): boolean {
    return Atomics.load(this._i32, this._word) !== 0;
  }

  /**
   * Acquires for a `using` block: `using _ = lock.hold();` releases at block end.
   * @throws TimeoutError when the lock could not be acquired within the timeout.
   */
  hold(options?: AcquireOptions): Held {
    if (!this.acquire(options)) throw holdTimeout('Lock', lockAcquireOptions(options, 'Lock.hold'));
    return heldBy(() => this.release());
  }

  /** The Promise twin of `hold`: `await using _ = await lock.holdAsync();` */
  async holdAsync(options?: AsyncAcquireOptions): Promise<Held & AsyncDisposable> {
    if (!(await this.acquireAsync(options))) throw holdTimeout('Lock', lockAcquireOptions(options, 'Lock.holdAsync'));
    return heldBy(() => this.release());
  }

  /** @internal Condition support (CPython's test: a Lock we cannot take is "owned"). */
  _isOwned(): boolean {
    if (mutexTryLock(this._i32, this._word)) {
      mutexUnlock(this._i32, this._word);
      return false;
    }
    return true;
  }

  /** @internal Condition.wait: give the lock up; nothing to remember. */
  _releaseSave(): number {
    this.release();
    return 1;
  }

  /** @internal Condition.wait: take the lock again. */
  _acquireRestore(_count: number): void {
    mutexLock(this._i32, this._word, WaitKind.Lock, this._offset);
  }

  /** @internal */
  async _acquireRestoreAsync(_count: number): Promise<void> {
    if (!mutexTryLock(this._i32, this._word)) await mutexLockAsync(this._i32, this._word, Infinity, undefined, false);
  }

  override toString(): string {
    return `<${this.locked() ? 'locked' : 'unlocked'} threadkit.Lock object at ${address(this._offset)}>`;
  }

  [inspect.custom](): string {
    return this.toString();
  }
}

registerKind(Kind.Lock, { name: 'Lock', revive: (offset) => reviveAs(offset, () => new Lock()) });
