export { createReauth, hasFeature, DEFAULT_TIMEOUT_MS } from "./client.js";
export type { ReauthClient } from "./client.js";
export { ReauthError, isReauthError, isErrorCode } from "./errors.js";
export { ERROR_CODES } from "./error-codes.js";
export type { ErrorCode } from "./error-codes.js";
export {
  SESSION_COOKIE,
  extractToken,
  tokenFromAuthorization,
  tokenFromCookieHeader,
  tokenFromHeaders,
} from "./token.js";
export type {
  FetchLike,
  HeadersLike,
  ReauthCacheOptions,
  ReauthOptions,
  ReauthSession,
  ReauthUser,
  TokenInput,
} from "./types.js";
