//! Replay equality: the swing and scalp files of a replay equal the recording's.

mod common;

use std::path::Path;

use common::*;

fn files(root: &Path, sub: &str) -> Vec<(String, Vec<u8>)> {
    fn walk(dir: &Path, root: &Path, out: &mut Vec<(String, Vec<u8>)>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, root, out);
            } else {
                let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
                out.push((rel, std::fs::read(&p).unwrap()));
            }
        }
    }
    let mut out = Vec::new();
    walk(&root.join(sub), root, &mut out);
    out.sort();
    out
}

#[test]
fn replay_reproduces_swing_and_scalp_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let (data, out) = (dir.path().join("data"), dir.path().join("replayed"));
    let rec = run(cmd()
        .args(["collect", "--speed", "120", "--start", "2026-01-14T10:00", "--until", "10:12", "--data-dir"])
        .arg(&data)
        .env("STOCK_OBSERVER__PROVIDERS__UPBIT__ENABLED", "true"));
    assert!(rec.status.success(), "{}", text(&rec));
    let rep = run(cmd().args(["replay", "--raw"]).arg(&data).arg("--out").arg(&out));
    assert!(rep.status.success(), "{}", text(&rep));

    // Lines are byte for byte the same and in the same order. Which file of a track a line
    // lands in may differ under overload: a record that reaches the sink after its window's
    // file was closed goes into the next file (a closed file never reopens), while a replay
    // places it by its time. So compare each track's files concatenated in time order.
    for sub in ["swing", "scalp"] {
        let (a, b) = (files(&data, sub), files(&out, sub));
        assert!(!a.is_empty(), "the recording has no {sub} files");
        let track = |f: &str| f.rsplitn(3, '/').nth(2).unwrap_or_default().to_string();
        let concat = |fs: &[(String, Vec<u8>)]| {
            let mut m: std::collections::BTreeMap<String, Vec<u8>> = Default::default();
            for (name, bytes) in fs {
                m.entry(track(name)).or_default().extend_from_slice(bytes);
            }
            m
        };
        let (x, mut y) = (concat(&a), concat(&b));
        // Samples the recording sampled down under overload are in its overflow ledger and
        // in the replay: take them out of the replay before comparing.
        let dropped: std::collections::HashSet<(String, String)> = lines_under(&data.join("system/overflow"))
            .iter()
            .filter(|e| e["decision_reason"] == "sampled_down_queue_full")
            .map(|e| (e["symbol"].as_str().unwrap().to_string(), e["timestamp"].as_str().unwrap().to_string()))
            .collect();
        if sub == "scalp" && !dropped.is_empty() {
            for bytes in y.values_mut() {
                let kept: Vec<&str> = std::str::from_utf8(bytes)
                    .unwrap()
                    .lines()
                    .filter(|l| {
                        let v: serde_json::Value = serde_json::from_str(l).unwrap();
                        let key =
                            (v["symbol"].as_str().unwrap().to_string(), v["event_time"].as_str().unwrap().to_string());
                        !dropped.contains(&key)
                    })
                    .collect();
                *bytes = kept.iter().flat_map(|l| format!("{l}\n").into_bytes()).collect();
            }
        }
        assert_eq!(x.keys().collect::<Vec<_>>(), y.keys().collect::<Vec<_>>());
        for (name, bytes) in &x {
            let other = &y[name];
            if bytes != other {
                let (xs, ys) = (String::from_utf8_lossy(bytes), String::from_utf8_lossy(other));
                let first = xs.lines().zip(ys.lines()).find(|(l, r)| l != r);
                panic!("{name} differs ({} vs {} bytes); first differing lines: {first:?}", bytes.len(), other.len());
            }
        }
    }
    assert!(files(&data, "swing").iter().any(|f| f.0.contains("upbit")), "crypto swing recorded and replayed");
    let verify = run(cmd().args(["verify", "--data-dir"]).arg(&out));
    assert!(verify.status.success(), "{}", text(&verify));
}
