//! Transport rules shared by the broker adapters: the HTTP client every broker REST call goes
//! through (no redirects, HTTPS only unless every endpoint is on loopback), sensitive header
//! values, and which plain-text WebSocket endpoints a live run may use.

use std::net::IpAddr;
use std::time::Duration;

use reqwest::header::HeaderValue;

/// KIS publishes its realtime WebSocket only as plain `ws://` on these (real, mock). No other
/// non-loopback `ws://` endpoint is accepted.
pub const KIS_PLAINTEXT_WS: &[(&str, u16)] = &[("ops.koreainvestment.com", 21000), ("ops.koreainvestment.com", 31000)];

/// `(host, port)` of an absolute URL (`scheme://[user@]host[:port]/…`); the port defaults by
/// scheme. IPv6 hosts are returned without brackets.
pub fn host_port(url: &str) -> Option<(String, Option<u16>)> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let (h, after) = v6.split_once(']')?;
        (h, after.strip_prefix(':'))
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        }
    };
    if host.is_empty() {
        return None;
    }
    let port = match port {
        Some(p) => Some(p.parse().ok()?),
        None => match scheme.to_ascii_lowercase().as_str() {
            "http" | "ws" => Some(80),
            "https" | "wss" => Some(443),
            _ => None,
        },
    };
    Some((host.to_ascii_lowercase(), port))
}

/// The URL's host is `localhost` or a loopback address.
pub fn is_loopback_url(url: &str) -> bool {
    host_port(url).is_some_and(|(h, _)| h == "localhost" || h.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback()))
}

fn has_scheme(url: &str, scheme: &str) -> bool {
    url.get(..scheme.len()).is_some_and(|s| s.eq_ignore_ascii_case(scheme))
}

/// Why a REST base may not be used: plain `http://` only to loopback (the fake servers, a
/// local proxy), since the app key, secret and token travel in its headers and bodies.
pub fn rest_base_problem(url: &str) -> Option<String> {
    if has_scheme(url, "https://") {
        None
    } else if has_scheme(url, "http://") {
        (!is_loopback_url(url))
            .then(|| format!("{url:?}: plain http:// is allowed only to a loopback host; use https://"))
    } else {
        Some(format!("{url:?} is not an http(s) URL"))
    }
}

/// Why a WebSocket base may not be used: `wss://` anywhere, plain `ws://` only to loopback or
/// to one of `allowed_plain` (KIS's published realtime endpoint).
pub fn ws_base_problem(url: &str, allowed_plain: &[(&str, u16)]) -> Option<String> {
    if has_scheme(url, "wss://") {
        None
    } else if has_scheme(url, "ws://") {
        let ok = is_loopback_url(url) || plain_ws_endpoint(url, allowed_plain);
        (!ok).then(|| {
            format!("{url:?}: plain ws:// is allowed only to a loopback host or a broker's published ws:// endpoint; use wss://")
        })
    } else {
        Some(format!("{url:?} is not a ws:// or wss:// URL"))
    }
}

fn plain_ws_endpoint(url: &str, allowed: &[(&str, u16)]) -> bool {
    host_port(url).is_some_and(|(h, p)| allowed.iter().any(|(ah, ap)| h == *ah && p == Some(*ap)))
}

/// The start-up warning for a live session over plain `ws://` to a non-loopback host (KIS's
/// published realtime endpoint), saying what it exposes; `None` for `wss://` or loopback.
pub fn plaintext_ws_warning(url: &str) -> Option<String> {
    (has_scheme(url, "ws://") && !is_loopback_url(url)).then(|| {
        format!(
            "realtime feed over plain ws:// ({url}), the broker's published endpoint: anyone on the network path \
             can read the approval key and the subscriptions, inject or alter market data frames, and take the \
             session over (KIS then sends OPSP8996, already in use); run on a trusted network (docs/security.md)"
        )
    })
}

/// The HTTP client for one broker's REST endpoints: redirects are never followed (a redirect
/// would carry the app key headers or the token request body to another host), no
/// `Referer`, and HTTPS only unless one of `bases` is plain `http://` on loopback (a fake
/// server or a local proxy; validation refuses plain `http://` anywhere else, and with
/// redirects off the client only ever requests URLs built from `bases`).
pub fn broker_http(timeout: Duration, bases: &[&str]) -> reqwest::Result<reqwest::Client> {
    let local = bases.iter().any(|b| has_scheme(b, "http://") && is_loopback_url(b));
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .referer(false)
        .https_only(!local)
        .build()
}

