//! The backup pull source on the wire: a real listener on 127.0.0.1:0, packages built by
//! hand in a tempdir, reqwest (and raw TCP where reqwest would normalise the path) as the
//! coordinator.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lifecycle::package::layout::{FILES, FORMAT};
use lifecycle::package::{MANIFEST, MARKER, PackageFile, PackageManifest, SUMS, SuccessMarker};
use model::settings::Interval;
use model::{Day, UtcTime};
use reqwest::StatusCode;
use sha2::{Digest, Sha256};
use so_api::backup::{BackupRoutes, PackageList, Receipt};
use so_api::keys::{KeyStore, Scope};
use so_api::{HttpConfig, Stats};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

const DAY: &str = "20260114";
/// A package cut short: files and MANIFEST.json, no SUCCESS.marker.
const UNFINISHED: &str = "20260115";
const RAW: &str = "files/raw/kis/20260114/09.jsonl.zst";

mod common;

use common::logs;

// ---- a package built by hand ------------------------------------------------------------

fn sha(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn t(s: &str) -> UtcTime {
    UtcTime::parse(s).unwrap()
}

/// Lines that do not compress much, so the stored file spans several body chunks.
fn raw_lines(n: usize) -> Vec<u8> {
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut out = Vec::new();
    for seq in 0..n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(
            format!("{{\"seq\":{seq},\"frame\":\"{x:016x}{:016x}\"}}\n", x.rotate_left(29)).as_bytes(),
        );
    }
    out
}

/// Writes `date`'s package under `backups`; with `complete`, its SUCCESS.marker too.
/// Returns the marker's manifest sha256.
fn write_package(backups: &Path, date: &str, complete: bool) -> String {
    let dir = backups.join(date);
    let originals: Vec<(String, Vec<u8>)> = vec![
        (format!("raw/kis/{date}/09.jsonl"), raw_lines(20_000)),
        (format!("manifests/{date}.json"), b"{\"files\":[]}\n".to_vec()),
    ];
    let mut files = Vec::new();
    let mut sums = String::new();
    for (original, bytes) in &originals {
        let stored = zstd::encode_all(bytes.as_slice(), 3).unwrap();
        let rel = format!("{FILES}/{original}.zst");
        let path = dir.join(&rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &stored).unwrap();
        sums.push_str(&format!("{}  {rel}\n", sha(&stored)));
        // Compressed by the package, not at rest in the archive.
        files.push(PackageFile {
            path: rel,
            size: stored.len() as u64,
            sha256: sha(&stored),
            original_path: original.clone(),
            original_size: bytes.len() as u64,
            original_sha256: sha(bytes),
            lines: bytes.iter().filter(|&&b| b == b'\n').count() as u64,
            at_rest: false,
        });
    }
    let mut manifest = PackageManifest {
        format: FORMAT.to_string(),
        date: date.parse().unwrap(),
        server: "edge-test".into(),
        created_at: t("2026-01-14T07:00:00.000Z"),
        compression: "zstd".into(),
        providers: vec!["kis".into()],
        gaps: 0,
        files,
        manifest_checksum: None,
    };
    manifest.manifest_checksum = Some(manifest.checksum());
    let manifest_bytes = serde_json::to_vec_pretty(&manifest).unwrap();
    std::fs::write(dir.join(MANIFEST), &manifest_bytes).unwrap();
    std::fs::write(dir.join(SUMS), sums).unwrap();
    let manifest_sha = sha(&manifest_bytes);
    if complete {
        let marker = SuccessMarker {
            manifest_sha256: manifest_sha.clone(),
            files: manifest.files.len() as u64,
            completed_at: t("2026-01-14T07:00:05.000Z"),
        };
        std::fs::write(dir.join(MARKER), serde_json::to_vec_pretty(&marker).unwrap()).unwrap();
    }
    manifest_sha
}

// ---- the server -------------------------------------------------------------------------

struct Keys {
    backup: String,
    read: String,
    admin: String,
    revoked: String,
    /// A well-formed key of a known id with the wrong secret.
    wrong: String,
}

struct Server {
    base: String,
    addr: std::net::SocketAddr,
    dir: tempfile::TempDir,
    keys: Keys,
    manifest_sha: String,
    receipts: Arc<Mutex<Vec<Receipt>>>,
    _stop: watch::Sender<bool>,
}

