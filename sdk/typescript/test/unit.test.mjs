// Parts that need no reauth server: token extraction, transport errors
// (closed port, hung loopback server), error-body mapping, option checks.
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { describe, it } from "node:test";
import {
  ERROR_CODES,
  ReauthError,
  createReauth,
  extractToken,
  isReauthError,
} from "@reauth/sdk";
import { freePort } from "./support/server.mjs";

const TOKEN = "q1w2e3r4t5y6u7i8o9p0-_ASDFGHJKLZXCVBNMqwert"; // 43 chars base64url

describe("extractToken", () => {
  it("treats a string without '=' as a raw token and with '=' as a cookie header", () => {
    assert.equal(TOKEN.length, 43);
    assert.equal(extractToken(TOKEN), TOKEN);
    assert.equal(extractToken(`  ${TOKEN} `), TOKEN);
    assert.equal(extractToken(`reauth_session=${TOKEN}`), TOKEN);
    assert.equal(extractToken(`a=b; reauth_session=${TOKEN}; c=d`), TOKEN);
    assert.equal(extractToken(`a=b;reauth_session="${TOKEN}"`), TOKEN);
    assert.equal(extractToken(`other_reauth_session=${TOKEN}`), null);
    assert.equal(extractToken("a=b"), null);
    assert.equal(extractToken(`Bearer ${TOKEN}`), TOKEN);
    assert.equal(extractToken(`bearer   ${TOKEN}`), TOKEN);
    assert.equal(extractToken(""), null);
    assert.equal(extractToken("has space"), null);
    assert.equal(extractToken("x".repeat(5000)), null);
  });

  it("prefers Authorization: Bearer over the cookie", () => {
    const other = "Z".repeat(43);
    const req = new Request("http://x/", { headers: { authorization: `Bearer ${TOKEN}`, cookie: `reauth_session=${other}` } });
    assert.equal(extractToken(req), TOKEN);
    assert.equal(extractToken({ headers: { authorization: `Bearer ${TOKEN}`, cookie: `reauth_session=${other}` } }), TOKEN);
    // non-Bearer schemes fall back to the cookie
    assert.equal(extractToken({ headers: { authorization: "Basic dXNlcjpwYXNz", cookie: `reauth_session=${other}` } }), other);
  });

  it("reads Fetch Requests, Headers, and Node-style header records", () => {
    assert.equal(extractToken(new Request("http://x/", { headers: { cookie: `reauth_session=${TOKEN}` } })), TOKEN);
    assert.equal(extractToken(new Headers({ Authorization: `Bearer ${TOKEN}` })), TOKEN);
    assert.equal(extractToken({ headers: { cookie: `reauth_session=${TOKEN}` } }), TOKEN);
    assert.equal(extractToken({ headers: { Cookie: `reauth_session=${TOKEN}` } }), TOKEN);
    assert.equal(extractToken({ headers: { cookie: ["a=1", `reauth_session=${TOKEN}`] } }), TOKEN);
    assert.equal(extractToken({ headers: {} }), null);
    assert.equal(extractToken(new Request("http://x/")), null);
    assert.equal(extractToken(undefined), null);
    assert.equal(extractToken(42), null);
  });
});

