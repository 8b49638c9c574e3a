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
        None => Ok(None),
    }
}

/// Checks the request's key for a route that needs `needed`; `peer` is for the log only.
pub fn check(
    keys: &KeyStore,
    headers: &HeaderMap,
    needed: Scope,
    peer: Option<SocketAddr>,
) -> Result<Caller, ApiError> {
    let peer = peer.map(|p| p.to_string());
    let peer = peer.as_deref().unwrap_or("-");
    let text = match presented(headers) {
        Ok(Some(t)) => t,
        Ok(None) => {
            tracing::warn!(%peer, needed = %needed, "API request refused: no API key");
            return Err(ApiError::unauthorized(
                "this route needs an API key: Authorization: Bearer <API key>, or X-API-Key: <API key>",
            ));
        }
        Err(e) => {
            tracing::warn!(%peer, needed = %needed, reason = %e.message, "API request refused");
            return Err(e);
        }
    };
    // Verifying reads at most a small file, and only when it changed: cheap enough inline.
    let caller = match keys.verify(text) {
        Ok(c) => c,
        Err(VerifyError::Refused(r)) => {
            tracing::warn!(%peer, key_id = %r.key_id().unwrap_or("-"), needed = %needed, reason = %r, "API request refused");
            // One message for every kind: a prober learns nothing about which ids exist.
            return Err(ApiError::unauthorized("the API key is not valid (unknown, wrong or revoked)"));
        }
        Err(VerifyError::Store(e)) => {
            tracing::error!(%peer, error = %e, "API request refused: the API key file cannot be read");
            return Err(ApiError::unavailable("the API key store cannot be read; see the server's log"));
        }
    };
    if !caller.scope.allows(needed) {
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