impl Server {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
    fn backups(&self) -> std::path::PathBuf {
        self.dir.path().join("backups")
    }
    fn stored(&self, rel: &str) -> Vec<u8> {
        std::fs::read(self.backups().join(DAY).join(rel)).unwrap()
    }
}

fn config() -> HttpConfig {
    use figment::providers::{Format, Yaml};
    let yaml = include_str!("../../../configs/observer.yaml");
    let mut cfg: HttpConfig = figment::Figment::from(Yaml::string(yaml)).extract_inner("http").unwrap();
    cfg.listen = "127.0.0.1:0".parse().unwrap();
    cfg.request_timeout = Interval::from_millis(10_000);
    cfg
}

async fn start() -> Server {
    logs();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let manifest_sha = write_package(&data.join("backups"), DAY, true);
    write_package(&data.join("backups"), UNFINISHED, false);

    let store = KeyStore::open(data);
    let now = t("2026-01-14T08:00:00.000Z");
    let backup = store.create(Scope::BackupRead, "coordinator", now).unwrap().text().to_string();
    let read = store.create(Scope::Read, "dashboard", now).unwrap().text().to_string();
    let admin = store.create(Scope::Admin, "operator", now).unwrap().text().to_string();
    let old = store.create(Scope::BackupRead, "old coordinator", now).unwrap();
    store.revoke(&old.record.id, now).unwrap();
    let revoked = old.text().to_string();
    let wrong = format!("{}{}", &backup[..backup.len() - 64], "ab".repeat(32));
    let keys = Keys { backup, read, admin, revoked, wrong };

    let receipts = Arc::new(Mutex::new(Vec::new()));
    let seen = receipts.clone();
    // A separate store instance: the server reads the file as another process would.
    let routes = BackupRoutes::new(data.join("backups"), Arc::new(KeyStore::open(data)))
        .on_receipt(move |r| seen.lock().unwrap().push(r.clone()));
    let (stop, rx) = watch::channel(false);
    let l = so_api::serve_app(&config(), so_api::backup::router(routes), Arc::new(Stats::default()), rx).await.unwrap();
    Server { base: format!("http://{}", l.addr), addr: l.addr, dir, keys, manifest_sha, receipts, _stop: stop }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(20)).build().unwrap()
}

async fn get(s: &Server, path: &str, key: Option<&str>) -> reqwest::Response {
    let mut req = client().get(s.url(path));
    if let Some(k) = key {
        req = req.bearer_auth(k);
    }
    req.send().await.unwrap()
}

async fn error_code(res: reqwest::Response) -> (StatusCode, String, String) {
    let status = res.status();
    let v: serde_json::Value = serde_json::from_slice(&res.bytes().await.unwrap()).unwrap();
    (status, v["error"]["code"].as_str().unwrap().to_string(), v["error"]["message"].as_str().unwrap().to_string())
}

/// One request over a raw socket, path sent exactly as given; the status code.
async fn raw_status(addr: std::net::SocketAddr, path: &str, key: &str) -> u16 {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: t\r\nX-API-Key: {key}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut got)).await.unwrap().unwrap();
    let text = String::from_utf8_lossy(&got);
    let status = text.split(' ').nth(1).unwrap_or_default();
    status.parse().unwrap_or_else(|_| panic!("no status in {text:?}"))
}

