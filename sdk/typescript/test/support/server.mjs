// Starts a real `reauth dev` server for the tests and the benchmark, and logs
// in through the magic-link flow via the dev outbox. No part of reauth is mocked.
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const SDK_DIR = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");

/** Where the `reauth` binary is looked for, in order. */
export function binaryCandidates() {
  const list = [];
  if (process.env.REAUTH_BIN) list.push({ path: resolve(process.env.REAUTH_BIN), from: "$REAUTH_BIN" });
  if (process.env.CARGO_TARGET_DIR) {
    list.push({ path: resolve(process.env.CARGO_TARGET_DIR, "debug", "reauth"), from: "$CARGO_TARGET_DIR/debug" });
  }
  list.push({ path: resolve(SDK_DIR, "..", "..", "target", "debug", "reauth"), from: "../../target/debug" });
  return list;
}

/** Path of the reauth binary, or throws an Error that says where it looked. */
export function findBinary() {
  const candidates = binaryCandidates();
  if (process.env.REAUTH_BIN) {
    const c = candidates[0];
    if (!isFile(c.path)) {
      throw new Error(`reauth server binary not found: REAUTH_BIN=${process.env.REAUTH_BIN} does not exist.`);
    }
    return c.path;
  }
  for (const c of candidates) if (isFile(c.path)) return c.path;
  throw new Error(
    "reauth server binary not found. These SDK tests run against the real server; build it first " +
      "(`cargo build` at the repo root) or set REAUTH_BIN. Looked in:\n" +
      candidates.map((c) => `  - ${c.path} (${c.from})`).join("\n"),
  );
}

function isFile(p) {
  try {
    return existsSync(p) && statSync(p).isFile();
  } catch {
    return false;
  }
}

/** A free loopback TCP port (listen on 0, read it, close). */
export function freePort() {
  return new Promise((resolvePort, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolvePort(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Start `reauth dev --listen 127.0.0.1:PORT --data-dir <fresh tmp dir>` and
 * wait for GET /healthz → 200. Returns { url, port, stop(), output() }.
 */
export async function startServer({ startupTimeoutMs = 60_000 } = {}) {
  const bin = findBinary();
  const dataDir = mkdtempSync(join(tmpdir(), "reauth-sdk-test-"));
  let lastError;
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const child = spawn(bin, ["dev", "--listen", `127.0.0.1:${port}`, "--ops-listen", "127.0.0.1:0", "--data-dir", dataDir], {
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, RUST_LOG: process.env.RUST_LOG ?? "warn" },
    });
    let out = "";
    const keep = (chunk) => {
      out += chunk.toString();
      if (out.length > 20_000) out = out.slice(-20_000);
    };
    child.stdout.on("data", keep);
    child.stderr.on("data", keep);
    let exited = null;
    const exitPromise = new Promise((r) =>
      child.on("exit", (code, signal) => {
        exited = { code, signal };
        r(exited);
      }),
    );
    child.on("error", (err) => {
      exited = { code: null, signal: null, error: err };
    });

    const stop = async () => {
      if (exited === null) {
        child.kill("SIGTERM");
        const t = setTimeout(() => exited === null && child.kill("SIGKILL"), 5000);
        await exitPromise;
        clearTimeout(t);
      }
      rmSync(dataDir, { recursive: true, force: true });
    };

    const deadline = Date.now() + startupTimeoutMs;
    let healthy = false;
    while (Date.now() < deadline && exited === null) {
      try {
        const res = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(1000) });
        await res.arrayBuffer();
        if (res.status === 200) {
          healthy = true;
          break;
        }
      } catch {
        /* not up yet */
      }
      await sleep(100);
    }
    if (healthy) return { url, port, bin, dataDir, stop, output: () => out };
    const why = exited
      ? `exited early (${exited.error ? exited.error.message : `code ${exited.code}, signal ${exited.signal}`})`
      : `did not answer GET /healthz with 200 within ${startupTimeoutMs} ms`;
    lastError = new Error(`reauth dev server (${bin}) ${why}. Output:\n${out}`);
    if (exited === null) {
      child.kill("SIGKILL");
      await exitPromise;
      break; // hung, not a port race: don't retry
    }
    if (!/address|in use|bind/i.test(out)) break; // only retry port races
  }
  rmSync(dataDir, { recursive: true, force: true });
  throw lastError;
}

/** Cookie value `name` from a response's Set-Cookie headers. */
function cookieFrom(res, name) {
  const all = typeof res.headers.getSetCookie === "function" ? res.headers.getSetCookie() : [res.headers.get("set-cookie") ?? ""];
  for (const c of all) {
    const first = c.split(";")[0];
    const eq = first.indexOf("=");
    if (eq > 0 && first.slice(0, eq).trim() === name) return { value: first.slice(eq + 1).trim(), raw: c };
  }
  return null;
}

