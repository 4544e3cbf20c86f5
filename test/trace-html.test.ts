/**
 * The trace page (`Trace#writeHTML`, src/trace/html.ts): one self-contained HTML document, looked
 * at as a person would, in a real browser: Debian's `chromium` driven by `playwright-core`.
 *
 * The page renders test/fixtures/trace-sample.json (written by hand, in the format trace.ts
 * writes: five threads, pool tasks, Lock waits naming their holder, Queue waits, hand-off flows,
 * two counters). In the browser: no console error, no request leaving the file, the expected
 * tracks (the page's data attributes and its track labels, in sort_index order), every arrow
 * drawn, the span under the mouse painted in its kind's color with a tooltip naming it, zoom and
 * pan; then a screenshot is written to the test output directory (THREADKIT_TEST_OUTPUT, or
 * <tmpdir>/threadkit-test-output) and its path logged.
 *
 * Chromium missing is a failure, not a skip: `.ci/run` installs it (apt-get install chromium).
 * Browser-side code is passed to page.evaluate as strings: tsconfig has no DOM types, and tsx
 * would add helpers to a compiled function that the page does not have.
 */

import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { pathToFileURL } from 'node:url';
import { type Browser, type Page, chromium } from 'playwright-core';
import { type ChromeEvent, type ChromeTrace, embedJSON, renderTraceHTML } from '../src/trace/html.js';

const SAMPLE: ChromeTrace = JSON.parse(readFileSync(new URL('./fixtures/trace-sample.json', import.meta.url), 'utf8')) as ChromeTrace;
const SAMPLE_TRACKS = ['MainThread', 'ThreadPoolExecutor-0_0', 'ThreadPoolExecutor-0_1', 'producer', 'consumer'];
const SAMPLE_SPANS = SAMPLE.traceEvents.filter((e) => e.ph === 'X').length;
const SAMPLE_FLOWS = SAMPLE.traceEvents.filter((e) => e.ph === 's').length;

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const OUTPUT = process.env.THREADKIT_TEST_OUTPUT ?? join(tmpdir(), 'threadkit-test-output');

/** The text of the page's embedded trace (the `<script type="application/json">` element). */
function embedded(html: string): string {
  const match = /<script type="application\/json" id="trace-data">([\s\S]*?)<\/script>/.exec(html);
  assert.ok(match, 'the page embeds the trace as JSON');
  return match[1]!;
}

