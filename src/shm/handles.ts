/**
 * Handles: how a shared object (a block in the heap) is owned, sent and received by threads.
 *
 * Ownership rule: every wrapper object a thread holds owns one reference on its block; every
 * encoded handle in flight (inside thread args, a queue item, a result) owns one more. A wrapper's
 * reference is dropped when the wrapper is garbage-collected (FinalizationRegistry) or when its
 * thread ends; an in-flight reference is adopted by the wrapper its receiver builds, or dropped
 * if the receiver already holds a wrapper for that block. When the count reaches zero the kind's
 * destructor runs (dropping references the block holds on others) and the block is freed.
 *
 * Within one thread a block has at most one wrapper once it has travelled: receiving the same
 * Lock twice gives the same object (`===`).
 */

import { isMainThread } from 'node:worker_threads';
import { heap } from './current.js';
import { ledgerAdd, ledgerClear, ledgerRemove } from './ledger.js';
import { enterInternal, leaveInternal } from './kill-guard.js';
import type { Heap } from './heap.js';

/** Block kinds. The number is stored in the block header, so it must be the same in every thread. */
export enum Kind {
  Raw = 0,
  Lock = 1,
  RLock = 2,
  Condition = 3,
  Semaphore = 4,
  Event = 5,
  Barrier = 6,
  CondWaiter = 7,
  Bytes = 8,
  Thread = 9,
  Queue = 10,
  Future = 11,
  SharedValue = 12,
  SharedArray = 13,
  Local = 14,
  FunctionRef = 15,
  Executor = 16,
}

export interface KindInfo {
  /** Class name, for messages. */
  name: string;
  /** Builds a wrapper around an existing block (with `reviveAs`); the wrapper adopts one reference. */
  revive?: (offset: number) => SharedObject;
  /** Runs once when the count reaches zero, before the block is freed: drop what the block holds. */
  destroy?: (heap: Heap, offset: number) => void;
}

const kinds: (KindInfo | undefined)[] = [];

export function registerKind(kind: Kind, info: KindInfo): void {
  kinds[kind] = info;
}

export function kindInfo(kind: number): KindInfo | undefined {
  return kinds[kind];
}

/** References this thread's wrappers hold, by offset, for release at thread end. */
const held = new Map<number, number>();
/** Wrappers of blocks that travelled, so that receiving one twice gives the same object. */
const identity = new Map<number, WeakRef<SharedObject>>();
let finalizer: FinalizationRegistry<number> | undefined;

function onCollected(offset: number): void {
  const ref = identity.get(offset);
  if (ref !== undefined && ref.deref() === undefined) identity.delete(offset);
  const viewRef = viewIdentity.get(offset);
  if (viewRef !== undefined && viewRef.deref() === undefined) viewIdentity.delete(offset);
  // (One kill-safe section: uncounted and dropped together.)
  enterInternal();
  try {
    if (unhold(offset)) dropReference(offset);
  } finally {
    leaveInternal();
  }
}

/** Sum of the counts in `held`. */
let heldTotal = 0;

/**
 * Only threads' isolates keep the held table: when the main thread ends the process ends, so
 * its references need no release at exit (and its hot paths skip the bookkeeping).
 */
const trackHeld = !isMainThread;

function hold(offset: number): void {
  heldTotal++;
  if (!trackHeld) return;
  held.set(offset, (held.get(offset) ?? 0) + 1);
  // Counted after the reference was taken: a death in between can only leak it (ledger.ts).
  ledgerAdd(offset);
}

function unhold(offset: number): boolean {
  if (!trackHeld) {
    heldTotal--;
    return true;
  }
  const count = held.get(offset);
  if (count === undefined) return false;
  // Uncounted before the caller drops it: a parent draining a dead isolate never drops it twice.
  ledgerRemove(offset);
  heldTotal--;
  if (count === 1) held.delete(offset);
  else held.set(offset, count - 1);
  return true;
}

let revivingOffset = 0;
let revivingUntracked = false;

