//! The one error shape of `/api/v1`: `{"error":{"code":"…","message":"…"}}`, so a client
//! branches on `code` and shows `message`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    /// Stable, machine-readable: `unauthorized`, `forbidden`, `bad_request`, `not_found`,
    /// `conflict`, `method_not_allowed`, `range_not_satisfiable`, `unavailable`, `internal`.
    pub code: &'static str,
    pub message: String,
}

/// Every refusal's body.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// `unauthorized`, `forbidden`, `bad_request`, `not_found`, `conflict`,
    /// `range_not_satisfiable`, `unavailable`, `internal`.
    pub code: &'static str,
    /// For a person: what was wrong and what to do.
    pub message: String,
}

/// The refusals any `/api/v1` route may answer, for the OpenAPI document.
// Described, never built: ApiError makes these responses.
#[allow(dead_code)]
#[derive(utoipa::IntoResponses)]
pub enum Refusals {
    /// A parameter is malformed or out of range; the message names it.
    #[response(status = 400)]
    BadRequest(ErrorBody),
    /// No credential, or one that is unknown, wrong, revoked or expired.
    #[response(status = 401)]
    Unauthorized(ErrorBody),
    /// A good credential without the route's scope.
    #[response(status = 403)]
    Forbidden(ErrorBody),
    /// The database did not answer (the archive still has the data).
    #[response(status = 503)]
    Unavailable(ErrorBody),
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError { status, code, message: message.into() }
    }
    pub fn unauthorized(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }
    pub fn forbidden(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }
    pub fn conflict(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::CONFLICT, "conflict", message)
    }
    pub fn unavailable(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }
    /// The detail goes to the log, not to the client.
    pub fn internal(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&ErrorBody { error: ErrorDetail { code: self.code, message: self.message } })
            .unwrap_or_default();
        let mut res =
            (self.status, [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            res.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        res
    }
}