// ---- tests ------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_and_scopes_decide_who_may_pull_and_no_key_reaches_the_log() {
    let s = start().await;
    let list = "/api/v1/backup/packages";

    let res = get(&s, list, None).await;
    assert_eq!(res.headers()["www-authenticate"], "Bearer");
    assert_eq!(error_code(res).await.0, StatusCode::UNAUTHORIZED);
    for (what, key) in
        [("wrong secret", &s.keys.wrong), ("revoked", &s.keys.revoked), ("garbage", &"nonsense".to_string())]
    {
        let (status, code, message) = error_code(get(&s, list, Some(key)).await).await;
        assert_eq!((status, code.as_str()), (StatusCode::UNAUTHORIZED, "unauthorized"), "{what}");
        assert!(!message.contains(key.as_str()), "{what}: {message}");
    }
    let basic = client().get(s.url(list)).basic_auth("u", Some(&s.keys.backup)).send().await.unwrap();
    assert_eq!(basic.status(), StatusCode::UNAUTHORIZED, "only Bearer");
    let (status, code, _) = error_code(get(&s, list, Some(&s.keys.read)).await).await;
    assert_eq!((status, code.as_str()), (StatusCode::FORBIDDEN, "forbidden"));
    // The receipt route needs the same scope.
    let res = client()
        .post(s.url(&format!("/api/v1/backup/packages/{DAY}/receipt")))
        .bearer_auth(&s.keys.read)
        .header("content-type", "application/json")
        .body(serde_json::json!({"held_by": "x", "manifest_sha256": s.manifest_sha}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert!(s.receipts.lock().unwrap().is_empty());

    // Bearer, X-API-Key, and admin (which holds every scope).
    let res = get(&s, list, Some(&s.keys.backup)).await;
    assert_eq!(res.status(), StatusCode::OK);
    let listed = serde_json::from_slice::<PackageList>(&res.bytes().await.unwrap()).unwrap().packages;
    assert_eq!(listed.len(), 1, "the unfinished package is not listed: {listed:?}");
    assert_eq!(listed[0].date, DAY.parse::<Day>().unwrap());
    assert_eq!(listed[0].manifest_sha256, s.manifest_sha);
    assert_eq!(listed[0].files, 2);
    assert_eq!(listed[0].completed_at, t("2026-01-14T07:00:05.000Z"));
    let res = client().get(s.url(list)).header("X-API-Key", &s.keys.backup).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(get(&s, list, Some(&s.keys.admin)).await.status(), StatusCode::OK);

    // A key revoked while the server runs is refused from the next request.
    let id = |key: &str| key[3..19].to_string();
    KeyStore::open(s.dir.path()).revoke(&id(&s.keys.admin), t("2026-01-14T09:00:00.000Z")).unwrap();
    assert_eq!(get(&s, list, Some(&s.keys.admin)).await.status(), StatusCode::UNAUTHORIZED);

    let logs = logs();
    for key in [&s.keys.backup, &s.keys.read, &s.keys.admin, &s.keys.revoked, &s.keys.wrong] {
        assert!(!logs.contains(key.as_str()), "a key in the log:\n{logs}");
        assert!(!logs.contains(&key[20..]), "a secret in the log:\n{logs}");
    }
    for (key, why) in [(&s.keys.wrong, "wrong secret"), (&s.keys.revoked, "revoked"), (&s.keys.read, "scope")] {
        let line = logs
            .lines()
            .find(|l| l.contains(&id(key)) && l.contains("refused") && l.contains(why))
            .unwrap_or_else(|| panic!("no refusal of {} ({why}) in the log:\n{logs}", id(key)));
        assert!(line.contains("WARN") && line.contains("peer=127.0.0.1:"), "{line}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_are_served_whole_or_from_an_offset_with_their_sha256() {
    let s = start().await;
    let key = s.keys.backup.as_str();
    let url = format!("/api/v1/backup/packages/{DAY}/{RAW}");
    let stored = s.stored(RAW);
    assert!(stored.len() > 3 * 128 * 1024, "spans several body chunks: {}", stored.len());

    let res = get(&s, &url, Some(key)).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-length"], stored.len().to_string().as_str());
    assert_eq!(res.headers()["accept-ranges"], "bytes");
    assert_eq!(res.headers()["etag"], format!("\"{}\"", sha(&stored)).as_str());
    assert_eq!(res.bytes().await.unwrap().as_ref(), stored.as_slice());

    // A pull cut at 200,001 bytes resumes from there.
    let cut = 200_001;
    let res = client().get(s.url(&url)).bearer_auth(key).header("Range", format!("bytes={cut}-")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::PARTIAL_CONTENT);
    let len = stored.len();
    assert_eq!(res.headers()["content-range"], format!("bytes {cut}-{}/{len}", len - 1).as_str());
    assert_eq!(res.headers()["content-length"], (len - cut).to_string().as_str());
    assert_eq!(res.bytes().await.unwrap().as_ref(), &stored[cut..]);

    let res = client().get(s.url(&url)).bearer_auth(key).header("Range", "bytes=10-19").send().await.unwrap();
    assert_eq!(res.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(res.headers()["content-range"], format!("bytes 10-19/{len}").as_str());
    assert_eq!(res.bytes().await.unwrap().as_ref(), &stored[10..20]);

    for bad in [format!("bytes={len}-"), format!("bytes={}-", len + 5), "bytes=20-10".to_string()] {
        let res = client().get(s.url(&url)).bearer_auth(key).header("Range", &bad).send().await.unwrap();
        assert_eq!(res.headers()["content-range"], format!("bytes */{len}").as_str(), "{bad}");
        let (status, code, _) = error_code(res).await;
        assert_eq!((status, code.as_str()), (StatusCode::RANGE_NOT_SATISFIABLE, "range_not_satisfiable"), "{bad}");
    }

    // The control files: MANIFEST.json's tag is the marker's sha256.
    let res = get(&s, &format!("/api/v1/backup/packages/{DAY}/{MANIFEST}"), Some(key)).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["etag"], format!("\"{}\"", s.manifest_sha).as_str());
    assert_eq!(sha(&res.bytes().await.unwrap()), s.manifest_sha);
    for control in [SUMS, MARKER] {
        let res = get(&s, &format!("/api/v1/backup/packages/{DAY}/{control}"), Some(key)).await;
        assert_eq!(res.status(), StatusCode::OK, "{control}");
        assert_eq!(res.bytes().await.unwrap().as_ref(), s.stored(control).as_slice(), "{control}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_outside_a_complete_package_is_served() {
    let s = start().await;
    let key = s.keys.backup.as_str();
    // The unfinished package's files exist on disk but are not served.
    let unfinished_raw = RAW.replace(DAY, UNFINISHED);
    assert!(s.backups().join(UNFINISHED).join(&unfinished_raw).is_file());
    for rel in [unfinished_raw.as_str(), MANIFEST, SUMS] {
        let (status, code, _) =
            error_code(get(&s, &format!("/api/v1/backup/packages/{UNFINISHED}/{rel}"), Some(key)).await).await;
        assert_eq!((status, code.as_str()), (StatusCode::NOT_FOUND, "not_found"), "{rel}");
    }
    // A file beside the package, and one that is there but not in the manifest.
    std::fs::write(s.backups().join(DAY).join("files/extra.zst"), b"x").unwrap();
    std::fs::write(s.dir.path().join("secret.txt"), b"x").unwrap();
    let day_dotdot =
        ["/api/v1/backup/packages/../auth/api_keys.json", "/api/v1/backup/packages/%2e%2e/auth/api_keys.json"];
    for path in day_dotdot {
        // `{date}` = `..` is not a date.
        assert_eq!(raw_status(s.addr, path, key).await, 400, "{path}");
    }
    for path in [
        format!("/api/v1/backup/packages/{DAY}/files/extra.zst"),
        format!("/api/v1/backup/packages/{DAY}/../../secret.txt"),
        format!("/api/v1/backup/packages/{DAY}/files/../../../secret.txt"),
        format!("/api/v1/backup/packages/{DAY}/files/../{MANIFEST}"),
        format!("/api/v1/backup/packages/{DAY}/%2e%2e/%2e%2e/secret.txt"),
        format!("/api/v1/backup/packages/{DAY}/%2E%2E%2F%2E%2E%2Fsecret.txt"),
        format!("/api/v1/backup/packages/{DAY}//etc/passwd"),
        format!("/api/v1/backup/packages/{DAY}/%2Fetc%2Fpasswd"),
        format!("/api/v1/backup/packages/{DAY}/{}", s.dir.path().join("secret.txt").display()),
        format!("/api/v1/backup/packages/{DAY}/./{MANIFEST}"),
    ] {
        assert_eq!(raw_status(s.addr, &path, key).await, 404, "{path}");
    }
    // A bad date names the parameter.
    for bad in ["2026011", "20261301", "latest"] {
        let (status, code, message) =
            error_code(get(&s, &format!("/api/v1/backup/packages/{bad}/{MANIFEST}"), Some(key)).await).await;
        assert_eq!((status, code.as_str()), (StatusCode::BAD_REQUEST, "bad_request"), "{bad}");
        assert!(message.starts_with("date:") && message.contains(bad), "{message}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receipt_is_recorded_only_for_this_edges_own_package() {
    let s = start().await;
    let key = s.keys.backup.as_str();
    let post = |date: &str, body: serde_json::Value| {
        client()
            .post(s.url(&format!("/api/v1/backup/packages/{date}/receipt")))
            .bearer_auth(key)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
    };

    let wrong = "0".repeat(64);
    let (status, code, message) =
        error_code(post(DAY, serde_json::json!({"held_by": "coord-1", "manifest_sha256": wrong})).await.unwrap()).await;
    assert_eq!((status, code.as_str()), (StatusCode::CONFLICT, "conflict"), "{message}");
    let receipt_file = s.backups().join("receipts").join(format!("{DAY}.json"));
    assert!(!receipt_file.exists());

    let res =
        post(UNFINISHED, serde_json::json!({"held_by": "coord-1", "manifest_sha256": s.manifest_sha})).await.unwrap();
    assert_eq!(error_code(res).await.0, StatusCode::NOT_FOUND);
    let res =
        post("2026-01-14", serde_json::json!({"held_by": "coord-1", "manifest_sha256": s.manifest_sha})).await.unwrap();
    let (status, _, message) = error_code(res).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(message.starts_with("date:"), "{message}");
    for body in [
        serde_json::json!({"held_by": "coord-1"}),
        serde_json::json!({"held_by": "", "manifest_sha256": s.manifest_sha}),
        serde_json::json!({"held_by": "coord-1", "manifest_sha256": "abc"}),
        serde_json::json!({"held_by": "coord-1", "manifest_sha256": s.manifest_sha, "extra": 1}),
    ] {
        let (status, code, _) = error_code(post(DAY, body.clone()).await.unwrap()).await;
        assert_eq!((status, code.as_str()), (StatusCode::BAD_REQUEST, "bad_request"), "{body}");
    }
    assert!(s.receipts.lock().unwrap().is_empty());

    let res = post(DAY, serde_json::json!({"held_by": "coord-1", "manifest_sha256": s.manifest_sha.to_uppercase()}))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let stored: Receipt = serde_json::from_slice(&std::fs::read(&receipt_file).unwrap()).unwrap();
    assert_eq!(stored.date, DAY.parse::<Day>().unwrap());
    assert_eq!(stored.held_by, "coord-1");
    assert_eq!(stored.manifest_sha256, s.manifest_sha);
    assert_eq!(*s.receipts.lock().unwrap(), vec![stored], "the hook saw the receipt recorded");
}

/// `http.metrics_auth`: /metrics needs a read key (a Prometheus bearer token); /health stays
/// open; without it /metrics is open as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_can_require_a_read_key_and_health_stays_open() {
    let dir = tempfile::tempdir().unwrap();
    let keys = Arc::new(KeyStore::open(dir.path()));
    let now = t("2026-01-14T08:00:00.000Z");
    let read = keys.create(Scope::Read, "prometheus", now).unwrap().text().to_string();
    let backup = keys.create(Scope::BackupRead, "coordinator", now).unwrap().text().to_string();
    let http = reqwest::Client::new();
    for locked in [true, false] {
        let live = Arc::new(engine::Live::detached(model::Clock::real(), dir.path().into()));
        let mounts = so_api::Mounts { metrics_keys: locked.then(|| keys.clone()), ..Default::default() };
        let (stop, rx) = watch::channel(false);
        let l = so_api::serve(&config(), live, mounts, rx).await.unwrap();
        let url = |p: &str| format!("http://{}{p}", l.addr);
        let status = |r: reqwest::Response| r.status();
        assert_eq!(status(http.get(url("/health")).send().await.unwrap()), StatusCode::OK, "locked={locked}");
        let anon = status(http.get(url("/metrics")).send().await.unwrap());
        let with_read = http.get(url("/metrics")).bearer_auth(&read).send().await.unwrap();
        assert_eq!(with_read.status(), StatusCode::OK);
        assert!(with_read.text().await.unwrap().contains("stock_observer_"), "the exposition");
        let with_backup = status(http.get(url("/metrics")).bearer_auth(&backup).send().await.unwrap());
        if locked {
            assert_eq!((anon, with_backup), (StatusCode::UNAUTHORIZED, StatusCode::FORBIDDEN));
        } else {
            assert_eq!((anon, with_backup), (StatusCode::OK, StatusCode::OK));
        }
        let _ = stop.send(true);
    }
}