/// A header value marked sensitive (HPACK never indexes it; `Debug` prints `Sensitive`).
/// `None` if the value is not a valid header value; the caller reports that without the value.
pub fn sensitive(value: &str) -> Option<HeaderValue> {
    let mut v = HeaderValue::from_str(value).ok()?;
    v.set_sensitive(true);
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    #[test]
    fn hosts_ports_and_loopback() {
        assert_eq!(
            host_port("ws://ops.koreainvestment.com:21000/tryitout"),
            Some(("ops.koreainvestment.com".into(), Some(21000)))
        );
        assert_eq!(host_port("https://api.upbit.com/v1"), Some(("api.upbit.com".into(), Some(443))));
        assert!(
            is_loopback_url("http://127.0.0.1:8080/x")
                && is_loopback_url("ws://[::1]:9/")
                && is_loopback_url("http://localhost")
        );
        assert!(!is_loopback_url("http://127.0.0.1.evil.example/") && !is_loopback_url("http://user@10.0.0.1/"));
        assert!(!is_loopback_url("http://localhost@evil.example/"));
    }

    #[test]
    fn plain_text_is_refused_off_loopback_except_the_published_kis_endpoint() {
        assert_eq!(rest_base_problem("https://openapi.koreainvestment.com:9443"), None);
        assert_eq!(rest_base_problem("http://127.0.0.1:9443"), None);
        assert!(rest_base_problem("http://openapi.koreainvestment.com:9443").unwrap().contains("https://"));
        assert_eq!(ws_base_problem("ws://ops.koreainvestment.com:21000", KIS_PLAINTEXT_WS), None);
        assert_eq!(ws_base_problem("ws://ops.koreainvestment.com:31000/tryitout", KIS_PLAINTEXT_WS), None);
        assert_eq!(ws_base_problem("ws://127.0.0.1:5000", &[]), None);
        assert_eq!(ws_base_problem("wss://api.upbit.com/websocket/v1", &[]), None);
        assert!(ws_base_problem("ws://ops.koreainvestment.com:21001", KIS_PLAINTEXT_WS).is_some());
        assert!(ws_base_problem("ws://evil.example:21000", KIS_PLAINTEXT_WS).is_some());
        assert!(ws_base_problem("ws://api.upbit.com/websocket/v1", &[]).is_some());
        assert!(plaintext_ws_warning("ws://ops.koreainvestment.com:21000/tryitout").unwrap().contains("approval key"));
        assert_eq!(plaintext_ws_warning("ws://127.0.0.1:1/"), None);
        assert_eq!(plaintext_ws_warning("wss://x.example/"), None);
    }

    /// A listener that answers every request with `answer` and counts connections.
    async fn listener(answer: String) -> (String, Arc<AtomicUsize>) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", l.local_addr().unwrap());
        let count = Arc::new(AtomicUsize::new(0));
        let seen = count.clone();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                seen.fetch_add(1, Ordering::SeqCst);
                let answer = answer.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 16 * 1024];
                    let _ = s.read(&mut buf).await;
                    let _ = s.write_all(answer.as_bytes()).await;
                    let _ = s.shutdown().await;
                });
            }
        });
        (url, count)
    }

    #[tokio::test]
    async fn a_redirect_is_not_followed_so_the_key_stays_with_the_broker() {
        let (elsewhere, reached) = listener("HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n".into()).await;
        let answer = format!("HTTP/1.1 302 Found\r\nlocation: {elsewhere}/stolen\r\ncontent-length: 0\r\n\r\n");
        let (broker, _) = listener(answer).await;
        let http = broker_http(Duration::from_secs(5), &[&broker]).unwrap();
        let resp =
            http.get(format!("{broker}/uapi/x")).header("appkey", sensitive("PSappKEY").unwrap()).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 302);
        let resp = http.post(format!("{broker}/oauth2/tokenP")).body("{\"appsecret\":\"s\"}").send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 302);
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(reached.load(Ordering::SeqCst), 0, "the redirect target was contacted");
    }

    #[tokio::test]
    async fn plain_http_off_loopback_is_refused_by_the_client() {
        let http = broker_http(Duration::from_secs(1), &["https://openapi.koreainvestment.com:9443"]).unwrap();
        let e = http.get("http://192.0.2.1:9/").send().await.unwrap_err();
        assert!(e.is_builder() || e.to_string().contains("scheme"), "{e}");
        let v = sensitive("Bearer t").unwrap();
        assert!(v.is_sensitive());
        assert_eq!(format!("{v:?}"), "Sensitive");
    }
}
