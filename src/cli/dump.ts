#!/usr/bin/env node
/**
 * `npx threadkit-dump <pid>`: prints a thread dump of a running threadkit program that was
 * started with THREADKIT_DUMP_ON_REQUEST=1, even while its main thread is blocked (in `join()`,
 * say). It creates the request file the program's listener thread polls for, and prints the
 * dump the listener writes (thread/watchdog.ts).
 */

import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dumpRequestPaths } from '../thread/dump-request.js';

const WAIT_MS = 5000;

function fail(message: string): never {
  process.stderr.write(`threadkit-dump: ${message}\n`);
  process.exit(2);
}

const arg = process.argv[2];
const pid = Number(arg);
if (arg === undefined || !Number.isInteger(pid) || pid <= 0) fail(`usage: threadkit-dump <pid> (got ${arg === undefined ? 'no pid' : JSON.stringify(arg)})`);
try {
  process.kill(pid, 0);
} catch {
  fail(`no process ${pid} (or not ours to signal)`);
}
const { request, output } = dumpRequestPaths(pid);
rmSync(output, { force: true });
writeFileSync(request, '');
const deadline = Date.now() + WAIT_MS;
const nap = new Int32Array(new SharedArrayBuffer(4));
while (!existsSync(output)) {
  if (Date.now() > deadline) {
    rmSync(request, { force: true });
    fail(`process ${pid} did not answer within ${WAIT_MS / 1000} s: start it with THREADKIT_DUMP_ON_REQUEST=1 in its environment`);
  }
  Atomics.wait(nap, 0, 0, 50);
}
process.stdout.write(readFileSync(output, 'utf8'));
rmSync(output, { force: true });
