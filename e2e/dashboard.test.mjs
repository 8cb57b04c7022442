// Browser end-to-end journey through the developer dashboard on `reauth dev`, in headless
// Chromium: sign in via the dev outbox as the dev org's owner; create a project; brand its login
// page and see it in the live preview and on the hosted page; add a domain and see its records;
// an end user signs in on the hosted page and appears in the users list; revoking their session
// makes /v1/user 401. axe-core runs on every page visited (no serious or critical violations),
// and every page is screenshotted at desktop and phone width (e2e/screenshots, gitignored).
//
// Startup helpers in support.mjs. Run with `npm test` from e2e/ (needs a built server).

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import * as support from './support.mjs';
import { PHONE, STARTUP_TIMEOUT_MS, STEP_TIMEOUT_MS, launchBrowser, shot, startServer, stopServer } from './support.mjs';

let server;
let browser;

const withDiagnostics = (t, page, name, fn) => support.withDiagnostics(t, server, page, name, fn);
const outboxEmailFor = (to) => support.outboxEmailFor(server, to);

// ---- accessibility and screenshots ------------------------------------------------------------

const require = createRequire(import.meta.url);
const AXE = require.resolve('axe-core/axe.min.js');
const DESKTOP = { width: 1280, height: 800 };

// axe-core on the page as it is: no serious or critical violations.
async function axe(t, page, name) {
  const found = await page.evaluate(async () => {
    // eslint-disable-next-line no-undef
    const r = await axe.run(document, { resultTypes: ['violations'] });
    return r.violations.map((v) => ({
      id: v.id,
      impact: v.impact,
      help: v.help,
      nodes: v.nodes.slice(0, 3).map((n) => n.target.join(' ')),
    }));
  });
  for (const v of found) t.diagnostic(`axe ${name}: ${v.impact} ${v.id}: ${v.help} ${JSON.stringify(v.nodes)}`);
  const bad = found.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  assert.deepEqual(bad, [], `${name}: serious or critical accessibility violations`);
}

// Nothing wider than the viewport (no sideways scrolling of the page itself).
// On a phone (isMobile) an overflowing page is zoomed out rather than scrolled, so the layout
// viewport must also be the configured width.
async function fitsWidth(page, name) {
  const want = page.viewportSize().width;
  const l = await page.evaluate(() => {
    const w = document.documentElement.clientWidth;
    const wide = [...document.querySelectorAll('body *')]
      .filter((e) => e.getBoundingClientRect().right > w + 1 && e.parentElement.getBoundingClientRect().right <= w + 1)
      .slice(0, 5)
      .map((e) => `${e.tagName.toLowerCase()}.${e.className} ${Math.round(e.getBoundingClientRect().right)}`);
    return { innerWidth: window.innerWidth, scrollWidth: document.documentElement.scrollWidth, wide };
  });
  assert.ok(
    l.innerWidth === want && l.scrollWidth <= l.innerWidth,
    `${name} is wider than the ${want}px viewport: ${JSON.stringify(l)}`,
  );
}

// axe, the width check and a screenshot: what every page visited gets.
async function check(t, page, name) {
  await axe(t, page, name);
  await fitsWidth(page, name);
  await shot(page, `dashboard-${name}.png`);
}

async function newContext(viewport) {
  const phone = viewport.width < 500;
  const ctx = await browser.newContext({
    viewport,
    deviceScaleFactor: phone ? 2 : 1,
    isMobile: phone,
    hasTouch: phone,
  });
  // axe-core comes in as an init script (outside the pages' CSP), so the pages run under their
  // own policy: the htmx preview and the copy buttons below prove the scripts are allowed.
  await ctx.addInitScript({ path: AXE });
  ctx.setDefaultTimeout(STEP_TIMEOUT_MS);
  ctx.setDefaultNavigationTimeout(STEP_TIMEOUT_MS);
  return ctx;
}

// ---- hooks ----------------------------------------------------------------------------------

before(async () => {
  server = await startServer();
  browser = await launchBrowser();
}, { timeout: 2 * STARTUP_TIMEOUT_MS });

after(async () => {
  await browser?.close().catch(() => {});
  await stopServer(server);
}, { timeout: 20_000 });

// ---- the journey ------------------------------------------------------------------------------

