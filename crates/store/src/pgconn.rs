//! PostgreSQL connection settings from `store.url`: a password is refused in every form the
//! driver would accept (`user:pass@`, `?password=`, a `password=` key/value), `sslmode` is
//! honoured with TLS by rustls, and the form shown to people is rebuilt from the parsed
//! settings, never the raw string.
//!
//! `sslmode` is stricter than libpq's: whenever TLS is used the server certificate is
//! verified against the system trust store plus `store.tls_ca_file`, host name included, so
//! `require` means what libpq calls `verify-full` (`verify-ca` and `verify-full` are accepted
//! and mean the same). Default: `disable` for a loopback host or Unix socket, `require`
//! for every other host.

use std::fmt;
use std::net::IpAddr;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;

use percent_encoding::{AsciiSet, CONTROLS, percent_decode_str, utf8_percent_encode};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use tokio_postgres::config::{Host, SslMode as DriverSsl};
use tokio_postgres_rustls::MakeRustlsConnect;

/// The environment variable the PostgreSQL password comes from (else `PGPASSWORD`). It shares
/// the settings' `STOCK_OBSERVER__` prefix but is a secret, not a setting: the configuration
/// loader skips it, so it is never merged, validated or echoed with the settings.
pub const PASSWORD_ENV: &str = "STOCK_OBSERVER__STORE__PASSWORD";

/// Whether a connection URL carries a password (`scheme://user:pass@host`). Passwords come
/// from the environment only, so a URL can be logged and shown in errors.
pub fn url_has_password(url: &str) -> bool {
    let Some(rest) = url.split_once("://").map(|(_, r)| r) else { return false };
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    authority.rsplit_once('@').is_some_and(|(userinfo, _)| userinfo.contains(':'))
}

/// What `sslmode` asks for (see the module documentation for how it is stricter than libpq).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SslMode {
    /// Plain TCP.
    Disable,
    /// TLS (verified) when the server offers it, plain TCP when it does not.
    Prefer,
    /// TLS with a verified certificate, or no connection.
    Require,
}

impl SslMode {
    fn parse(s: &str) -> Option<SslMode> {
        match s {
            "disable" => Some(SslMode::Disable),
            "prefer" => Some(SslMode::Prefer),
            "require" | "verify-ca" | "verify-full" => Some(SslMode::Require),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
        }
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The refusal of a URL that carries a password; names the variable to use instead.
pub fn password_refusal() -> String {
    format!(
        "must not contain a password (as `user:password@`, `password=` or any other form); \
         set {PASSWORD_ENV} (or PGPASSWORD) instead"
    )
}

/// Whether `url` carries a password in any form: userinfo `user:pass@` (even an empty
/// one), or a `password` parameter, plain or percent-encoded, in a query string or a
/// key/value connection string.
pub fn has_password(url: &str) -> bool {
    if url_has_password(url) {
        return true;
    }
    let decoded: String = percent_decode_str(url)
        .decode_utf8_lossy()
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_ascii_lowercase();
    decoded.contains("password=")
}

/// A parsed, password-free PostgreSQL URL.
#[derive(Clone, Debug)]
pub struct PgUrl {
    /// The driver's settings, `ssl_mode` already set from [`PgUrl::sslmode`].
    pub config: tokio_postgres::Config,
    pub sslmode: SslMode,
    /// Every host is loopback (or a Unix socket).
    pub loopback: bool,
}

impl PgUrl {
    /// Parses `url` (`postgres://` or `postgresql://`). Errors never repeat the URL or any
    /// value of it, so they can be shown as they are.
    pub fn parse(url: &str) -> Result<PgUrl, String> {
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err("must start with postgres:// or postgresql://".into());
        }
        if has_password(url) {
            return Err(password_refusal());
        }
        // `sslmode` is ours: the driver knows only disable/prefer/require and verifies nothing
        // by itself.
        let (base, query) = url.split_once('?').unwrap_or((url, ""));
        let mut kept = Vec::new();
        let mut sslmode = None;
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            if percent_decode_str(k).decode_utf8_lossy() == "sslmode" {
                let v = percent_decode_str(v).decode_utf8_lossy();
                sslmode = Some(SslMode::parse(&v).ok_or_else(|| {
                    format!("sslmode {v:?} is not one of disable, prefer, require, verify-ca, verify-full")
                })?);
            } else {
                kept.push(pair);
            }
        }
        let stripped = if kept.is_empty() { base.to_string() } else { format!("{base}?{}", kept.join("&")) };
        let mut config = tokio_postgres::Config::from_str(&stripped).map_err(|e| e.to_string())?;
        if config.get_password().is_some() {
            return Err(password_refusal());
        }
        let loopback = all_loopback(&config);
        let sslmode = sslmode.unwrap_or(if loopback { SslMode::Disable } else { SslMode::Require });
        config.ssl_mode(match sslmode {
            SslMode::Disable => DriverSsl::Disable,
            SslMode::Prefer => DriverSsl::Prefer,
            SslMode::Require => DriverSsl::Require,
        });
        Ok(PgUrl { config, sslmode, loopback })
    }

