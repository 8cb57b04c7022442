// Browser end-to-end test: the magic-link sign-in journey on `reauth dev`, in headless Chromium.
//
//   login page -> "Email me a sign-in link" -> "Check your email" -> link from /dev/outbox
//   -> 303 to the redirect target with the HttpOnly session cookie -> account page
//   -> "Sign out" -> /login, and the old session is rejected by /v1/user.
//
// Needs Debian's Chromium and a built server (see support.mjs).
// Run with `npm test` from e2e/.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as support from './support.mjs';
import { PHONE, STARTUP_TIMEOUT_MS, fetchJson, launchBrowser, newContext, shot, startServer, stopServer } from './support.mjs';

let server;
let browser;

const newPhoneContext = () => newContext(browser, PHONE);
const withDiagnostics = (t, page, name, fn) => support.withDiagnostics(t, server, page, name, fn);
const outboxEmailFor = (to) => support.outboxEmailFor(server, to);

// ---- hooks ----------------------------------------------------------------------------------

before(async () => {
  server = await startServer();
  browser = await launchBrowser();
}, { timeout: 2 * STARTUP_TIMEOUT_MS });

after(async () => {
  await browser?.close().catch(() => {});
  await stopServer(server);
}, { timeout: 20_000 });

// ---- tests ----------------------------------------------------------------------------------

test('login page renders on a phone-size viewport', { timeout: 60_000 }, async (t) => {
  const ctx = await newPhoneContext();
  const page = await ctx.newPage();
  try {
    await withDiagnostics(t, page, 'login-page', async () => {
      const res = await page.goto(`${server.base}/login`);
      assert.equal(res.status(), 200, 'GET /login status');
      await page.getByRole('heading', { level: 1, name: /^Sign in to / }).waitFor();

      const email = page.getByLabel('Email address');
      assert.equal(await email.getAttribute('name'), 'email');
      assert.equal(await email.getAttribute('type'), 'email');
      assert.ok(await page.getByRole('button', { name: 'Email me a sign-in link' }).isVisible());

      await shot(page, 'login.png');

      // Nothing wider than the phone: no sideways scrolling, the card and controls fit.
      const layout = await page.evaluate(() => {
        const box = (sel) => {
          const r = document.querySelector(sel)?.getBoundingClientRect();
          return r && { left: r.left, right: r.right, width: r.width };
        };
        return {
          innerWidth: window.innerWidth,
          scrollWidth: document.documentElement.scrollWidth,
          main: box('main'),
          input: box('input[name=email]'),
          button: box('button[type=submit]'),
          inputFontPx: parseFloat(getComputedStyle(document.querySelector('input[name=email]')).fontSize),
        };
      });
      t.diagnostic(`layout: ${JSON.stringify(layout)}`);
      assert.equal(layout.innerWidth, PHONE.width);
      assert.ok(layout.scrollWidth <= layout.innerWidth, `page scrolls sideways: ${JSON.stringify(layout)}`);
      for (const k of ['main', 'input', 'button']) {
        assert.ok(layout[k].left >= 0 && layout[k].right <= layout.innerWidth, `${k} overflows: ${JSON.stringify(layout[k])}`);
      }
      // Below 16px, iOS Safari zooms into the field on focus.
      assert.ok(layout.inputFontPx >= 16, `email input font-size ${layout.inputFontPx}px < 16px`);
    });
  } finally {
    await ctx.close();
  }
});

