/**
 * The entry of every thread threadkit starts: attach the shared heap, decode the args, run the
 * target, publish the result, mark the thread stopped (waking joiners), release what the
 * thread held, and end.
 */

import { workerData } from 'node:worker_threads';
import { attachThread } from '../shm/current.js';
import type { ThreadInit } from './messages.js';

const init = workerData as ThreadInit;
attachThread(init.sab, init.ident);

// Importing the package registers every shared kind (so handles can be revived) and gives
// us the thread bookkeeping.
const { runThreadBody } = await import('../thread/thread.js');
await import('../index.js');
await runThreadBody(init);
