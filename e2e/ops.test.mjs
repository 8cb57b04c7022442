// Browser test of the operator console: `reauth dev` with two projects, one made to fail by a
// drill; /ops in headless Chromium shows the failing one as failing (with the reason) and the
// other as healthy, filters and sorts without JavaScript, and fits a phone.
//
// Run with `npm test` from e2e/ (needs the server binary and Chromium, see support.mjs).

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import {
  PHONE,
  STARTUP_TIMEOUT_MS,
  fetchJson,
  freePort,
  launchBrowser,
  newContext,
  reauthEnv,
  shot,
  sleep,
  startServer,
  stopServer,
  withDiagnostics,
} from './support.mjs';

const run = promisify(execFile);

let server;
let browser;

before(async () => {
  server = await startServer({ env: { REAUTH_OPS_DRILLS: 'true' }, opsPort: await freePort() });
  browser = await launchBrowser();
}, { timeout: 2 * STARTUP_TIMEOUT_MS });

after(async () => {
  await browser?.close().catch(() => {});
  await stopServer(server);
}, { timeout: 20_000 });

/** Poll /ops/supervision until `cond(view)` holds. */
async function until(what, cond, ms = 20_000) {
  const deadline = Date.now() + ms;
  let last;
  while (Date.now() < deadline) {
    last = await fetchJson(`${server.ops}/ops/supervision`);
    assert.equal(last.status, 200, JSON.stringify(last.body));
    if (cond(last.body)) return last.body;
    await sleep(100);
  }
  assert.fail(`timed out waiting for ${what}: ${JSON.stringify(last?.body).slice(0, 2_000)}`);
}

const row = (view, slug) => view.projects.find((p) => p.slug === slug);

test('the operator console shows which tenant is failing, and why', { timeout: 120_000 }, async (t) => {
  // A second project beside the dev demo, created by the CLI on the same data directory (the
  // running server picks it up from the store).
  const { stdout } = await run(
    server.bin,
    ['project', 'create', 'shop', '--name', 'Shop', '--data-dir', server.dataDir],
    { env: reauthEnv() },
  );
  t.diagnostic(stdout.trim());
  let view = await until('shop running beside the others', (v) =>
    row(v, 'shop')?.state === 'running' && v.projects.every((p) => p.state === 'running'),
  );
  const other = view.projects.find((p) => p.slug !== 'shop').slug;

  // Some traffic on the healthy one.
  for (let i = 0; i < 5; i++) await fetch(`${server.base}/login`);

  const drill = await fetch(`${server.ops}/ops/drills/project-failure?project=shop&secs=300`, { method: 'POST' });
  assert.equal(drill.status, 202, await drill.text());
  view = await until('shop failing', (v) => row(v, 'shop')?.health === 'failing' && row(v, 'shop')?.last_failure);
  assert.equal(row(view, other).health, 'ok');

  const ctx = await newContext(browser, { width: 1280, height: 800 });
  const page = await ctx.newPage();
  await withDiagnostics(t, server, page, 'ops', async () => {
    await page.goto(`${server.ops}/ops`);
    // Failing first; its row says so, with the reason.
    const failing = page.locator('tr[data-project="shop"]');
    await failing.waitFor();
    assert.equal(await failing.getAttribute('data-health'), 'failing');
    assert.match(await failing.innerText(), /injected failure \(drill\)/);
    assert.match(await failing.innerText(), /restarting|parked/);
    const first = page.locator('tbody tr').first();
    assert.equal(await first.getAttribute('data-project'), 'shop', 'failing projects come first');
    const healthy = page.locator(`tr[data-project="${other}"]`);
    assert.equal(await healthy.getAttribute('data-health'), 'ok');
    assert.match(await page.title(), /1 failing/);
    assert.match(await page.locator('header').innerText(), /1 project failing/);
    // The process section: the embedded backends are reachable.
    assert.match(await page.locator('section[aria-labelledby="process"]').innerText(), /sqlite[\s\S]*reachable/);
    await shot(page, 'ops-desktop.png');

    // The filter is a plain form: only matching projects remain.
    await page.fill('#q', other);
    await Promise.all([page.waitForURL(/q=/), page.click('button[type=submit]')]);
    assert.equal(await page.locator('tr[data-project="shop"]').count(), 0);
    assert.equal(await page.locator(`tr[data-project="${other}"]`).count(), 1);

    // Sorting by slug is a link.
    await page.goto(`${server.ops}/ops`);
    await Promise.all([page.waitForURL(/sort=slug/), page.click('#sorting a:text-is("slug")')]);
    const slugs = await page.locator('tbody tr').evaluateAll((rows) => rows.map((r) => r.dataset.project));
    assert.deepEqual(slugs, [...slugs].sort());

    // The page refreshes itself: a second look a few seconds on has rates.
    await page.goto(`${server.ops}/ops`);
    await sleep(1_200);
    await page.reload();
    assert.doesNotMatch(await page.locator('section[aria-labelledby="process"]').innerText(), /next refresh/);
  });
  await ctx.close();

  const phone = await newContext(browser, PHONE);
  const p2 = await phone.newPage();
  await withDiagnostics(t, server, p2, 'ops-phone', async () => {
    await p2.goto(`${server.ops}/ops`);
    await p2.locator('tr[data-project="shop"]').waitFor();
    // The table scrolls inside its section; the page itself does not overflow.
    const overflow = await p2.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 1, `page wider than the phone by ${overflow}px`);
    await shot(p2, 'ops-phone.png');
  });
  await phone.close();

  // Ending the drill: the project comes back at its next attempt (parked ones within 30 s).
  const end = await fetch(`${server.ops}/ops/drills/project-failure?project=shop&secs=0`, { method: 'POST' });
  assert.equal(end.status, 202);
  await until('shop running again', (v) => row(v, 'shop')?.state === 'running', 45_000);
});