test('magic-link sign-in and sign-out', { timeout: 90_000 }, async (t) => {
  const ctx = await newPhoneContext();
  const page = await ctx.newPage();
  const target = `${server.base}/`;
  const email = `e2e-${Date.now()}-${Math.random().toString(36).slice(2, 8)}@example.com`;
  try {
    await withDiagnostics(t, page, 'sign-in', async () => {
      // 1. The login page, with a redirect target on the allow-list.
      const loginUrl = `${server.base}/login?redirect_to=${encodeURIComponent(target)}`;
      const res = await page.goto(loginUrl);
      assert.equal(res.status(), 200, 'GET /login status');
      assert.equal(
        await page.locator('form input[name=redirect_to]').inputValue(),
        target,
        'the login form carries the redirect target',
      );

      // 2. Ask for a link.
      await page.getByLabel('Email address').fill(email);
      const [submitted] = await Promise.all([
        page.waitForResponse((r) => new URL(r.url()).pathname === '/login/email'),
        page.getByRole('button', { name: 'Email me a sign-in link' }).click(),
      ]);
      assert.equal(submitted.status(), 200, 'POST /login/email status');
      await page.getByRole('heading', { level: 1, name: 'Check your email' }).waitFor();
      assert.ok(
        (await page.locator('main').innerText()).includes(email),
        '"Check your email" names the address',
      );
      await shot(page, 'check-email.png');

      // 3. The link, from the dev outbox.
      const mail = await outboxEmailFor(email);
      assert.equal(typeof mail.link, 'string', `outbox email has a link: ${JSON.stringify(mail)}`);
      const link = new URL(mail.link);
      assert.equal(link.origin, server.base, `link is on the server's origin: ${mail.link}`);

      // 4. Follow it: a confirmation page that uses nothing (mail scanners prefetch links), so
      //    opening it twice is harmless; the button signs in: 303 to the target with the cookie.
      const opened = await page.goto(mail.link);
      assert.equal(opened.status(), 200, 'GET /verify shows the confirmation page');
      await page.goto(mail.link);
      const masked = `${email[0]}…@example.com`;
      const button = page.getByRole('button', { name: `Continue as ${masked}` });
      await button.waitFor();
      assert.ok((await page.locator('main').innerText()).includes(masked), 'the page names the (masked) account');
      await shot(page, 'verify.png');
      const [verifyRes] = await Promise.all([
        page.waitForResponse((r) => new URL(r.url()).pathname === '/verify' && r.request().method() === 'POST'),
        button.click(),
      ]);
      assert.equal(verifyRes.status(), 303, 'POST /verify status');
      assert.equal(new URL(verifyRes.headers().location, mail.link).href, target, 'Location of the 303');
      const setCookie = await verifyRes.headerValue('set-cookie');
      assert.match(setCookie ?? '', /(^|\n)reauth_session=[^;\s]+;/, `Set-Cookie of the 303: ${setCookie}`);
      assert.match(setCookie, /;\s*HttpOnly/i, `Set-Cookie of the 303: ${setCookie}`);
      await page.waitForURL(target);
      const landed = await page.reload();

      assert.equal(page.url(), target, 'final URL is the redirect target');
      assert.equal(landed.status(), 200, 'account page status');
      const cookies = await ctx.cookies(server.base);
      const session = cookies.find((c) => c.name === 'reauth_session');
      assert.ok(session, `no reauth_session cookie in the browser: ${JSON.stringify(cookies.map((c) => c.name))}`);
      assert.equal(session.httpOnly, true, 'reauth_session is HttpOnly');
      assert.equal(session.sameSite, 'Lax', 'reauth_session is SameSite=Lax');
      assert.equal(session.path, '/');

      await page.getByRole('heading', { level: 1, name: "You're signed in" }).waitFor();
      assert.ok((await page.locator('main').innerText()).includes(email), 'account page shows the email');
      await shot(page, 'account.png');
      assert.equal(
        await page.evaluate(() => document.cookie.includes('reauth_session')),
        false,
        'the session cookie is not readable from page scripts',
      );

      // The hosted pages' CSP (default-src 'none') forbids fetch() from page scripts, so the
      // SDK endpoint is called through the page's request context, which shares its cookies.
      const me = await page.request.get(`${server.base}/v1/user`);
      const meBody = await me.json().catch(() => null);
      assert.equal(me.status(), 200, `GET /v1/user while signed in: ${JSON.stringify(meBody)}`);
      assert.equal(meBody?.email, email, `GET /v1/user email: ${JSON.stringify(meBody)}`);

      // 5. Sign out: back to /login, and the old session no longer works.
      await Promise.all([
        page.waitForURL((u) => u.pathname === '/login'),
        page.getByRole('button', { name: 'Sign out' }).click(),
      ]);
      assert.equal(new URL(page.url()).pathname, '/login', 'after sign-out');
      await page.getByRole('heading', { level: 1, name: /^Sign in to / }).waitFor();
      const cookiesAfter = await ctx.cookies(server.base);
      assert.equal(
        cookiesAfter.find((c) => c.name === 'reauth_session'),
        undefined,
        'sign-out removes the session cookie',
      );

      const fromPage = await page.request.get(`${server.base}/v1/user`);
      assert.equal(fromPage.status(), 401, `GET /v1/user from the page after sign-out: ${await fromPage.text()}`);
      const withOldCookie = await fetchJson(`${server.base}/v1/user`, {
        headers: { cookie: `reauth_session=${session.value}` },
      });
      assert.equal(withOldCookie.status, 401, `GET /v1/user with the old cookie: ${JSON.stringify(withOldCookie)}`);
      const withOldBearer = await fetchJson(`${server.base}/v1/user`, {
        headers: { authorization: `Bearer ${session.value}` },
      });
      assert.equal(withOldBearer.status, 401, `GET /v1/user with the old token as Bearer: ${JSON.stringify(withOldBearer)}`);

      // 6. The link worked once.
      const again = await page.goto(mail.link);
      assert.equal(again.status(), 410, 'reusing the link');
      await page.getByRole('heading', { level: 1, name: 'Link already used' }).waitFor();
      await shot(page, 'link-used.png');
    });
  } finally {
    await ctx.close();
  }
});

// A long address with no break opportunity (no '-') must wrap inside the card, not make the
// page scroll sideways on a phone.
test(
  'a long email address wraps on a phone (check-email and account pages)',
  { timeout: 60_000 },
  async (t) => {
    const ctx = await newPhoneContext();
    const page = await ctx.newPage();
    const email = `averyveryveryverylongaddresswithoutanybreakpoints${Date.now()}@example.com`;
    const fits = () =>
      page.evaluate(() => ({
        innerWidth: window.innerWidth,
        scrollWidth: document.documentElement.scrollWidth,
      }));
    try {
      // No withDiagnostics: this failure is expected for now and the server log adds nothing.
      {
        await page.goto(`${server.base}/login`);
        await page.getByLabel('Email address').fill(email);
        await page.getByRole('button', { name: 'Email me a sign-in link' }).click();
        await page.getByRole('heading', { level: 1, name: 'Check your email' }).waitFor();
        const check = await fits();
        await shot(page, 'long-email-check-email.png');
        const mail = await outboxEmailFor(email);
        await page.goto(mail.link);
        await page.getByRole('button', { name: /^Continue as / }).click();
        await page.getByRole('heading', { level: 1, name: "You're signed in" }).waitFor();
        const account = await fits();
        await shot(page, 'long-email-account.png');
        t.diagnostic(`check-email ${JSON.stringify(check)}; account ${JSON.stringify(account)}`);
        for (const [name, l] of [['check-email', check], ['account', account]]) {
          assert.ok(
            l.innerWidth === PHONE.width && l.scrollWidth <= PHONE.width,
            `${name} page is wider than the ${PHONE.width}px phone: ${JSON.stringify(l)}`,
          );
        }
      }
    } finally {
      await ctx.close();
    }
  },
);