/** Runs `make` (a `new X()` of a SharedObject subclass) so that it wraps `offset` instead of allocating. */
export function reviveAs<T extends SharedObject>(offset: number, make: () => T): T {
  revivingOffset = offset;
  try {
    return make();
  } finally {
    revivingOffset = 0;
  }
}

/**
 * Like `reviveAs`, but the wrapper is not tracked: no finalizer, no identity entry, not released
 * at thread end. Its user owns the adopted reference and drops it (`dropReference(offset)`) when
 * done, after which the wrapper must not be used. For internal wrappers that never reach user
 * code and live in loops that never return to the event loop (pool threads).
 */
export function reviveUntracked<T extends SharedObject>(offset: number, make: () => T): T {
  revivingUntracked = true;
  try {
    return reviveAs(offset, make);
  } finally {
    revivingUntracked = false;
  }
}

/** True inside a `reviveAs`: constructor arguments are absent and must not be checked. */
export function isReviving(): boolean {
  return revivingOffset !== 0;
}

/**
 * Base class of every object that lives in the shared heap. A new object allocates its block
 * (`_fresh` is true: the subclass initializes the fields); a revived one wraps a received block
 * and adopts its in-flight reference.
 */
export abstract class SharedObject {
  /** @internal the heap the block lives in */
  readonly _heap: Heap;
  /** @internal the block's payload offset: the handle */
  readonly _offset: number;
  /** @internal true when this wrapper allocated the block (fields need initializing) */
  readonly _fresh: boolean;
  /** Present only on objects this constructor built: `Object.create(Lock.prototype)` lacks it. */
  readonly #genuine = true;

  protected constructor(kind: Kind, payloadBytes: number) {
    const revived = revivingOffset;
    const untracked = revivingUntracked;
    revivingOffset = 0;
    revivingUntracked = false;
    this._heap = heap();
    this._fresh = revived === 0;
    // Allocated and counted in the ledger in one kill-safe section (kill-guard.ts).
    enterInternal();
    try {
      this._offset = revived === 0 ? this._heap.alloc(payloadBytes, kind) : revived;
      if (!this._fresh) this._heap.ensureMapped(this._offset + payloadBytes);
      if (!untracked) trackWrapper(this, this._offset);
    } finally {
      leaveInternal();
    }
  }