describe("createReauth options", () => {
  it("validates url, timeoutMs and cache", () => {
    const saved = process.env.REAUTH_URL;
    delete process.env.REAUTH_URL;
    assert.throws(() => createReauth({}), /REAUTH_URL/);
    assert.throws(() => createReauth(), TypeError);
    // Without `url`, REAUTH_URL from the environment.
    process.env.REAUTH_URL = "https://auth.env.example/";
    try {
      assert.equal(createReauth().url, "https://auth.env.example");
      assert.equal(createReauth({ url: "https://explicit.example" }).url, "https://explicit.example");
    } finally {
      if (saved === undefined) delete process.env.REAUTH_URL;
      else process.env.REAUTH_URL = saved;
    }
    assert.throws(() => createReauth({ url: "not a url" }), TypeError);
    assert.throws(() => createReauth({ url: "ftp://x" }), TypeError);
    assert.throws(() => createReauth({ url: "http://x", timeoutMs: 0 }), TypeError);
    assert.throws(() => createReauth({ url: "http://x", cache: { ttlMs: -1 } }), TypeError);
    assert.equal(createReauth({ url: "https://auth.example.com///" }).url, "https://auth.example.com");
    assert.equal(
      createReauth({ url: "https://auth.example.com" }).loginUrl("https://app.example.com/a?b=c&d=é"),
      "https://auth.example.com/login?redirect_to=https%3A%2F%2Fapp.example.com%2Fa%3Fb%3Dc%26d%3D%C3%A9",
    );
  });

  it("makes no request without a token", async () => {
    let calls = 0;
    const reauth = createReauth({ url: "http://127.0.0.1:9", fetch: async () => (calls++, new Response(null, { status: 500 })) });
    assert.equal(await reauth.getUser(new Request("http://x/")), null);
    assert.equal(await reauth.getSession("a=b"), null);
    await reauth.logout(undefined);
    assert.equal(calls, 0);
  });

  it("sends the token as a Bearer header to /v1/user through the injected fetch", async () => {
    const seen = [];
    const reauth = createReauth({
      url: "http://127.0.0.1:9",
      fetch: async (url, init) => {
        seen.push({ url, init });
        return new Response(JSON.stringify({ error: { code: "unauthenticated", message: "no" } }), { status: 401 });
      },
    });
    assert.equal(await reauth.getUser(`reauth_session=${TOKEN}`), null);
    assert.equal(seen[0].url, "http://127.0.0.1:9/v1/user");
    assert.equal(seen[0].init.method, "GET");
    assert.equal(seen[0].init.headers.authorization, `Bearer ${TOKEN}`);
  });
});

/** A loopback HTTP server answering with `handler`. */
// The global fetch, passed in: the client then uses fetch on Node.js too (not node:http).
const viaFetch = (url, init) => fetch(url, init);

async function withServer(handler, fn) {
  const server = createServer(handler);
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  try {
    return await fn(`http://127.0.0.1:${server.address().port}`, server);
  } finally {
    server.closeAllConnections?.();
    await new Promise((r) => server.close(r));
  }
}

describe("transport errors", () => {
  for (const [via, fetchOpt] of [["node:http", undefined], ["fetch", viaFetch]]) {
  it(`maps a refused connection to unavailable (503) (${via})`, async () => {
    const reauth = createReauth({ url: `http://127.0.0.1:${await freePort()}`, fetch: fetchOpt });
    await assert.rejects(reauth.getUser(TOKEN), (err) => {
      assert.ok(err instanceof ReauthError);
      assert.equal(err.code, "unavailable");
      assert.equal(err.status, 503);
      assert.ok(err.cause);
      return true;
    });
  });

  it(`maps no answer within timeoutMs to timeout (504) (${via})`, async () => {
    await withServer(
      () => {
        /* never answer */
      },
      async (url) => {
        const reauth = createReauth({ url, timeoutMs: 150, fetch: fetchOpt });
        const t0 = Date.now();
        await assert.rejects(reauth.getUser(TOKEN), (err) => {
          assert.equal(err.code, "timeout");
          assert.equal(err.status, 504);
          return true;
        });
        assert.ok(Date.now() - t0 < 2000);
      },
    );
  });

  }

  it("times out every call in flight, and one answered in time stays answered (fetch)", async () => {
    let n = 0;
    await withServer(
      (_req, res) => {
        // The first request is answered at once; the rest never are.
        if (n++ === 0) {
          res.writeHead(401, { "content-type": "application/json" });
          res.end(JSON.stringify({ error: { code: "unauthenticated", message: "no" } }));
        }
      },
      async (url) => {
        const reauth = createReauth({ url, timeoutMs: 120, fetch: viaFetch });
        assert.equal(await reauth.getUser(TOKEN), null);
        const t0 = Date.now();
        const results = await Promise.allSettled(Array.from({ length: 5 }, () => reauth.getUser(TOKEN)));
        const took = Date.now() - t0;
        for (const r of results) assert.equal(r.status === "rejected" && r.reason.code, "timeout");
        assert.ok(took >= 110 && took < 1500, `timed out after ${took} ms`);
      },
    );
  });

  it("after a timeout, calls carry a signal that closes their connection at the deadline (fetch)", async () => {
    const sockets = new Set();
    await withServer(
      (req) => {
        sockets.add(req.socket); // never answer
      },
      async (url) => {
        const reauth = createReauth({ url, timeoutMs: 100, fetch: viaFetch });
        // Fast path (no signal): the caller gets its timeout; the request may run on.
        await assert.rejects(reauth.getUser(TOKEN), (err) => err.code === "timeout");
        const open = () => [...sockets].filter((s) => !s.destroyed).length;
        const before = open();
        // Now guarded: the next call is aborted at its deadline, which closes its connection.
        await assert.rejects(reauth.getUser(TOKEN), (err) => err.code === "timeout");
        const deadline = Date.now() + 2000;
        while (sockets.size < 2 || open() > before) {
          if (Date.now() > deadline) assert.fail(`the guarded call's connection is still open (${open()} open)`);
          await new Promise((r) => setTimeout(r, 10));
        }
      },
    );
  });

  it("on Node.js keeps one connection alive across calls (node:http)", async () => {
    let connections = 0;
    await withServer(
      (_req, res) => {
        res.writeHead(401, { "content-type": "application/json" });
        res.end(JSON.stringify({ error: { code: "unauthenticated", message: "no" } }));
      },
      async (url, server) => {
        server.on("connection", () => connections++);
        const reauth = createReauth({ url });
        for (let i = 0; i < 5; i++) assert.equal(await reauth.getUser(TOKEN), null);
        assert.equal(connections, 1);
      },
    );
  });

  it("on Node.js closes a call's connection at its deadline (node:http)", async () => {
    const sockets = [];
    await withServer(
      (req) => {
        sockets.push(req.socket); // never answer
      },
      async (url) => {
        const reauth = createReauth({ url, timeoutMs: 100 });
        for (let i = 0; i < 2; i++) {
          await assert.rejects(reauth.getUser(TOKEN), (err) => err.code === "timeout" && err.status === 504);
        }
        const deadline = Date.now() + 2000;
        while (sockets.length < 2 || sockets.some((s) => !s.destroyed)) {
          if (Date.now() > deadline) assert.fail(`connections still open: ${sockets.filter((s) => !s.destroyed).length}`);
          await new Promise((r) => setTimeout(r, 10));
        }
      },
    );
  });

  for (const [via, fetchOpt] of [["node:http", undefined], ["fetch", viaFetch]]) {
  it(`times out a body that never finishes (${via})`, async () => {
    await withServer(
      (_req, res) => {
        res.writeHead(200, { "content-type": "application/json" });
        res.write('{"user_id":');
      },
      async (url) => {
        const reauth = createReauth({ url, timeoutMs: 150, fetch: fetchOpt });
        await assert.rejects(reauth.getUser(TOKEN), (err) => err.code === "timeout");
      },
    );
  });
  }
});

