import type { ReauthSession, ReauthUser } from "../types.js";

// Shapes of the server's JSON answers (snake_case wire format).

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function str(v: unknown): string | null {
  return typeof v === "string" ? v : null;
}

function date(v: unknown): Date | null {
  if (typeof v !== "string" && typeof v !== "number") return null;
  const d = new Date(v);
  return Number.isNaN(d.getTime()) ? null : d;
}

/** Map `GET /v1/user` JSON to a {@link ReauthUser}; `null` when the shape is wrong. */
export function parseUser(body: unknown): ReauthUser | null {
  if (!isObject(body) || !isObject(body.session)) return null;
  const id = str(body.user_id);
  const email = str(body.email);
  const sessionId = str(body.session.id);
  const expiresAt = date(body.session.expires_at);
  if (id === null || email === null || sessionId === null || expiresAt === null) return null;
  return {
    id,
    email,
    name: str(body.name),
    avatarUrl: str(body.avatar_url),
    plan: str(body.plan) ?? "free",
    subscriptionStatus: str(body.subscription_status),
    currentPeriodEnd: date(body.current_period_end),
    cancelAtPeriodEnd: body.cancel_at_period_end === true,
    features: Array.isArray(body.features)
      ? body.features.filter((f): f is string => typeof f === "string")
      : [],
    session: { id: sessionId, expiresAt },
  };
}

/** Map `GET /v1/session` JSON to a {@link ReauthSession}; `null` when the shape is wrong. */
export function parseSession(body: unknown): ReauthSession | null {
  if (!isObject(body)) return null;
  const id = str(body.id);
  const userId = str(body.user_id);
  const createdAt = date(body.created_at);
  const expiresAt = date(body.expires_at);
  if (id === null || userId === null || createdAt === null || expiresAt === null) return null;
  return { id, userId, createdAt, expiresAt };
}

/** Deep copy of a user view (so callers can't mutate cached data). */
export function cloneUser(u: ReauthUser): ReauthUser {
  return {
    ...u,
    currentPeriodEnd: u.currentPeriodEnd ? new Date(u.currentPeriodEnd.getTime()) : null,
    features: [...u.features],
    session: { id: u.session.id, expiresAt: new Date(u.session.expiresAt.getTime()) },
  };
}

/** `{"error":{"code","message"}}` → parts, when the body has that shape. */
export function parseErrorBody(body: unknown): { code: string; message: string } | null {
  if (!isObject(body) || !isObject(body.error)) return null;
  const code = str(body.error.code);
  if (code === null) return null;
  return { code, message: str(body.error.message) ?? code };
}

// ---- user <-> header transport: base64url(JSON) with btoa/atob, edge-safe ----

function bytesToBase64Url(bytes: Uint8Array): string {
  let bin = "";
  const CHUNK = 0x8000;
  for (let i = 0; i < bytes.length; i += CHUNK) {
    bin += String.fromCharCode(...bytes.subarray(i, i + CHUNK));
  }
  return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function base64UrlToBytes(s: string): Uint8Array | null {
  if (!/^[A-Za-z0-9_-]*$/.test(s)) return null;
  const b64 = s.replace(/-/g, "+").replace(/_/g, "/") + "=".repeat((4 - (s.length % 4)) % 4);
  try {
    const bin = atob(b64);
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  } catch {
    return null;
  }
}

/** Serialize a user for a request header: base64url of its JSON (camelCase, ISO dates). */
export function encodeUserHeader(user: ReauthUser): string {
  return bytesToBase64Url(new TextEncoder().encode(JSON.stringify(user)));
}

/** Inverse of {@link encodeUserHeader}; `null` when the value is missing or malformed. */
export function decodeUserHeader(value: string | null | undefined): ReauthUser | null {
  if (!value) return null;
  const bytes = base64UrlToBytes(value.trim());
  if (!bytes) return null;
  let raw: unknown;
  try {
    raw = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch {
    return null;
  }
  if (!isObject(raw) || !isObject(raw.session)) return null;
  const id = str(raw.id);
  const email = str(raw.email);
  const sessionId = str(raw.session.id);
  const expiresAt = date(raw.session.expiresAt);
  if (id === null || email === null || sessionId === null || expiresAt === null) return null;
  return {
    id,
    email,
    name: str(raw.name),
    avatarUrl: str(raw.avatarUrl),
    plan: str(raw.plan) ?? "free",
    subscriptionStatus: str(raw.subscriptionStatus),
    currentPeriodEnd: date(raw.currentPeriodEnd),
    cancelAtPeriodEnd: raw.cancelAtPeriodEnd === true,
    features: Array.isArray(raw.features)
      ? raw.features.filter((f): f is string => typeof f === "string")
      : [],
    session: { id: sessionId, expiresAt },
  };
}