    /// `postgres://user@host:port/db?sslmode=…`, rebuilt from the parsed settings (safe to
    /// print: there is no password to leave out, and nothing unparsed is copied through).
    pub fn display(&self) -> String {
        let c = &self.config;
        let mut s = String::from("postgres://");
        if let Some(user) = c.get_user() {
            s.push_str(&enc(user));
            s.push('@');
        }
        let ports = c.get_ports();
        let hosts: Vec<String> = c
            .get_hosts()
            .iter()
            .enumerate()
            .map(|(i, h)| {
                let host = match h {
                    Host::Tcp(h) if h.contains(':') && !h.starts_with('[') => format!("[{h}]"),
                    Host::Tcp(h) => enc(h),
                    Host::Unix(p) => enc(&p.display().to_string()),
                };
                let port = ports.get(i).or(if ports.len() == 1 { ports.first() } else { None });
                port.map_or(host.clone(), |p| format!("{host}:{p}"))
            })
            .collect();
        s.push_str(&hosts.join(","));
        if let Some(db) = c.get_dbname() {
            s.push('/');
            s.push_str(&enc(db));
        }
        s.push_str("?sslmode=");
        s.push_str(self.sslmode.as_str());
        s
    }
}

/// The shown form of a configured store URL: rebuilt from the parsed settings for
/// PostgreSQL, the path for SQLite; a URL that does not parse is not shown at all.
pub fn shown_url(url: &str) -> String {
    if url.starts_with("sqlite://") && !has_password(url) {
        return url.to_string();
    }
    match PgUrl::parse(url) {
        Ok(u) => u.display(),
        Err(_) => "(invalid, not shown)".to_string(),
    }
}

/// Characters escaped in the shown URL's user, host and database names.
const SHOWN: &AsciiSet =
    &CONTROLS.add(b' ').add(b'%').add(b'/').add(b'?').add(b'#').add(b'@').add(b':').add(b',').add(b'&').add(b'=');

fn enc(s: &str) -> String {
    utf8_percent_encode(s, SHOWN).to_string()
}

