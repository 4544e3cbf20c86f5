/**
 * In a bundle (spawn.ts), a thread's isolate imports the bundle itself. Its copy of threadkit
 * reaches this module last (index.ts imports it after every other) and sees that it runs in an
 * isolate threadkit started. Two ways on from here:
 *
 * - Most threads (self-contained targets, pool threads): run the isolate here. The top-level
 *   await holds back the rest of the bundle (the app's own top-level code) for good, since
 *   runIsolate() ends the isolate: an app works unchanged, guarded by `isMainThread` or not.
 * - A thread whose module-function target or Thread subclass is defined in the bundle must
 *   import it: the rest of the bundle is evaluated first, as Python's spawn re-imports the main
 *   module, with the runaway guard up (bootstrapping.ts), so the app's top level must keep its
 *   thread starts under `if (isMainThread)`. The isolate runs once the bundle has loaded.
 *
 * Outside a bundle, or in the main thread, it does nothing.
 */

import { isMainThread, workerData } from 'node:worker_threads';
import { guardImport } from '../thread/bootstrapping.js';
import type { WorkerData } from './messages.js';
import { bundled, workerEntry } from './spawn.js';
import { runIsolate } from './worker.js';

const data = workerData as Partial<WorkerData> | null;
if (bundled && !isMainThread && data?.threadkit === true) {
  if (data.evaluateBundle) {
    // (An import of the module being evaluated settles when its evaluation ends.)
    const loaded = guardImport(workerEntry, 'the thread\'s target, defined in the bundle', () => import(workerEntry));
    void runIsolate(loaded);
  } else {
    await runIsolate();
  }
}
