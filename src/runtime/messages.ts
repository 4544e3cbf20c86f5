/**
 * What a parent hands a thread when it starts it (at spawn through workerData, or to an idle
 * isolate through its mailbox). The thread side imports only these types and the shared layers.
 */

import type { ResourceLimits } from 'node:worker_threads';

import type { FunctionDescriptor } from '../shm/functions.js';

export interface ThreadInit {
  /** The new thread's ident. */
  ident: number;
  /** Offset of the thread's block (the thread owns one reference on it). */
  threadBlock: number;
  name: string;
  daemon: boolean;
  /** What to run: a function target, or undefined for a Thread subclass's run(). */
  target: FunctionDescriptor | undefined;
  /** The encoded args array (handles inside own their in-flight references). */
  args: Uint8Array;
  /** A Thread subclass: where its class is exported, and its own fields, encoded. */
  subclass: { module: string; name: string; fields: Uint8Array } | undefined;
  /** tsx's registration API when the parent runs under tsx (threads install it on demand). */
  typescriptLoader: string | undefined;
  /** In a bundle: the thread imports the bundle itself (its target or class is defined there), see bundled-worker.ts. */
  needsBundle: boolean;
  /** Node's worker resourceLimits (the isolate is started with them, and only reused for the same). */
  resourceLimits?: ResourceLimits | undefined;
}

/** workerData of a new isolate. */
export interface WorkerData {
  /** Marks an isolate threadkit started (a bundled app's copy of threadkit then runs it: spawn.ts). */
  threadkit: true;
  /** The module the bootstrap imports: threadkit's worker entry, or the bundle that holds threadkit. */
  entry: string;
  /** In a bundle: evaluate the whole bundle (the app's top level too) before running threads (bundled-worker.ts). */
  evaluateBundle: boolean;
  /** An injected fault (threadkit/testing): the bootstrap fails before it loads threadkit. */
  failStart: boolean;
  /** The parent's `--import` and `--require` preloads, run by the bootstrap (spawn.ts). */
  preloads: { kind: 'import' | 'require'; specifier: string }[];
  sab: SharedArrayBuffer;
  /** The isolate's mailbox block (pool.ts): where later threads are handed to it. */
  mailbox: number;
  /** How long an isolate with nothing to run waits for another thread before it exits (ms). */
  keepIdleMs: number;
  first: ThreadInit;
}

/** Mailbox slots and states (pool.ts owns the protocol). */
export const MAILBOX_STATE = 0;
export const MAILBOX_INIT = 1;
/** The isolate's OS thread id, written by its bootstrap before anything can fail (spawn.ts). */
export const MAILBOX_TID = 2;
/** Length (UTF-16 units) of why the isolate could not load threadkit, or 0; the text follows. */
export const MAILBOX_BOOT_ERROR = 3;
export const MAILBOX_BOOT_TEXT = 4;
/** Room for the boot error's text (UTF-16 units; longer texts are cut). */
export const BOOT_TEXT_UNITS = 480;
/** The isolate's held-references ledger (shm/ledger.ts): drained by the parent if the isolate dies abruptly. */
export const MAILBOX_LEDGER = MAILBOX_BOOT_TEXT + BOOT_TEXT_UNITS / 2;
export const MAILBOX_BYTES = (MAILBOX_LEDGER + 1) * 4;
export const BUSY = 0;
export const IDLE = 1;
export const ASSIGNED = 2;
export const EXITED = 3;
