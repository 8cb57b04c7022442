// Browser end-to-end test: the magic-link sign-in journey on `reauth dev`, in headless Chromium.
//
//   login page -> "Email me a sign-in link" -> "Check your email" -> link from /dev/outbox
//   -> 303 to the redirect target with the HttpOnly session cookie -> account page
//   -> "Sign out" -> /login, and the old session is rejected by /v1/user.
//
// Needs Debian's Chromium at /usr/bin/chromium (scripts/ensure-chromium) and a built server:
// $REAUTH_BIN, else $CARGO_TARGET_DIR/debug/reauth, else <repo>/target/debug/reauth.
// Run with `npm test` from e2e/.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const E2E_DIR = path.dirname(fileURLToPath(import.meta.url));
const REPO = path.resolve(E2E_DIR, '..');
const SCREENSHOTS = path.join(E2E_DIR, 'screenshots');
const CHROMIUM = process.env.CHROMIUM_BIN || '/usr/bin/chromium';

const STARTUP_TIMEOUT_MS = 30_000;
const STEP_TIMEOUT_MS = 15_000;
const PHONE = { width: 390, height: 844 };

function serverBinary() {
  if (process.env.REAUTH_BIN) return path.resolve(REPO, process.env.REAUTH_BIN);
  if (process.env.CARGO_TARGET_DIR) {
    return path.resolve(REPO, process.env.CARGO_TARGET_DIR, 'debug', 'reauth');
  }
  return path.join(REPO, 'target', 'debug', 'reauth');
}

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ---- server ---------------------------------------------------------------------------------

let server; // { proc, port, base, dataDir, log(), exited }

async function startServer() {
  const bin = serverBinary();
  if (!existsSync(bin)) {
    throw new Error(
      `reauth binary not found at ${bin}. Build it first (cargo build -p reauth-http, or ` +
        `cargo build), or point REAUTH_BIN / CARGO_TARGET_DIR at it.`,
    );
  }
  const port = await freePort();
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'reauth-e2e-'));
  // Keep a developer's REAUTH_* settings (database, redis, config file...) away from the test
  // server; only logging knobs pass through.
  const env = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (k.startsWith('REAUTH_') && k !== 'REAUTH_LOG_LEVEL' && k !== 'REAUTH_LOG_FORMAT') continue;
    env[k] = v;
  }
  env.NO_COLOR = '1';
  const args = ['dev', '--listen', `127.0.0.1:${port}`, '--ops-listen', '127.0.0.1:0', '--data-dir', dataDir];
  const proc = spawn(bin, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const keep = (chunk) => {
    output += chunk.toString();
    if (output.length > 200_000) output = output.slice(-100_000);
  };
  proc.stdout.on('data', keep);
  proc.stderr.on('data', keep);
  let exited = null;
  const exitedP = new Promise((resolve) => {
    proc.once('exit', (code, signal) => {
      exited = { code, signal };
      resolve(exited);
    });
    proc.once('error', (err) => {
      exited = { error: err };
      resolve(exited);
    });
  });
  server = {
    proc,
    port,
    base: `http://localhost:${port}`,
    dataDir,
    log: () => output,
    exited: () => exited,
    exitedP,
    cmd: `${bin} ${args.join(' ')}`,
  };

  const deadline = Date.now() + STARTUP_TIMEOUT_MS;
  let last = 'no answer yet';
  while (Date.now() < deadline) {
    if (exited) {
      throw new Error(
        `reauth exited before becoming healthy (${JSON.stringify(exited)}): ${server.cmd}\n` +
          `--- server output ---\n${output}`,
      );
    }
    try {
      const res = await fetch(`http://127.0.0.1:${port}/healthz`, {
        signal: AbortSignal.timeout(2_000),
      });
      if (res.status === 200) return;
      last = `HTTP ${res.status}`;
    } catch (e) {
      last = e.cause?.code || e.message;
    }
    await sleep(100);
  }
  throw new Error(
    `reauth did not answer GET /healthz with 200 within ${STARTUP_TIMEOUT_MS} ms ` +
      `(last: ${last}): ${server.cmd}\n--- server output ---\n${output}`,
  );
}

