/**
 * threading.excepthook: what happens to an error that escapes a thread's run(). The thread
 * hands the error to the thread that started it, where the hook runs (before `join()` returns
 * there, or from its event loop if nobody joins).
 */

import { inspect } from 'node:util';
import { currentIdent } from '../shm/current.js';
import { describe } from '../shm/futex.js';
import type { Thread } from './thread.js';

/** What the hook is given (see ExceptHook: it also unpacks as CPython's tuple). */
export interface ExceptHookArgs {
  /** The error's class name ("TypeError", "ThreadError", …). */
  excType: string;
  /** The error itself (or whatever was thrown). */
  excValue: unknown;
  /** The stack text, when there is one. */
  excTraceback: string | undefined;
  /** The thread it escaped from. */
  thread: Thread | undefined;
}

/**
 * A hook. Its argument also unpacks as CPython's tuple:
 * `const [excType, excValue, excTraceback, thread] = args`.
 */
export type ExceptHook = (args: ExceptHookArgs & Iterable<unknown>) => void;

/** The default hook: Python's "Exception in thread NAME:" and the stack, on stderr. */
export function excepthook(args: ExceptHookArgs): void {
  // As CPython: a hook called without a thread names the calling thread by its ident.
  const name = args.thread?.name ?? String(currentIdent());
  const text = args.excTraceback ?? (args.excValue instanceof Error ? `${args.excValue.name}: ${args.excValue.message}` : `${args.excType}: ${inspect(args.excValue)}`);
  process.stderr.write(`Exception in thread ${name}:\n${text}\n`);
}

let currentHook: ExceptHook = excepthook;

/**
 * Sets the hook for threads started from this thread (`undefined` restores the default).
 * @throws TypeError when `hook` is not a function.
 */
export function setExcepthook(hook: ExceptHook | undefined): void {
  if (hook !== undefined && typeof hook !== 'function') throw new TypeError(`setExcepthook(hook): expected a function or undefined, got ${describe(hook)}`);
  currentHook = hook ?? excepthook;
}

/** @internal a reused isolate starts its next thread with the default hook */
export function resetExcepthook(): void {
  currentHook = excepthook;
}

/** The hook in force in this thread. */
export function getExcepthook(): ExceptHook {
  return currentHook;
}

/** The hook's argument: the four properties, and iterable in CPython's order (not enumerable, so logging it shows the four). */
export function hookArgs(excType: string, excValue: unknown, excTraceback: string | undefined, thread: Thread | undefined): ExceptHookArgs & Iterable<unknown> {
  const args = { excType, excValue, excTraceback, thread } as ExceptHookArgs & Iterable<unknown>;
  Object.defineProperty(args, Symbol.iterator, {
    value: function* (this: ExceptHookArgs) {
      yield this.excType;
      yield this.excValue;
      yield this.excTraceback;
      yield this.thread;
    },
  });
  return args;
}

/** Calls the hook for an error that escaped `thread`; a hook that throws is reported, not raised. */
export function reportThreadException(thread: Thread | undefined, error: unknown): void {
  const args = hookArgs(error instanceof Error ? error.name : typeof error, error, error instanceof Error ? error.stack : undefined, thread);
  try {
    currentHook(args);
  } catch (hookError) {
    process.stderr.write(`Exception in threading.excepthook:\n${hookError instanceof Error ? hookError.stack : inspect(hookError)}\n`);
    excepthook(args);
  }
}
