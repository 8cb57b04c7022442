// Next.js integration. Edge-compatible: no Node builtins, only Web APIs.
import { NextResponse, type NextRequest } from "next/server.js";
import { createReauth, type ReauthClient } from "./client.js";
import { ReauthError, isReauthError } from "./errors.js";
import { decodeUserHeader, encodeUserHeader } from "./internal/wire.js";
import type { HeadersLike, ReauthOptions, ReauthUser } from "./types.js";

/** Request header the middleware uses to hand the user to route handlers and server components. */
export const USER_HEADER = "x-reauth-user";

export type PathPattern = string | RegExp;

export interface ReauthMiddlewareOptions extends ReauthOptions {
  /**
   * Paths that need a signed-in user, matched against `req.nextUrl.pathname`
   * (without `basePath`). A string matches that path and everything below it
   * (`"/dashboard"` matches `/dashboard` and `/dashboard/x`, not `/dashboards`);
   * a RegExp is tested against the pathname.
   */
  protectedPaths: PathPattern[];
  /**
   * URL the user returns to after logging in. Default: the full request URL
   * (`req.nextUrl.href`).
   */
  returnTo?: (req: NextRequest) => string;
  /**
   * Called when the auth server could not be asked (`unavailable`, `timeout`,
   * ...). Return a response to send it, or `undefined` for the default:
   * on a protected path answer 503 (fail closed), elsewhere continue without a
   * user.
   */
  onError?: (error: ReauthError, req: NextRequest) => Response | undefined | Promise<Response | undefined>;
  /** Use this client instead of creating one from the options. */
  client?: ReauthClient;
}

/** True when `pathname` matches one of `patterns` (see {@link ReauthMiddlewareOptions.protectedPaths}). */
export function matchesPath(pathname: string, patterns: readonly PathPattern[]): boolean {
  for (const p of patterns) {
    if (typeof p === "string") {
      const prefix = p.length > 1 ? p.replace(/\/+$/, "") : p;
      if (prefix === "/" || pathname === prefix || pathname.startsWith(prefix + "/")) return true;
    } else {
      p.lastIndex = 0;
      if (p.test(pathname)) return true;
    }
  }
  return false;
}

/**
 * Next.js middleware (`middleware.ts`, or `proxy.ts` in Next 16+): resolves
 * the user from the `reauth_session` cookie (or `Authorization: Bearer`).
 *
 * - Unauthenticated on a protected path → 307 to the hosted login with
 *   `redirect_to` = the full request URL.
 * - Otherwise → `NextResponse.next()`, passing the user on in the
 *   `x-reauth-user` request header (base64url JSON). Any `x-reauth-user`
 *   header sent by the client is always removed, so it can't be spoofed on
 *   paths the middleware runs on.
 */
export function reauthMiddleware(
  options: ReauthMiddlewareOptions,
): (req: NextRequest) => Promise<NextResponse | Response> {
  const client = options.client ?? createReauth(options);
  if (!Array.isArray(options.protectedPaths)) {
    throw new TypeError("reauth: reauthMiddleware({ protectedPaths }) must be an array of strings or RegExps");
  }
  const patterns = [...options.protectedPaths];

  return async function reauthNextMiddleware(req: NextRequest): Promise<NextResponse | Response> {
    const isProtected = matchesPath(req.nextUrl.pathname, patterns);
    let user: ReauthUser | null = null;
    try {
      user = await client.getUser(req);
    } catch (err) {
      const error = isReauthError(err)
        ? err
        : new ReauthError("internal", err instanceof Error ? err.message : String(err), 500, { cause: err });
      const custom = options.onError ? await options.onError(error, req) : undefined;
      if (custom) return custom;
      if (isProtected) {
        return new NextResponse(
          JSON.stringify({ error: { code: error.code, message: "Authentication service unavailable" } }),
          { status: 503, headers: { "content-type": "application/json", "retry-after": "5" } },
        );
      }
      user = null;
    }

    if (!user && isProtected) {
      const returnTo = options.returnTo ? options.returnTo(req) : req.nextUrl.href;
      return NextResponse.redirect(client.loginUrl(returnTo), 307);
    }

    const headers = new Headers(req.headers);
    headers.delete(USER_HEADER);
    if (user) headers.set(USER_HEADER, encodeUserHeader(user));
    return NextResponse.next({ request: { headers } });
  };
}

/**
 * The user the middleware resolved, from request headers (e.g. `await headers()`
 * in a server component, or `request.headers` in a route handler). `null` when
 * not signed in. Only trust this on paths the middleware runs on.
 */
export function getUserFromHeaders(headers: HeadersLike): ReauthUser | null {
  let value: string | string[] | null | undefined;
  if (typeof (headers as { get?: unknown }).get === "function") {
    value = (headers as { get(name: string): string | null }).get(USER_HEADER);
  } else {
    value = (headers as Record<string, string | string[] | undefined>)[USER_HEADER];
  }
  if (Array.isArray(value)) value = value[0];
  return decodeUserHeader(value);
}

/** The user the middleware resolved for this route-handler `request`, or `null`. */
export function currentUser(request: { headers: HeadersLike }): ReauthUser | null {
  return getUserFromHeaders(request.headers);
}

export { ReauthError } from "./errors.js";
export type { ReauthUser } from "./types.js";
