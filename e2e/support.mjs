// Shared by the browser tests: start and stop `reauth dev`, launch Debian's Chromium, fetch
// JSON, take screenshots. Not a test file itself (node --test runs *.test.mjs).
//
// The server binary: $REAUTH_BIN, else $CARGO_TARGET_DIR/debug/reauth, else
// <repo>/target/debug/reauth.

import { spawn } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const E2E_DIR = path.dirname(fileURLToPath(import.meta.url));
export const REPO = path.resolve(E2E_DIR, '..');
export const SCREENSHOTS = path.join(E2E_DIR, 'screenshots');
export const CHROMIUM = process.env.CHROMIUM_BIN || '/usr/bin/chromium';
export const STARTUP_TIMEOUT_MS = 30_000;
export const STEP_TIMEOUT_MS = 15_000;
export const PHONE = { width: 390, height: 844 };

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export function serverBinary() {
  if (process.env.REAUTH_BIN) return path.resolve(REPO, process.env.REAUTH_BIN);
  if (process.env.CARGO_TARGET_DIR) {
    return path.resolve(REPO, process.env.CARGO_TARGET_DIR, 'debug', 'reauth');
  }
  return path.join(REPO, 'target', 'debug', 'reauth');
}

export function freePort() {
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

/** The environment for a reauth process: a developer's REAUTH_* settings are kept away (only
 *  the logging knobs pass), then `extra` is added. */
export function reauthEnv(extra = {}) {
  const env = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (k.startsWith('REAUTH_') && k !== 'REAUTH_LOG_LEVEL' && k !== 'REAUTH_LOG_FORMAT') continue;
    env[k] = v;
  }
  env.NO_COLOR = '1';
  return { ...env, ...extra };
}

/** Start `reauth dev` on free ports with a fresh data directory; resolves once /healthz
 *  answers 200. `env` adds variables; `opsPort` picks the ops listener's port (default: any). */
export async function startServer({ env = {}, opsPort = 0 } = {}) {
  const bin = serverBinary();
  if (!existsSync(bin)) {
    throw new Error(
      `reauth binary not found at ${bin}. Build it first (cargo build -p reauth-http, or ` +
        `cargo build), or point REAUTH_BIN / CARGO_TARGET_DIR at it.`,
    );
  }
  const port = await freePort();
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'reauth-e2e-'));
  const args = ['dev', '--listen', `127.0.0.1:${port}`, '--ops-listen', `127.0.0.1:${opsPort}`, '--data-dir', dataDir];
  const proc = spawn(bin, args, { env: reauthEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const keep = (chunk) => {
    output += chunk.toString();
    if (output.length > 200_000) output = output.slice(-100_000);
  };
  proc.stdout.on('data', keep);
  proc.stderr.on('data', keep);
  let exited = null;
  const exitedP = new Promise((resolve) => {
    proc.once('exit', (code, signal) => resolve((exited = { code, signal })));
    proc.once('error', (err) => resolve((exited = { error: err })));
  });
  const server = {
    proc,
    port,
    base: `http://localhost:${port}`,
    ops: opsPort ? `http://127.0.0.1:${opsPort}` : null,
    dataDir,
    bin,
    log: () => output,
    exited: () => exited,
    exitedP,
    cmd: `${bin} ${args.join(' ')}`,
  };
  process.on('exit', () => {
    if (!server.exited()) proc.kill('SIGKILL');
  });
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
      const res = await fetch(`http://127.0.0.1:${port}/healthz`, { signal: AbortSignal.timeout(2_000) });
      if (res.status === 200) return server;
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

export async function stopServer(server) {
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

export async function launchBrowser() {
  if (!existsSync(CHROMIUM)) {
    throw new Error(
      `Chromium not found at ${CHROMIUM}. Install Debian's chromium with scripts/ensure-chromium ` +
        `(as root: apt-get install -y --no-install-recommends chromium).`,
    );
  }
  // No --user-data-dir: playwright's launch() gives each browser a fresh temporary profile.
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

/** A browser context with the tests' timeouts; `viewport` PHONE makes it a phone. */
export async function newContext(browser, viewport) {
  const phone = viewport === PHONE;
  const ctx = await browser.newContext(
    phone ? { viewport, deviceScaleFactor: 2, isMobile: true, hasTouch: true } : { viewport },
  );
  ctx.setDefaultTimeout(STEP_TIMEOUT_MS);
  ctx.setDefaultNavigationTimeout(STEP_TIMEOUT_MS);
  return ctx;
}

/** Screenshots (gitignored) for a person to look at; assertions never depend on them. */
export async function shot(page, name) {
  mkdirSync(SCREENSHOTS, { recursive: true });
  await page.screenshot({ path: path.join(SCREENSHOTS, name), fullPage: true });
}

/** On failure: save what the page showed and the server's output, then rethrow. */
export async function withDiagnostics(t, server, page, name, fn) {
  try {
    await fn();
  } catch (err) {
    try {
      mkdirSync(SCREENSHOTS, { recursive: true });
      const file = path.join(SCREENSHOTS, `${name}-failure.png`);
      await page.screenshot({ path: file, fullPage: true, timeout: 5_000 });
      t.diagnostic(`page at failure: ${page.url()} (screenshot ${file})`);
    } catch {
      /* the page may be gone */
    }
    t.diagnostic('--- server output (tail) ---');
    for (const line of (server?.log().slice(-8_000) ?? '').split('\n')) t.diagnostic(line);
    throw err;
  }
}

export async function fetchJson(url, init = {}) {
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

/** The newest dev-outbox email to `to` (the outbox lists newest first); polls briefly. */
export async function outboxEmailFor(server, to) {
  const deadline = Date.now() + STEP_TIMEOUT_MS;
  let last;
  while (Date.now() < deadline) {
    last = await fetchJson(`${server.base}/dev/outbox`);
    if (last.status !== 200 || !Array.isArray(last.body?.emails)) {
      throw new Error(`GET /dev/outbox: HTTP ${last.status} ${JSON.stringify(last.body)}`);
    }
    const hit = last.body.emails.find((e) => e.to === to);
    if (hit) return hit;
    await sleep(100);
  }
  throw new Error(`no email to ${to} in /dev/outbox: ${JSON.stringify(last?.body).slice(0, 2_000)}`);
}
