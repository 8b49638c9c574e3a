//! The OpenAPI document is generated from the code: this snapshot shows every change to it in
//! review. `UPDATE_SNAPSHOTS=1 cargo test -p so-api --test openapi` rewrites it.

use so_api::v1::openapi;

const SNAPSHOT: &str = "tests/snapshots/openapi.json";

#[test]
fn the_document_matches_its_snapshot() {
    let doc = openapi::document();
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(SNAPSHOT);
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&path, format!("{doc}\n")).unwrap();
    }
    let want = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        want.trim_end() == doc.trim_end(),
        "the OpenAPI document changed; review it and run UPDATE_SNAPSHOTS=1 cargo test -p so-api --test openapi"
    );
}

#[test]
fn every_route_is_described_with_its_refusals() {
    let doc: serde_json::Value = serde_json::from_str(&openapi::document()).unwrap();
    assert_eq!(doc["openapi"].as_str().map(|v| &v[..3]), Some("3.1"), "OpenAPI 3.1");
    let paths = doc["paths"].as_object().unwrap();
    for route in [
        "/api/v1/bars/{symbol}",
        "/api/v1/latest/{symbol}",
        "/api/v1/ticks/{symbol}",
        "/api/v1/scalp/{symbol}",
        "/api/v1/slots",
        "/api/v1/gaps",
        "/api/v1/events",
        "/api/v1/overflow",
        "/api/v1/status",
        "/api/v1/universe",
        "/api/v1/anomalies",
        "/api/v1/db",
        "/api/v1/admin/compress",
        "/api/v1/admin/refresh",
        "/api/v1/admin/backup",
        "/api/v1/admin/etl",
        "/api/v1/admin/jobs",
        "/api/v1/admin/jobs/{id}",
        "/api/v1/session",
        "/api/v1/stream",
    ] {
        let ops = paths.get(route).unwrap_or_else(|| panic!("{route} is not described"));
        for (method, op) in ops.as_object().unwrap() {
            for status in ["400", "401", "403"] {
                assert!(op["responses"].get(status).is_some(), "{method} {route}: no {status}");
            }
        }
    }
    // Prices are strings, never numbers.
    let price = &doc["components"]["schemas"]["Price"];
    assert_eq!(price["type"], "string", "{price}");
}