describe("error answers", () => {
  const answer = (status, body, type = "application/json") => (_req, res) => {
    res.writeHead(status, { "content-type": type });
    res.end(body);
  };

  it("uses the server's stable error code and status", async () => {
    await withServer(answer(429, JSON.stringify({ error: { code: "rate_limited", message: "slow down" } })), async (url) => {
      await assert.rejects(createReauth({ url }).getUser(TOKEN), (err) => {
        assert.ok(isReauthError(err));
        assert.equal(err.code, "rate_limited");
        assert.equal(err.status, 429);
        assert.equal(err.message, "slow down");
        return true;
      });
    });
  });

  it("keeps an unknown server code as rawCode with code internal", async () => {
    await withServer(answer(418, JSON.stringify({ error: { code: "brand_new", message: "?" } })), async (url) => {
      await assert.rejects(createReauth({ url }).getUser(TOKEN), (err) => {
        assert.equal(err.code, "internal");
        assert.equal(err.rawCode, "brand_new");
        assert.equal(err.status, 418);
        return true;
      });
    });
  });

  it("maps non-JSON error pages by status", async () => {
    await withServer(answer(502, "<html>bad gateway</html>", "text/html"), async (url) => {
      await assert.rejects(createReauth({ url }).getUser(TOKEN), (err) => err.code === "unavailable" && err.status === 502);
    });
  });

  it("rejects a 200 with an unexpected body", async () => {
    await withServer(answer(200, JSON.stringify({ hello: "world" })), async (url) => {
      await assert.rejects(createReauth({ url }).getUser(TOKEN), (err) => err.code === "internal");
    });
  });

  it("every thrown code is in the registry", () => {
    for (const c of ["unauthenticated", "unavailable", "timeout", "internal"]) assert.ok(ERROR_CODES.includes(c));
  });
});

describe("cache keys", () => {
  it("are the SHA-256 of the token in hex, as WebCrypto computes it", async () => {
    const { tokenKey } = await import("../dist/esm/internal/cache.js");
    const token = "Zm9vYmFyYmF6cXV4cXV1eHF1dXpxdXV6cXV1enF1dXo";
    const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(token)));
    const hex = Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
    assert.equal(await tokenKey(token), hex);
  });
});
