//! The OpenAPI 3.1 document of `/api/v1`, generated from the handlers' and types'
//! annotations and served at `/api/v1/openapi.json` (open: it describes, it holds no data).
//! A snapshot test keeps it from changing unnoticed; schemathesis in CI checks the server
//! against it.

use axum::response::IntoResponse;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{admin, login, market, scalp, slots, state, stream};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Stock Observer API",
        description = "Recorded market data and the recorder's evidence. Times are RFC 3339, prices and sizes \
                       decimal strings. Every route needs an API key (`Authorization: Bearer KEY` or `X-API-Key`) \
                       or a dashboard session (`so_session` cookie) of its scope: read, stream or admin.",
        license(name = "Proprietary")
    ),
    paths(
        market::bars,
        market::latest,
        market::ticks,
        scalp::scalp,
        slots::slots,
        state::gaps,
        state::events,
        state::overflow,
        state::status,
        state::universe,
        state::anomalies,
        state::db,
        admin::compress,
        admin::refresh,
        admin::backup,
        admin::etl,
        admin::jobs,
        admin::job,
        login::create,
        login::delete,
        stream::stream,
    ),
    components(schemas(store::BarInterval)),
    modifiers(&Credentials),
    security(("bearer" = []), ("api_key" = []), ("session" = [])),
    tags(
        (name = "market", description = "Bars, latest prices, trades and samples"),
        (name = "state", description = "The observer's evidence: gaps, events, slots, universe"),
        (name = "operations", description = "The database and admin jobs (scope admin)"),
        (name = "stream", description = "Live Server-Sent Events (scope stream)"),
        (name = "auth", description = "Dashboard sessions"),
    )
)]
pub struct ApiDoc;

/// The three ways to present a credential.
struct Credentials;

impl Modify for Credentials {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        let c = api.components.get_or_insert_with(Default::default);
        c.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        c.add_security_scheme("api_key", SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-API-Key"))));
        c.add_security_scheme("session", SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new("so_session"))));
    }
}

/// The document as JSON text (what the route serves and the snapshot holds).
pub fn document() -> String {
    ApiDoc::openapi().to_pretty_json().unwrap_or_else(|e| format!("{{\"error\":\"openapi: {e}\"}}"))
}

/// `GET /api/v1/openapi.json`: the snapshot's text, built once (building it is 44 KB of
/// JSON from a few hundred schema objects, 0.3 ms a request).
pub async fn serve() -> impl IntoResponse {
    static DOCUMENT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let text = DOCUMENT.get_or_init(document).as_str();
    ([(axum::http::header::CONTENT_TYPE, "application/json")], text)
}
