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
