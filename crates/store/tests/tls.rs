//! `sslmode` against the loopback test server (which has no TLS): `require` fails with an
//! error that says what to do, `disable`, `prefer` and the loopback default connect.

mod common;

use std::path::Path;

use so_store::{Backend, Store, StoreConfig};

async fn status_of(url: String) -> Result<(), String> {
    let cfg = StoreConfig { url: Some(url), ..StoreConfig::default() };
    let store = Store::open(&cfg, Path::new("/nonexistent")).await.map_err(|e| e.to_string())?;
    store.status().await.map(|_| ()).map_err(|e| e.to_string())
}

#[tokio::test]
async fn sslmode_is_honoured_against_a_server_without_tls() {
    let server = common::pg();
    let url = server.create_db("tls_modes").expect("createdb");

    let e = status_of(format!("{url}?sslmode=require")).await.unwrap_err();
    assert!(e.contains("does not support TLS") && e.contains("sslmode"), "{e}");
    let e = status_of(format!("{url}?sslmode=verify-full")).await.unwrap_err();
    assert!(e.contains("does not support TLS"), "{e}");

    for ok in [url.clone(), format!("{url}?sslmode=disable"), format!("{url}?sslmode=prefer")] {
        status_of(ok.clone()).await.unwrap_or_else(|e| panic!("{ok}: {e}"));
    }
    let store = Store::open(&StoreConfig { url: Some(url), ..StoreConfig::default() }, Path::new("/x")).await.unwrap();
    assert!(store.describe().ends_with("/tls_modes?sslmode=disable"), "{}", store.describe());
}

#[tokio::test]
async fn a_password_in_the_url_is_refused_before_connecting() {
    for url in ["postgres://postgres:hunter2@127.0.0.1:1/db", "postgres://postgres@127.0.0.1:1/db?password=hunter2"] {
        let cfg = StoreConfig { url: Some(url.into()), ..StoreConfig::default() };
        let e = Store::open(&cfg, Path::new("/x")).await.err().expect("refused").to_string();
        assert!(e.contains(so_store::PASSWORD_ENV) && !e.contains("hunter2"), "{e}");
    }
}

/// Whether the store's own connection is encrypted, as the server sees it.
async fn encrypted(store: &Store) -> bool {
    let Store::Postgres(pg) = store else { panic!("not PostgreSQL") };
    pg.scalar_i64("SELECT count(*) FROM pg_stat_ssl WHERE pid = pg_backend_pid() AND ssl").await.unwrap() == 1
}

#[tokio::test]
async fn tls_is_used_and_the_certificate_and_host_name_are_verified() {
    let server = common::pg();
    server.create_db("tls_on").expect("createdb");
    let issued = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    server.enable_tls(&issued.cert.pem(), &issued.signing_key.serialize_pem()).expect("TLS on");
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, issued.cert.pem()).unwrap();
    let port = server.port();
    let open = |url: String, ca: Option<std::path::PathBuf>| async move {
        let cfg = StoreConfig { url: Some(url), tls_ca_file: ca, ..StoreConfig::default() };
        Store::open(&cfg, Path::new("/nonexistent")).await.unwrap()
    };

    // Verified TLS: the certificate is trusted through store.tls_ca_file and names the host.
    for mode in ["require", "verify-full", "prefer"] {
        let store = open(format!("postgres://postgres@localhost:{port}/tls_on?sslmode={mode}"), Some(ca.clone())).await;
        store.status().await.unwrap_or_else(|e| panic!("sslmode={mode}: {e}"));
        assert!(encrypted(&store).await, "sslmode={mode} connected without TLS");
    }
    // Loopback default is plain TCP.
    let store = open(format!("postgres://postgres@localhost:{port}/tls_on"), Some(ca.clone())).await;
    assert!(!encrypted(&store).await);

    // A certificate nobody vouches for is refused, with what to do about it.
    let store = open(format!("postgres://postgres@localhost:{port}/tls_on?sslmode=require"), None).await;
    let e = store.status().await.unwrap_err().to_string();
    assert!(e.contains("certificate") && e.contains("store.tls_ca_file"), "{e}");
    // So is one for another name (the certificate says localhost, not 127.0.0.1).
    let store = open(format!("postgres://postgres@127.0.0.1:{port}/tls_on?sslmode=require"), Some(ca)).await;
    let e = store.status().await.unwrap_err().to_string();
    assert!(e.contains("certificate"), "{e}");
}