async function stopServer() {
  if (!server) return;
  const { proc, exitedP, dataDir } = server;
  if (!server.exited()) {
    proc.kill('SIGTERM');
    const done = await Promise.race([exitedP, sleep(5_000).then(() => null)]);
    if (!done) {
      proc.kill('SIGKILL');
      await Promise.race([exitedP, sleep(2_000)]);
    }
  }
  await rm(dataDir, { recursive: true, force: true }).catch(() => {});
}

// Last resort if the runner dies between hooks: never leave the server running.
process.on('exit', () => {
  if (server && !server.exited()) server.proc.kill('SIGKILL');
});

// ---- browser --------------------------------------------------------------------------------

let browser;

async function launchBrowser() {
  if (!existsSync(CHROMIUM)) {
    throw new Error(
      `Chromium not found at ${CHROMIUM}. Install Debian's chromium with scripts/ensure-chromium ` +
        `(as root: apt-get install -y --no-install-recommends chromium).`,
    );
  }
  // No --user-data-dir here: playwright's launch() gives each browser a fresh temporary profile
  // (and refuses a user-data-dir argument).
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    timeout: STARTUP_TIMEOUT_MS,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

async function newPhoneContext() {
  const ctx = await browser.newContext({
    viewport: PHONE,
    deviceScaleFactor: 2,
    isMobile: true,
    hasTouch: true,
  });
  ctx.setDefaultTimeout(STEP_TIMEOUT_MS);
  ctx.setDefaultNavigationTimeout(STEP_TIMEOUT_MS);
  return ctx;
}

// On failure: save what the page showed and the server's output, then rethrow.
async function withDiagnostics(t, page, name, fn) {
  try {
    await fn();
  } catch (err) {
    try {
      mkdirSync(SCREENSHOTS, { recursive: true });
      const shot = path.join(SCREENSHOTS, `${name}-failure.png`);
      await page.screenshot({ path: shot, fullPage: true, timeout: 5_000 });
      t.diagnostic(`page at failure: ${page.url()} (screenshot ${shot})`);
    } catch {
      /* the page may be gone */
    }
    t.diagnostic('--- server output (tail) ---');
    for (const line of (server?.log().slice(-8_000) ?? '').split('\n')) t.diagnostic(line);
    throw err;
  }
}

// Screenshots (gitignored) for a person to look at; the assertions do not depend on them.
async function shot(page, name) {
  mkdirSync(SCREENSHOTS, { recursive: true });
  await page.screenshot({ path: path.join(SCREENSHOTS, name), fullPage: true });
}

async function fetchJson(url, init = {}) {
  const res = await fetch(url, { ...init, signal: AbortSignal.timeout(STEP_TIMEOUT_MS) });
  const text = await res.text();
  let body;
  try {
    body = JSON.parse(text);
  } catch {
    body = text;
  }
  return { status: res.status, body };
}

// The newest outbox email to `to` (the outbox lists newest first); polls briefly.
async function outboxEmailFor(to) {
  const deadline = Date.now() + STEP_TIMEOUT_MS;
  let last;
  while (Date.now() < deadline) {
    last = await fetchJson(`${server.base}/dev/outbox`);
    assert.equal(last.status, 200, `GET /dev/outbox: HTTP ${last.status} ${JSON.stringify(last.body)}`);
    assert.ok(Array.isArray(last.body?.emails), `GET /dev/outbox: no "emails" array: ${JSON.stringify(last.body)}`);
    const hit = last.body.emails.find((e) => e.to === to);
    if (hit) return hit;
    await sleep(100);
  }
  assert.fail(`no email to ${to} in /dev/outbox: ${JSON.stringify(last?.body).slice(0, 2_000)}`);
}

// ---- hooks ----------------------------------------------------------------------------------

before(async () => {
  await startServer();
  browser = await launchBrowser();
}, { timeout: 2 * STARTUP_TIMEOUT_MS });

after(async () => {
  await browser?.close().catch(() => {});
  await stopServer();
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
