// Next.js middleware invoked with real NextRequest objects, against a real `reauth dev` server.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { NextRequest } from "next/server.js";
import { USER_HEADER, currentUser, getUserFromHeaders, matchesPath, reauthMiddleware } from "@reauth/sdk/next";
import { freePort, login, serverEnv, unknownToken } from "./support/server.mjs";

const EMAIL = "next-test@example.com";
const APP = "http://localhost:3000";

const env = serverEnv(async (server) => ({
  session: await login(server.url, EMAIL, `${APP}/dashboard`),
  middleware: reauthMiddleware({ url: server.url, protectedPaths: ["/dashboard", /^\/api\/private(\/|$)/] }),
}));

before(() => env.start());
after(() => env.stop());

/** The request headers Next.js would hand to the route after `NextResponse.next({ request: { headers } })`. */
function forwardedHeaders(original, res) {
  assert.equal(res.headers.get("x-middleware-next"), "1", "expected NextResponse.next()");
  const list = res.headers.get("x-middleware-override-headers");
  if (list === null) return new Headers(original.headers);
  const out = new Headers();
  for (const name of list.split(",").filter(Boolean)) {
    const v = res.headers.get(`x-middleware-request-${name}`);
    if (v !== null) out.set(name, v);
  }
  return out;
}

describe("reauthMiddleware", () => {
  it("redirects (307) an unauthenticated request on a protected path to the hosted login", async () => {
    const { url, middleware } = await env.get();
    const req = new NextRequest(`${APP}/dashboard/settings?tab=billing&x=1`);
    const res = await middleware(req);
    assert.equal(res.status, 307);
    assert.equal(
      res.headers.get("location"),
      `${url}/login?redirect_to=${encodeURIComponent(`${APP}/dashboard/settings?tab=billing&x=1`)}`,
    );
    assert.equal(res.headers.get("x-middleware-next"), null);
  });

  it("redirects when the cookie holds an unknown token, and protects RegExp paths", async () => {
    const { url, middleware } = await env.get();
    const res = await middleware(
      new NextRequest(`${APP}/api/private/data`, { headers: { cookie: `reauth_session=${unknownToken()}` } }),
    );
    assert.equal(res.status, 307);
    assert.ok(res.headers.get("location").startsWith(`${url}/login?redirect_to=`));
  });

  it("passes a signed-in request on with the user in the x-reauth-user request header", async () => {
    const { middleware, session } = await env.get();
    const req = new NextRequest(`${APP}/dashboard`, { headers: { cookie: `theme=dark; ${session.cookie}` } });
    const res = await middleware(req);
    assert.equal(res.status, 200);
    const headers = forwardedHeaders(req, res);
    const raw = headers.get(USER_HEADER);
    assert.match(raw, /^[A-Za-z0-9_-]+$/, "base64url");
    const decoded = JSON.parse(Buffer.from(raw, "base64url").toString("utf8"));
    assert.equal(decoded.email, EMAIL);
    const user = getUserFromHeaders(headers);
    assert.equal(user.email, EMAIL);
    assert.match(user.id, /^usr_/);
    assert.ok(user.session.expiresAt instanceof Date);
    assert.equal(headers.get("cookie"), `theme=dark; ${session.cookie}`, "other request headers are kept");
    // route handler helper
    const handlerReq = new Request(`${APP}/dashboard`, { headers });
    assert.deepEqual(currentUser(handlerReq), user);
  });

  it("passes unprotected paths through, with or without a user", async () => {
    const { middleware, session } = await env.get();
    const anon = new NextRequest(`${APP}/`);
    const res1 = await middleware(anon);
    assert.equal(res1.status, 200);
    assert.equal(getUserFromHeaders(forwardedHeaders(anon, res1)), null);

    const notPrefix = new NextRequest(`${APP}/dashboards`);
    assert.equal((await middleware(notPrefix)).status, 200, "/dashboards is not under /dashboard");

    const signedIn = new NextRequest(`${APP}/pricing`, { headers: { cookie: session.cookie } });
    const res2 = await middleware(signedIn);
    assert.equal(res2.status, 200);
    assert.equal(getUserFromHeaders(forwardedHeaders(signedIn, res2)).email, EMAIL);
  });

  it("strips a spoofed x-reauth-user header sent by the client", async () => {
    const { middleware } = await env.get();
    const fake = Buffer.from(JSON.stringify({ id: "usr_evil", email: "evil@example.com", session: { id: "ses_x", expiresAt: "2099-01-01T00:00:00Z" } })).toString("base64url");
    const req = new NextRequest(`${APP}/pricing`, { headers: { [USER_HEADER]: fake } });
    const res = await middleware(req);
    const headers = forwardedHeaders(req, res);
    assert.equal(headers.get(USER_HEADER), null);
    assert.equal(getUserFromHeaders(headers), null);
    // ...and on a protected path the spoofed header doesn't let anyone in
    const res2 = await middleware(new NextRequest(`${APP}/dashboard`, { headers: { [USER_HEADER]: fake } }));
    assert.equal(res2.status, 307);
  });

  it("fails closed (503) on protected paths when the auth server is down, and lets public paths through", async () => {
    const dead = `http://127.0.0.1:${await freePort()}`;
    const mw = reauthMiddleware({ url: dead, protectedPaths: ["/dashboard"], timeoutMs: 2000 });
    const cookie = `reauth_session=${unknownToken()}`;
    const res = await mw(new NextRequest(`${APP}/dashboard`, { headers: { cookie } }));
    assert.equal(res.status, 503);
    assert.equal((await res.json()).error.code, "unavailable");
    const pub = new NextRequest(`${APP}/`, { headers: { cookie } });
    const res2 = await mw(pub);
    assert.equal(res2.status, 200);
    assert.equal(getUserFromHeaders(forwardedHeaders(pub, res2)), null);
  });
});