describe('trace page: one self-contained document', () => {
  const html = renderTraceHTML(SAMPLE, 'sample trace');

  it('loads nothing from elsewhere: no external script, style, font, image or link', () => {
    assert.match(html, /^<!DOCTYPE html>/);
    assert.doesNotMatch(html, /https?:\/\//, 'no http(s) URL anywhere in the page');
    assert.doesNotMatch(html, /<script[^>]*\bsrc\s*=/i, 'no external script');
    assert.doesNotMatch(html, /<link(?![^>]*href="data:)[^>]*>/i, 'no link but the data: icon');
    assert.doesNotMatch(html, /@import|url\(/i, 'no CSS import or url()');
    assert.doesNotMatch(html, /<(img|iframe|object|embed)\b/i);
    assert.equal(html.match(/<script\b/g)?.length, 2, 'the JSON data and one inline script');
    assert.equal(html.match(/<\/script/g)?.length, 2);
    assert.match(html, /Content-Security-Policy" content="default-src 'none'/, 'a CSP forbids any fetch');
    assert.match(html, /<title>sample trace<\/title>/);
  });

  it('embeds the trace JSON, which parses back to the trace', () => {
    assert.deepEqual(JSON.parse(embedded(html)), SAMPLE);
  });

  it('escapes what could end the script or the title: </script, <!--, U+2028/2029, HTML in the title', () => {
    const nasty = '</script><script>document.title="pwned"</script><!-- \u2028 \u2029 & >';
    const trace: ChromeTrace = {
      traceEvents: [
        { ph: 'M', name: 'thread_name', pid: 1, tid: 7, args: { name: nasty } },
        { ph: 'X', name: nasty, cat: 'wait', pid: 1, tid: 7, ts: 0, dur: 5, args: { object: '</SCRIPT >', holder: nasty } },
      ],
    };
    const page = renderTraceHTML(trace, '<b>"me" & \'you\'</b></title>');
    assert.equal(page.match(/<\/script/gi)?.length, 2, 'only the page\'s own closing tags');
    assert.equal(page.match(/<!--/g), null);
    assert.doesNotMatch(page, /[\u2028\u2029]/);
    assert.match(page, /<title>&#60;b&#62;&#34;me&#34; &#38; &#39;you&#39;&#60;\/b&#62;&#60;\/title&#62;<\/title>/);
    assert.deepEqual(JSON.parse(embedded(page)), trace);
    assert.equal(JSON.parse(embedJSON(nasty)), nasty);
  });
});

describe('trace page in a real browser (chromium)', { timeout: 60_000 }, () => {
  let browser: Browser | undefined;
  let dir = '';

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'threadkit-trace-html-'));
  });

  /** The browser, started by the first test that needs it: without Chromium, each test fails saying how to install it. */
  async function startedBrowser(): Promise<Browser> {
    assert.ok(
      existsSync(CHROMIUM),
      `Chromium is not installed at ${CHROMIUM}: the trace page's browser test needs Debian's chromium. ` +
        'Run .ci/run (it installs it when missing) or: apt-get update && apt-get install -y chromium ' +
        '(or set CHROMIUM_PATH to a Chromium binary).',
    );
    browser ??= await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
    return browser;
  }

  after(async () => {
    await browser?.close();
    if (dir !== '') rmSync(dir, { recursive: true, force: true });
  });

  /** Problems the page reports: console errors, uncaught errors, requests that are not for the file itself. */
  interface Opened {
    page: Page;
    problems: string[];
  }

  async function open(name: string, trace: ChromeTrace, title?: string, viewport = { width: 1100, height: 560 }): Promise<Opened> {
    const browser = await startedBrowser();
    const file = join(dir, `${name}.html`);
    writeFileSync(file, renderTraceHTML(trace, title));
    const url = pathToFileURL(file).href;
    const page = await browser.newPage({ viewport });
    const problems: string[] = [];
    page.on('console', (message) => {
      if (message.type() === 'error') problems.push(`console error: ${message.text()}`);
    });
    page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
    page.on('dialog', (dialog) => {
      problems.push(`dialog: ${dialog.message()}`);
      void dialog.dismiss();
    });
    page.on('request', (request) => {
      if (request.url() !== url && !request.url().startsWith('data:')) problems.push(`request: ${request.url()}`);
    });
    await page.goto(url);
    await page.waitForSelector('body[data-drawn]', { state: 'attached', timeout: 10_000 });
    return { page, problems };
  }

  /**
   * Waits until `expression` is true in the page. (Not page.waitForFunction: its polling evaluates
   * strings with eval inside the page, which the page's Content-Security-Policy forbids.)
   */
  async function until(page: Page, expression: string, timeout = 2_000): Promise<void> {
    const deadline = performance.now() + timeout;
    while (!(await page.evaluate<boolean>(expression))) {
      assert.ok(performance.now() < deadline, `within ${timeout} ms: ${expression}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  const dataset = (page: Page): Promise<Record<string, string>> => page.evaluate<Record<string, string>>('({ ...document.body.dataset })');
  const viewOf = (page: Page): Promise<{ start: number; end: number }> => page.evaluate<{ start: number; end: number }>('window.traceView.view()');

  it('draws the sample trace: a track per thread in order, every span and arrow, a tooltip on hover; screenshot', async (t) => {
    const { page, problems } = await open('sample', SAMPLE, 'threadkit trace: sample');
    try {
      const data = await dataset(page);
      assert.equal(data.tracks, String(SAMPLE_TRACKS.length), 'data-tracks');
      assert.equal(data.spans, String(SAMPLE_SPANS), 'data-spans');
      assert.equal(data.arrows, String(SAMPLE_FLOWS), 'data-arrows: every flow bound to its two ends');
      assert.equal(data.arrowsDrawn, String(SAMPLE_FLOWS), 'all arrows are on screen at first (the whole trace fits)');
      assert.equal(data.counters, '2');
      // The track labels a person reads, in thread_sort_index order (producer, tid 5, before consumer, tid 4).
      const labels = await page.locator('.track-label').allTextContents();
      assert.deepEqual(labels, SAMPLE_TRACKS);
      assert.deepEqual(await page.locator('.counter-label').count(), 2);
      const legend = await page.locator('#legend').textContent();
      for (const word of ['task', 'wait: Lock', 'wait: Queue.get', 'wake', 'hand-off']) assert.ok(legend?.includes(word), `legend has "${word}": ${legend}`);

      // Hover the first Lock wait: it is painted in the Lock color, and the tooltip names it, its holder and its waker.
      const at = await page.evaluate<{ x: number; y: number } | null>(`window.traceView.findSpan('Lock')`);
      assert.ok(at, 'a Lock wait is on screen');
      const pixel = await page.evaluate<number[]>(`(() => {
        const c = document.getElementById('main'), r = c.getBoundingClientRect(), d = window.devicePixelRatio || 1;
        return Array.from(c.getContext('2d').getImageData(Math.round((${at.x} - r.left) * d), Math.round((${at.y} - r.top) * d), 1, 1).data);
      })()`);
      const lockColor = [0xe0, 0x58, 0x4f];
      assert.ok(lockColor.every((v, i) => Math.abs(v - pixel[i]!) <= 8), `the Lock wait is drawn in its color: rgba(${pixel.join(',')})`);
      await page.mouse.move(at.x, at.y);
      const tooltip = page.locator('#tooltip');
      await tooltip.waitFor({ state: 'visible', timeout: 2_000 });
      const tip = (await tooltip.textContent()) ?? '';
      for (const part of ['Lock', 'wait', 'Lock at 0x3100', 'holder', 'ThreadPoolExecutor-0_1', 'woken by', 'duration', '1.3 ms']) {
        assert.ok(tip.includes(part), `tooltip has "${part}": ${tip}`);
      }
      assert.equal((await dataset(page)).arrowsDrawn, String(SAMPLE_FLOWS));

      // The screenshot, taken with the tooltip up.
      mkdirSync(OUTPUT, { recursive: true });
      const shot = join(OUTPUT, 'trace.png');
      await page.screenshot({ path: shot });
      assert.ok(readFileSync(shot).length > 10_000, 'a screenshot with something on it');
      t.diagnostic(`screenshot: ${shot}`);

      // A counter track's tooltip gives its value under the mouse.
      const counter = await page.locator('.counter-label').first().boundingBox();
      const canvas = await page.locator('#main').boundingBox();
      assert.ok(counter && canvas);
      await page.mouse.move(canvas.x + canvas.width / 2, counter.y + counter.height / 2);
      await until(page, `document.getElementById('tooltip').textContent.includes('Queue at 0x4400 depth')`);

      // Moving off every span hides the tooltip.
      await page.mouse.move(canvas.x + canvas.width - 2, canvas.y + canvas.height - 2);
      await tooltip.waitFor({ state: 'hidden', timeout: 2_000 });
      assert.deepEqual(problems, []);
    } finally {
      await page.close();
    }
  });

  it('zooms (buttons, wheel, keys) and pans (drag)', async () => {
    const { page, problems } = await open('zoom', SAMPLE);
    try {
      const fit = await viewOf(page);
      await page.click('#zoom-in');
      await until(page, `window.traceView.view().end - window.traceView.view().start < ${(fit.end - fit.start) * 0.7}`);
      const zoomed = await viewOf(page);

      const canvas = await page.locator('#main').boundingBox();
      assert.ok(canvas);
      await page.mouse.move(canvas.x + canvas.width / 2, canvas.y + 20);
      await page.mouse.wheel(0, -400);
      await until(page, `window.traceView.view().end - window.traceView.view().start < ${(zoomed.end - zoomed.start) * 0.8}`);
      const wheeled = await viewOf(page);

      // Dragging right by 200 px moves the view earlier by 200 px worth of time.
      await page.mouse.move(canvas.x + 300, canvas.y + 20);
      await page.mouse.down();
      await page.mouse.move(canvas.x + 500, canvas.y + 20, { steps: 4 });
      await page.mouse.up();
      const dragged = await viewOf(page);
      const perPixel = (wheeled.end - wheeled.start) / canvas.width;
      assert.ok(Math.abs(wheeled.start - dragged.start - 200 * perPixel) < 2 * perPixel, `pan: ${wheeled.start} → ${dragged.start}`);

      await page.keyboard.press('0');
      await until(page, `Math.abs(window.traceView.view().start - ${fit.start}) < 1e-6`);
      await page.click('#zoom-out');
      assert.deepEqual(problems, []);
    } finally {
      await page.close();
    }
  });

  it('shows hostile names as text (no markup, no script)', async () => {
    const nasty = '</script><script>alert(1)</script><img src=x onerror=alert(2)>\u2028';
    const trace: ChromeTrace = {
      traceEvents: [
        { ph: 'M', name: 'thread_name', pid: 1, tid: 1, args: { name: nasty } },
        { ph: 'X', name: nasty, cat: 'task', pid: 1, tid: 1, ts: 0, dur: 100, args: { html: '<b>bold</b>' } },
      ],
    };
    const { page, problems } = await open('hostile', trace, '</title><script>alert(3)</script>');
    try {
      assert.deepEqual(await page.locator('.track-label').allTextContents(), [nasty]);
      assert.equal(await page.locator('img').count(), 0);
      assert.equal(await page.title(), '</title><script>alert(3)</script>');
      const at = await page.evaluate<{ x: number; y: number } | null>(`window.traceView.findSpan(${JSON.stringify(nasty)})`);
      assert.ok(at);
      await page.mouse.move(at.x, at.y);
      await page.locator('#tooltip').waitFor({ state: 'visible', timeout: 2_000 });
      assert.ok((await page.locator('#tooltip').textContent())?.includes('<b>bold</b>'));
      assert.equal(await page.locator('#tooltip b').count(), 0);
      assert.deepEqual(problems, []);
    } finally {
      await page.close();
    }
  });

  it('draws an empty trace, and begin/end pairs and instants as spans', async () => {
    const empty = await open('empty', { traceEvents: [] });
    try {
      const data = await dataset(empty.page);
      assert.deepEqual([data.tracks, data.spans, data.arrows], ['0', '0', '0']);
      assert.ok((await empty.page.locator('#empty').textContent())?.includes('no events'));
      assert.deepEqual(empty.problems, []);
    } finally {
      await empty.page.close();
    }
    const other = await open('begin-end', {
      traceEvents: [
        { ph: 'B', name: 'outer', cat: 'task', pid: 1, tid: 3, ts: 10 },
        { ph: 'B', name: 'inner', cat: 'wait', pid: 1, tid: 3, ts: 20 },
        { ph: 'E', pid: 1, tid: 3, ts: 30 },
        { ph: 'E', pid: 1, tid: 3, ts: 40 },
        { ph: 'i', name: 'mark', pid: 1, tid: 4, ts: 25 },
        { ph: 'B', name: 'never ends', pid: 1, tid: 4, ts: 35 },
      ] as unknown as ChromeEvent[],
    });
    try {
      const data = await dataset(other.page);
      assert.deepEqual([data.tracks, data.spans], ['2', '4']);
      assert.deepEqual(await other.page.locator('.track-label').allTextContents(), ['thread 3', 'thread 4']);
      assert.deepEqual(other.problems, []);
    } finally {
      await other.page.close();
    }
  });

  it('draws 50,000 spans and 10,000 arrows', async (t) => {
    const events: ChromeEvent[] = [];
    const threads = 25;
    let flows = 0;
    for (let tid = 1; tid <= threads; tid++) {
      events.push({ ph: 'M', name: 'thread_name', pid: 1, tid, args: { name: `worker-${tid}` } });
      events.push({ ph: 'M', name: 'thread_sort_index', pid: 1, tid, args: { sort_index: tid } });
      events.push({ ph: 'X', name: `worker-${tid}`, cat: 'thread', pid: 1, tid, ts: 0, dur: 1_000_000 });
      for (let i = 0; i < 667; i++) {
        const ts = i * 1500 + tid;
        events.push({ ph: 'X', name: 'task', cat: 'task', pid: 1, tid, ts, dur: 1200 });
        events.push({ ph: 'X', name: 'Lock', cat: 'wait', pid: 1, tid, ts: ts + 100, dur: 300, args: { object: 'Lock at 0x10' } });
        events.push({ ph: 'X', name: 'wake', cat: 'wake', pid: 1, tid, ts: ts + 800, dur: 1 });
        if (i % 5 < 3) {
          const id = ++flows;
          events.push({ ph: 's', id, name: 'hand-off', cat: 'handoff', pid: 1, tid, ts: ts + 800 });
          events.push({ ph: 'f', bp: 'e', id, name: 'hand-off', cat: 'handoff', pid: 1, tid: (tid % threads) + 1, ts: ts + 1600 + 399 });
        }
      }
      events.push({ ph: 'C', name: 'busy', pid: 1, ts: tid * 1000, args: { value: tid } });
    }
    const spans = events.filter((e) => e.ph === 'X').length;
    assert.ok(spans >= 50_000);
    const started = performance.now();
    const { page, problems } = await open('large', { traceEvents: events }, 'large', { width: 1400, height: 900 });
    try {
      const loaded = performance.now() - started;
      const data = await dataset(page);
      assert.equal(data.tracks, String(threads));
      assert.equal(data.spans, String(spans));
      assert.ok(Number(data.arrows) >= 9_000, `arrows bound: ${data.arrows}`);
      assert.ok(Number(data.arrowsDrawn) > 0);
      // Zoomed in, it draws again (the frame after the click).
      await page.evaluate(`document.body.dataset.lastDrawMs = ''`);
      await page.click('#zoom-in');
      await until(page, `document.body.dataset.lastDrawMs !== ''`);
      t.diagnostic(`${spans} spans, ${data.arrows} arrows: page loaded and drawn in ${Math.round(loaded)} ms, first draw ${data.drawMs} ms`);
      assert.deepEqual(problems, []);
    } finally {
      await page.close();
    }
  });
});
