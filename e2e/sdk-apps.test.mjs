// Browser end-to-end test: apps built on the packed TypeScript SDK, against `reauth dev`, in
// headless Chromium — the journey a developer following sdk/typescript/README.md gets:
//
//   e2e/next-app  (Next.js, app router)  built with `next build`, run with `next start`, twice:
//                 proxy.ts (Node.js runtime) and edge/middleware.ts in its place (edge runtime)
//   e2e/express-app (Express 5)          built with `tsc`, run with node
//
//   signed out: /dashboard -> the hosted login with the return URL -> magic link from the dev
//   outbox -> "Continue as ..." -> back on /dashboard showing the email and plan -> /api/me JSON
//   -> "Sign out" (the app's logout route) -> home, signed out -> /dashboard -> login again.
//
// Each app installs its registry dependencies with `npm ci` from its lockfile (skipped while
// node_modules matches it) and @reauth/sdk from `npm pack` of sdk/typescript (built beforehand:
// `npm run build` there). Needs Debian's Chromium (scripts/ensure-chromium) and the server binary:
// $REAUTH_BIN, else $CARGO_TARGET_DIR/debug/reauth, else <repo>/target/debug/reauth.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import {
  E2E_DIR,
  REPO,
  SCREENSHOTS,
  STARTUP_TIMEOUT_MS,
  STEP_TIMEOUT_MS,
  freePort,
  launchBrowser,
  outboxEmailFor,
  sleep,
  startServer,
  stopServer,
} from './support.mjs';

const SDK_DIR = path.join(REPO, 'sdk', 'typescript');
const NEXT_APP = path.join(E2E_DIR, 'next-app');
const NEXT_EDGE = path.join(NEXT_APP, '.edge-build'); // gitignored copy with middleware.ts
const EXPRESS_APP = path.join(E2E_DIR, 'express-app');

const SETUP_TIMEOUT_MS = 10 * 60_000; // npm ci of Next.js on a cold cache, then two builds

const run = promisify(execFile);

// ---- processes ------------------------------------------------------------------------------

const procs = new Set();

