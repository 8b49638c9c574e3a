// Drives the dashboard of a running collector in Debian's headless Chromium (playwright-core:
// no browser download) and checks that it renders data. Run by crates/cli/tests/dashboard.rs.
//
//   DASHBOARD_URL=http://127.0.0.1:PORT/ DASHBOARD_API_KEY=so_… DASHBOARD_SYMBOL=005930 \
//   DASHBOARD_SCREENSHOT=/tmp/dashboard.png node tools/browser/dashboard.mjs
//
// The key comes in the environment, never on the command line (other users see argv).
// Every request not to 127.0.0.1 is aborted and fails the run: the page must work offline.
// Prints one JSON line of what it saw; exits non-zero on any failure.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const env = (name, fallback) => {
  const v = process.env[name] ?? fallback;
  if (v === undefined) throw new Error(`${name} is not set`);
  return v;
};
const url = env('DASHBOARD_URL');
const key = env('DASHBOARD_API_KEY');
const symbol = env('DASHBOARD_SYMBOL');
const screenshot = env('DASHBOARD_SCREENSHOT');
const chromiumPath = env('CHROMIUM', '/usr/bin/chromium');
// How long each wait may take: the page polls status every 2 s and the feed pushes at 2 Hz.
const WAIT_MS = Number(env('DASHBOARD_WAIT_MS', '20000'));
// Gaps the day's timeline must show (the test's recording has a disconnect).
const MIN_GAPS = Number(env('DASHBOARD_MIN_GAPS', '1'));

const consoleErrors = [];
const pageErrors = [];
const blocked = [];
const seen = {};
const userDataDir = mkdtempSync(join(tmpdir(), 'so-dashboard-chromium-'));
let context;
let failure = null;

async function waitAttr(page, selector, attr, min, what) {
  try {
    await page.waitForFunction(
      ([sel, a, m]) => Number(document.querySelector(sel)?.dataset[a] ?? 0) >= m,
      [selector, attr, min],
      { timeout: WAIT_MS, polling: 100 },
    );
  } catch (e) {
    const now = await page.evaluate(([sel, a]) => document.querySelector(sel)?.dataset[a], [selector, attr]);
    throw new Error(`${what}: ${selector} data-${attr} stayed ${now} (< ${min}) for ${WAIT_MS} ms`);
  }
}

const attr = (page, selector, a) => page.evaluate(([s, x]) => document.querySelector(s)?.dataset[x], [selector, a]);

try {
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: chromiumPath,
    headless: true,
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ],
    viewport: { width: 1440, height: 1100 },
    // Not Seoul: every time on the page must still be Korean time.
    timezoneId: 'America/New_York',
    locale: 'en-US',
  });
  await context.route('**/*', (route) => {
    const u = new URL(route.request().url());
    if (u.hostname === '127.0.0.1') return route.continue();
    blocked.push(u.href);
    return route.abort('blockedbyclient');
  });
  const page = context.pages()[0] ?? (await context.newPage());
  page.on('console', (m) => {
    if (m.type() === 'error') consoleErrors.push(`${m.text()} (${m.location().url})`);
  });
  page.on('pageerror', (e) => pageErrors.push(String(e.stack || e)));

  const response = await page.goto(url, { waitUntil: 'load' });
  if (response.status() !== 200) throw new Error(`GET ${url}: ${response.status()}`);
  seen.csp = response.headers()['content-security-policy'];
  if (seen.csp !== "default-src 'self'") throw new Error(`the page's Content-Security-Policy is ${seen.csp}`);

  // Sign in through the form, as a person would.
  await page.waitForSelector('#login:not([hidden])', { timeout: WAIT_MS });
  await page.fill('#api-key', key);
  await page.click('#login-submit');
  await page.waitForSelector('#dashboard:not([hidden])', { timeout: WAIT_MS });

  // The live parts: status polled twice, samples pushed over the feed and drawn.
  await waitAttr(page, '#providers', 'updates', 2, 'provider status');
  await waitAttr(page, '#slots', 'drawn', 1, 'sparklines');
  const samplesBefore = Number(await attr(page, '#slots', 'samples'));
  await waitAttr(page, '#slots', 'samples', samplesBefore + 1, 'the live feed after the first sparklines');
  await page.waitForFunction(() => document.querySelector('#live')?.textContent === 'live', null, { timeout: WAIT_MS });

  // A candle chart of the symbol asked for.
  await page.fill('#chart-symbol', symbol);
  await page.selectOption('#chart-interval', '1m');
  await page.click('#chart-load');
  await page.waitForFunction(
    (s) => document.querySelector('#candles')?.dataset.symbol === s && Number(document.querySelector('#candles').dataset.candles) > 0,
    symbol,
    { timeout: WAIT_MS, polling: 100 },
  ).catch(async () => {
    const note = await page.textContent('#chart-note');
    throw new Error(`no candles of ${symbol}: ${note}`);
  });
  await waitAttr(page, '#timeline', 'gaps', MIN_GAPS, 'the day\'s gaps');

  seen.candles = Number(await attr(page, '#candles', 'candles'));
  seen.first_candle_kst = await attr(page, '#candles', 'firstKst');
  seen.slot_symbols = Number(await attr(page, '#slots', 'symbols'));
  seen.sparklines = Number(await attr(page, '#slots', 'drawn'));
  seen.samples = Number(await attr(page, '#slots', 'samples'));
  seen.gaps = Number(await attr(page, '#timeline', 'gaps'));
  seen.overflow = Number(await attr(page, '#timeline', 'overflow'));
  seen.status_updates = Number(await attr(page, '#providers', 'updates'));
  seen.providers = await page.$$eval('#providers tbody tr', (rows) => rows.map((r) => [...r.cells].map((c) => c.textContent)));
  seen.gap_rows = await page.$$eval('#gaps tbody tr', (rows) => rows.map((r) => [...r.cells].map((c) => c.textContent)));
  seen.clock = await page.textContent('#clock');
  seen.system = await page.$$eval('#system div', (ds) => ds.map((d) => d.textContent));
  seen.canvases = await page.$$eval('canvas', (cs) => cs.length);

  // Let a few more samples be drawn so the picture is a live one, then keep it.
  await page.waitForTimeout(1500);
  await page.screenshot({ path: screenshot, fullPage: true });
} catch (e) {
  failure = String(e.stack || e);
  // What the page showed when it failed, for the report.
  const page = context?.pages()[0];
  if (page) {
    seen.at_failure = await page.evaluate(() => {
      const data = (id) => ({ ...(document.getElementById(id)?.dataset ?? {}) });
      const text = (id) => document.getElementById(id)?.textContent;
      return {
        providers: data('providers'), slots: data('slots'), candles: data('candles'), timeline: data('timeline'),
        live: text('live'), status_note: text('status-note'), slots_note: text('slots-note'),
        chart_note: text('chart-note'), login_error: text('login-error'),
      };
    }).catch((err) => String(err));
    await page.screenshot({ path: screenshot, fullPage: true }).catch(() => {});
  }
} finally {
  if (context) await context.close().catch(() => {});
  rmSync(userDataDir, { recursive: true, force: true });
}

const problems = [];
if (failure) problems.push(failure);
if (consoleErrors.length) problems.push(`console errors: ${consoleErrors.join(' | ')}`);
if (pageErrors.length) problems.push(`page errors: ${pageErrors.join(' | ')}`);
if (blocked.length) problems.push(`requests to other hosts: ${blocked.join(' ')}`);
console.log(JSON.stringify({ ok: problems.length === 0, problems, seen, consoleErrors, pageErrors, blocked }));
process.exit(problems.length === 0 ? 0 : 1);