  /** @internal the brand check behind isGenuine() */
  static _hasBrand(value: unknown): value is SharedObject {
    return typeof value === 'object' && value !== null && (#genuine in value || brandedProxies.has(value));
  }
}

/** Proxies threadkit builds around its own wrappers (local()): a brand check cannot see through a Proxy. */
const brandedProxies = new WeakSet<object>();

/** Marks `proxy`, built by threadkit around one of its wrappers, as genuine. */
export function brandProxy<T extends object>(proxy: T): T {
  brandedProxies.add(proxy);
  return proxy;
}

/**
 * True for a wrapper threadkit built, of `kind`, over a live block. An object that only has a
 * class's prototype (`Object.create(Lock.prototype)`) or a copied `_offset` is not one: an
 * entry point that takes a shared object checks this before it writes anything to the heap.
 */
export function isGenuine(value: unknown, kind?: Kind): value is SharedObject {
  if (!SharedObject._hasBrand(value)) return false;
  const h = value._heap;
  if (h.refCount(value._offset) <= 0) return false;
  return kind === undefined || h.kindOf(value._offset) === kind;
}

/** Adds the in-flight reference for an encoded handle and remembers the wrapper's identity. */
export function retainForTransfer(obj: SharedObject, remember = true): number {
  const offset = obj._offset;
  obj._heap.retain(offset);
  if (remember && !identity.has(offset)) identity.set(offset, new WeakRef(obj));
  return offset;
}

/** Makes `wrapper` own one reference on `offset`, dropped when it is collected or the thread ends. */
export function trackWrapper(wrapper: object, offset: number): void {
  hold(offset);
  (finalizer ??= new FinalizationRegistry(onCollected)).register(wrapper, offset);
}

/** Makes `obj` the object this thread gets back when it receives its handle. */
export function rememberIdentity(obj: SharedObject): void {
  if (!identity.has(obj._offset)) identity.set(obj._offset, new WeakRef(obj));
}

/** Turns a received handle (owning one in-flight reference) into this thread's wrapper. */
export function reviveHandle(offset: number): SharedObject {
  const existing = identity.get(offset)?.deref();
  if (existing !== undefined) {
    // We already own a reference through `existing`; the in-flight one is not needed.
    dropReference(offset);
    return existing;
  }
  const h = heap();
  const kind = h.kindOf(offset);
  const info = kinds[kind];
  if (info?.revive === undefined) throw new TypeError(`threadkit: received a handle to a block of unknown kind ${kind}`);
  const obj = info.revive(offset);
  identity.set(offset, new WeakRef(obj));
  return obj;
}

/** Gets or builds this thread's wrapper for a block it reaches through another block, adding a reference. */
export function wrapperFor(offset: number): SharedObject {
  heap().retain(offset);
  return reviveHandle(offset);
}

/**
 * A wrapper for a block that another thread may free at any moment (dumps describe what
 * threads wait on and hold): undefined when it is no longer a live shared object.
 */
export function tryWrapperFor(offset: number): SharedObject | undefined {
  const h = heap();
  if (!h.tryRetain(offset, (kind) => kinds[kind]?.revive !== undefined)) return undefined;
  try {
    return reviveHandle(offset);
  } catch {
    dropReference(offset);
    return undefined;
  }
}

/** Typed arrays over heap memory (from `sharedArray`), by view: the block they belong to. */
const sharedViews = new WeakMap<ArrayBufferView, number>();

/** This thread's view of each shared array block, so that receiving one twice gives the same view. */
const viewIdentity = new Map<number, WeakRef<ArrayBufferView>>();

/** Records that `view` is a shared array living in block `offset` (it owns one reference). */
export function registerSharedView(view: ArrayBufferView, offset: number): void {
  sharedViews.set(view, offset);
  if (viewIdentity.get(offset)?.deref() === undefined) viewIdentity.set(offset, new WeakRef(view));
  trackWrapper(view, offset);
}

/** Turns a received shared array (owning one in-flight reference) into this thread's view of it. */
export function receiveSharedView(offset: number, make: () => ArrayBufferView): ArrayBufferView {
  const existing = viewIdentity.get(offset)?.deref();
  if (existing !== undefined) {
    dropReference(offset); // `existing` owns a reference already
    return existing;
  }
  const view = make();
  registerSharedView(view, offset);
  return view;
}

/** The block of a shared array view, or undefined for other views. */
export function sharedViewBlock(view: ArrayBufferView): number | undefined {
  return sharedViews.get(view);
}

/** Drops one reference; frees the block (after its destructor) when it was the last. */
export function dropReference(offset: number): void {
  const h = heap();
  // The release, the destructor and the free in one kill-safe section (kill-guard.ts).
  enterInternal();
  try {
    if (!h.releaseRef(offset)) return;
    const info = kinds[h.kindOf(offset)];
    try {
      info?.destroy?.(h, offset);
    } finally {
      h.free(offset);
    }
  } finally {
    leaveInternal();
  }
}

/** Work for the end of this isolate, before its references are dropped (a waiter leaving a Condition's list, say). */
const exitHooks: (() => void)[] = [];

export function onIsolateExit(hook: () => void): void {
  exitHooks.push(hook);
}

/**
 * At thread end: run the exit hooks, then drop the reference of every wrapper this thread
 * still holds. After this the thread must not touch shared objects again.
 */
export function releaseAllHeld(): void {
  for (const hook of exitHooks) {
    try {
      hook();
    } catch {
      // the isolate is ending: one hook's failure must not keep the others from running
    }
  }
  for (const [offset, count] of held) {
    for (let i = 0; i < count; i++) {
      ledgerRemove(offset);
      dropReference(offset);
    }
  }
  ledgerClear();
  held.clear();
  heldTotal = 0;
  identity.clear();
  viewIdentity.clear();
}

/** Number of wrappers this thread holds (for tests of the reference counting). */
export function heldCount(): number {
  return heldTotal;
}
