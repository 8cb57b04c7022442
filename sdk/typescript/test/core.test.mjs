// Core client against a real `reauth dev` server.
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { after, before, describe, it } from "node:test";
import { ReauthError, createReauth, hasFeature } from "@reauth/sdk";
import { login, serverEnv, unknownToken } from "./support/server.mjs";

const EMAIL = "core-test@example.com";
const env = serverEnv(async (server) => ({ session: await login(server.url, EMAIL) }));

before(() => env.start());
after(() => env.stop());

function assertUser(user, email = EMAIL) {
  assert.ok(user, "expected a user, got null");
  assert.equal(user.email, email);
  assert.match(user.id, /^usr_/);
  assert.equal(user.plan, "free");
  assert.equal(user.name, null);
  assert.equal(user.avatarUrl, null);
  assert.equal(user.subscriptionStatus, null);
  assert.equal(user.currentPeriodEnd, null);
  assert.equal(user.cancelAtPeriodEnd, false);
  assert.deepEqual(user.features, []);
  assert.match(user.session.id, /^ses_/);
  assert.ok(user.session.expiresAt instanceof Date);
  assert.ok(user.session.expiresAt.getTime() > Date.now(), "session expires in the future");
}

describe("login flow (dev outbox)", () => {
  it("issues a base64url session token as an HttpOnly cookie", async () => {
    const { session } = await env.get();
    assert.match(session.token, /^[A-Za-z0-9_-]{43}$/);
    assert.match(session.setCookie, /HttpOnly/i);
    assert.match(session.setCookie, /SameSite=Lax/i);
    assert.match(session.setCookie, /Path=\//i);
  });
});

describe("getUser", () => {
  it("resolves the user from a Fetch Request with the session cookie", async () => {
    const { url, session } = await env.get();
    const reauth = createReauth({ url });
    const req = new Request("http://localhost:3000/dashboard", { headers: { cookie: `theme=dark; ${session.cookie}` } });
    assertUser(await reauth.getUser(req));
  });

  it("resolves the user from a cookie header string", async () => {
    const { url, session } = await env.get();
    const reauth = createReauth({ url });
    assertUser(await reauth.getUser(`a=1; ${session.cookie}; b=2`));
  });

  it("resolves the user from a raw bearer token", async () => {
    const { url, session } = await env.get();
    const reauth = createReauth({ url });
    assertUser(await reauth.getUser(session.token));
    assertUser(await reauth.getUser(`Bearer ${session.token}`));
  });

  it("resolves the user from an Authorization: Bearer request header, which wins over the cookie", async () => {
    const { url, session } = await env.get();
    const reauth = createReauth({ url });
    const req = new Request("http://localhost:3000/api", {
      headers: { authorization: `Bearer ${session.token}`, cookie: `reauth_session=${unknownToken()}` },
    });
    assertUser(await reauth.getUser(req));
    const wrongBearer = new Request("http://localhost:3000/api", {
      headers: { authorization: `Bearer ${unknownToken()}`, cookie: session.cookie },
    });
    assert.equal(await reauth.getUser(wrongBearer), null);
  });

  it("resolves the user from a Headers object and a Node IncomingMessage", async () => {
    const { url, session } = await env.get();
    const reauth = createReauth({ url });
    assertUser(await reauth.getUser(new Headers({ cookie: session.cookie })));

    const results = [];
    const http = createServer(async (req, res) => {
      try {
        results.push(await reauth.getUser(req));
        res.end("ok");
      } catch (err) {
        results.push(err);
        res.statusCode = 500;
        res.end();
      }
    });
    await new Promise((r) => http.listen(0, "127.0.0.1", r));
    try {
      const base = `http://127.0.0.1:${http.address().port}`;
      await (await fetch(`${base}/`, { headers: { cookie: session.cookie } })).text();
      await (await fetch(`${base}/`, { headers: { authorization: `Bearer ${session.token}` } })).text();
      await (await fetch(`${base}/`)).text();
    } finally {
      http.close();
    }
    assertUser(results[0]);
    assertUser(results[1]);
    assert.equal(results[2], null);
  });

  it("returns null for an unknown token, a missing token and a malformed token", async () => {
    const { url } = await env.get();
    const reauth = createReauth({ url });
    assert.equal(await reauth.getUser(unknownToken()), null);
    assert.equal(await reauth.getUser(`reauth_session=${unknownToken()}`), null);
    assert.equal(await reauth.getUser(new Request("http://localhost:3000/")), null);
    assert.equal(await reauth.getUser("theme=dark"), null);
    assert.equal(await reauth.getUser(""), null);
    assert.equal(await reauth.getUser(null), null);
    assert.equal(await reauth.getUser("not a token\r\nx: y"), null);
  });
});

describe("getSession", () => {
  it("returns the session behind the token", async () => {
    const { url, session } = await env.get();
    const reauth = createReauth({ url });
    const user = await reauth.getUser(session.token);
    const s = await reauth.getSession(new Request("http://localhost:3000/", { headers: { cookie: session.cookie } }));
    assert.ok(s);
    assert.equal(s.id, user.session.id);
    assert.equal(s.userId, user.id);
    assert.ok(s.createdAt instanceof Date && s.expiresAt instanceof Date);
    assert.ok(s.createdAt.getTime() <= Date.now() + 60_000);
    assert.equal(s.expiresAt.getTime(), user.session.expiresAt.getTime());
    assert.equal(await reauth.getSession(unknownToken()), null);
  });
});

describe("requireUser", () => {
  it("returns the user when signed in", async () => {
    const { url, session } = await env.get();
    assertUser(await createReauth({ url }).requireUser(session.cookie));
  });

  it("throws ReauthError with code unauthenticated otherwise", async () => {
    const { url } = await env.get();
    const reauth = createReauth({ url });
    for (const input of [unknownToken(), new Request("http://localhost:3000/"), undefined]) {
      await assert.rejects(reauth.requireUser(input), (err) => {
        assert.ok(err instanceof ReauthError);
        assert.ok(err instanceof Error);
        assert.equal(err.name, "ReauthError");
        assert.equal(err.code, "unauthenticated");
        assert.equal(err.status, 401);
        return true;
      });
    }
  });
});

describe("loginUrl / hasFeature", () => {
  it("builds the hosted login URL", async () => {
    const { url } = await env.get();
    const reauth = createReauth({ url: `${url}/` });
    assert.equal(reauth.url, url);
    assert.equal(
      reauth.loginUrl("http://localhost:3000/dashboard?tab=a&b=1"),
      `${url}/login?redirect_to=${encodeURIComponent("http://localhost:3000/dashboard?tab=a&b=1")}`,
    );
  });

  it("the login URL serves the hosted login page", async () => {
    const { url } = await env.get();
    // On 127.0.0.1 the page first moves to the project's canonical origin (localhost), where
    // its cookies will live; the redirect target survives the move.
    const res = await fetch(createReauth({ url }).loginUrl(`${url}/`));
    const page = await res.text();
    assert.equal(res.status, 200);
    assert.equal(new URL(res.url).hostname, "localhost");
    assert.ok(page.includes(`name="redirect_to" value="http:&#x2f;&#x2f;${new URL(url).host}&#x2f;"`), "the login form keeps redirect_to");
  });

  it("checks features", async () => {
    const { url, session } = await env.get();
    const user = await createReauth({ url }).getUser(session.token);
    assert.equal(hasFeature(user, "anything"), false);
    assert.equal(hasFeature(null, "x"), false);
    assert.equal(hasFeature({ ...user, features: ["pro"] }, "pro"), true);
  });
});

describe("cache", () => {
  function countingFetch() {
    const calls = [];
    const f = (input, init) => {
      calls.push(String(input));
      return fetch(input, init);
    };
    return { f, calls };
  }

  it("is off by default", async () => {
    const { url, session } = await env.get();
    const { f, calls } = countingFetch();
    const reauth = createReauth({ url, fetch: f });
    await reauth.getUser(session.token);
    await reauth.getUser(session.token);
    assert.equal(calls.length, 2);
  });

  it("serves repeated getUser calls from memory for ttlMs, then asks again", async () => {
    const { url, session } = await env.get();
    const { f, calls } = countingFetch();
    const reauth = createReauth({ url, fetch: f, cache: { ttlMs: 300 } });
    const a = await reauth.getUser(session.token);
    const b = await reauth.getUser(session.cookie);
    assertUser(a);
    assert.deepEqual(b, a);
    assert.equal(calls.length, 1);
    b.features.push("mutated"); // callers get copies
    assert.deepEqual((await reauth.getUser(session.token)).features, []);
    assert.equal(calls.length, 1);
    await new Promise((r) => setTimeout(r, 350));
    assertUser(await reauth.getUser(session.token));
    assert.equal(calls.length, 2);
    // unknown tokens are not cached
    await reauth.getUser(unknownToken());
    assert.equal(calls.length, 3);
  });

  it("logout drops the cached entry", async () => {
    const { url } = await env.get();
    const s = await login(url, "cache-logout@example.com");
    const reauth = createReauth({ url, cache: { ttlMs: 60_000 } });
    assertUser(await reauth.getUser(s.token), "cache-logout@example.com");
    await reauth.logout(s.cookie);
    assert.equal(await reauth.getUser(s.token), null);
  });
});

describe("logout", () => {
  it("revokes the session: the token then resolves to null", async () => {
    const { url, session } = await env.get();
    const s = await login(url, "logout-test@example.com");
    const reauth = createReauth({ url });
    assertUser(await reauth.getUser(s.token), "logout-test@example.com");
    await reauth.logout(new Request("http://localhost:3000/logout", { method: "POST", headers: { cookie: s.cookie } }));
    assert.equal(await reauth.getUser(s.token), null);
    assert.equal(await reauth.getUser(s.cookie), null);
    assert.equal(await reauth.getSession(s.token), null);
    // idempotent, and a no-op without a token
    await reauth.logout(s.token);
    await reauth.logout(undefined);
    // other sessions are untouched
    assertUser(await reauth.getUser(session.token));
  });
});

/** Every documented key is present (the server may add fields; the SDK ignores unknown ones). */
function assertHasKeys(obj, keys, t, what) {
  for (const k of keys) assert.ok(Object.hasOwn(obj, k), `${what}: missing documented field ${k}`);
  const extra = Object.keys(obj).filter((k) => !keys.includes(k));
  if (extra.length) t.diagnostic(`${what}: additional fields not in the SDK contract: ${extra.join(", ")}`);
}

describe("server contract (raw HTTP, as the SDK relies on it)", () => {
  it("the magic link redirects (303) to redirect_to", async () => {
    const { url } = await env.get();
    const s = await login(url, "contract-redirect@example.com", "http://localhost:3000/after?x=1");
    assert.equal(s.location, "http://localhost:3000/after?x=1");
    // Links are on the project's canonical origin (the demo's first dev host, localhost),
    // whatever host the request came in on.
    const canonical = url.replace("127.0.0.1", "localhost");
    assert.match(s.mail.link, new RegExp(`^${canonical.replace(/\./g, "\\.")}/verify\\?token=`));
  });

  it("GET /v1/user answers the documented fields, by cookie and by bearer", async (t) => {
    const { url, session } = await env.get();
    for (const headers of [{ cookie: session.cookie }, { authorization: `Bearer ${session.token}` }]) {
      const res = await fetch(`${url}/v1/user`, { headers });
      assert.equal(res.status, 200);
      assert.match(res.headers.get("content-type"), /application\/json/);
      const body = await res.json();
      assertHasKeys(
        body,
        [
          "user_id",
          "email",
          "name",
          "avatar_url",
          "plan",
          "subscription_status",
          "current_period_end",
          "cancel_at_period_end",
          "features",
          "session",
        ],
        t,
        "GET /v1/user",
      );
      assertHasKeys(body.session, ["id", "expires_at"], t, "GET /v1/user .session");
      assert.equal(body.email, EMAIL);
      assert.ok(!Number.isNaN(Date.parse(body.session.expires_at)));
    }
  });

  it("GET /v1/session answers the documented fields", async (t) => {
    const { url, session } = await env.get();
    const res = await fetch(`${url}/v1/session`, { headers: { authorization: `Bearer ${session.token}` } });
    assert.equal(res.status, 200);
    assertHasKeys(await res.json(), ["id", "user_id", "created_at", "expires_at"], t, "GET /v1/session");
  });

  it("401s carry {error:{code:'unauthenticated',message}}", async () => {
    const { url } = await env.get();
    for (const path of ["/v1/user", "/v1/session"]) {
      const res = await fetch(`${url}${path}`, { headers: { authorization: `Bearer ${unknownToken()}` } });
      assert.equal(res.status, 401);
      const body = await res.json();
      assert.equal(body.error.code, "unauthenticated");
      assert.equal(typeof body.error.message, "string");
    }
  });

  it("POST /v1/logout answers 204 and the token then gets 401", async () => {
    const { url } = await env.get();
    const s = await login(url, "contract-logout@example.com");
    const res = await fetch(`${url}/v1/logout`, { method: "POST", headers: { authorization: `Bearer ${s.token}` } });
    await res.arrayBuffer();
    assert.equal(res.status, 204);
    const after = await fetch(`${url}/v1/user`, { headers: { cookie: s.cookie } });
    await after.arrayBuffer();
    assert.equal(after.status, 401);
  });
});
