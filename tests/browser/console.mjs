// The operator console in headless Chromium (Debian's `chromium`), driven by playwright-core.
// Launched by crates/service/tests/console.rs, which starts both simulators and a node and passes
// everything through the environment:
//   CHROMIUM, NODE_URL, CONSOLE_PASSWORD, MARKET_URL, PRACTICE_ID, PRACTICE_LINK,
//   MISCONFIGURED_LINK, BOOK_DATE, EXPLAIN_AT, SCREENSHOTS
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
const market = env('MARKET_URL');
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

try {
  step('log in');
  await page.goto(`${node}/console`);
  check(page.url().endsWith('/console/login'), `expected the login page, got ${page.url()}`);
  await shot('01-login');
  await page.getByLabel('Password or admin token').fill('not the password');
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.getByText('That password or token is not right.').waitFor();
  await page.getByLabel('Password or admin token').fill(env('CONSOLE_PASSWORD'));
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.getByRole('heading', { name: 'Practices' }).waitFor();
  const rows = await page.locator('tr[data-practice]').count();
  check(rows >= 2, `expected both practices in the list, found ${rows}`);
  await page.locator(`tr[data-practice="${env('PRACTICE_ID')}"]`).waitFor();
  await shot('02-practices');

  step('practice list at 375 px');
  await page.setViewportSize({ width: 375, height: 800 });
  await page.reload();
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth);
  check(overflow <= 376, `the practice list is ${overflow} px wide at a 375 px viewport`);
  await shot('03-practices-375px');
  await page.setViewportSize({ width: 1280, height: 900 });

  step('keyboard: the first Tab reaches the skip link');
  await page.keyboard.press('Tab');
  const focused = await page.evaluate(() => document.activeElement?.textContent?.trim());
  check(focused === 'Skip to content', `the first Tab focused ${JSON.stringify(focused)}`);

  step("a misconfigured practice's findings");
  await page.goto(`${node}/console/practices/${env('MISCONFIGURED_LINK')}`);
  await page.locator('li.finding').first().waitFor();
  const findings = await page.locator('li.finding').count();
  const fixes = await page.locator('li.finding .fix').allTextContents();
  check(findings > 0 && fixes.every((f) => f.startsWith('Fix: ') && f.length > 10), `findings without fixes: ${fixes}`);
  const codes = await page.locator('li.finding').evaluateAll((els) => els.map((e) => e.dataset.code));
  console.log(`findings: ${codes.join(', ')}`);
  await page.locator('#findings-h').scrollIntoViewIfNeeded();
  await shot('04-findings');

  step('resync, and see it complete');
  await page.goto(`${node}/console/practices/${env('PRACTICE_LINK')}`);
  await page.getByRole('button', { name: 'Resync availability' }).click();
  await page.locator('#resync-progress[data-state="done"]').waitFor({ timeout: 90_000 });
  const progress = await page.locator('#resync-progress').textContent();
  check(/availability/.test(progress) && /done/.test(progress), `progress says ${progress}`);
  await page.locator('#resync').scrollIntoViewIfNeeded();
  await shot('05-resync-done');

  step('the week grid is a picture per practitioner');
  const grids = await page.locator('svg.week-grid').count();
  const bars = await page.locator('svg.week-grid rect.stretch').count();
  check(grids > 0 && bars > 0, `week grid: ${grids} pictures, ${bars} bars`);
  await page.locator('#week').scrollIntoViewIfNeeded();
  await shot('06-week-grid');

  step('explain a missing slot');
  await page.getByLabel('Practice-local start').fill(env('EXPLAIN_AT'));
  await page.getByRole('button', { name: 'Explain' }).click();
  const answer = page.locator('#explain-result .answer');
  await answer.waitFor();
  const cause = await answer.getAttribute('data-cause');
  const summary = (await answer.textContent()).trim();
  check(cause && cause.length > 0, `no cause in the answer: ${summary}`);
  console.log(`explain: ${cause}: ${summary}`);
  await page.locator('#explain').scrollIntoViewIfNeeded();
  await shot('07-explain');

  step("book through the marketplace's patient page");
  await page.goto(`${market}/book/${env('PRACTICE_ID')}?date=${env('BOOK_DATE')}`);
  const slot = page.locator('details').first();
  await slot.locator('summary').click();
  await slot.getByLabel('First name').fill('Ada');
  await slot.getByLabel('Last name').fill('Lovelace');
  await slot.getByLabel('Date of birth').fill('1985-12-10');
  await slot.getByLabel('Phone').fill('0400 000 000');
  await slot.getByLabel('Email').fill('ada@example.com');
  await shot('08-patient-page');
  await slot.getByRole('button', { name: 'Book' }).click();
  await page.waitForURL(/\/book\/bookings\/\d+/);
  const bookingId = page.url().match(/\/book\/bookings\/(\d+)/)[1];
  console.log(`booking: ${bookingId}`);

  step('see the booking in the log');
  await page.goto(`${node}/console/practices/${env('PRACTICE_LINK')}#log-section`);
  const deadline = Date.now() + 60_000;
  const booking = page.locator(`li.booking[data-booking="${bookingId}"]`);
  while ((await booking.count()) === 0 || !/state-(confirmed|rejected)/.test(await booking.getAttribute('class'))) {
    check(Date.now() < deadline, `booking ${bookingId} did not reach the log as confirmed or rejected within 60 s`);
    await page.waitForTimeout(1000);
    await page.getByRole('button', { name: 'Refresh the log' }).click();
    await page.waitForTimeout(500);
  }
  const transitions = await booking.locator('.transitions li').count();
  check(transitions >= 2, `booking ${bookingId} shows ${transitions} transitions`);
  console.log(`log: booking ${bookingId} is ${await booking.getAttribute('class')} after ${transitions} transitions`);
  await booking.scrollIntoViewIfNeeded();
  await shot('09-booking-log');

  step('log out');
  await page.getByRole('button', { name: 'Log out' }).click();
  await page.waitForURL(/\/console\/login$/);
  await page.goto(`${node}/console`);
  check(page.url().endsWith('/console/login'), 'still logged in after logging out');
  console.log('browser: all steps passed');
} catch (e) {
  await shot('failure').catch(() => {});
  console.error(`FAILED at ${page.url()}: ${e.stack || e}`);
  process.exitCode = 1;
} finally {
  await browser.close();
}
