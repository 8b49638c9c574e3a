//! Pull over loopback: two edges serve their packages (the real backup routes, with keys made
//! by `apikey create`); `backup pull` is refused with a wrong key, resumes a transfer cut by
//! a proxy to identical bytes, and does nothing the second time; `coordinator --once` pulls
//! both edges, aggregates the day across them and leaves a receipt on each edge.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::{cmd, copy_of_recording, run, text};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

const DAY: &str = "20260114";

/// Packs the recorded day as edge `name` and creates a `backup:read` key for it.
fn edge_dir(tmp: &Path, name: &str) -> (PathBuf, String) {
    let data = copy_of_recording(&tmp.join(name));
    let out = run(cmd()
        .args(["backup", "create", "--date", DAY, "--data-dir"])
        .arg(&data)
        .env("STOCK_OBSERVER__BACKUP__SERVER", name));
    assert!(out.status.success(), "{}", text(&out));
    let out = run(cmd().args(["apikey", "create", "--scope", "backup:read", "--data-dir"]).arg(&data));
    assert!(out.status.success(), "{}", text(&out));
    let key = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(!key.is_empty() && !key.contains(char::is_whitespace), "stdout is only the key: {key:?}");
    (data, key)
}

/// Serves `data`'s packages on an ephemeral loopback port, as `collect` does.
async fn serve_edge(data: &Path, stop: watch::Receiver<bool>) -> SocketAddr {
    let mut http = config::load(None, None).unwrap().settings.http;
    http.listen = "127.0.0.1:0".parse().unwrap();
    let keys = Arc::new(api::keys::KeyStore::open(data));
    let app = api::backup::router(api::BackupRoutes::new(data.join("backups"), keys));
    api::serve_app(&http, app, Arc::default(), stop).await.unwrap().addr
}

/// Forwards connections to `upstream`, cutting each after `limit` response bytes.
async fn cutting_proxy(upstream: SocketAddr, limit: usize) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut server = TcpStream::connect(upstream).await.unwrap();
                let (mut cr, mut cw) = client.split();
                let (mut sr, mut sw) = server.split();
                let up = tokio::io::copy(&mut cr, &mut sw);
                let down = async {
                    let mut sent = 0;
                    let mut buf = vec![0u8; 8192];
                    while sent < limit {
                        let n = sr.read(&mut buf).await.unwrap_or(0);
                        if n == 0 {
                            break;
                        }
                        let n = n.min(limit - sent);
                        if cw.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                        sent += n;
                    }
                };
                tokio::select! { _ = up => {}, _ = down => {} }
            });
        }
    });
    addr
}

