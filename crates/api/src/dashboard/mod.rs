//! The dashboard at `/`: one page, its script and style, and the vendored chart library
//! (uPlot), all compiled into the binary, so the page works on a machine with no internet
//! and shows exactly the code this build was tested with.
//!
//! The page and its assets are open: they hold no data. Everything shown comes from
//! `/api/v1`, which needs a credential; the page asks for an API key, trades it for a session
//! cookie (`POST /api/v1/session`) and never stores the key.
//!
//! The page is served with `Content-Security-Policy: default-src 'self'`: no inline script
//! or style, nothing from another origin, so an injected string cannot run as script. Every
//! file carries an `ETag` (its sha256) and `Cache-Control: no-cache`: the browser keeps its
//! copy and asks each time, and an unchanged file costs a 304 with no body.

use std::sync::OnceLock;

use axum::Router;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use sha2::{Digest, Sha256};

/// The chart library, as published on the npm registry (`uplot`, MIT; its licence is
/// `assets/uPlot.LICENSE`, served beside it).
pub const UPLOT_VERSION: &str = "1.6.32";
/// sha256 of `dist/uPlot.iife.min.js` and `dist/uPlot.min.css` of that release: the unit test
/// below fails if the vendored files are changed without updating the pins.
pub const UPLOT_JS_SHA256: &str = "19c8d4c6ad88929a79f4ae49d6f7161566dfd0ba3d15cc495e974f787eb78f1f";
pub const UPLOT_CSS_SHA256: &str = "df630c6a8d6f8eeaff264b50f73ce5b114f646ffd9a0bb74f049b0a00135fa04";

/// Only this origin's files and connections: no inline script or style, no CDN.
pub const CSP: &str = "default-src 'self'";

/// One file the dashboard serves.
struct Asset {
    path: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

const ASSETS: &[Asset] = &[
    Asset { path: "/", content_type: HTML, bytes: include_bytes!("../../assets/index.html") },
    Asset { path: "/assets/dashboard.js", content_type: JS, bytes: include_bytes!("../../assets/dashboard.js") },
    Asset { path: "/assets/dashboard.css", content_type: CSS, bytes: include_bytes!("../../assets/dashboard.css") },
    Asset {
        path: "/assets/uPlot.iife.min.js",
        content_type: JS,
        bytes: include_bytes!("../../assets/uPlot.iife.min.js"),
    },
    Asset { path: "/assets/uPlot.min.css", content_type: CSS, bytes: include_bytes!("../../assets/uPlot.min.css") },
    Asset {
        path: "/assets/uPlot.LICENSE.txt",
        content_type: "text/plain; charset=utf-8",
        bytes: include_bytes!("../../assets/uPlot.LICENSE"),
    },
    // Browsers ask for an icon on their own; without one every page load logs a 404.
    Asset {
        path: "/assets/favicon.svg",
        content_type: "image/svg+xml",
        bytes: include_bytes!("../../assets/favicon.svg"),
    },
];

/// Each asset's strong validator: the quoted hex sha256 of its bytes, computed once (always
/// a valid header value; were one not, that asset would go without a validator).
fn etags() -> &'static [Option<HeaderValue>] {
    static ETAGS: OnceLock<Vec<Option<HeaderValue>>> = OnceLock::new();
    ETAGS.get_or_init(|| {
        ASSETS
            .iter()
            .map(|a| {
                let tag = format!("\"{}\"", hex::encode(Sha256::digest(a.bytes)));
                HeaderValue::from_str(&tag).ok()
            })
            .collect()
    })
}

/// The dashboard's page and assets, open (the data comes from `/api/v1`, which needs a key).
pub fn router() -> Router {
    ASSETS.iter().enumerate().fold(Router::new(), |r, (i, a)| {
        r.route(a.path, get(move |headers: HeaderMap| std::future::ready(respond(i, &headers))))
    })
}

/// Whether an `If-None-Match` header names `etag` (or is `*`). Weak comparison, as RFC 9110
/// §13.1.2 asks for this header: a `W/` prefix does not matter.
fn matches(headers: &HeaderMap, etag: &HeaderValue) -> bool {
    let want = etag.as_bytes();
    headers.get_all(header::IF_NONE_MATCH).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(',')).any(|t| {
        let t = t.trim();
        t == "*" || t.strip_prefix("W/").unwrap_or(t).as_bytes() == want
    })
}

