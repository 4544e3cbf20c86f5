/**
 * Errors thrown by callbacks a thread or a task left behind. A timer set by task A that throws
 * after A has returned would end the pool thread's isolate under task B, and B's future would
 * carry A's error; a timer a thread left that throws after the thread returned would end its
 * isolate with nobody told. Callbacks scheduled in an isolate threadkit started (timers,
 * immediates, `process.nextTick`, `queueMicrotask`) remember who scheduled them: if one throws
 * after its owner ended, the error is written to stderr against that owner, in the default
 * excepthook's form, and the isolate goes on. An error from a callback of the thread or task
 * still running ends the isolate as before (its future or thread fails with it).
 */

import { createRequire, syncBuiltinESMExports } from 'node:module';
import { inspect } from 'node:util';

export interface CallbackOwner {
  /** Names a thread owner in a report: "thread Thread-3". */
  what?: string;
  /** A task owner: the pool thread that ran it, and its function's name (the report text is built only when needed: one owner per task). */
  taskOf?: string;
  fn?: string;
  /** True once the thread returned or the task was settled. */
  ended: boolean;
}

function ownerText(owner: CallbackOwner): string {
  if (owner.what !== undefined) return owner.what;
  return `a task of ${owner.taskOf ?? 'a pool thread'}${owner.fn ? ` (function ${owner.fn})` : ''}`;
}

let current: CallbackOwner | undefined;

/** The thread or task that runs now in this isolate (its callbacks are attributed to it). */
export function setCallbackOwner(owner: CallbackOwner | undefined): void {
  current = owner;
}

export function callbackOwner(): CallbackOwner | undefined {
  return current;
}

function reportLate(owner: CallbackOwner, error: unknown): void {
  const text = error instanceof Error ? (error.stack ?? `${error.name}: ${error.message}`) : inspect(error);
  process.stderr.write(`Exception in ${ownerText(owner)}, from a callback it left scheduled, after it ended:\n${text}\n`);
}

function attribute<F extends (...args: never[]) => unknown>(callback: F): F {
  const owner = current;
  if (owner === undefined || typeof callback !== 'function') return callback;
  return function (this: unknown, ...args: unknown[]): unknown {
    try {
      return Reflect.apply(callback, this, args);
    } catch (error) {
      if (!owner.ended) throw error;
      reportLate(owner, error);
      return undefined;
    }
  } as unknown as F;
}

type Scheduler = (callback: (...args: never[]) => unknown, ...rest: unknown[]) => unknown;

function wrapScheduler(host: Record<string, unknown>, name: string): void {
  const original = host[name] as Scheduler | undefined;
  if (typeof original !== 'function' || (original as { __threadkitOwned?: true }).__threadkitOwned) return;
  const wrapped = function (this: unknown, callback: (...args: never[]) => unknown, ...rest: unknown[]): unknown {
    return Reflect.apply(original, this, [attribute(callback), ...rest]);
  };
  Object.defineProperty(wrapped, '__threadkitOwned', { value: true });
  // Keep what Node hangs on the originals (setTimeout[util.promisify.custom], say).
  for (const key of Reflect.ownKeys(original)) {
    if (key === 'length' || key === 'name' || key === 'prototype') continue;
    const descriptor = Object.getOwnPropertyDescriptor(original, key);
    if (descriptor !== undefined) Object.defineProperty(wrapped, key, descriptor);
  }
  host[name] = wrapped;
}

const SCHEDULERS = ['setTimeout', 'setInterval', 'setImmediate', 'queueMicrotask'] as const;

/** In a thread's isolate, once: every scheduler remembers the owner of what it schedules. */
export function attributeCallbacks(): void {
  for (const name of SCHEDULERS) wrapScheduler(globalThis as unknown as Record<string, unknown>, name);
  wrapScheduler(process as unknown as Record<string, unknown>, 'nextTick');
  try {
    // `import { setTimeout } from 'node:timers'` reads the module's exports: wrap those too.
    const timers = createRequire(import.meta.url)('node:timers') as Record<string, unknown>;
    for (const name of ['setTimeout', 'setInterval', 'setImmediate']) wrapScheduler(timers, name);
    syncBuiltinESMExports();
  } catch {
    // a runtime without node:timers' CommonJS object (the globals are wrapped all the same)
  }
}
