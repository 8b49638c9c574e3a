//! `POST /api/v1/session`: a session token (JWT, HS256) for the API key presented, in the
//! body and as an HttpOnly cookie, for the dashboard and its `EventSource`.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use model::UtcTime;

use crate::auth;
use crate::error::ApiError;
use crate::keys::KeyStore;
use crate::session::{COOKIE, JWT_SECRET_ENV};

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Session {
    pub token: String,
    pub scope: String,
    pub expires_at: UtcTime,
}

#[utoipa::path(
    post,
    path = "/api/v1/session",
    tag = "auth",
    summary = "A dashboard session for the API key presented",
    responses(
        (status = 200, description = "The session token, also set as the so_session cookie", body = Session),
        (status = 404, description = "Sessions are off (no STOCK_OBSERVER_JWT_SECRET)", body = crate::error::ErrorBody),
        crate::error::Refusals
    )
)]
pub async fn create(State(keys): State<Arc<KeyStore>>, headers: HeaderMap) -> Result<Response, ApiError> {
    // The credential first: whoever presents none learns nothing, not even whether sessions are on.
    if auth::presents_session(&headers) {
        return Err(ApiError::unauthorized("present the API key, not a session token: a session cannot extend itself"));
    }
    let caller = auth::authenticate(&keys, &headers, None)?;
    let Some(sessions) = keys.sessions() else {
        return Err(ApiError::not_found(format!("sessions are off: the server has no {JWT_SECRET_ENV}")));
    };
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
    let (token, claims) = sessions.issue(&caller.id, caller.scope.as_str(), now).map_err(|e| {
        tracing::error!(error = %e, "session not issued");
        ApiError::internal("the session could not be signed")
    })?;
    let cookie = format!("{COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}", sessions.ttl_secs());
    let body = Session {
        token,
        scope: caller.scope.as_str().to_string(),
        expires_at: UtcTime::from_millis(claims.exp.saturating_mul(1000)),
    };
    Ok(([(header::SET_COOKIE, cookie)], Json(body)).into_response())
}

/// Any other method on `/api/v1/session`: like every route, no credential is a 401 first.
pub async fn other_method(State(keys): State<Arc<KeyStore>>, headers: HeaderMap) -> ApiError {
    match auth::authenticate(&keys, &headers, None) {
        Err(e) => e,
        Ok(_) => ApiError::new(axum::http::StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "use POST"),
    }
}

#[utoipa::path(
    delete,
    path = "/api/v1/session",
    tag = "auth",
    summary = "End the dashboard session in this browser",
    responses(
        (status = 204, description = "The so_session cookie is cleared"),
        crate::error::Refusals
    )
)]
/// `DELETE /api/v1/session`: clears the cookie (the page cannot: it is HttpOnly). The token
/// itself stays valid until it expires; revoking its key ends it at once.
pub async fn delete(State(keys): State<Arc<KeyStore>>, headers: HeaderMap) -> Result<Response, ApiError> {
    auth::authenticate(&keys, &headers, None)?;
    let cookie = format!("{COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0");
    Ok((axum::http::StatusCode::NO_CONTENT, [(header::SET_COOKIE, cookie)]).into_response())
}
