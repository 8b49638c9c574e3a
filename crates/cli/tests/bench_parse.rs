//! `bench parse --input FILE` times the parsers on captured WebSocket messages (one per
//! line, as the venue sends them), and `--emit FILE` writes the generated ones: the counts
//! printed are the file's lines, and a line that does not parse is counted by number.

mod common;

use std::path::Path;

use common::*;

/// Golden control frames KIS sends on the same socket as the data (spec §4.3, PINGPONG).
const KIS_CONTROL: [&str; 2] = [
    r#"{"header":{"tr_id":"PINGPONG","datetime":"20231004160455"}}"#,
    r#"{"header":{"tr_id":"H0STCNT0","tr_key":"005930","encrypt":"N"},"body":{"rt_cd":"0","msg_cd":"OPSP0000","msg1":"SUBSCRIBE SUCCESS","output":{"iv":"0123456789abcdef","key":"abcdefghijklmnopabcdefghijklmnop"}}}"#,
];
/// Generated messages written by --emit in each run.
const EMITTED: usize = 5;

fn emit(provider: &str, file: &Path, frames: usize) {
    let o = run(cmd()
        .args(["bench", "parse", "--provider", provider, "--frames", &frames.to_string(), "--emit"])
        .arg(file));
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(t.contains(&format!("wrote {frames} {provider} messages")), "{t}");
}

fn lines(file: &Path) -> Vec<String> {
    std::fs::read_to_string(file).unwrap().lines().map(String::from).collect()
}

fn bench(provider: &str, file: &Path) -> (bool, String) {
    let o = run(cmd().args(["bench", "parse", "--provider", provider, "--input"]).arg(file));
    (o.status.success(), text(&o))
}

/// The number printed just before `phrase` in the summary line, e.g. 12 in `12 kis messages`.
fn count_before(t: &str, phrase: &str) -> usize {
    let summary = t.lines().find(|l| l.starts_with("bench parse:")).unwrap_or_else(|| panic!("no summary in:\n{t}"));
    let at = summary.find(&format!(" {phrase}")).unwrap_or_else(|| panic!("no {phrase:?} in: {summary}"));
    let n = summary[..at].split_whitespace().last().unwrap_or_default();
    n.parse().unwrap_or_else(|_| panic!("{phrase:?} follows {n:?} in: {summary}"))
}

#[test]
fn captured_messages_are_counted_line_for_line_and_bad_lines_by_number() {
    let dir = tempfile::tempdir().unwrap();
    for provider in ["kis", "upbit"] {
        let file = dir.path().join(format!("{provider}.txt"));
        emit(provider, &file, EMITTED);
        let mut msgs = lines(&file);
        assert_eq!(msgs.len(), EMITTED);
        if provider == "kis" {
            // A capture interleaves control frames with the data; they parse to no records.
            msgs.splice(1..1, KIS_CONTROL.iter().map(|s| s.to_string()));
        }
        std::fs::write(&file, msgs.join("\n") + "\n").unwrap();

        let (ok, t) = bench(provider, &file);
        assert!(ok, "{provider}: {t}");
        assert_eq!(count_before(&t, &format!("{provider} messages")), msgs.len(), "{provider}: {t}");
        assert_eq!(count_before(&t, "parse errors"), 0, "{provider}: {t}");
        assert!(count_before(&t, "events") >= EMITTED, "{provider}: {t}");
        assert!(t.contains("messages/s") && t.contains("MB/s"), "{provider}: {t}");
        let bytes: usize = msgs.iter().map(String::len).sum();
        assert!(t.contains(&format!(", {bytes} bytes)")), "{provider}: expected {bytes} bytes in:\n{t}");

        // A malformed line (a torn frame) at line 3 and a garbage one at the end: counted,
        // named by number, the rest still parsed, and the exit status says so.
        let torn = msgs[2][..msgs[2].len() / 2].to_string();
        let mut bad = msgs.clone();
        bad[2] = torn;
        bad.push("not a message".into());
        std::fs::write(&file, bad.join("\n")).unwrap();
        let (ok, t) = bench(provider, &file);
        assert!(!ok, "{provider}: parse errors must fail the run:\n{t}");
        assert_eq!(count_before(&t, &format!("{provider} messages")), bad.len(), "{provider}: {t}");
        assert_eq!(count_before(&t, "parse errors"), 2, "{provider}: {t}");
        assert!(t.contains("first parse error at line 3:"), "{provider}: {t}");
        assert!(!t.contains("panicked"), "{t}");
    }
}

#[test]
fn bad_input_files_get_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.txt");
    let (ok, t) = bench("kis", &missing);
    assert!(!ok && t.contains("missing.txt"), "{t}");
    let empty = dir.path().join("empty.txt");
    std::fs::write(&empty, "").unwrap();
    let (ok, t) = bench("upbit", &empty);
    assert!(!ok && t.contains("holds no messages"), "{t}");
    let o = run(cmd().args(["bench", "parse", "--provider", "kis", "--frames", "3", "--input"]).arg(&empty));
    assert!(!o.status.success() && text(&o).contains("cannot be used with"), "{}", text(&o));
}