describe("helpers", () => {
  it("matchesPath", () => {
    const pats = ["/dashboard", "/admin/", /^\/api\/v\d+\/me$/];
    assert.equal(matchesPath("/dashboard", pats), true);
    assert.equal(matchesPath("/dashboard/a/b", pats), true);
    assert.equal(matchesPath("/dashboardx", pats), false);
    assert.equal(matchesPath("/admin", pats), true);
    assert.equal(matchesPath("/admin/users", pats), true);
    assert.equal(matchesPath("/api/v2/me", pats), true);
    assert.equal(matchesPath("/api/v2/me/x", pats), false);
    assert.equal(matchesPath("/", pats), false);
    assert.equal(matchesPath("/anything", ["/"]), true);
    assert.equal(matchesPath("/x", [/x/g]), true);
    assert.equal(matchesPath("/x", [/x/g]), true, "global regexps are reset between calls");
  });

  it("getUserFromHeaders ignores missing or malformed values", () => {
    assert.equal(getUserFromHeaders(new Headers()), null);
    assert.equal(getUserFromHeaders(new Headers({ [USER_HEADER]: "!!!" })), null);
    assert.equal(getUserFromHeaders({ [USER_HEADER]: Buffer.from("{}").toString("base64url") }), null);
    assert.equal(getUserFromHeaders({}), null);
  });

  it("round-trips non-ASCII user data", async () => {
    const { session, middleware } = await env.get();
    const req = new NextRequest(`${APP}/dashboard`, { headers: { cookie: session.cookie } });
    const user = getUserFromHeaders(forwardedHeaders(req, await middleware(req)));
    const mod = { ...user, name: "Zoë 😀 Ångström", features: ["pro", "ünïcode"] };
    const { encodeUserHeader } = await import("../dist/esm/internal/wire.js");
    assert.deepEqual(getUserFromHeaders(new Headers({ [USER_HEADER]: encodeUserHeader(mod) })), mod);
  });
});
