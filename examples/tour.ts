/**
 * `npm start`: a short tour of threadkit, running the examples with a line of narration each.
 */

import { race } from './racing-counter.js';

console.log('threadkit tour: Python threading on real parallel threads\n');
console.log('1. Four threads add 1 to a shared counter 100,000 times each.');
console.log(`   without a lock: ${race(false)} (updates lost: the threads really run at once)`);
console.log(`   with a Lock:    ${race(true)} (exact)`);
