//! API key checks for routes that need one: `Authorization: Bearer KEY` or `X-API-Key: KEY`.
//!
//! No key, or one that is malformed, unknown, wrong or revoked: 401. A good key without the
//! route's scope: 403. Every refusal is logged at `warn` with the key's id (when the text
//! has a key's shape) and the peer address: never the key, never the secret.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::keys::{Caller, KeyStore, Scope, VerifyError};

/// The header a client may use instead of `Authorization: Bearer`.
pub const API_KEY_HEADER: &str = "x-api-key";

/// The key text a request presents: `None` when it presents none.
fn presented(headers: &HeaderMap) -> Result<Option<&str>, ApiError> {
    if let Some(v) = headers.get(header::AUTHORIZATION) {
        let v = v.to_str().map_err(|_| ApiError::unauthorized("the Authorization header is not text"))?;
        let (scheme, key) = v.trim().split_once(' ').unwrap_or((v, ""));
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(ApiError::unauthorized("use Authorization: Bearer <API key>, or X-API-Key: <API key>"));
        }
        return Ok(Some(key.trim()));
    }
    match headers.get(API_KEY_HEADER) {
        Some(v) => {
            v.to_str().map(|s| Some(s.trim())).map_err(|_| ApiError::unauthorized("the X-API-Key header is not text"))
        }
        // A browser's EventSource can send only its cookies.
        None => Ok(session_cookie(headers)),
    }
}

/// The session token in a `Cookie: so_session=…` header.
fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| c.trim().strip_prefix(crate::session::COOKIE)?.strip_prefix('='))
        .map(str::trim)
}

/// Who presents the request's credential (an API key, or a session token minted for one),
/// whatever it may do; `peer` is for the log only.
pub fn authenticate(keys: &KeyStore, headers: &HeaderMap, peer: Option<SocketAddr>) -> Result<Caller, ApiError> {
    let peer = peer.map(|p| p.to_string());
    let peer = peer.as_deref().unwrap_or("-");
    let text = match presented(headers) {
        Ok(Some(t)) => t,
        Ok(None) => {
            tracing::warn!(%peer, "API request refused: no API key");
            return Err(ApiError::unauthorized(
                "this route needs an API key: Authorization: Bearer <API key>, or X-API-Key: <API key>",
            ));
        }
        Err(e) => {
            tracing::warn!(%peer, reason = %e.message, "API request refused");
            return Err(e);
        }
    };
    // Verifying reads at most a small file, and only when it changed: cheap enough inline.
    match keys.verify(text) {
        Ok(c) => Ok(c),
        Err(VerifyError::Refused(r)) => {
            tracing::warn!(%peer, key_id = %r.key_id().unwrap_or("-"), reason = %r, "API request refused");
            // One message for every kind: a prober learns nothing about which ids exist.
            Err(ApiError::unauthorized("the API key or session is not valid (unknown, wrong, expired or revoked)"))
        }
        Err(VerifyError::Store(e)) => {
            tracing::error!(%peer, error = %e, "API request refused: the API key file cannot be read");
            Err(ApiError::unavailable("the API key store cannot be read; see the server's log"))
        }
    }
}

/// Whether the request presents a session token rather than an API key.
pub fn presents_session(headers: &HeaderMap) -> bool {
    presented(headers).ok().flatten().is_some_and(crate::session::looks_like_jwt)
}

/// Checks the request's credential for a route that needs `needed`; `peer` is for the log only.
pub fn check(
    keys: &KeyStore,
    headers: &HeaderMap,
    needed: Scope,
    peer: Option<SocketAddr>,
) -> Result<Caller, ApiError> {
    let caller = authenticate(keys, headers, peer)?;
    if !caller.scope.allows(needed) {
        let peer = peer.map_or("-".to_string(), |p| p.to_string());
        tracing::warn!(%peer, key_id = %caller.id, scope = %caller.scope, needed = %needed, "API request refused: scope");
        return Err(ApiError::forbidden(format!(
            "API key {} has scope {}; this route needs {needed}",
            caller.id, caller.scope
        )));
    }
    Ok(caller)
}

#[derive(Clone)]
struct Guard {
    keys: Arc<KeyStore>,
    needed: Scope,
}

async fn require(State(g): State<Guard>, mut req: Request, next: Next) -> Response {
    let peer = req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0);
    match check(&g.keys, req.headers(), g.needed, peer) {
        Ok(caller) => {
            // Handlers take it with `Extension<Caller>` to say who did what.
            req.extensions_mut().insert(caller);
            next.run(req).await
        }
        Err(e) => e.into_response(),
    }
}

/// `router`'s routes, each refused unless the request carries a key allowing `needed`.
/// Paths the router does not match stay unguarded (they answer 404 anyway).
pub fn guard<S>(router: Router<S>, keys: Arc<KeyStore>, needed: Scope) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    router.route_layer(middleware::from_fn_with_state(Guard { keys, needed }, require))
}
