// The console's booking look-up in headless Chromium (Debian's `chromium`), driven by
// playwright-core, and the README's picture of the practice page.
// Launched by crates/service/tests/lookup.rs, which starts both simulators and a node, books
// two patients of one surname, and passes everything through the environment:
//   CHROMIUM, NODE_URL, CONSOLE_PASSWORD, PRACTICE_LINK, MISCONFIGURED_LINK, SURNAME,
//   BOOKINGS (comma-separated), SCREENSHOTS
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
const link = env('PRACTICE_LINK');
const shots = env('SCREENSHOTS');
const bookings = env('BOOKINGS').split(',');
mkdirSync(shots, { recursive: true });

const browser = await chromium.launch({
  executablePath: env('CHROMIUM'),
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-dev-shm-usage'],
});
const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
const page = await context.newPage();
page.setDefaultTimeout(60_000);
const shot = (name, options = { fullPage: true }) => page.screenshot({ path: join(shots, `${name}.png`), ...options });
const step = (name) => console.log(`step: ${name}`);
const check = (cond, message) => { if (!cond) throw new Error(message); };
const fits = async (what) => {
  const width = await page.evaluate(() => document.documentElement.scrollWidth);
  check(width <= 376, `${what} is ${width} px wide at a 375 px viewport`);
};

try {
  step('log in');
  await page.goto(`${node}/console`);
  await page.getByLabel('Password or admin token').fill(env('CONSOLE_PASSWORD'));
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.getByRole('heading', { name: 'Practices' }).waitFor();

  step("a practice page with findings and the week grid (the README's picture)");
  await page.goto(`${node}/console/practices/${env('MISCONFIGURED_LINK')}`);
  await page.locator('li.finding').first().waitFor();
  await page.locator('svg.week-grid').first().waitFor();
  const bottom = await page.locator('#week').evaluate((e) => e.getBoundingClientRect().bottom + window.scrollY);
  await shot('lookup-practice', { fullPage: true, clip: { x: 0, y: 0, width: 1280, height: Math.ceil(bottom) + 16 } });

  step('the practice with the bookings');
  await page.goto(`${node}/console/practices/${link}`);

  step('find the bookings by surname, from the practice page');
  await page.locator('#lookup').getByLabel('Patient surname').fill(env('SURNAME').toUpperCase());
  await page.locator('#lookup').getByRole('button', { name: 'Find bookings' }).click();
  await page.locator('#lookup-results').waitFor();
  check(!page.url().includes('surname'), `the surname is in the URL: ${page.url()}`);
  const found = await page.locator('#lookup-results li.booking').evaluateAll((els) => els.map((e) => e.dataset.booking));
  check(
    found.length === bookings.length && bookings.every((b) => found.includes(b)),
    `found ${found.join(', ')}, expected ${bookings.join(', ')}`,
  );
  console.log(`found: ${found.join(', ')}`);
  await shot('lookup-results');

  step("a booking's page: its facts and its history as a timeline");
  await page.locator(`#lookup-results li.booking[data-booking="${bookings[0]}"] a`).click();
  await page.getByRole('heading', { name: 'History' }).waitFor();
  const kinds = await page.locator('ol.timeline li').evaluateAll((els) => els.map((e) => e.dataset.kind));
  check(kinds[0] === 'request' && kinds.includes('answer'), `the timeline: ${kinds.join(', ')}`);
  console.log(`timeline: ${kinds.join(' → ')}`);
  const practice = (await page.locator('dd.practice-name').textContent()).trim();
  check(practice === 'Harbour Dental', `the booking page names the practice: ${practice}`);
  check((await page.title()).includes('Harbour Dental'), `the title names the practice: ${await page.title()}`);
  await shot('lookup-booking');

  step('the booking page at 375 px');
  await page.setViewportSize({ width: 375, height: 800 });
  await page.reload();
  await fits('the booking page');
  await shot('lookup-booking-375px');

  step('the search page at 375 px');
  await page.goto(`${node}/console/practices/${link}/bookings`);
  await page.getByLabel('Marketplace booking id').fill(bookings[1]);
  await page.getByRole('button', { name: 'Find bookings' }).click();
  await page.locator(`#lookup-results li.booking[data-booking="${bookings[1]}"]`).waitFor();
  await fits('the search page');
  console.log('browser: all steps passed');
} catch (e) {
  await shot('lookup-failure').catch(() => {});
  console.error(`FAILED at ${page.url()}: ${e.stack || e}`);
  process.exitCode = 1;
} finally {
  await browser.close();
}
