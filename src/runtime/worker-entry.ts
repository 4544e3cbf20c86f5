/**
 * The module a thread's isolate imports after its bootstrap (spawn.ts): the whole package
 * first (every shared kind registers itself, so handles can be revived), then the isolate's loop.
 */

import '../index.js';
import { runIsolate } from './worker.js';

await runIsolate();
