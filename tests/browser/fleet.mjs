// The console's fleet view in headless Chromium (Debian's `chromium`), driven by playwright-core.
// Launched by crates/service/tests/fleet.rs, which starts both simulators and a node, confirms
// one booking and flushes the node's counters; everything comes through the environment:
//   CHROMIUM, NODE_URL, CONSOLE_PASSWORD, SCREENSHOTS
// Prints one line per step; exits 1 with the reason (and a failure screenshot) when a step fails.
import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`environment variable ${k} is missing`);
  return v;
};
const node = env('NODE_URL');
const shots = env('SCREENSHOTS');
mkdirSync(shots, { recursive: true });
const T = 60_000;

const browser = await chromium.launch({
  executablePath: env('CHROMIUM'),
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-dev-shm-usage'],
});
const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
const page = await context.newPage();
page.setDefaultTimeout(T);
const shot = (name) => page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });
const step = (name) => console.log(`step: ${name}`);
const check = (cond, message) => { if (!cond) throw new Error(message); };
// Content-Security-Policy violations and failed loads of the page's own resources (the
// browser's own favicon request aside).
const errors = [];
page.on('console', (m) => { if (m.type() === 'error' && /Content Security Policy/i.test(m.text())) errors.push(m.text()); });
page.on('response', (r) => { if (r.status() >= 400 && !r.url().endsWith('/favicon.ico')) errors.push(`${r.status()} ${r.url()}`); });

try {
  step('log in and open the fleet view from the menu');
  await page.goto(`${node}/console/fleet`);
  check(page.url().endsWith('/console/login'), `expected the login page, got ${page.url()}`);
  await page.getByLabel('Password or admin token').fill(env('CONSOLE_PASSWORD'));
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.getByRole('heading', { name: 'Practices' }).waitFor();
  await page.getByRole('link', { name: 'Fleet' }).click();
  await page.getByRole('heading', { name: 'Fleet', exact: true }).waitFor();

  step('practices by health');
  const healthy = await page.locator('dd[data-health="healthy"]').textContent();
  check(healthy.trim() === '1', `expected 1 healthy practice, found ${healthy}`);

  step('four hourly charts, each with a text alternative');
  const charts = page.locator('svg.chart');
  check((await charts.count()) === 4, `expected 4 charts, found ${await charts.count()}`);
  for (const name of ['Bookings', 'Freshness', 'Requests close to the 10-minute limit', 'Worker restarts and lease moves']) {
    await page.getByRole('heading', { name }).waitFor();
  }
  const bookings = page.locator('#chart-bookings');
  check((await bookings.getAttribute('data-total')) === '1', 'the bookings chart should total 1');
  const bars = await bookings.locator('rect.bar[data-series="confirmed"]').count();
  check(bars === 1, `expected one confirmed bar, found ${bars}`);
  const box = await bookings.boundingBox();
  check(box && box.width > 300 && box.height > 100, `the bookings chart is drawn ${JSON.stringify(box)}`);
  const alt = await bookings.locator('title').first().textContent();
  check(alt.includes('confirmed: 1 in all'), `the chart's text alternative: ${alt}`);
  check(errors.length === 0, `errors: ${errors.join('; ')}`);
  await shot('01-fleet');

  step('fleet view at 375 px');
  await page.setViewportSize({ width: 375, height: 800 });
  await page.reload();
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth);
  check(overflow <= 376, `the fleet view is ${overflow} px wide at a 375 px viewport`);
  await shot('02-fleet-375px');

  console.log('browser: all steps passed');
} catch (e) {
  console.log(`browser: FAILED: ${e.message}`);
  await shot('failure').catch(() => {});
  process.exitCode = 1;
} finally {
  await browser.close();
}
