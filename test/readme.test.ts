/**
 * Runs every ```ts code block of README.md as a program, the way a reader would: pasted into a
 * .ts file of a project that has threadkit installed, then `node --import tsx <file>`.
 *
 * The project is a scratch directory under the repo's node_modules/.cache/threadkit-readme-*
 * (created by the `before` hook, removed by `after`; nothing in it is committed). It holds a
 * package.json with "type": "module" and node_modules/threadkit, a symlink to this repo, so
 * `import … from 'threadkit'` loads the build in dist/ exactly as an installed package would.
 * (Package self-reference cannot do this: Node stops looking for the enclosing package.json at
 * a node_modules segment, and without one a .ts file would also be compiled as CommonJS.)
 *
 * Each snippet runs in its own child process, at most two at a time, with a 30 s limit, and
 * must: end by itself (a hang is reported as such, with what it printed), exit with code 0,
 * write nothing to stderr, and print, in order, the value of every `// → value` comment that
 * sits on a line with `console.log(`: the text after the arrow, trimmed, must be a whole line of
 * stdout, below the line the previous value matched (other lines may come between, so output
 * from callbacks or other threads does not break the check). Failure messages show the
 * snippet's README line, its first line, stdout and stderr.
 *
 * Blocks fenced as ```ts signature are type signatures, not programs: they are skipped. Any
 * other fence info that names TypeScript or JavaScript fails the first test, so that no snippet
 * escapes by being fenced differently.
 */

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const LIMIT_MS = 30_000;
/** Fence info strings of blocks that are not run (anything else that looks like code fails). */
const NOT_RUN = new Set(['', 'sh', 'ts signature']);

interface Block {
  /** The fence's info string (`ts`, `sh`, `ts signature`, …). */
  info: string;
  /** README line of the block's first code line (1-based). */
  line: number;
  code: string;
}

/** Every fenced block of the README, in order. */
function blocks(markdown: string): Block[] {
  const found: Block[] = [];
  const lines = markdown.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const open = /^```(.*)$/.exec(lines[i]!);
    if (open === null) continue;
    const start = i + 1;
    let end = start;
    while (end < lines.length && !/^```\s*$/.test(lines[end]!)) end++;
    assert.ok(end < lines.length, `README.md line ${i + 1}: the code block is never closed`);
    found.push({ info: open[1]!.trim(), line: start + 1, code: lines.slice(start, end).join('\n') + '\n' });
    i = end;
  }
  return found;
}

/** The values of `// → value` comments on console.log lines, in order. */
function expectedOutput(code: string): string[] {
  return code
    .split('\n')
    .filter((l) => l.includes('console.log('))
    .map((l) => /\/\/ →(.*)$/.exec(l)?.[1]?.trim())
    .filter((v): v is string => v !== undefined && v !== '');
}

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

function runSnippet(file: string, cwd: string): Promise<Run> {
  return new Promise((resolve) => {
    const child = execFile(process.execPath, ['--import', 'tsx', file], { cwd, timeout: LIMIT_MS, killSignal: 'SIGKILL' }, (error, stdout, stderr) => {
      const timedOut = (error as { killed?: boolean } | null)?.killed === true;
      resolve({ code: child.exitCode, signal: child.signalCode, stdout, stderr, timedOut });
    });
  });
}

const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
const all = blocks(readme);
const snippets = all.filter((b) => b.info === 'ts');

let project = '';

before(() => {
  const cache = join(ROOT, 'node_modules', '.cache');
  mkdirSync(cache, { recursive: true });
  project = mkdtempSync(join(cache, 'threadkit-readme-'));
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'readme-snippets', private: true, type: 'module' }, null, 2));
  mkdirSync(join(project, 'node_modules'));
  symlinkSync(ROOT, join(project, 'node_modules', 'threadkit'), 'dir');
});

after(() => {
  // rm removes the node_modules/threadkit symlink itself, never what it points to.
  if (project !== '') rmSync(project, { recursive: true, force: true });
});

it('README.md: every code block is either a ```ts program or fenced as not run', () => {
  assert.ok(snippets.length > 0, 'README.md has no ```ts blocks');
  const unknown = all.filter((b) => b.info !== 'ts' && !NOT_RUN.has(b.info));
  assert.deepEqual(
    unknown.map((b) => `line ${b.line}: \`\`\`${b.info}`),
    [],
    'fence TypeScript programs as ```ts (run by this test) and signatures as ```ts signature',
  );
});

describe('README.md snippets run as written', { concurrency: 2 }, () => {
  snippets.forEach((snippet, n) => {
    const first = snippet.code.split('\n').find((l) => l.trim() !== '') ?? '';
    it(`snippet ${n + 1} (README.md line ${snippet.line}): ${first}`, async () => {
      const file = join(project, `snippet-${n + 1}.ts`);
      writeFileSync(file, snippet.code);
      const r = await runSnippet(file, project);
      const where = `README.md line ${snippet.line}, the snippet starting\n  ${first}\n`;
      const output = `--- stdout ---\n${r.stdout}--- stderr ---\n${r.stderr}`;
      assert.ok(!r.timedOut, `${where}did not end by itself within ${LIMIT_MS / 1000} s (killed: it hung)\n${output}`);
      assert.equal(r.code, 0, `${where}exited with code ${r.code} (signal ${r.signal})\n${output}`);
      assert.equal(r.stderr, '', `${where}wrote to stderr\n${output}`);
      const printed = r.stdout.split('\n').map((l) => l.trimEnd());
      let from = 0;
      for (const value of expectedOutput(snippet.code)) {
        const at = printed.indexOf(value, from);
        assert.ok(at >= 0, `${where}should print the line ${JSON.stringify(value)}${from > 0 ? ', after the lines matched before it' : ''}\n${output}`);
        from = at + 1;
      }
    });
  });
});
