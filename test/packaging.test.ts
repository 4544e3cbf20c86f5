/**
 * threadkit as a user gets it: packed with `npm pack`, installed from the tarball into a
 * scratch project, imported by its package name; and bundled by esbuild into one file that
 * runs with no node_modules anywhere near it.
 *
 * Built once for the file (the `before` hook, ~5–10 s): the working tree is copied without
 * node_modules, .git and dist (a clean checkout; its node_modules is a symlink to the repo's,
 * for tsc), and `npm pack` runs there. `npm pack` runs the `prepare` script (tsc), which is
 * most of its time; packing a copy rather than the repo keeps that build out of the repo's
 * dist/, which other test files may be loading at the same time, and proves that a clean
 * checkout builds everything the package needs (worker.js, pool-thread.js are loaded by URL,
 * not imported, so nothing but running them checks that they ship).
 *
 * Every program runs in a child process with a time limit: a program that does not exit by
 * itself (a pool that was never shut down) fails its test as "hung" instead of hanging the
 * suite. No timings are asserted.
 */

import assert from 'node:assert/strict';
import { copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { type Run, lines, run, show } from './fixtures/apps/run.js';
import { REDIS_SERVER, startRedis } from './helpers/redis.js';
import { spawn } from 'node:child_process';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const APPS = fileURLToPath(new URL('./fixtures/apps/', import.meta.url));
const ESBUILD = join(ROOT, 'node_modules', '.bin', 'esbuild');
/** How long a program may take before it counts as hung. */
const LIMIT_MS = 60_000;
/** Not part of a clean checkout. */
const NOT_CHECKED_OUT = new Set(['node_modules', '.git', 'dist', '.scratch']);

let work = '';
/** The scratch project: package.json with "type": "module", the tarball installed, the apps copied in. */
let scratch = '';
let tarball = '';
/** Directories the bundles ran in (outside `work`, so that no node_modules is above them). */
const runDirs: string[] = [];

/** Fails (showing the run) unless the program exited by itself with `code`. */
function assertExited(r: Run, code: number): void {
  assert.equal(r.timedOut, false, `the program hung: it did not exit by itself within ${r.limitMs / 1000} s\n${show(r)}`);
  assert.equal(r.code, code, `expected exit code ${code}\n${show(r)}`);
}

/** Runs a setup command; throws with its output if it failed. */
async function step(file: string, args: string[], cwd: string, timeoutMs: number): Promise<Run> {
  const r = await run(file, args, { cwd, timeoutMs, withoutNpmEnv: true });
  if (r.timedOut || r.code !== 0) throw new Error(`setup step failed\n${show(r)}`);
  return r;
}

before(async () => {
  work = mkdtempSync(join(tmpdir(), 'threadkit-packaging-'));

  // A clean checkout of the working tree, packed the way `npm publish` would pack it.
  const checkout = join(work, 'checkout');
  cpSync(ROOT, checkout, { recursive: true, filter: (src) => !NOT_CHECKED_OUT.has(relative(ROOT, src)) });
  symlinkSync(join(ROOT, 'node_modules'), join(checkout, 'node_modules'), 'dir');
  const packed = join(work, 'pack');
  mkdirSync(packed);
  await step('npm', ['pack', '--pack-destination', packed], checkout, 180_000); // runs `prepare` (tsc)
  const tgz = readdirSync(packed).filter((f) => f.endsWith('.tgz'));
  assert.equal(tgz.length, 1, `npm pack made ${tgz.length} tarballs in ${packed}: ${tgz.join(', ')}`);
  tarball = join(packed, tgz[0]!);

  // The scratch project. threadkit's one runtime dependency (acorn) is in the npm cache after
  // `npm ci`, so an offline install works; if not, the install below goes online.
  scratch = join(work, 'app');
  mkdirSync(scratch);
  writeFileSync(join(scratch, 'package.json'), `${JSON.stringify({ name: 'threadkit-scratch', version: '1.0.0', private: true, type: 'module' }, null, 2)}\n`);
  const install = ['install', tarball, '--no-audit', '--no-fund'];
  const offline = await run('npm', [...install, '--offline'], { cwd: scratch, timeoutMs: 120_000, withoutNpmEnv: true });
  if (offline.timedOut || offline.code !== 0) await step('npm', install, scratch, 120_000);
  assert.ok(existsSync(join(scratch, 'node_modules', 'threadkit', 'dist', 'index.js')), `the tarball installed no dist/index.js into ${scratch}/node_modules/threadkit`);
  for (const app of readdirSync(APPS).filter((f) => f.endsWith('.mjs'))) copyFileSync(join(APPS, app), join(scratch, app));
});

after(() => {
  for (const dir of [work, ...runDirs]) if (dir !== '') rmSync(dir, { recursive: true, force: true });
});

/**
 * Bundles `entry` (in the scratch project: 'threadkit' resolves to the installed tarball), then
 * copies only the bundle (and the `external` modules, which stay files of their own) into a
 * fresh directory with no node_modules in it or above it. Returns that directory and the
 * bundle's file name.
 */
async function bundle(entry: string, external: string[] = []): Promise<{ dir: string; file: string }> {
  assert.ok(existsSync(ESBUILD), `esbuild is missing at ${ESBUILD}: run \`npm ci\` in the repo`);
  const file = entry.replace(/\.mjs$/, external.length > 0 ? '.external.bundle.mjs' : '.bundle.mjs');
  const out = join(work, 'out', file);
  const args = [entry, '--bundle', '--platform=node', '--format=esm', '--log-level=warning', `--outfile=${out}`, ...external.map((e) => `--external:./${e}`)];
  await step(ESBUILD, args, scratch, 60_000);
  const dir = mkdtempSync(join(tmpdir(), 'threadkit-bundle-run-'));
  runDirs.push(dir);
  for (let up = dir; up !== dirname(up); up = dirname(up)) {
    assert.ok(!existsSync(join(up, 'node_modules')), `${up} has a node_modules: the bundle could resolve packages from it; set TMPDIR elsewhere`);
  }
  copyFileSync(out, join(dir, file));
  for (const e of external) copyFileSync(join(scratch, e), join(dir, e));
  return { dir, file };
}

/**
 * threadkit/redis from the tarball: bullmq and ioredis installed beside it (optional peers, from
 * the npm cache after `npm ci`), a real redis-server, the package's `threadkit` bin as the
 * worker (SIGTERM: it exits 0), and a client that exits by itself.
 */
describe('threadkit/redis as a user gets it', { skip: REDIS_SERVER === undefined ? 'redis-server is not installed (.ci/run installs it)' : false }, () => {
  it('the installed `threadkit worker` bin runs the tasks of a RedisExecutor client importing threadkit/redis', async () => {
    const install = ['install', 'bullmq', 'ioredis', '--no-audit', '--no-fund', '--no-save'];
    const offline = await run('npm', [...install, '--offline'], { cwd: scratch, timeoutMs: 120_000, withoutNpmEnv: true });
    if (offline.timedOut || offline.code !== 0) await step('npm', install, scratch, 120_000);
    const redis = await startRedis();
    const bin = join(scratch, 'node_modules', '.bin', 'threadkit');
    const worker = spawn(bin, ['worker', '--connection', redis.url, '--queue', 'pkg', '--threads', '1'], { cwd: scratch, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    worker.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => worker.once('exit', (code) => resolve(code)));
    try {
      const r = await run(process.execPath, ['redis-app.mjs', redis.url, 'pkg'], { cwd: scratch, timeoutMs: LIMIT_MS });
      assertExited(r, 0);
      assert.deepEqual(lines(r.stdout), ['HELLO!', 'A! B! C!'], `${show(r)}\nworker: ${stderr}`);
      worker.kill('SIGTERM');
      assert.equal(await exited, 0, `the worker did not exit 0 on SIGTERM: ${stderr}`);
      assert.match(stderr, /taking jobs from queue "pkg"[\s\S]*closed after 3 jobs/);
    } finally {
      if (worker.exitCode === null) worker.kill('SIGKILL');
      await redis.kill();
    }
  });
});

// The cases run concurrently (child processes stay at two at a time: run.ts), so that a case
// that hangs costs its 60 s alongside the others, not after them.
describe('threadkit as a user gets it', { concurrency: true }, () => {
  it("installed from the npm pack tarball: a program importing 'threadkit' runs a Thread and a never-shut-down pool, then exits by itself", async () => {
    const r = await run(process.execPath, ['installed-app.mjs'], { cwd: scratch, timeoutMs: LIMIT_MS });
    assertExited(r, 0);
    assert.deepEqual(lines(r.stdout), ['hello from a thread', 'joined', '42'], show(r));
  });

  it('bundled by esbuild, run with no node_modules: a self-contained Thread target, a Queue passed to a thread, a never-shut-down pool map', async () => {
    const { dir, file } = await bundle('bundle-app.mjs');
    const r = await run(process.execPath, [file], { cwd: dir, timeoutMs: LIMIT_MS });
    assertExited(r, 0);
    assert.deepEqual(lines(r.stdout), ['hello from a bundled thread', 'joined', 'queue: the thread summed 55', 'map: 1, 4, 9, 16'], show(r));
  });

  describe('module functions inside a bundle (the bundle exports them; its code runs under `if (isMainThread)`)', { concurrency: true }, () => {
    let built: Promise<{ dir: string; file: string }> | undefined;
    /** Built once, by whichever case asks first. */
    const modulesBundle = (): Promise<{ dir: string; file: string }> => (built ??= bundle('bundle-modules.mjs'));
    let builtClasses: Promise<{ dir: string; file: string }> | undefined;
    const classesBundle = (): Promise<{ dir: string; file: string }> => (builtClasses ??= bundle('bundle-classes.mjs'));

    it('control: the same program runs unbundled from the install', async () => {
      for (const [scenario, expected] of [
        ['separate', 'result: HELLO!'],
        ['entry', 'result: hello...'],
      ] as const) {
        const r = await run(process.execPath, ['bundle-modules.mjs', scenario], { cwd: scratch, timeoutMs: LIMIT_MS });
        assertExited(r, 0);
        assert.deepEqual(lines(r.stdout), [expected], show(r));
      }
    });

    it('a Thread subclass defined in the bundle runs (its thread evaluates the bundle, guarded by isMainThread)', async () => {
      const { dir, file } = await classesBundle();
      const r = await run(process.execPath, [file, 'subclass'], { cwd: dir, timeoutMs: LIMIT_MS });
      assertExited(r, 0);
      assert.deepEqual(lines(r.stdout), ['squared: 49'], show(r));
    });

    it('a pool task naming a module function of the bundle fails with an error that says what to do; self-contained tasks work', async () => {
      const { dir, file } = await classesBundle();
      const r = await run(process.execPath, [file, 'pool'], { cwd: dir, timeoutMs: LIMIT_MS });
      assertExited(r, 0);
      assert.deepEqual(lines(r.stdout), ['module task: TypeError: true', 'self-contained task: 42'], show(r));
    });

    it('a bundle whose top level starts a Thread subclass without a guard does not run away: the thread fails with the guard error', async () => {
      const { dir, file } = await bundle('bundle-unguarded.mjs');
      const r = await run(process.execPath, [file], { cwd: dir, timeoutMs: LIMIT_MS });
      assertExited(r, 0);
      assert.deepEqual(lines(r.stdout), ['unguarded: result=undefined'], show(r));
      assert.match(r.stderr, /cannot start a thread while a thread imports file:\/\/\S+bundle-unguarded\.bundle\.mjs/, show(r));
      assert.equal(r.stderr.match(/Exception in thread/g)?.length, 1, show(r));
    });

    it('a module that stays outside the bundle (esbuild --external), next to it, works too', async () => {
      const { dir, file } = await bundle('bundle-modules.mjs', ['bundle-tasks.mjs']);
      const r = await run(process.execPath, [file, 'separate'], { cwd: dir, timeoutMs: LIMIT_MS });
      assertExited(r, 0);
      assert.deepEqual(lines(r.stdout), ['result: HELLO!'], show(r));
    });

    it("a function of a separate module bundled in ({ module: import.meta.url } there is the bundle's URL)", async () => {
      const { dir, file } = await modulesBundle();
      const r = await run(process.execPath, [file, 'separate'], { cwd: dir, timeoutMs: LIMIT_MS });
      assertExited(r, 0);
      assert.deepEqual(lines(r.stdout), ['result: HELLO!'], show(r));
    });

    it('a function of the entry itself: { module: import.meta.url, name } pointing at the bundle', async () => {
      const { dir, file } = await modulesBundle();
      const r = await run(process.execPath, [file, 'entry'], { cwd: dir, timeoutMs: LIMIT_MS });
      assertExited(r, 0);
      assert.deepEqual(lines(r.stdout), ['result: hello...'], show(r));
    });
  });
});
