/** A signed-in user as seen by your app (`GET /v1/user`). */
export interface ReauthUser {
  /** Stable user id, e.g. `usr_...`. */
  id: string;
  email: string;
  name: string | null;
  avatarUrl: string | null;
  /** Plan key, e.g. `"free"`. */
  plan: string;
  /** Subscription status from the payment provider (`"active"`, `"trialing"`, `"past_due"`, ...) or `null` without a subscription. */
  subscriptionStatus: string | null;
  currentPeriodEnd: Date | null;
  cancelAtPeriodEnd: boolean;
  /** Feature flags granted by the current plan. */
  features: string[];
  /** The session the token belongs to. */
  session: {
    id: string;
    expiresAt: Date;
  };
}

/** A session (`GET /v1/session`). */
export interface ReauthSession {
  /** Session id, e.g. `ses_...`. */
  id: string;
  userId: string;
  createdAt: Date;
  expiresAt: Date;
}

/** Minimal `fetch` signature the SDK needs. */
export type FetchLike = (input: string, init?: RequestInit) => Promise<Response>;

export interface ReauthCacheOptions {
  /**
   * How long a user view may be served from memory, in milliseconds. This is
   * the maximum staleness: a session revoked elsewhere (logout on another
   * server, admin revocation, plan change) may still be seen as valid, with its
   * old data, by this process for up to `ttlMs`. Never past the session's own
   * `expiresAt`. `logout()` through this client drops the entry at once.
   */
  ttlMs: number;
  /** Maximum number of cached users (oldest evicted first). Default 10 000. */
  maxEntries?: number;
}

export interface ReauthOptions {
  /**
   * The project's auth origin, e.g. `https://auth.example.com` (or `http://localhost:PORT` in
   * dev). Default: the `REAUTH_URL` environment variable, where the runtime has one.
   */
  url?: string;
  /** Per-request timeout in milliseconds (default 5000). On expiry calls throw `ReauthError` with code `timeout`. */
  timeoutMs?: number;
  /**
   * Custom `fetch` implementation; every call then goes through it. Default: `node:http` with a
   * keep-alive agent on Node.js 20.16+, else the global `fetch`.
   */
  fetch?: FetchLike;
  /** In-process cache of user views keyed by SHA-256 of the token. Off by default. */
  cache?: ReauthCacheOptions | false;
}

/** Headers as a Fetch `Headers`-like object or a Node-style record. */
export type HeadersLike =
  | { get(name: string): string | null }
  | Record<string, string | string[] | undefined>;

/**
 * Where the session token is taken from:
 * - a Fetch `Request` (incl. Next.js `NextRequest`),
 * - a Node `IncomingMessage` / Express `req` (anything with `headers`),
 * - a `Headers` object,
 * - a `Cookie` header string (contains `=`) or a raw token (no `=`), or an
 *   `Authorization` header value (`Bearer <token>`).
 *
 * `Authorization: Bearer <token>` wins over the `reauth_session` cookie.
 */
export type TokenInput =
  | string
  | { headers: HeadersLike }
  | { get(name: string): string | null }
  | null
  | undefined;
