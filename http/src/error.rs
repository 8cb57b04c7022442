//! Wire errors: `{"error": {"code", "message"}}` with a stable code from one registry
//! ([`CODES`]), which the TypeScript SDK's `error-codes.ts` is checked against in tests.
//! Internal detail is logged, never returned.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

macro_rules! codes {
    ($($variant:ident => $code:literal, $status:ident;)*) => {
        /// Every error code reauth puts on the wire.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Code { $($variant),* }

        impl Code {
            pub fn as_str(self) -> &'static str {
                match self { $(Code::$variant => $code),* }
            }
            pub fn status(self) -> StatusCode {
                match self { $(Code::$variant => StatusCode::$status),* }
            }
        }

        /// The registry, in order.
        pub const CODES: &[&str] = &[$($code),*];
    };
}

codes! {
    Unauthenticated => "unauthenticated", UNAUTHORIZED;
    InvalidRequest => "invalid_request", BAD_REQUEST;
    InvalidHost => "invalid_host", BAD_REQUEST;
    InvalidEmail => "invalid_email", BAD_REQUEST;
    InvalidRedirect => "invalid_redirect", BAD_REQUEST;
    NotFound => "not_found", NOT_FOUND;
    ProjectNotFound => "project_not_found", NOT_FOUND;
    MethodNotAllowed => "method_not_allowed", METHOD_NOT_ALLOWED;
    RateLimited => "rate_limited", TOO_MANY_REQUESTS;
    PayloadTooLarge => "payload_too_large", PAYLOAD_TOO_LARGE;
    HeadersTooLarge => "headers_too_large", REQUEST_HEADER_FIELDS_TOO_LARGE;
    Timeout => "timeout", REQUEST_TIMEOUT;
    Forbidden => "forbidden", FORBIDDEN;
    Conflict => "conflict", CONFLICT;
    ValidationFailed => "validation_failed", UNPROCESSABLE_ENTITY;
    InvalidApiKey => "invalid_api_key", UNAUTHORIZED;
    IdempotencyConflict => "idempotency_conflict", CONFLICT;
    InvalidSignature => "invalid_signature", BAD_REQUEST;
    NotConfigured => "not_configured", CONFLICT;
    PriceNotAllowed => "price_not_allowed", BAD_REQUEST;
    AlreadySubscribed => "already_subscribed", CONFLICT;
    PaymentProviderError => "payment_provider_error", BAD_GATEWAY;
    Unavailable => "unavailable", SERVICE_UNAVAILABLE;
    Internal => "internal", INTERNAL_SERVER_ERROR;
}

/// The wire shape of every error, and its OpenAPI schema.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
#[schema(as = Error)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Stable, from the registry; branch on it, not on the message.
    #[schema(schema_with = code_schema)]
    pub code: &'static str,
    /// For people; may change.
    pub message: String,
    /// The input field a `validation_failed` is about (a JSON path, a query parameter or a
    /// header name).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Seconds until a retry can succeed (with `rate_limited`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
}

/// `code` is one of the registry's.
fn code_schema() -> utoipa::openapi::schema::Object {
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .enum_values(Some(CODES.iter().copied()))
        .build()
}

#[derive(Debug)]
pub struct ApiError {
    pub code: Code,
    pub message: String,
    /// Seconds until a retry can succeed: `Retry-After` and `retry_after` in the body.
    pub retry_after: Option<u64>,
    /// The status when it is not the code's own (an axum 415 is still `invalid_request`).
    pub status: Option<StatusCode>,
    /// The input field a validation error is about.
    pub field: Option<String>,
}

impl ApiError {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            retry_after: None,
            status: None,
            field: None,
        }
    }

    /// 422 naming the field.
    pub fn validation(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: Some(field.into()),
            ..Self::new(Code::ValidationFailed, message)
        }
    }

    /// 429 with the wait in the header and the body.
    pub fn rate_limited(retry_after: std::time::Duration) -> Self {
        let secs = retry_after.as_secs().max(1);
        Self {
            retry_after: Some(secs),
            ..Self::new(
                Code::RateLimited,
                format!("too many requests; retry in {secs} seconds"),
            )
        }
    }

    pub fn unauthenticated() -> Self {
        Self::new(Code::Unauthenticated, "no valid session")
    }

    /// An unexpected failure: logged with its cause chain, returned without detail.
    pub fn internal(e: impl std::fmt::Display) -> Self {
        tracing::error!(error = %e, "internal error");
        Self::new(Code::Internal, "something went wrong on our side")
    }

    pub fn unavailable(e: impl std::fmt::Display) -> Self {
        tracing::error!(error = %e, "dependency unavailable");
        Self::new(
            Code::Unavailable,
            "a dependency is unavailable; try again shortly",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status.unwrap_or_else(|| self.code.status());
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.as_str(),
                message: self.message,
                field: self.field,
                retry_after: self.retry_after,
            },
        };
        let mut res = (status, Json(body)).into_response();
        if let Some(s) = self.retry_after
            && let Ok(v) = HeaderValue::from_str(&s.to_string())
        {
            res.headers_mut().insert(header::RETRY_AFTER, v);
        }
        res
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_snake_case() {
        let mut seen = std::collections::HashSet::new();
        for c in CODES {
            assert!(seen.insert(*c), "duplicate {c}");
            assert!(
                c.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{c}"
            );
        }
    }

    /// The SDK's list is checked against this registry so the two cannot drift.
    #[test]
    fn sdk_error_codes_match_the_server_registry() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../sdk/typescript/src/error-codes.ts"
        );
        let ts = std::fs::read_to_string(path).expect("sdk/typescript/src/error-codes.ts exists");
        let body = ts
            .split("ERROR_CODES = [")
            .nth(1)
            .and_then(|s| s.split(']').next())
            .expect("ERROR_CODES array");
        // The quoted strings: every odd piece between double quotes.
        let sdk: Vec<&str> = body
            .split('"')
            .enumerate()
            .filter_map(|(i, s)| (i % 2 == 1).then_some(s))
            .collect();
        assert_eq!(
            sdk, CODES,
            "sdk/typescript/src/error-codes.ts differs from the server registry"
        );
    }
}
