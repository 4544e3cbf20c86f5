/**
 * What a parent hands a new thread at spawn (workerData). The thread entry imports only this
 * file's types and the shared layers, never the Thread class's internals.
 */

import type { FunctionDescriptor } from '../shm/functions.js';

export interface ThreadInit {
  /** The process-wide heap. */
  sab: SharedArrayBuffer;
  /** The new thread's ident. */
  ident: number;
  /** Offset of the thread's block (the entry owns one reference on it). */
  threadBlock: number;
  name: string;
  daemon: boolean;
  target: FunctionDescriptor | undefined;
  /** The encoded args array (handles inside own their in-flight references). */
  args: Uint8Array;
  /** tsx's registration API when the parent runs under tsx (threads install it on demand). */
  typescriptLoader: string | undefined;
}
