/**
 * Starting a worker isolate for a thread: which file it runs and which Node flags it gets.
 */

import { Worker } from 'node:worker_threads';
import type { ThreadInit } from './messages.js';

const entry = new URL(`./worker${import.meta.url.endsWith('.ts') ? '.ts' : '.js'}`, import.meta.url);

/**
 * Node 20 does not apply `--import tsx`-style loader hooks inside workers (tsx #354) yet still
 * pays to load them, so threads get the parent's flags minus TypeScript loaders.
 */
function workerExecArgv(): string[] {
  const out: string[] = [];
  const argv = process.execArgv;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const takesValue = arg === '--import' || arg === '--loader' || arg === '--experimental-loader' || arg === '--require' || arg === '-r';
    const value = takesValue ? argv[i + 1] : arg.split('=')[1];
    if (takesValue) i++;
    if ((takesValue || /^--(import|loader|experimental-loader|require)=/.test(arg)) && value !== undefined && /tsx|ts-node/.test(value)) continue;
    out.push(arg);
    if (takesValue && value !== undefined) out.push(value);
  }
  return out;
}

const execArgv = workerExecArgv();

/** Spawns the worker that runs a thread. */
export function spawnWorker(init: ThreadInit): Worker {
  return new Worker(entry, { workerData: init, execArgv });
}
