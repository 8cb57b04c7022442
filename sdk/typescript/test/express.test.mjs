// Express middleware in a real Express app on a loopback port, against a real `reauth dev` server.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import express from "express";
import { ReauthError } from "@reauth/sdk";
import { reauth, requireUser } from "@reauth/sdk/express";
import { freePort, login, serverEnv, unknownToken } from "./support/server.mjs";

const EMAIL = "express-test@example.com";

function errorHandler(err, _req, res, _next) {
  res.status(err.status ?? 500).json({ error: { code: err.code ?? "internal", message: err.message } });
}

async function listen(app) {
  const server = await new Promise((resolve) => {
    const s = app.listen(0, "127.0.0.1", () => resolve(s));
  });
  return { server, base: `http://127.0.0.1:${server.address().port}`, close: () => new Promise((r) => server.close(r)) };
}

const env = serverEnv(async (server) => {
  const session = await login(server.url, EMAIL);
  const app = express();
  app.use(reauth({ url: server.url }));
  app.get("/me", (req, res) => res.json({ user: req.user }));
  app.get("/private", requireUser(), (req, res) => res.json({ email: req.user.email, id: req.user.id }));
  app.use(errorHandler);
  const http = await listen(app);
  return { session, app: http };
});

before(() => env.start());
after(async () => {
  const e = await env.get().catch(() => null);
  if (e) await e.app.close();
  await env.stop();
});

describe("reauth() middleware", () => {
  it("sets req.user from the session cookie", async () => {
    const { app, session } = await env.get();
    const res = await fetch(`${app.base}/me`, { headers: { cookie: session.cookie } });
    assert.equal(res.status, 200);
    const { user } = await res.json();
    assert.equal(user.email, EMAIL);
    assert.match(user.id, /^usr_/);
    assert.match(user.session.id, /^ses_/);
    assert.equal(typeof user.session.expiresAt, "string"); // Date serialized by res.json
  });

  it("sets req.user from a bearer token", async () => {
    const { app, session } = await env.get();
    const res = await fetch(`${app.base}/me`, { headers: { authorization: `Bearer ${session.token}` } });
    assert.equal((await res.json()).user.email, EMAIL);
  });

  it("sets req.user to null without a (valid) session", async () => {
    const { app } = await env.get();
    assert.deepEqual(await (await fetch(`${app.base}/me`)).json(), { user: null });
    const res = await fetch(`${app.base}/me`, { headers: { cookie: `reauth_session=${unknownToken()}` } });
    assert.deepEqual(await res.json(), { user: null });
  });

  it("passes auth-server failures to next(err) as ReauthError unavailable (503)", async () => {
    const deadPort = await freePort();
    const app = express();
    let seen;
    app.use(reauth({ url: `http://127.0.0.1:${deadPort}`, timeoutMs: 2000 }));
    app.get("/", (_req, res) => res.send("unreachable"));
    app.use((err, req, res, next) => {
      seen = err;
      errorHandler(err, req, res, next);
    });
    const http = await listen(app);
    try {
      const res = await fetch(`${http.base}/`, { headers: { cookie: `reauth_session=${unknownToken()}` } });
      assert.equal(res.status, 503);
      assert.equal((await res.json()).error.code, "unavailable");
      assert.ok(seen instanceof ReauthError);
    } finally {
      await http.close();
    }
  });
});

describe("requireUser() guard", () => {
  it("lets signed-in requests through", async () => {
    const { app, session } = await env.get();
    const res = await fetch(`${app.base}/private`, { headers: { cookie: session.cookie, accept: "text/html" } });
    assert.equal(res.status, 200);
    assert.equal((await res.json()).email, EMAIL);
  });

  it("redirects HTML requests (302) to the hosted login with redirect_to = the full request URL", async () => {
    const { app, url } = await env.get();
    const res = await fetch(`${app.base}/private?tab=billing&x=1`, {
      redirect: "manual",
      headers: { accept: "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8" },
    });
    await res.arrayBuffer();
    assert.equal(res.status, 302);
    assert.equal(
      res.headers.get("location"),
      `${url}/login?redirect_to=${encodeURIComponent(`${app.base}/private?tab=billing&x=1`)}`,
    );
  });

  it("answers 401 JSON for API requests", async () => {
    const { app } = await env.get();
    for (const headers of [{ accept: "application/json" }, {}, { cookie: `reauth_session=${unknownToken()}`, accept: "application/json" }]) {
      const res = await fetch(`${app.base}/private`, { redirect: "manual", headers });
      assert.equal(res.status, 401);
      assert.match(res.headers.get("content-type"), /application\/json/);
      const body = await res.json();
      assert.equal(body.error.code, "unauthenticated");
      assert.equal(typeof body.error.message, "string");
    }
  });

  it("fails loudly when reauth() is not mounted", async () => {
    const app = express();
    app.get("/", requireUser(), (_req, res) => res.send("no"));
    app.use(errorHandler);
    const http = await listen(app);
    try {
      const res = await fetch(`${http.base}/`);
      assert.equal(res.status, 500);
      assert.match((await res.json()).error.message, /reauth\(\) middleware/);
    } finally {
      await http.close();
    }
  });
});