/** Spawn a long-running process (own process group), keeping the tail of its output. */
function launch(name, cmd, args, opts) {
  const proc = spawn(cmd, args, { ...opts, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const keep = (chunk) => {
    output += chunk.toString();
    if (output.length > 100_000) output = output.slice(-50_000);
  };
  proc.stdout.on('data', keep);
  proc.stderr.on('data', keep);
  let exited = null;
  const exitedP = new Promise((resolve) => {
    proc.once('exit', (code, signal) => resolve((exited = { code, signal })));
    proc.once('error', (error) => resolve((exited = { error: error.message })));
  });
  const p = { name, proc, log: () => output, exited: () => exited, exitedP, cmd: `${cmd} ${args.join(' ')}` };
  procs.add(p);
  return p;
}

async function stop(p) {
  if (!p) return;
  procs.delete(p);
  if (p.exited()) return;
  const group = (sig) => {
    try {
      process.kill(-p.proc.pid, sig); // the group: `next start` may have children
    } catch {
      /* gone */
    }
  };
  group('SIGTERM');
  if (!(await Promise.race([p.exitedP, sleep(5_000).then(() => null)]))) {
    group('SIGKILL');
    await Promise.race([p.exitedP, sleep(2_000)]);
  }
}

// Last resort if the runner dies between hooks: never leave a server running.
process.on('exit', () => {
  for (const p of procs) {
    try {
      if (!p.exited()) process.kill(-p.proc.pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
});

/** Poll `url` until it answers `want` (any status < 500 when omitted). */
async function waitForHttp(p, url, want) {
  const deadline = Date.now() + STARTUP_TIMEOUT_MS;
  let last = 'no answer yet';
  while (Date.now() < deadline) {
    if (p.exited()) {
      throw new Error(`${p.name} exited (${JSON.stringify(p.exited())}): ${p.cmd}\n--- output ---\n${p.log()}`);
    }
    try {
      const res = await fetch(url, { redirect: 'manual', signal: AbortSignal.timeout(2_000) });
      await res.arrayBuffer();
      if (want ? res.status === want : res.status < 500) return;
      last = `HTTP ${res.status}`;
    } catch (e) {
      last = e.cause?.code || e.message;
    }
    await sleep(100);
  }
  throw new Error(`${p.name} did not answer ${url} within ${STARTUP_TIMEOUT_MS} ms (last: ${last}): ${p.cmd}\n--- output ---\n${p.log()}`);
}

/** Run a command to completion; on failure the error carries its output. */
async function sh(cmd, args, cwd, env = {}) {
  try {
    return await run(cmd, args, {
      cwd,
      env: { ...process.env, NEXT_TELEMETRY_DISABLED: '1', ...env },
      maxBuffer: 64 * 1024 * 1024,
    });
  } catch (e) {
    throw new Error(`${cmd} ${args.join(' ')} (in ${cwd}) failed: ${e.message}\n${e.stdout ?? ''}\n${e.stderr ?? ''}`);
  }
}

// ---- reauth dev -----------------------------------------------------------------------------

// The dev project's canonical host is localhost: its cookie is host-bound to `localhost`, which
// the apps (on other localhost ports) therefore receive too.
let reauth; // support.mjs's server: { base: http://localhost:PORT, log(), ... }

// ---- apps -----------------------------------------------------------------------------------

/** `npm pack` of the SDK as built by `npm run build` in sdk/typescript. */
async function packSdk(dest) {
  if (!existsSync(path.join(SDK_DIR, 'dist', 'esm', 'next.js'))) {
    throw new Error(`sdk/typescript/dist is missing: run \`npm ci && npm run build\` in ${SDK_DIR} first.`);
  }
  const { stdout } = await sh('npm', ['pack', '--json', '--pack-destination', dest], SDK_DIR);
  return path.join(dest, JSON.parse(stdout)[0].filename);
}

/** Registry dependencies from the app's lockfile (again only when it changed), then the SDK tarball. */
async function install(dir, tarball) {
  const lock = path.join(dir, 'package-lock.json');
  const installed = path.join(dir, 'node_modules', '.package-lock.json');
  if (!existsSync(installed) || statSync(installed).mtimeMs < statSync(lock).mtimeMs) {
    await sh('npm', ['ci', '--no-audit', '--no-fund'], dir);
  }
  await sh('npm', ['install', '--no-save', '--no-audit', '--no-fund', tarball], dir);
  const pkg = JSON.parse(readFileSync(path.join(dir, 'node_modules', '@reauth', 'sdk', 'package.json'), 'utf8'));
  assert.equal(pkg.name, '@reauth/sdk');
}

const NEXT_BIN = path.join(NEXT_APP, 'node_modules', 'next', 'dist', 'bin', 'next');

async function buildNext() {
  const env = { REAUTH_URL: reauth.base };
  await sh(process.execPath, [NEXT_BIN, 'build'], NEXT_APP, env);
  // The edge variant: the same app with edge/middleware.ts in place of proxy.ts (Next.js refuses
  // both). A copy inside next-app resolves next-app/node_modules like the original.
  rmSync(NEXT_EDGE, { recursive: true, force: true });
  const skip = new Set(['node_modules', '.next', '.edge-build', 'edge', 'proxy.ts', 'package-lock.json', 'next-env.d.ts']);
  mkdirSync(NEXT_EDGE);
  for (const entry of readdirSync(NEXT_APP)) {
    if (!skip.has(entry)) cpSync(path.join(NEXT_APP, entry), path.join(NEXT_EDGE, entry), { recursive: true });
  }
  cpSync(path.join(NEXT_APP, 'edge', 'middleware.ts'), path.join(NEXT_EDGE, 'middleware.ts'));
  await sh(process.execPath, [NEXT_BIN, 'build'], NEXT_EDGE, env);
}

async function startApp(name, dir, cmd, args, extraEnv = {}) {
  const port = await freePort();
  const env = { ...process.env, NEXT_TELEMETRY_DISABLED: '1', REAUTH_URL: reauth.base, PORT: String(port), ...extraEnv };
  const p = launch(name, cmd, args(port), { cwd: dir, env });
  const app = Object.assign(p, { base: `http://localhost:${port}` });
  await waitForHttp(p, `${app.base}/`);
  return app;
}

// ---- browser --------------------------------------------------------------------------------

let browser;

async function withDiagnostics(t, page, name, apps, consoleLines, fn) {
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
    for (const line of consoleLines) t.diagnostic(`browser console ${line}`);
    for (const p of [{ name: 'reauth dev', log: () => reauth?.log() ?? '' }, ...apps]) {
      t.diagnostic(`--- ${p.name} output (tail) ---`);
      for (const line of (p?.log().slice(-6_000) ?? '').split('\n')) t.diagnostic(line);
    }
    throw err;
  }
}

/**
 * The developer's journey on an app at `app.base` whose /dashboard is protected, /api/me answers
 * the user as JSON and POST /logout signs out and goes home.
 */
async function journey(t, app, name) {
  const ctx = await browser.newContext();
  ctx.setDefaultTimeout(STEP_TIMEOUT_MS);
  ctx.setDefaultNavigationTimeout(STEP_TIMEOUT_MS);
  const page = await ctx.newPage();
  const consoleLines = [];
  page.on('console', (m) => consoleLines.push(`${m.type()}: ${m.text()}`));
  const email = `${name}-${Date.now()}-${Math.random().toString(36).slice(2, 8)}@example.com`;
  const dashboard = `${app.base}/dashboard`;
  const loginUrl = `${reauth.base}/login?redirect_to=${encodeURIComponent(dashboard)}`;
  try {
    await withDiagnostics(t, page, `sdk-${name}`, [app], consoleLines, async () => {
      // 1. Signed out: the protected page sends the browser to the hosted login, return URL kept.
      await page.goto(dashboard);
      await page.waitForURL(loginUrl);
      assert.equal(await page.locator('form input[name=redirect_to]').inputValue(), dashboard, 'the login form keeps the return URL');

      // 2. The magic link, through the dev outbox and the confirmation step.
      await page.getByLabel('Email address').fill(email);
      await page.getByRole('button', { name: 'Email me a sign-in link' }).click();
      await page.getByRole('heading', { level: 1, name: 'Check your email' }).waitFor();
      const mail = await outboxEmailFor(reauth, email);
      await page.goto(mail.link);
      await Promise.all([page.waitForURL(dashboard), page.getByRole('button', { name: /^Continue as / }).click()]);

      // 3. Back on the protected page, which shows the user from the SDK.
      await page.getByRole('heading', { level: 1, name: 'Dashboard' }).waitFor();
      assert.equal(await page.locator('#email').innerText(), email, 'the dashboard shows the email');
      assert.equal(await page.locator('#plan').innerText(), 'free', 'the dashboard shows the plan');
      const token = (await ctx.cookies(app.base)).find((c) => c.name === 'reauth_session')?.value;
      assert.ok(token, 'the browser sends the reauth_session cookie to the app');

      // 4. A route handler answering JSON, fetched by the page (same origin, with the cookie).
      const me = await page.evaluate(async () => {
        const res = await fetch('/api/me', { headers: { accept: 'application/json' } });
        return { status: res.status, body: await res.json() };
      });
      assert.equal(me.status, 200, `GET /api/me: ${JSON.stringify(me)}`);
      assert.equal(me.body.email, email);
      assert.equal(me.body.plan, 'free');
      assert.match(me.body.id, /^usr_/);

      // A client-sent x-reauth-user header is no way in.
      const forged = Buffer.from(JSON.stringify({ id: 'usr_x', email: 'evil@example.com', session: { id: 'ses_x', expiresAt: '2099-01-01T00:00:00Z' } })).toString('base64url');
      const spoofed = await fetch(`${app.base}/api/me`, {
        headers: { accept: 'application/json', 'x-reauth-user': forged },
        signal: AbortSignal.timeout(STEP_TIMEOUT_MS),
      });
      assert.equal(spoofed.status, 401, `GET /api/me with a forged x-reauth-user and no session: ${await spoofed.text()}`);

      // 5. Sign out through the app's logout route: revoked on the server, cookie gone, home.
      await Promise.all([page.waitForURL(`${app.base}/`), page.getByRole('button', { name: 'Sign out' }).click()]);
      assert.match(await page.locator('body').innerText(), /Not signed in/);
      const left = (await ctx.cookies(app.base)).find((c) => c.name === 'reauth_session');
      assert.equal(left, undefined, 'the logout route cleared the cookie');
      const old = await fetch(`${reauth.base}/v1/user`, {
        headers: { authorization: `Bearer ${token}` },
        signal: AbortSignal.timeout(STEP_TIMEOUT_MS),
      });
      assert.equal(old.status, 401, 'the session is revoked on the server');

      // 6. The protected page sends the browser to the login page again.
      await page.goto(dashboard);
      await page.waitForURL(loginUrl);
      await page.getByRole('button', { name: 'Email me a sign-in link' }).waitFor();
    });
  } finally {
    await ctx.close();
  }
}

// ---- tests ----------------------------------------------------------------------------------

let tmp;
let tarball;

before(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'reauth-e2e-sdk-'));
  reauth = await startServer();
  [tarball, browser] = await Promise.all([packSdk(tmp), launchBrowser()]);
}, { timeout: 2 * STARTUP_TIMEOUT_MS });

after(async () => {
  await browser?.close().catch(() => {});
  for (const p of [...procs]) await stop(p);
  await stopServer(reauth);
  if (tmp) await rm(tmp, { recursive: true, force: true }).catch(() => {});
}, { timeout: 30_000 });

describe('Next.js app (e2e/next-app) on the packed SDK', () => {
  before(async () => {
    await install(NEXT_APP, tarball);
    await buildNext();
  }, { timeout: SETUP_TIMEOUT_MS });

  for (const variant of [
    { name: 'next-proxy', dir: NEXT_APP, file: 'proxy.ts', runtime: 'nodejs' },
    { name: 'next-middleware', dir: NEXT_EDGE, file: 'middleware.ts', runtime: 'edge' },
  ]) {
    test(`${variant.file} (${variant.runtime} runtime): signed out -> login -> magic link -> page, JSON, logout -> login`, { timeout: 120_000 }, async (t) => {
      // Which runtime the build put the file in.
      const server = path.join(variant.dir, '.next', 'server');
      const edge = JSON.parse(readFileSync(path.join(server, 'middleware-manifest.json'), 'utf8'));
      const fns = JSON.parse(readFileSync(path.join(server, 'functions-config-manifest.json'), 'utf8'));
      if (variant.runtime === 'edge') {
        assert.ok(edge.middleware['/'], `edge middleware in the build: ${JSON.stringify(edge)}`);
      } else {
        assert.deepEqual(edge.middleware, {}, 'no edge middleware');
        assert.equal(fns.functions['/_middleware']?.runtime, 'nodejs', `proxy runtime: ${JSON.stringify(fns)}`);
      }
      const app = await startApp(variant.name, variant.dir, process.execPath, (port) => [NEXT_BIN, 'start', '--port', String(port), '--hostname', 'localhost']);
      try {
        await journey(t, app, variant.name);
      } finally {
        await stop(app);
      }
    });
  }
});

describe('Express app (e2e/express-app) on the packed SDK', () => {
  before(async () => {
    await install(EXPRESS_APP, tarball);
    await sh('npm', ['run', 'build'], EXPRESS_APP);
  }, { timeout: SETUP_TIMEOUT_MS });

  test('server.ts: signed out -> login -> magic link -> page, JSON, logout -> login', { timeout: 120_000 }, async (t) => {
    const app = await startApp('express', EXPRESS_APP, process.execPath, () => ['dist/server.js']);
    try {
      await journey(t, app, 'express');
    } finally {
      await stop(app);
    }
  });
});
