// Stable error codes. This list mirrors the server's error-code registry; a
// Rust test parses the quoted strings below and compares them with the
// server's list, so keep exactly one code per line as a quoted string.
export const ERROR_CODES = [
  "unauthenticated",
  "invalid_request",
  "invalid_host",
  "invalid_email",
  "invalid_redirect",
  "not_found",
  "project_not_found",
  "method_not_allowed",
  "rate_limited",
  "payload_too_large",
  "headers_too_large",
  "timeout",
  "forbidden",
  "conflict",
  "validation_failed",
  "invalid_api_key",
  "idempotency_conflict",
  "invalid_signature",
  "not_configured",
  "price_not_allowed",
  "already_subscribed",
  "payment_provider_error",
  "unavailable",
  "internal",
] as const;
export type ErrorCode = (typeof ERROR_CODES)[number];