fn files_under(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push((p.strip_prefix(dir).unwrap().to_string_lossy().into_owned(), std::fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn pull_resumes_a_cut_transfer_and_a_coordinator_aggregates_two_edges_and_sends_receipts() {
    let tmp = tempfile::tempdir().unwrap();
    let (edge1, key1) = edge_dir(tmp.path(), "edge-1");
    let (edge2, key2) = edge_dir(tmp.path(), "edge-2");
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let (_stop_tx, stop) = watch::channel(false);
    let (a1, a2) =
        rt.block_on(async { (serve_edge(&edge1, stop.clone()).await, serve_edge(&edge2, stop.clone()).await) });
    let url1 = format!("http://{a1}");

    // A wrong key is refused (401), and the error does not echo it.
    let copies = tmp.path().join("central-copies");
    let out = run(cmd()
        .args(["backup", "pull", "--from", &url1, "--date", DAY, "--to"])
        .arg(&copies)
        .env("STOCK_OBSERVER_BACKUP_KEY", "so_0000000000000000_wrongwrongwrongwrongwrong"));
    let t = text(&out);
    assert!(!out.status.success() && t.contains("401") && t.contains("refused the key"), "{t}");
    assert!(!t.contains("wrongwrong"), "{t}");

    // Cut after 300 kB of responses: the pull fails part-way and leaves a partial file.
    let proxy = rt.block_on(cutting_proxy(a1, 300_000));
    let out = run(cmd()
        .args(["backup", "pull", "--from", &format!("http://{proxy}"), "--date", DAY, "--to"])
        .arg(&copies)
        .env("STOCK_OBSERVER_BACKUP_KEY", &key1));
    assert!(!out.status.success(), "the cut transfer must fail: {}", text(&out));
    let parts = files_under(&copies).into_iter().filter(|(n, _)| n.ends_with(".part")).count();
    assert_eq!(parts, 1, "{:?}", files_under(&copies).iter().map(|(n, _)| n.clone()).collect::<Vec<_>>());
    assert!(!copies.join(DAY).join("SUCCESS.marker").exists());

    // Direct, it resumes and ends with the edge's bytes, then its own marker.
    let out = run(cmd()
        .args(["backup", "pull", "--from", &url1, "--date", DAY, "--to"])
        .arg(&copies)
        .env("STOCK_OBSERVER_BACKUP_KEY", &key1));
    let t = text(&out);
    assert!(out.status.success() && t.contains("(1 resumed)"), "{t}");
    let mine: Vec<_> = files_under(&copies.join(DAY)).into_iter().filter(|(n, _)| n != "SUCCESS.marker").collect();
    let edges: Vec<_> =
        files_under(&edge1.join("backups").join(DAY)).into_iter().filter(|(n, _)| n != "SUCCESS.marker").collect();
    assert_eq!(mine.len(), edges.len());
    assert!(mine == edges, "the copy differs from the edge's package");
    let out = run(cmd().args(["backup", "verify"]).arg(copies.join(DAY)));
    assert!(out.status.success(), "{}", text(&out));
    // Again: nothing to do.
    let out = run(cmd()
        .args(["backup", "pull", "--from", &url1, "--date", DAY, "--to"])
        .arg(&copies)
        .env("STOCK_OBSERVER_BACKUP_KEY", &key1));
    assert!(out.status.success() && text(&out).contains("held already"), "{}", text(&out));

    // The coordinator over both edges.
    let central = tmp.path().join("central");
    let conf = tmp.path().join("coordinator.yaml");
    std::fs::write(
        &conf,
        format!(
            "name: central\ndir: {}\nlookback_days: 3650\npull_after: 30m\nretries: 1\nretry_interval: 1s\ntimeout: 10s\nedges:\n  - name: edge-1\n    url: {url1}\n    key_env: EDGE1_KEY\n    backup_at: \"21:00\"\n  - name: edge-2\n    url: http://{a2}\n    key_env: EDGE2_KEY\n    backup_at: \"21:00\"\n",
            central.display()
        ),
    )
    .unwrap();
    let out = run(cmd()
        .args(["coordinator", "--once", "--config"])
        .arg(&conf)
        .env("EDGE1_KEY", &key1)
        .env("EDGE2_KEY", &key2));
    let t = text(&out);
    assert!(t.contains(&format!("pulled [\"{DAY}\"], receipts sent [\"{DAY}\"]")), "{t}");
    // The edges recorded nothing yesterday (real time), so that day is reported missing:
    // a failed pull, and the exit status says so.
    assert!(!out.status.success() && t.contains("has no complete package for"), "{t}");
    let agg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(central.join("aggregate").join(format!("{DAY}.json"))).unwrap()).unwrap();
    let servers: Vec<&str> = agg["servers"].as_array().unwrap().iter().map(|s| s["server"].as_str().unwrap()).collect();
    assert_eq!(servers, ["edge-1", "edge-2"], "{agg:#}");
    assert_eq!(agg["missing"].as_array().unwrap().len(), 0);
    let files = agg["servers"][0]["files"].as_u64().unwrap();
    assert_eq!(agg["files"].as_u64().unwrap(), 2 * files);
    assert!(agg["servers"][0]["providers"].as_array().unwrap().len() == 2, "{agg:#}");
    let status: serde_json::Value =
        serde_json::from_slice(&std::fs::read(central.join("status.json")).unwrap()).unwrap();
    for e in ["edge-1", "edge-2"] {
        assert_eq!(status[e]["last_good_backup"], DAY, "{status:#}");
        assert_eq!(status[e]["reachable"], true, "{status:#}");
    }
    // Each edge now holds a receipt naming the coordinator and its own package's manifest.
    for edge in [&edge1, &edge2] {
        let r: serde_json::Value = serde_json::from_slice(
            &std::fs::read(edge.join("backups").join("receipts").join(format!("{DAY}.json"))).unwrap(),
        )
        .unwrap();
        assert_eq!(r["held_by"], "central");
        let marker: serde_json::Value =
            serde_json::from_slice(&std::fs::read(edge.join("backups").join(DAY).join("SUCCESS.marker")).unwrap())
                .unwrap();
        assert_eq!(r["manifest_sha256"], marker["manifest_sha256"]);
    }
    // A second round has nothing left to do.
    let out = run(cmd()
        .args(["coordinator", "--once", "--config"])
        .arg(&conf)
        .env("EDGE1_KEY", &key1)
        .env("EDGE2_KEY", &key2));
    assert!(text(&out).contains("pulled [], receipts sent []"), "{}", text(&out));
    // A missing key variable is named.
    let out = run(cmd().args(["coordinator", "--once", "--config"]).arg(&conf).env("EDGE1_KEY", &key1));
    assert!(!out.status.success() && text(&out).contains("EDGE2_KEY"), "{}", text(&out));
}

/// `collect` itself: at start it packs the finished day it finds, serves it to a
/// `backup:read` key, and a coordinator's receipt becomes a `backup_receipt` event in the
/// archive beside the `backup_created` one.
#[test]
fn collect_packs_a_finished_day_serves_it_and_records_the_coordinators_receipt() {
    use std::time::{Duration, Instant};

    let tmp = tempfile::tempdir().unwrap();
    let data = copy_of_recording(tmp.path());
    let out = run(cmd().args(["apikey", "create", "--scope", "backup:read", "--data-dir"]).arg(&data));
    let key = String::from_utf8(out.stdout).unwrap().trim().to_string();
    // The next day, in the evening: 20260114 is over.
    let (mut child, addr) = common::spawn_serving(
        cmd().args(["collect", "--speed", "10", "--start", "2026-01-15T20:50", "--data-dir"]).arg(&data),
    );
    let marker = data.join("backups").join(DAY).join("SUCCESS.marker");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !marker.exists() {
        assert!(Instant::now() < deadline, "no package of {DAY} after 60 s");
        std::thread::sleep(Duration::from_millis(100));
    }
    let central = tmp.path().join("central");
    let conf = tmp.path().join("coordinator.yaml");
    std::fs::write(
        &conf,
        format!(
            "name: central\ndir: {}\nlookback_days: 3650\npull_after: 30m\nretries: 0\nretry_interval: 1s\ntimeout: 10s\nedges:\n  - name: edge\n    url: http://{addr}\n    key_env: EDGE_KEY\n    backup_at: \"21:00\"\n",
            central.display()
        ),
    )
    .unwrap();
    let out = run(cmd().args(["coordinator", "--once", "--config"]).arg(&conf).env("EDGE_KEY", &key));
    assert!(text(&out).contains(&format!("receipts sent [\"{DAY}\"]")), "{}", text(&out));
    assert!(data.join("backups").join("receipts").join(format!("{DAY}.json")).is_file());

    assert!(std::process::Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap().success());
    assert!(child.wait().unwrap().success());
    let events: Vec<serde_json::Value> = common::lines_under(&data.join("system").join("lifecycle"));
    let of = |t: &str| events.iter().filter(|e| e["event_type"] == t && e["date"] == DAY).count();
    assert_eq!(of("backup_created"), 1, "{events:#?}");
    assert_eq!(of("backup_receipt"), 1, "{events:#?}");
    let out = run(cmd().args(["verify", "--data-dir"]).arg(&data));
    assert!(out.status.success(), "{}", text(&out));
}
