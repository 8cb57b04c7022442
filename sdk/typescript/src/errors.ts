import { ERROR_CODES, type ErrorCode } from "./error-codes.js";

const KNOWN_CODES: ReadonlySet<string> = new Set(ERROR_CODES);

/** True when `code` is one of the stable codes in {@link ERROR_CODES}. */
export function isErrorCode(code: unknown): code is ErrorCode {
  return typeof code === "string" && KNOWN_CODES.has(code);
}

/**
 * Error thrown by every SDK call.
 *
 * - `code` is one of the stable codes in {@link ERROR_CODES}.
 * - `status` is the HTTP status the server answered with. For transport
 *   problems where no answer arrived, it is 503 (`unavailable`: network
 *   failure, connection refused, DNS) or 504 (`timeout`: no answer within
 *   `timeoutMs`), so it can be passed on as-is by a proxying app.
 * - `rawCode` is the code string the server sent, when it was not one this
 *   SDK version knows (then `code` is `"internal"`).
 */
export class ReauthError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly rawCode: string | undefined;

  constructor(
    code: ErrorCode,
    message: string,
    status: number,
    options?: { cause?: unknown; rawCode?: string },
  ) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = "ReauthError";
    this.code = code;
    this.status = status;
    this.rawCode = options?.rawCode;
    Object.setPrototypeOf(this, new.target.prototype);
  }
}

/** `instanceof`-free check (works across duplicated copies of the SDK). */
export function isReauthError(err: unknown): err is ReauthError {
  return (
    err instanceof ReauthError ||
    (typeof err === "object" &&
      err !== null &&
      (err as { name?: unknown }).name === "ReauthError" &&
      isErrorCode((err as { code?: unknown }).code))
  );
}

/** Code used when a non-JSON error answer (e.g. from a proxy) arrives. */
export function codeForStatus(status: number): ErrorCode {
  switch (status) {
    case 400:
      return "invalid_request";
    case 401:
      return "unauthenticated";
    case 403:
      return "forbidden";
    case 404:
      return "not_found";
    case 405:
      return "method_not_allowed";
    case 408:
    case 504:
      return "timeout";
    case 409:
      return "conflict";
    case 413:
      return "payload_too_large";
    case 429:
      return "rate_limited";
    case 502:
    case 503:
      return "unavailable";
    default:
      return "internal";
  }
}
