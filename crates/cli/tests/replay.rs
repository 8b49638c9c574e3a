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

    for sub in ["swing", "scalp"] {
        let (a, b) = (files(&data, sub), files(&out, sub));
        assert!(!a.is_empty(), "the recording has no {sub} files");
        assert_eq!(a.iter().map(|f| &f.0).collect::<Vec<_>>(), b.iter().map(|f| &f.0).collect::<Vec<_>>());
        for ((name, x), (_, y)) in a.iter().zip(&b) {
            if x != y {
                let (xs, ys) = (String::from_utf8_lossy(x), String::from_utf8_lossy(y));
                let first = xs.lines().zip(ys.lines()).find(|(l, r)| l != r);
                panic!("{name} differs ({} vs {} bytes); first differing lines: {first:?}", x.len(), y.len());
            }
        }
    }
    assert!(files(&data, "swing").iter().any(|f| f.0.contains("upbit")), "crypto swing recorded and replayed");
    let verify = run(cmd().args(["verify", "--data-dir"]).arg(&out));
    assert!(verify.status.success(), "{}", text(&verify));
}
