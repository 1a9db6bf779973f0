// The console's practice list for many practices (names, setup findings, freshness, search,
// filters, pages), its bulk actions with progress and the audit log, in headless Chromium.
// Launched by crates/service/tests/console.rs with:
//   CHROMIUM, NODE_URL, CONSOLE_PASSWORD, PRACTICE_LINK, MISCONFIGURED_LINK, MISCONFIGURED_SLUG,
//   FINDING_CODE, SCREENSHOTS
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

const browser = await chromium.launch({
  executablePath: env('CHROMIUM'),
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-dev-shm-usage'],
});
const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
const page = await context.newPage();
page.setDefaultTimeout(60_000);
const shot = (name) => page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });
const step = (name) => console.log(`step: ${name}`);
const check = (cond, message) => { if (!cond) throw new Error(message); };
const harbourRow = `tr[data-link="${env('PRACTICE_LINK')}"]`;
const misRow = `tr[data-link="${env('MISCONFIGURED_LINK')}"]`;

try {
  step('log in');
  await page.goto(`${node}/console/login`);
  await page.getByLabel('Password or admin token').fill(env('CONSOLE_PASSWORD'));
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.getByRole('heading', { name: 'Practices' }).waitFor();

  step('names, setup findings and freshness in the list');
  const harbourName = (await page.locator(`${harbourRow} td[data-label="Practice"] a`).textContent()).trim();
  check(harbourName === 'Harbour Dental', `the list names Harbour Dental ${JSON.stringify(harbourName)}`);
  const mis = page.locator(misRow);
  const counted = Number(await mis.locator('td[data-label="Findings"]').getAttribute('data-errors'))
    + Number(await mis.locator('td[data-label="Findings"]').getAttribute('data-warnings'));
  check(counted > 0, `the misconfigured practice's row counts ${counted} findings`);
  const badge = (await mis.locator('td[data-label="Health"] .badge').first().textContent()).trim();
  check(badge !== 'Healthy', `the misconfigured practice is shown ${badge}`);
  const first = await page.locator('tr[data-link]').first().getAttribute('data-link');
  check(first === env('MISCONFIGURED_LINK'), 'the practice needing attention is listed first');
  const fresh = await page.locator(`${harbourRow} [data-freshness]`).getAttribute('data-freshness');
  check(['up-to-date', 'waiting'].includes(fresh), `Harbour Dental's freshness is ${fresh}`);
  await shot('10-list-attention');

  step('search by name');
  await page.getByLabel('Search').fill('harbour');
  await page.getByRole('button', { name: 'Search' }).click();
  await page.waitForURL(/q=harbour/);
  check((await page.locator('tr[data-link]').count()) === 1, 'one practice matches "harbour"');
  check(/1 practice\(s\) match/.test(await page.locator('#list-total').textContent()), 'the total says 1');
  await shot('11-list-search');

  step('filter by a setup finding');
  await page.getByLabel('Search').fill('');
  await page.getByLabel('Show').selectOption(env('FINDING_CODE'));
  await page.getByRole('button', { name: 'Search' }).click();
  await page.waitForURL(new RegExp(`attention=${env('FINDING_CODE')}`));
  const filtered = await page.locator('tr[data-link]').evaluateAll((rows) => rows.map((r) => r.dataset.link));
  check(filtered.length === 1 && filtered[0] === env('MISCONFIGURED_LINK'), `the finding filter shows ${filtered}`);

  step('pages of one practice');
  await page.goto(`${node}/console?per_page=1`);
  const p1 = await page.locator('tr[data-link]').getAttribute('data-link');
  await page.getByRole('link', { name: 'Next →' }).click();
  await page.waitForURL(/page=2/);
  const p2 = await page.locator('tr[data-link]').getAttribute('data-link');
  check(p1 !== p2, 'page 2 shows another practice');
  check(/Page 2 of 2/.test(await page.locator('nav.pages').textContent()), 'two pages');
  await shot('12-list-pages');

  step('bulk: disable the searched set, with progress');
  for (const [action, label] of [['disable', 'Disable'], ['enable', 'Enable']]) {
    await page.goto(`${node}/console?q=${encodeURIComponent(env('MISCONFIGURED_SLUG'))}`);
    check((await page.locator('tr[data-link]').count()) === 1, 'the search finds the misconfigured practice');
    await page.getByLabel('Action').selectOption(action);
    await page.getByRole('button', { name: 'Apply to 1 practice(s)' }).click();
    await page.waitForURL(/\/console\/bulk\//);
    await page.locator('#bulk-progress[data-state="done"]').waitFor({ timeout: 30_000 });
    const text = await page.locator('#bulk-progress').textContent();
    check(/1 of 1 practice\(s\) done/.test(text) && !/failed/.test(text), `bulk ${action}: ${text}`);
    if (action === 'disable') await shot('13-bulk-done');
    console.log(`bulk ${label}: ${text.replace(/\s+/g, ' ').trim()}`);
  }

  step('the audit log names the session and the practices');
  await page.getByRole('link', { name: 'Audit log' }).first().click();
  await page.getByRole('heading', { name: 'Audit log' }).waitFor();
  const actions = await page.locator('tr[data-action]').evaluateAll((rows) => rows.map((r) => r.dataset.action));
  check(actions[0] === 'bulk.enable' && actions[1] === 'bulk.disable', `audit actions ${actions}`);
  const who = await page.locator('tr[data-action="bulk.disable"] td[data-label="Who"]').textContent();
  check(/^console session [0-9a-f]{8}$/.test(who.trim()), `the audit names ${who}`);
  await shot('14-audit-log');

  step("the practice page's name and freshness");
  await page.goto(`${node}/console/practices/${env('PRACTICE_LINK')}`);
  await page.getByRole('heading', { name: 'Harbour Dental', level: 1 }).waitFor();
  const freshness = await page.locator('#freshness').textContent();
  check(/Up to date|Change waiting/.test(freshness), `freshness says ${freshness}`);
  check(!/lag \d+ s/.test(await page.content()), 'the page no longer shows "lag"');
  await shot('15-practice-freshness');

  step('bulk: resync availability, each practice with its state and node');
  await page.goto(`${node}/console?q=${encodeURIComponent('Harbour Dental')}`);
  check((await page.locator('tr[data-link]').count()) === 1, 'the search finds Harbour Dental');
  await page.getByLabel('Action').selectOption('resync_availability');
  await page.getByRole('button', { name: 'Apply to 1 practice(s)' }).click();
  await page.waitForURL(/\/console\/bulk\//);
  await page.locator('#bulk-progress[data-state="done"]').waitFor({ timeout: 30_000 });
  const row = page.locator(`tr[data-link="${env('PRACTICE_LINK')}"]`);
  check((await row.getAttribute('data-state')) === 'done', `the practice's resync: ${await row.textContent()}`);
  const rowText = (await row.textContent()).replace(/\s+/g, ' ').trim();
  check(/Harbour Dental/.test(rowText) && /practitioner-days sent/.test(rowText), `the row: ${rowText}`);
  console.log(`bulk resync: ${rowText}`);
  await shot('16-bulk-resync');
  console.log('browser: all steps passed');
} catch (e) {
  await shot('operations-failure').catch(() => {});
  console.error(`FAILED at ${page.url()}: ${e.stack || e}`);
  process.exitCode = 1;
} finally {
  await browser.close();
}
