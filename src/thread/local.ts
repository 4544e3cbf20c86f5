/**
 * threading.local: an object whose properties are per thread. It is a shared object (it can be
 * passed to threads), but what each thread stores in it stays in that thread: a thread that
 * receives it sees an empty object until it sets something. A reused isolate starts each new
 * thread with fresh values.
 */

import { Kind, SharedObject, registerKind, reviveAs, brandProxy } from '../shm/handles.js';

/** Per-isolate storage: local block offset → this thread's values. Cleared when a thread ends. */
const storage = new Map<number, Record<PropertyKey, unknown>>();

/** @internal body.ts: a thread ended in this isolate; the next one starts with nothing. */
export function clearThreadLocals(): void {
  storage.clear();
}

class LocalHandle extends SharedObject {
  constructor() {
    super(Kind.Local, 8);
  }
}

const BOOKKEEPING = new Set<PropertyKey>(['_heap', '_offset', '_fresh']);

function valuesOf(handle: LocalHandle): Record<PropertyKey, unknown> {
  let values = storage.get(handle._offset);
  if (values === undefined) storage.set(handle._offset, (values = {}));
  return values;
}

function proxyFor(handle: LocalHandle): object {
  // Branded: the codec sends it as the handle it wraps (a Proxy hides the handle's own brand).
  return brandProxy(new Proxy(handle, {
    get: (target, key) => (BOOKKEEPING.has(key) ? target[key as '_offset'] : valuesOf(target)[key]),
    set: (target, key, value) => {
      valuesOf(target)[key] = value;
      return true;
    },
    has: (target, key) => key in valuesOf(target),
    deleteProperty: (target, key) => delete valuesOf(target)[key],
    ownKeys: (target) => Reflect.ownKeys(valuesOf(target)),
    getOwnPropertyDescriptor: (target, key) => {
      const values = valuesOf(target);
      return key in values ? { value: values[key], writable: true, enumerable: true, configurable: true } : undefined;
    },
    defineProperty: (target, key, descriptor) => {
      valuesOf(target)[key] = descriptor.value;
      return true;
    },
  }));
}

/**
 * A new thread-local object: `const data = local<{ user?: string }>(); data.user = 'ann';`
 * Each thread that holds it (pass it in args) sees only the values it set itself.
 */
export function local<T extends object = Record<string, unknown>>(): T {
  return proxyFor(new LocalHandle()) as T;
}

registerKind(Kind.Local, {
  name: 'local',
  revive: (offset) => proxyFor(reviveAs(offset, () => new LocalHandle())) as SharedObject,
});
