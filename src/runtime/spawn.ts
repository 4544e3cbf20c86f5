/**
 * Starting a worker isolate for a thread: which file it runs and which Node flags it gets.
 */

import { Worker } from 'node:worker_threads';
import type { ThreadInit } from './messages.js';

const entry = new URL(`./worker${import.meta.url.endsWith('.ts') ? '.ts' : '.js'}`, import.meta.url);

/** Flags a worker accepts that change how its code loads or warns (V8 and process flags are refused). */
const WORKER_FLAG = /^(--(import|require|loader|experimental-loader|conditions|input-type|enable-source-maps|no-warnings|disable-warning|trace-warnings|trace-uncaught|pending-deprecation|no-deprecation|experimental-[\w-]+|no-experimental-[\w-]+)|-r|-C)(=|$)/;
const TAKES_VALUE = /^(--import|--require|-r|--loader|--experimental-loader|--conditions|-C|--disable-warning|--input-type)$/;

/**
 * The parent's module-loading flags, for threads. Node 20 does not apply `--import tsx`-style
 * loader hooks inside workers (tsx #354) yet still pays to load them, so TypeScript loaders
 * are left out; V8 and process flags (`--expose-gc`, `--max-old-space-size`) are refused by
 * workers and left out too.
 */
function workerExecArgv(): string[] {
  const out: string[] = [];
  const argv = process.execArgv;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const value = TAKES_VALUE.test(arg) ? argv[++i] : undefined;
    if (!WORKER_FLAG.test(arg)) continue;
    if (/tsx|ts-node/.test(value ?? arg)) continue;
    out.push(arg);
    if (value !== undefined) out.push(value);
  }
  return out;
}

const execArgv = workerExecArgv();

/** Spawns the worker that runs a thread. */
export function spawnWorker(init: ThreadInit): Worker {
  return new Worker(entry, { workerData: init, execArgv });
}
