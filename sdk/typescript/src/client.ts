import { ReauthError, codeForStatus, isErrorCode } from "./errors.js";
import { UserCache, tokenKey } from "./internal/cache.js";
import { deadlines } from "./internal/deadlines.js";
import { type Answer, nodeTransport } from "./internal/node-http.js";
import { parseErrorBody, parseSession, parseUser } from "./internal/wire.js";
import { extractToken } from "./token.js";
import type { FetchLike, ReauthOptions, ReauthSession, ReauthUser, TokenInput } from "./types.js";

const noop = () => {};

/** Default per-request timeout. */
export const DEFAULT_TIMEOUT_MS = 5000;

export interface ReauthClient {
  /** The normalized auth origin (no trailing slash). */
  readonly url: string;
  /**
   * The signed-in user for `input`, or `null` when there is no token or the
   * server answers 401 (unknown, expired or logged-out session).
   * Throws {@link ReauthError} for anything else (`unavailable`, `timeout`, ...).
   */
  getUser(input: TokenInput): Promise<ReauthUser | null>;
  /** The session for `input`, or `null` (same rules as {@link getUser}). Never cached. */
  getSession(input: TokenInput): Promise<ReauthSession | null>;
  /** Like {@link getUser} but throws `ReauthError` with code `unauthenticated` (status 401) instead of returning `null`. */
  requireUser(input: TokenInput): Promise<ReauthUser>;
  /** Hosted login page URL that sends the user back to `returnTo` afterwards. */
  loginUrl(returnTo: string | URL): string;
  /** Revoke the session behind `input` (no-op without a token; idempotent) and drop it from the cache. */
  logout(input: TokenInput): Promise<void>;
  /** True when `user` has feature flag `name`. */
  hasFeature(user: ReauthUser | null | undefined, name: string): boolean;
}

/** True when `user` is signed in and its plan grants feature `name`. */
export function hasFeature(user: ReauthUser | null | undefined, name: string): boolean {
  return !!user && Array.isArray(user.features) && user.features.includes(name);
}

function normalizeUrl(url: string): string {
  if (typeof url !== "string" || url.trim() === "") {
    throw new TypeError(
      "reauth: `url` is required (the project's auth origin, e.g. https://auth.example.com): pass { url } or set REAUTH_URL",
    );
  }
  let parsed: URL;
  try {
    parsed = new URL(url.trim());
  } catch {
    throw new TypeError(`reauth: \`url\` is not a valid URL: ${url}`);
  }
  if (parsed.protocol !== "https:" && parsed.protocol !== "http:") {
    throw new TypeError(`reauth: \`url\` must be http(s), got ${parsed.protocol}`);
  }
  if (parsed.search || parsed.hash) {
    throw new TypeError("reauth: `url` must not have a query string or fragment");
  }
  return parsed.href.replace(/\/+$/, "");
}

/** Create a client for the reauth server at `options.url`. */
/** `REAUTH_URL` from the environment, where the runtime has one (Node.js; not the edge). */
function envUrl(): string | undefined {
  const proc = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process;
  return proc?.env?.REAUTH_URL;
}

