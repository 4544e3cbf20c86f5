/**
 * In a bundle (spawn.ts), a thread's isolate imports the bundle itself. Its copy of threadkit
 * reaches this module last (index.ts imports it after every other), sees that it runs in an
 * isolate threadkit started, and runs the isolate here: the top-level await holds back the
 * rest of the bundle (the app's own top-level code) for good, since runIsolate() ends the
 * isolate. Outside a bundle, or in the main thread, it does nothing.
 */

import { isMainThread, workerData } from 'node:worker_threads';
import { bundled } from './spawn.js';
import { runIsolate } from './worker.js';

if (bundled && !isMainThread && (workerData as { threadkit?: unknown } | null)?.threadkit === true) await runIsolate();