fn respond(i: usize, headers: &HeaderMap) -> Response {
    let asset = &ASSETS[i];
    let etag = etags()[i].as_ref();
    let mut common = vec![
        // Keep a copy, but ask each time: the names carry no version, so a new binary's
        // files must replace the old ones at the next load.
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
    ];
    if asset.content_type == HTML {
        common.push((header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP)));
        // The login form must not be framed by another site (clickjacking); CSP's
        // default-src does not cover frame-ancestors.
        common.push((header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")));
        common.push((header::REFERRER_POLICY, HeaderValue::from_static("no-referrer")));
    }
    common.extend(etag.map(|e| (header::ETAG, e.clone())));
    let mut out = if etag.is_some_and(|e| matches(headers, e)) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(header::CONTENT_TYPE, HeaderValue::from_static(asset.content_type))], asset.bytes).into_response()
    };
    out.headers_mut().extend(common);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sha256_of(path: &str) -> String {
        let a = ASSETS.iter().find(|a| a.path == path).unwrap();
        hex::encode(Sha256::digest(a.bytes))
    }

    #[test]
    fn the_embedded_chart_library_is_the_pinned_release() {
        assert_eq!(sha256_of("/assets/uPlot.iife.min.js"), UPLOT_JS_SHA256);
        assert_eq!(sha256_of("/assets/uPlot.min.css"), UPLOT_CSS_SHA256);
        // The file names its own version in its first line.
        let js = ASSETS.iter().find(|a| a.path == "/assets/uPlot.iife.min.js").unwrap();
        let first = std::str::from_utf8(&js.bytes[..js.bytes.iter().position(|b| *b == b'\n').unwrap()]).unwrap();
        assert!(first.contains(&format!("(v{UPLOT_VERSION})")), "{first}");
        // The page's credit line names the same release.
        let html = std::str::from_utf8(ASSETS[0].bytes).unwrap();
        assert!(html.contains(&format!("uPlot {UPLOT_VERSION} (MIT")), "{html}");
    }

    #[test]
    fn the_page_loads_nothing_from_another_origin_and_nothing_inline() {
        let html = std::str::from_utf8(ASSETS[0].bytes).unwrap();
        assert!(!html.contains("http://") && !html.contains("https://") && !html.contains("//cdn"), "{html}");
        // CSP refuses inline script and style: the page must not need them.
        assert!(!html.contains("<style") && !html.contains(" style="), "{html}");
        let handler = html.match_indices(" on").find(|(at, _)| {
            let name: String = html[at + 3..].chars().take_while(|c| c.is_ascii_alphabetic()).collect();
            !name.is_empty() && html[at + 3 + name.len()..].starts_with('=')
        });
        assert!(handler.is_none(), "an inline event handler: {}", &html[handler.unwrap().0..]);
        for tag in html.split("<script").skip(1) {
            assert!(tag.trim_start().starts_with("src=\"/assets/"), "inline script: <script{tag}");
        }
        // Every asset the page names is served.
        for name in html.split("\"/assets/").skip(1).map(|r| r.split('"').next().unwrap()) {
            assert!(ASSETS.iter().any(|a| a.path == format!("/assets/{name}")), "{name} is not served");
        }
    }

    #[test]
    fn an_asset_has_its_type_an_etag_and_a_304_when_unchanged() {
        let js = ASSETS.iter().position(|a| a.path == "/assets/dashboard.js").unwrap();
        let r = respond(js, &HeaderMap::new());
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()[header::CONTENT_TYPE], JS);
        let etag = r.headers()[header::ETAG].clone();
        assert_eq!(etag.to_str().unwrap(), format!("\"{}\"", sha256_of("/assets/dashboard.js")));
        assert!(!r.headers().contains_key(header::CONTENT_SECURITY_POLICY), "the page's policy governs its assets");

        for sent in [etag.to_str().unwrap().to_string(), format!("\"x\", W/{}", etag.to_str().unwrap()), "*".into()] {
            let mut h = HeaderMap::new();
            h.insert(header::IF_NONE_MATCH, sent.parse().unwrap());
            let r = respond(js, &h);
            assert_eq!(r.status(), StatusCode::NOT_MODIFIED, "{sent}");
            assert_eq!(r.headers()[header::ETAG], etag);
        }
        let mut h = HeaderMap::new();
        h.insert(header::IF_NONE_MATCH, "\"another\"".parse().unwrap());
        assert_eq!(respond(js, &h).status(), StatusCode::OK);
    }

    #[test]
    fn the_page_has_the_policy() {
        let r = respond(0, &HeaderMap::new());
        assert_eq!(r.headers()[header::CONTENT_TYPE], HTML);
        assert_eq!(r.headers()[header::CONTENT_SECURITY_POLICY], CSP);
        assert_eq!(r.headers()[header::X_FRAME_OPTIONS], "DENY");
    }
}