fn is_loopback_name(h: &str) -> bool {
    let h = h.trim_start_matches('[').trim_end_matches(']');
    h.eq_ignore_ascii_case("localhost") || h.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

fn all_loopback(c: &tokio_postgres::Config) -> bool {
    let hosts_local = c.get_hosts().iter().all(|h| match h {
        Host::Tcp(h) => is_loopback_name(h),
        Host::Unix(_) => true,
    });
    hosts_local && c.get_hostaddrs().iter().all(IpAddr::is_loopback)
}

/// The TLS connector: rustls (aws-lc-rs, as reqwest), trusting the system store plus the PEM
/// certificates in `ca_file`. Loads nothing when `sslmode` is `disable`.
pub fn tls_connector(sslmode: SslMode, ca_file: Option<&Path>) -> Result<MakeRustlsConnect, String> {
    let mut roots = rustls::RootCertStore::empty();
    if sslmode != SslMode::Disable {
        // Unreadable entries in the system store are skipped; what matters is whether the
        // server's chain verifies, and that failure names store.tls_ca_file.
        for cert in rustls_native_certs::load_native_certs().certs {
            let _ = roots.add(cert);
        }
        if let Some(path) = ca_file {
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                .map_err(|e| format!("store.tls_ca_file {}: {e}", path.display()))?;
            if certs.is_empty() {
                return Err(format!("store.tls_ca_file {}: no PEM certificate in it", path.display()));
            }
            for cert in certs {
                roots.add(cert).map_err(|e| format!("store.tls_ca_file {}: {e}", path.display()))?;
            }
        }
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS set-up: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_refused_in_every_form() {
        for url in [
            "postgres://u:secret@h/db",
            "postgres://u:@h/db",
            "postgres://u@h/db?password=secret",
            "postgres://u@h/db?sslmode=require&password=secret",
            "postgres://u@h/db?pass%77ord=secret",
            "postgres://u@h/db?PASSWORD=secret",
            "postgresql://h/db?user=u&password = secret",
            "postgres://u@h/db?options=password%3Dsecret",
        ] {
            let e = PgUrl::parse(url).unwrap_err();
            assert!(e.contains(PASSWORD_ENV) && !e.contains("secret"), "{url}: {e}");
        }
    }

    #[test]
    fn sslmode_defaults_by_host_and_is_honoured() {
        let mode = |u: &str| PgUrl::parse(u).unwrap().sslmode;
        assert_eq!(mode("postgres://u@127.0.0.1:5432/db"), SslMode::Disable);
        assert_eq!(mode("postgres://u@localhost/db"), SslMode::Disable);
        assert_eq!(mode("postgres://u@[::1]:5432/db"), SslMode::Disable);
        assert_eq!(mode("postgres://u@%2Fvar%2Frun%2Fpostgresql/db"), SslMode::Disable);
        assert_eq!(mode("postgres://u@db.example.com/db"), SslMode::Require);
        assert_eq!(mode("postgres://u@127.0.0.1,db.example.com/db"), SslMode::Require);
        assert_eq!(mode("postgres://u@db.example.com/db?sslmode=disable"), SslMode::Disable);
        assert_eq!(mode("postgres://u@127.0.0.1/db?sslmode=require"), SslMode::Require);
        assert_eq!(mode("postgres://u@h/db?connect_timeout=3&sslmode=verify-full"), SslMode::Require);
        assert_eq!(mode("postgres://u@h/db?sslmode=prefer"), SslMode::Prefer);
        let e = PgUrl::parse("postgres://u@h/db?sslmode=allow").unwrap_err();
        assert!(e.contains("sslmode"), "{e}");
    }

    #[test]
    fn the_shown_form_is_rebuilt_from_the_parsed_settings() {
        let u =
            PgUrl::parse("postgresql://obs@db.example.com:6543/market?connect_timeout=3&application_name=x").unwrap();
        assert_eq!(u.display(), "postgres://obs@db.example.com:6543/market?sslmode=require");
        let u = PgUrl::parse("postgres://obs@127.0.0.1:5432/market").unwrap();
        assert_eq!(u.display(), "postgres://obs@127.0.0.1:5432/market?sslmode=disable");
        assert_eq!(shown_url("postgres://u:hunter2@h/db"), "(invalid, not shown)");
        assert_eq!(shown_url("sqlite:///tmp/x.db"), "sqlite:///tmp/x.db");
    }

    #[test]
    fn a_ca_file_without_certificates_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("ca.pem");
        std::fs::write(&p, "not a certificate\n").unwrap();
        let e = tls_connector(SslMode::Require, Some(&p)).err().unwrap();
        assert!(e.contains("store.tls_ca_file"), "{e}");
        assert!(tls_connector(SslMode::Disable, None).is_ok());
    }
}