export function createReauth(options: ReauthOptions = {}): ReauthClient {
  if (!options || typeof options !== "object") {
    throw new TypeError("reauth: createReauth({ url }) needs an options object");
  }
  const base = normalizeUrl(options.url ?? envUrl() ?? "");
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  if (!(typeof timeoutMs === "number" && timeoutMs > 0)) {
    throw new TypeError("reauth: `timeoutMs` must be a positive number");
  }
  const fetchImpl: FetchLike | undefined =
    options.fetch ?? (typeof globalThis.fetch === "function" ? globalThis.fetch.bind(globalThis) : undefined);
  if (!fetchImpl) {
    throw new TypeError("reauth: no global `fetch` (Node 18+ required) — pass `fetch` in the options");
  }
  const cache = options.cache ? new UserCache(options.cache) : null;
  const watch = deadlines(timeoutMs);

  // Node.js: node:http with a keep-alive agent (see internal/node-http.ts); elsewhere, or with a
  // `fetch` of the caller's, fetch.
  const node = options.fetch ? null : nodeTransport(base);

  /**
   * One call to the server. Returns the parsed JSON body for 2xx (undefined
   * for 204), `null` for 401, and throws ReauthError otherwise.
   */
  async function call(method: "GET" | "POST", path: string, token: string): Promise<unknown> {
    const { status, text } = node ? await viaNode(method, path, token) : await viaFetch(method, path, token);
    if (status === 401) return null;
    let body: unknown = undefined;
    if (text !== "") {
      try {
        body = JSON.parse(text);
      } catch {
        body = undefined;
      }
    }
    if (status >= 200 && status < 300) {
      if (status !== 204 && text !== "" && body === undefined) {
        throw new ReauthError("internal", `reauth: ${method} ${path} answered ${status} with a non-JSON body`, 502);
      }
      return body;
    }
    const parsed = parseErrorBody(body);
    if (parsed) {
      if (isErrorCode(parsed.code)) throw new ReauthError(parsed.code, parsed.message, status);
      throw new ReauthError("internal", parsed.message, status, { rawCode: parsed.code });
    }
    throw new ReauthError(codeForStatus(status), `reauth: ${method} ${path} answered HTTP ${status}`, status);
  }

  async function viaNode(method: "GET" | "POST", path: string, token: string): Promise<Answer> {
    const deadline = watch.start(false);
    try {
      return await node!(method, path, token, (cancel) => {
        deadline.fail = cancel;
      });
    } catch (err) {
      throw transportError(err, deadline.timedOut, method, path);
    } finally {
      watch.done(deadline);
      watch.release(deadline);
    }
  }

  async function viaFetch(method: "GET" | "POST", path: string, token: string): Promise<Answer> {
    const deadline = watch.start();
    // Whether the request is over when the caller is (not when a timed-out one runs on).
    let over = true;
    try {
      const init: RequestInit = {
        method,
        headers: { authorization: `Bearer ${token}`, accept: "application/json" },
        redirect: "manual",
      };
      if (deadline.controller) init.signal = deadline.controller.signal;
      const fetching = fetchImpl!(base + path, init);
      let res: Response;
      try {
        res = await watch.race(fetching, deadline);
      } catch (err) {
        if (deadline.timedOut && !deadline.controller) {
          // Timed out without a signal: discard the answer when it comes.
          over = false;
          fetching
            .then((late) => late.body?.cancel().catch(noop), noop)
            .finally(() => watch.release(deadline));
        }
        throw transportError(err, deadline.timedOut, method, path);
      }
      const reading = res.text();
      try {
        return { status: res.status, text: await watch.race(reading, deadline) };
      } catch (err) {
        if (deadline.timedOut && !deadline.controller) {
          over = false;
          reading.then(noop, noop).finally(() => watch.release(deadline));
        }
        throw transportError(err, deadline.timedOut, method, path);
      }
    } finally {
      watch.done(deadline);
      if (over) watch.release(deadline);
    }
  }

  function transportError(err: unknown, timedOut: boolean, method: string, path: string): ReauthError {
    if (timedOut) {
      return new ReauthError("timeout", `reauth: ${method} ${base}${path} timed out after ${timeoutMs} ms`, 504, {
        cause: err,
      });
    }
    const detail = err instanceof Error ? err.message : String(err);
    return new ReauthError("unavailable", `reauth: ${method} ${base}${path} failed: ${detail}`, 503, { cause: err });
  }

  async function fetchUser(token: string): Promise<ReauthUser | null> {
    const body = await call("GET", "/v1/user", token);
    if (body === null) return null;
    const user = parseUser(body);
    if (!user) throw new ReauthError("internal", "reauth: GET /v1/user answered with an unexpected body", 502);
    return user;
  }

  async function getUser(input: TokenInput): Promise<ReauthUser | null> {
    const token = extractToken(input);
    if (!token) return null;
    if (!cache) return fetchUser(token);
    const key = await tokenKey(token);
    const hit = cache.get(key);
    if (hit) return hit;
    const generation = cache.currentGeneration;
    const user = await fetchUser(token);
    if (user) cache.set(key, user, generation);
    return user;
  }

  async function getSession(input: TokenInput): Promise<ReauthSession | null> {
    const token = extractToken(input);
    if (!token) return null;
    const body = await call("GET", "/v1/session", token);
    if (body === null) return null;
    const session = parseSession(body);
    if (!session) throw new ReauthError("internal", "reauth: GET /v1/session answered with an unexpected body", 502);
    return session;
  }

  async function requireUser(input: TokenInput): Promise<ReauthUser> {
    const user = await getUser(input);
    if (!user) throw new ReauthError("unauthenticated", "Not signed in", 401);
    return user;
  }

  function loginUrl(returnTo: string | URL): string {
    return `${base}/login?redirect_to=${encodeURIComponent(String(returnTo))}`;
  }

  async function logout(input: TokenInput): Promise<void> {
    const token = extractToken(input);
    if (!token) return;
    const key = cache ? await tokenKey(token) : null;
    if (key) cache!.delete(key);
    try {
      await call("POST", "/v1/logout", token); // 401 (already gone) counts as done
    } finally {
      if (key) cache!.delete(key);
    }
  }

  return Object.freeze({ url: base, getUser, getSession, requireUser, loginUrl, logout, hasFeature });
}