test('the developer dashboard: sign in, create and brand a project, see and revoke a user', { timeout: 180_000 }, async (t) => {
  const ctx = await newContext(DESKTOP);
  const page = await ctx.newPage();
  const slug = `acme-${Date.now().toString(36)}`;
  const userEmail = `ada-${Date.now()}@example.com`;
  const visited = [];
  try {
    await withDiagnostics(t, page, 'dashboard', async () => {
      // 1. Signed out, the dashboard asks for an address; the dev owner's is filled in.
      await page.goto(`${server.base}/dashboard`);
      await page.waitForURL((u) => u.pathname === '/dashboard/login');
      await page.getByRole('heading', { level: 1, name: 'Sign in to the dashboard' }).waitFor();
      await check(t, page, 'login');
      const email = page.getByLabel('Email address');
      assert.equal(await email.inputValue(), 'dev@reauth.localhost');
      await page.getByRole('button', { name: 'Email me a sign-in link' }).click();
      await page.getByRole('heading', { level: 1, name: 'Check your email' }).waitFor();
      await check(t, page, 'check-email');

      // 2. The link from the dev outbox, on the dashboard's own origin; Continue signs in.
      const mail = await outboxEmailFor('dev@reauth.localhost');
      assert.ok(mail.link.startsWith(`${server.base}/dashboard/verify?token=`), mail.link);
      await page.goto(mail.link);
      await page.getByRole('button', { name: 'Continue' }).waitFor();
      await check(t, page, 'verify');
      await page.getByRole('button', { name: 'Continue' }).click();
      await page.waitForURL((u) => /^\/dashboard\/orgs\/org_/.test(u.pathname));
      await page.getByRole('heading', { level: 1, name: 'Projects' }).waitFor();
      const cookie = (await ctx.cookies(`${server.base}/dashboard`)).find((c) => c.name === 'reauth_dashboard');
      assert.ok(cookie, 'the dashboard cookie');
      assert.equal(cookie.httpOnly, true);
      assert.equal(cookie.path, '/dashboard');
      assert.ok((await page.locator('main').innerText()).includes('demo'), 'the demo project is the dev org’s');
      visited.push(page.url());
      await check(t, page, 'projects');

      // Keyboard: the first Tab reaches "Skip to content", shown with a visible focus ring; the
      // next ones walk the header's links, each with a ring too.
      await page.keyboard.press('Tab');
      const focused = () =>
        page.evaluate(() => {
          const e = document.activeElement;
          const cs = getComputedStyle(e);
          const r = e.getBoundingClientRect();
          return { text: e.textContent.trim(), outline: cs.outlineStyle, width: parseFloat(cs.outlineWidth), visible: r.left >= 0 && r.top >= 0 };
        });
      const skip = await focused();
      assert.equal(skip.text, 'Skip to content');
      assert.ok(skip.visible && skip.outline !== 'none' && skip.width >= 2, `skip link focus: ${JSON.stringify(skip)}`);
      await page.keyboard.press('Tab');
      const next = await focused();
      assert.ok(next.outline !== 'none' && next.width >= 2, `focus ring: ${JSON.stringify(next)}`);

      // 3. Create a project: its overview.
      await page.getByLabel('Slug').fill(slug);
      await page.getByLabel('Name', { exact: true }).fill('Acme');
      await page.getByRole('button', { name: 'Create project' }).click();
      await page.waitForURL((u) => /^\/dashboard\/projects\/prj_/.test(u.pathname));
      await page.getByRole('heading', { level: 1, name: 'Acme' }).waitFor();
      await page.getByText('Created.').waitFor();
      assert.equal(await page.locator('svg.chart rect').count(), 14, 'a bar per day');
      const projectUrl = new URL(page.url());
      const projectPath = projectUrl.pathname;
      const hosted = `http://${slug}.localhost:${server.port}`;
      assert.equal(await page.getByRole('link', { name: `${hosted}/login` }).count(), 1, 'the login page’s address');
      visited.push(`${server.base}${projectPath}`);
      await check(t, page, 'overview');

      // 4. Branding: the preview follows the form as it is typed (htmx), then Save.
      await page.getByRole('link', { name: 'Branding' }).click();
      await page.waitForURL((u) => u.pathname === `${projectPath}/branding`);
      await page.getByLabel('Name').fill('Acme Rockets');
      await page.getByLabel('Accent colour').fill('#be123c');
      const previewName = page.getByTestId('preview-name');
      await previewName.filter({ hasText: 'Sign in to Acme Rockets' }).waitFor();
      await page.locator('[data-testid=preview-button][data-accent="#be123c"]').waitFor();
      assert.equal(
        await page.getByTestId('preview-button').evaluate((e) => getComputedStyle(e).backgroundColor),
        'rgb(190, 18, 60)',
        'the preview uses the accent',
      );
      await check(t, page, 'branding');
      await page.getByRole('button', { name: 'Save branding' }).click();
      await page.getByText('Saved.').waitFor();
      visited.push(page.url());

      // … and the hosted page shows it.
      const hostedPage = await ctx.newPage();
      await hostedPage.goto(`${hosted}/login`);
      await hostedPage.getByRole('heading', { level: 1, name: 'Sign in to Acme Rockets' }).waitFor();
      assert.equal(
        await hostedPage.getByRole('button', { name: 'Email me a sign-in link' }).evaluate((e) => getComputedStyle(e).backgroundColor),
        'rgb(190, 18, 60)',
        'the hosted page uses the accent',
      );
      await shot(hostedPage, 'dashboard-hosted-branded.png');
      await hostedPage.close();

      // 5. A domain: its records to create.
      await page.getByRole('link', { name: 'Domains' }).click();
      await page.getByLabel('Domain').fill(`auth.${slug}.example.com`);
      await page.getByRole('button', { name: 'Add domain' }).click();
      await page.getByRole('heading', { level: 2, name: new RegExp(`auth\\.${slug}\\.example\\.com`) }).waitFor();
      await page.getByRole('cell', { name: 'TXT' }).first().waitFor();
      assert.ok((await page.locator('main').innerText()).includes('_reauth'), 'the TXT challenge name');
      await page.getByRole('button', { name: "Copy the TXT record's value" }).waitFor();
      visited.push(page.url());
      await check(t, page, 'domains');

      // 6. An end user signs in on the hosted page (a phone, another browser).
      const endCtx = await newContext(PHONE);
      const endPage = await endCtx.newPage();
      await endPage.goto(`${hosted}/login`);
      await endPage.getByLabel('Email address').fill(userEmail);
      await endPage.getByRole('button', { name: 'Email me a sign-in link' }).click();
      await endPage.getByRole('heading', { level: 1, name: 'Check your email' }).waitFor();
      const userMail = await outboxEmailFor(userEmail);
      await endPage.goto(userMail.link);
      await endPage.getByRole('button', { name: /^Continue as / }).click();
      await endPage.getByRole('heading', { level: 1, name: "You're signed in" }).waitFor();
      const me = await endPage.goto(`${hosted}/v1/user`);
      assert.equal(me.status(), 200, 'the end user is signed in');

      // 7. They appear in the users list; search finds them; their page lists the session.
      await page.getByRole('link', { name: 'Users' }).click();
      await page.getByRole('link', { name: userEmail }).waitFor();
      visited.push(page.url());
      await check(t, page, 'users');
      await page.getByLabel('Search by email').fill('ada-');
      await page.getByRole('button', { name: 'Search' }).click();
      await page.getByRole('link', { name: userEmail }).click();
      await page.getByRole('heading', { level: 2, name: userEmail }).waitFor();
      visited.push(page.url());
      await check(t, page, 'user');

      // 8. Revoke the session: /v1/user is 401 for them.
      await page.getByRole('button', { name: /^Revoke session/ }).click();
      await page.getByText('Revoked.').waitFor();
      assert.equal(await page.getByRole('button', { name: /^Revoke session/ }).count(), 0);
      const after = await endPage.goto(`${hosted}/v1/user`);
      assert.equal(after.status(), 401, 'the revoked session no longer works');
      await endCtx.close();

      // 9. The org's other pages.
      const org = visited[0];
      for (const [name, url] of [
        ['members', `${org}/members`],
        ['keys', `${org}/keys`],
        ['audit', `${org}/audit`],
        ['emails', `${server.base}${projectPath}/emails`],
      ]) {
        await page.goto(url);
        visited.push(url);
        await check(t, page, name);
      }

      // An API key: shown once.
      await page.goto(`${org}/keys`);
      await page.getByLabel('Name').fill('Backend');
      await page.getByRole('button', { name: 'Create key' }).click();
      const secret = await page.getByLabel('Secret key').inputValue();
      assert.match(secret, /^reauth_sk_/);
      await check(t, page, 'key-created');
      await page.reload();
      assert.ok(!(await page.content()).includes(secret), 'the secret is not shown again');

      // 10. Settings (allowed origins, lifetimes), credentials (write-only) and billing (plans,
      //     webhook URL, events).
      await page.goto(`${server.base}${projectPath}/settings`);
      await page.getByLabel('Allowed origins').fill('https://acme.example\nhttp://localhost:*');
      await page.getByRole('button', { name: 'Save settings' }).click();
      await page.getByText('Saved.').waitFor();
      assert.equal(await page.getByLabel('Allowed origins').inputValue(), 'https://acme.example\nhttp://localhost:*');
      visited.push(page.url());
      await check(t, page, 'settings');
      await page.goto(`${server.base}${projectPath}/credentials`);
      await page.getByLabel('Stripe secret key').fill('sk_test_e2e_4242');
      await page.getByRole('button', { name: 'Save credentials' }).click();
      await page.getByText('Saved.').waitFor();
      assert.ok((await page.locator('main').innerText()).includes('4242'), 'the last four');
      assert.ok(!(await page.content()).includes('sk_test_e2e_4242'), 'never the secret');
      visited.push(page.url());
      await check(t, page, 'credentials');
      await page.goto(`${server.base}${projectPath}/billing`);
      await page.getByLabel('Price id, row 1').fill('price_pro');
      await page.getByLabel('Plan, row 1').fill('pro');
      await page.getByLabel('Features, row 1').fill('export, api');
      await page.getByRole('button', { name: 'Save plans' }).click();
      await page.getByText('Saved.').waitFor();
      assert.equal(await page.getByLabel('Plan, row 1').inputValue(), 'pro');
      assert.ok((await page.getByLabel('Webhook URL').inputValue()).endsWith(`/webhooks/stripe/${projectPath.split('/').pop()}`));
      visited.push(page.url());
      await check(t, page, 'billing');

      // 11. A viewer: invited by the owner, signs in, reads, and the server refuses a change.
      const viewer = `viewer-${Date.now()}@example.com`;
      await page.goto(`${org}/members`);
      await page.getByLabel('Email address').fill(viewer);
      await page.getByLabel('Role', { exact: true }).selectOption('viewer');
      await page.getByRole('button', { name: 'Invite' }).click();
      await page.getByText('Invited').waitFor();
      const vctx = await newContext(DESKTOP);
      const vpage = await vctx.newPage();
      await vpage.goto(`${server.base}/dashboard/login`);
      await vpage.getByLabel('Email address').fill(viewer);
      await vpage.getByRole('button', { name: 'Email me a sign-in link' }).click();
      await vpage.getByRole('heading', { level: 1, name: 'Check your email' }).waitFor();
      await vpage.goto((await outboxEmailFor(viewer)).link);
      await vpage.getByRole('button', { name: 'Continue' }).click();
      await vpage.getByRole('heading', { level: 1, name: 'Projects' }).waitFor();
      assert.equal(await vpage.getByRole('button', { name: 'Create project' }).count(), 0, 'no create form for a viewer');
      await vpage.goto(`${server.base}${projectPath}/branding`);
      assert.equal(await vpage.getByRole('button', { name: 'Save branding' }).count(), 0, 'no save button for a viewer');
      await check(t, vpage, 'viewer-branding');
      const csrf = await vpage.locator('input[name=csrf]').first().inputValue();
      const refused = await vpage.request.post(`${server.base}${projectPath}/branding`, {
        form: { csrf, name: 'Viewer was here', accent_color: '#000000' },
        headers: { origin: server.base },
        maxRedirects: 0,
      });
      assert.equal(refused.status(), 403, 'the server refuses a viewer’s change');
      await vpage.goto(`${server.base}${projectPath}`);
      await vpage.getByRole('heading', { level: 1, name: 'Acme Rockets' }).waitFor();
      await vctx.close();
    });

    // 10. Every page at phone width: readable, nothing wider than the phone, no violations.
    const phone = await newContext(PHONE);
    await phone.addCookies(await ctx.cookies());
    const p = await phone.newPage();
    await withDiagnostics(t, p, 'dashboard-phone', async () => {
      for (const [i, url] of visited.entries()) {
        await p.goto(url);
        const parts = new URL(url).pathname.split('/').filter((s) => s && s !== 'dashboard');
        const name = parts.map((s) => s.replace(/^(org|prj|usr)_.*/, '$1')).join('-');
        await check(t, p, `phone-${String(i).padStart(2, '0')}-${name}`);
      }
    });
    await phone.close();
  } finally {
    await ctx.close();
  }
});