/**
 * Log in through the hosted magic-link flow:
 * POST /login/email → GET /dev/outbox → GET <link> (the confirmation page) →
 * POST /verify (303 + Set-Cookie).
 * Returns { token, cookie: "reauth_session=<token>", setCookie, location }.
 */
export async function login(url, email, redirectTo = `${url}/`) {
  const form = new URLSearchParams({ email, redirect_to: redirectTo });
  const res = await fetch(`${url}/login/email`, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: form.toString(),
    redirect: "manual",
  });
  const page = await res.text();
  if (res.status !== 200) {
    throw new Error(`POST /login/email answered ${res.status} (expected 200): ${page.slice(0, 500)}`);
  }
  const outboxRes = await fetch(`${url}/dev/outbox`);
  const outboxText = await outboxRes.text();
  if (outboxRes.status !== 200) {
    throw new Error(`GET /dev/outbox answered ${outboxRes.status} (expected 200): ${outboxText.slice(0, 500)}`);
  }
  let outbox;
  try {
    outbox = JSON.parse(outboxText);
  } catch {
    throw new Error(`GET /dev/outbox is not JSON: ${outboxText.slice(0, 500)}`);
  }
  if (!outbox || !Array.isArray(outbox.emails)) {
    throw new Error(`GET /dev/outbox: expected {"emails":[...]}, got ${outboxText.slice(0, 500)}`);
  }
  const mail = outbox.emails.find((m) => m && m.to === email); // newest first
  if (!mail || typeof mail.link !== "string") {
    throw new Error(`GET /dev/outbox: no email with a link to ${email}: ${outboxText.slice(0, 1000)}`);
  }
  // GET shows the confirmation page and uses nothing; its button POSTs the link with a
  // same-site cookie and a form token bound to it.
  const confirm = await fetch(mail.link, { redirect: "manual" });
  const confirmBody = await confirm.text();
  if (confirm.status !== 200) {
    throw new Error(`GET ${mail.link} answered ${confirm.status} (expected 200): ${confirmBody.slice(0, 500)}`);
  }
  const nonce = cookieFrom(confirm, "reauth_verify");
  const csrf = /name="csrf" value="([^"]+)"/.exec(confirmBody)?.[1];
  if (!nonce || !csrf) {
    throw new Error(`GET ${mail.link}: no confirmation form (cookie ${JSON.stringify(nonce)}): ${confirmBody.slice(0, 500)}`);
  }
  const linkUrl = new URL(mail.link);
  const verify = await fetch(`${linkUrl.origin}/verify`, {
    method: "POST",
    headers: {
      "content-type": "application/x-www-form-urlencoded",
      cookie: `reauth_verify=${nonce.value}`,
    },
    body: new URLSearchParams({ token: linkUrl.searchParams.get("token") ?? "", csrf }).toString(),
    redirect: "manual",
  });
  const verifyBody = await verify.text();
  if (verify.status !== 303) {
    throw new Error(`POST /verify answered ${verify.status} (expected 303): ${verifyBody.slice(0, 500)}`);
  }
  const cookie = cookieFrom(verify, "reauth_session");
  if (!cookie || !cookie.value) {
    throw new Error(
      `GET ${mail.link}: no reauth_session cookie in Set-Cookie: ${JSON.stringify(verify.headers.get("set-cookie"))}`,
    );
  }
  return {
    token: cookie.value,
    cookie: `reauth_session=${cookie.value}`,
    setCookie: cookie.raw,
    location: verify.headers.get("location"),
    mail,
  };
}

/**
 * For `before()`: starts the server (and runs `setup(server)`) without
 * throwing. Tests call `await env.get()`, which throws the startup error, so
 * a missing binary fails every test with a clear message instead of skipping.
 */
export function serverEnv(setup = async () => ({})) {
  let promise = null;
  let server = null;
  return {
    start() {
      promise = (async () => {
        server = await startServer();
        const extra = await setup(server);
        return { ...server, ...extra };
      })();
      promise.catch(() => {});
      return promise.then(
        () => undefined,
        () => undefined,
      );
    },
    async get() {
      if (!promise) throw new Error("serverEnv.start() was not called");
      return promise;
    },
    async stop() {
      if (server) await server.stop();
    },
  };
}

/** A random token-shaped string (base64url, 43 chars) that the server never issued. */
export function unknownToken() {
  const bytes = new Uint8Array(32);
  crypto.getRandomValues(bytes);
  return Buffer.from(bytes).toString("base64url");
}
