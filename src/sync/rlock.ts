/**
 * RLock: CPython's `threading.RLock` in shared memory. Re-entrant: the owning thread may acquire
 * it again, and must release it as many times. Only the owner may release it.
 *
 * | slot | field | meaning                                                     |
 * |------|-------|-------------------------------------------------------------|
 * | 0    | word  | mutex word (shm/mutex.ts)                                   |
 * | 1    | owner | ident of the owning thread, 0 when free                     |
 * | 2    | count | recursion depth; written only by the owner                  |
 *
 * Only the owner writes `owner` and `count` (after it took the word, before it gives it back),
 * so a thread reading `owner === me` can trust the answer: no other thread can make it true.
 * Plain reads and writes suffice: the word's compareExchange / exchange order them, and an
 * aligned Int32 read never tears, so a stale read only ever says "not me".
 */

import { inspect } from 'node:util';
import { ThreadError } from '../errors.js';
import { currentIdent } from '../shm/current.js';
import { deadlineAfter } from '../shm/futex.js';
import { WaitKind } from '../shm/wait-site.js';
import { Kind, SharedObject, registerKind, reviveAs } from '../shm/handles.js';
import { mutexLock, mutexLockAsync, mutexLockSlow, mutexTryLock, mutexUnlock } from '../shm/mutex.js';
import { type AcquireOptions, type AsyncAcquireOptions, type Held, address, heldBy, holdTimeout, lockAcquireOptions } from './options.js';

const OWNER = 1;
const COUNT = 2;

export class RLock extends SharedObject {
  /** @internal */ readonly _i32: Int32Array;
  /** @internal */ readonly _word: number;

  /** A new, unlocked re-entrant lock. It travels to other threads by reference. */
  constructor() {
    super(Kind.RLock, 12);
    this._i32 = this._heap.i32;
    this._word = this._offset >> 2;
  }

  /**
   * Acquires the lock, or adds one level if this thread already owns it. Blocks until it is
   * free, at most `timeout` ms; with `blocking: false` returns at once. Returns true when acquired.
   * @throws RangeError for a negative timeout (other than -1) or a timeout with `blocking: false`.
   */
  acquire(options?: AcquireOptions): boolean {
    const timeout = options === undefined ? Infinity : lockAcquireOptions(options, 'RLock.acquire');
    const me = currentIdent();
    if (this.ownedBy(me)) return this.enterAgain();
    if (!mutexTryLock(this._i32, this._word) && (timeout === 0 || !mutexLockSlow(this._i32, this._word, deadlineAfter(timeout), WaitKind.RLock, this._offset))) {
      return false;
    }
    this.becomeOwner(me, 1);
    return true;
  }

  /** The Promise twin of `acquire`. Ownership belongs to the thread, as in Python. */
  async acquireAsync(options?: AsyncAcquireOptions): Promise<boolean> {
    const timeout = lockAcquireOptions(options, 'RLock.acquireAsync');
    options?.signal?.throwIfAborted();
    const me = currentIdent();
    if (this.ownedBy(me)) return this.enterAgain();
    if (!mutexTryLock(this._i32, this._word)) {
      if (timeout === 0 || !(await mutexLockAsync(this._i32, this._word, deadlineAfter(timeout), options?.signal))) return false;
    }
    this.becomeOwner(me, 1);
    return true;
  }

  /**
   * Drops one level; the lock is free when the count reaches zero.
   * @throws ThreadError "cannot release un-acquired lock" unless this thread owns it.
   */
  release(): void {
    if (!this.ownedBy(currentIdent())) throw new ThreadError('cannot release un-acquired lock');
    const count = this._i32[this._word + COUNT]! - 1;
    this._i32[this._word + COUNT] = count;
    if (count === 0) {
      this._i32[this._word + OWNER] = 0;
      mutexUnlock(this._i32, this._word);
    }
  }

  /** True when some thread holds the lock. */
  locked(): boolean {
    return Atomics.load(this._i32, this._word) !== 0;
  }

  /** Acquires for a `using` block. @throws TimeoutError when not acquired in time. */
  hold(options?: AcquireOptions): Held {
    if (!this.acquire(options)) throw holdTimeout('RLock', lockAcquireOptions(options, 'RLock.hold'));
    return heldBy(() => this.release());
  }

  /** The Promise twin of `hold`. */
  async holdAsync(options?: AsyncAcquireOptions): Promise<Held & AsyncDisposable> {
    if (!(await this.acquireAsync(options))) throw holdTimeout('RLock', lockAcquireOptions(options, 'RLock.holdAsync'));
    return heldBy(() => this.release());
  }

  /** @internal Condition support: is the calling thread the owner? */
  _isOwned(): boolean {
    return this.ownedBy(currentIdent());
  }

  /** @internal Condition.wait: release every level at once; returns the depth to restore. */
  _releaseSave(): number {
    if (!this._isOwned()) throw new ThreadError('cannot release un-acquired lock');
    const count = this._i32[this._word + COUNT]!;
    this._i32[this._word + COUNT] = 0;
    this._i32[this._word + OWNER] = 0;
    mutexUnlock(this._i32, this._word);
    return count;
  }

  /** @internal Condition.wait: take the lock again with the saved depth. */
  _acquireRestore(count: number): void {
    mutexLock(this._i32, this._word, WaitKind.RLock, this._offset);
    this.becomeOwner(currentIdent(), count);
  }

  /** @internal */
  async _acquireRestoreAsync(count: number): Promise<void> {
    if (!mutexTryLock(this._i32, this._word)) await mutexLockAsync(this._i32, this._word, Infinity, undefined, false);
    this.becomeOwner(currentIdent(), count);
  }

  private ownedBy(ident: number): boolean {
    return this._i32[this._word + OWNER] === ident;
  }

  private enterAgain(): boolean {
    const index = this._word + COUNT;
    this._i32[index] = this._i32[index]! + 1;
    return true;
  }

  private becomeOwner(ident: number, count: number): void {
    this._i32[this._word + COUNT] = count;
    this._i32[this._word + OWNER] = ident;
  }

  override toString(): string {
    const owner = Atomics.load(this._i32, this._word + OWNER);
    const count = owner === 0 ? 0 : this._i32[this._word + COUNT];
    return `<${this.locked() ? 'locked' : 'unlocked'} threadkit.RLock object owner=${owner} count=${count} at ${address(this._offset)}>`;
  }

  [inspect.custom](): string {
    return this.toString();
  }
}

registerKind(Kind.RLock, { name: 'RLock', revive: (offset) => reviveAs(offset, () => new RLock()) });
