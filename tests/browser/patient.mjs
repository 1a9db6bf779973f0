// The marketplace simulator's patient page at a phone's width (375 px) in headless Chromium,
// driven by playwright-core. Launched by crates/market-sim/tests/browser.rs with:
//   CHROMIUM, PAGE_URL, SCREENSHOTS
// Prints one line per step; exits 1 with the reason (and a failure screenshot) when a step fails.
import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`environment variable ${k} is missing`);
  return v;
};
const shots = env('SCREENSHOTS');
mkdirSync(shots, { recursive: true });

const browser = await chromium.launch({
  executablePath: env('CHROMIUM'),
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-dev-shm-usage'],
});
const context = await browser.newContext({ viewport: { width: 375, height: 812 }, isMobile: true, hasTouch: true });
const page = await context.newPage();
page.setDefaultTimeout(30_000);
const shot = (name) => page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });
const step = (name) => console.log(`step: ${name}`);
const check = (cond, message) => { if (!cond) throw new Error(message); };
const fits = async (what) => {
  const width = await page.evaluate(() => document.documentElement.scrollWidth);
  check(width <= 375, `${what} is ${width} px wide at a 375 px viewport`);
};

try {
  step('a day at 375 px: practitioners, then types, then times');
  await page.goto(env('PAGE_URL'));
  await fits('the patient page');
  const sections = await page.locator('section.practitioner').count();
  const times = await page.locator('ul.times summary').count();
  check(sections > 0 && times > 0, `${sections} practitioners, ${times} times`);
  const widest = await page.locator('ul.times summary').evaluateAll(
    (els) => Math.max(...els.map((e) => e.getBoundingClientRect().right)),
  );
  check(widest <= 375, `a time button reaches ${widest} px`);
  const tall = await page.locator('ul.times summary').first().evaluate((e) => e.getBoundingClientRect().height);
  check(tall >= 44, `a time button is ${tall} px tall (a tap target needs 44)`);
  console.log(`page: ${sections} practitioners, ${times} times`);
  await shot('patient-375px');

  step('a time opens its form across the width');
  const first = page.locator('ul.times details').first();
  await first.locator('summary').click();
  await first.getByLabel('Last name').waitFor();
  await fits('the page with a form open');
  const form = await first.locator('form').evaluate((e) => e.getBoundingClientRect());
  check(form.left >= 0 && form.right <= 375 && form.width >= 280, `the form spans ${form.left}..${form.right} px`);
  await shot('patient-375px-open');
  console.log('browser: all steps passed');
} catch (e) {
  await shot('patient-failure').catch(() => {});
  console.error(`FAILED at ${page.url()}: ${e.stack || e}`);
  process.exitCode = 1;
} finally {
  await browser.close();
}
