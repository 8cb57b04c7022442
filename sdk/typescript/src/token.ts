import type { HeadersLike, TokenInput } from "./types.js";

/** Name of the session cookie set by the hosted login. */
export const SESSION_COOKIE = "reauth_session";

// RFC 6750 b64token; the server issues base64url tokens (43 chars, no `=`).
const TOKEN_RE = /^[A-Za-z0-9\-._~+/]+=*$/;
const MAX_TOKEN_LENGTH = 1024;

function validToken(token: string | null | undefined): string | null {
  if (!token) return null;
  const t = token.trim();
  return t.length > 0 && t.length <= MAX_TOKEN_LENGTH && TOKEN_RE.test(t) ? t : null;
}

function headerValue(headers: HeadersLike, name: string): string | null {
  if (typeof (headers as { get?: unknown }).get === "function") {
    return (headers as { get(name: string): string | null }).get(name);
  }
  const record = headers as Record<string, string | string[] | undefined>;
  let value = record[name];
  if (value === undefined) {
    // Node lower-cases header names, but plain objects built by hand may not.
    for (const key of Object.keys(record)) {
      if (key.toLowerCase() === name) {
        value = record[key];
        break;
      }
    }
  }
  if (value === undefined) return null;
  return Array.isArray(value) ? value.join(name === "cookie" ? "; " : ", ") : value;
}

/** Token from an `Authorization` header value, if it uses the Bearer scheme. */
export function tokenFromAuthorization(value: string | null | undefined): string | null {
  if (!value) return null;
  const m = /^\s*Bearer\s+(\S+)\s*$/i.exec(value);
  return m ? validToken(m[1]) : null;
}

/** Value of the `reauth_session` cookie in a `Cookie` header string. */
export function tokenFromCookieHeader(
  cookieHeader: string | null | undefined,
  name: string = SESSION_COOKIE,
): string | null {
  if (!cookieHeader) return null;
  for (const part of cookieHeader.split(";")) {
    const eq = part.indexOf("=");
    if (eq < 0) continue;
    if (part.slice(0, eq).trim() !== name) continue;
    let value = part.slice(eq + 1).trim();
    if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) {
      value = value.slice(1, -1);
    }
    if (value.includes("%")) {
      try {
        value = decodeURIComponent(value);
      } catch {
        /* keep as-is */
      }
    }
    const token = validToken(value);
    if (token) return token;
  }
  return null;
}

/** Token from headers: `Authorization: Bearer` first, then the session cookie. */
export function tokenFromHeaders(headers: HeadersLike): string | null {
  return (
    tokenFromAuthorization(headerValue(headers, "authorization")) ??
    tokenFromCookieHeader(headerValue(headers, "cookie"))
  );
}

/**
 * Extract the session token from a request, headers, a cookie header string
 * or a raw token. Returns `null` when there is none (or it is malformed).
 *
 * A string containing `=` is a `Cookie` header; a string starting with
 * `Bearer ` is an `Authorization` value; anything else is a raw token.
 */
export function extractToken(input: TokenInput): string | null {
  if (input === null || input === undefined) return null;
  if (typeof input === "string") {
    const s = input.trim();
    if (s === "") return null;
    if (/^Bearer\s/i.test(s)) return tokenFromAuthorization(s);
    if (s.includes("=")) return tokenFromCookieHeader(s);
    return validToken(s);
  }
  if (typeof input !== "object") return null;
  if (typeof (input as { get?: unknown }).get === "function") {
    return tokenFromHeaders(input as HeadersLike);
  }
  const headers = (input as { headers?: unknown }).headers;
  if (headers && typeof headers === "object") return tokenFromHeaders(headers as HeadersLike);
  return null;
}
