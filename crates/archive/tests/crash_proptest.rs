//! Random appends, syncs, expiries and crashes: after reopening, the archive verifies and
//! holds exactly the lines that were durable before the crash.

mod common;

use std::collections::HashMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;

use common::*;
use model::{Market, Provider, UtcTime};
use proptest::prelude::*;
use so_archive::{ArchiveConfig, Stream, verify};

const STREAMS: [Stream; 6] = [
    Stream::Raw(Provider::Sim),
    Stream::Swing(Provider::Sim, Market::KrStocks),
    Stream::Scalp(Provider::Sim, Market::KrStocks),
    Stream::Scalp(Provider::Upbit, Market::Crypto),
    Stream::Events(Provider::Sim),
    Stream::Overflow(Provider::Kis),
];

#[derive(Debug, Clone)]
enum Op {
    /// Advance (or step back) the clock by `dt` ms, then append.
    Append {
        stream: usize,
        dt: i64,
        text: String,
    },
    Sync,
    CloseExpired,
}

#[derive(Debug, Clone, Copy)]
enum End {
    Clean,
    /// Drop without `close_all`: buffers reach the OS, nothing is closed.
    Drop,
    /// Power cut: buffers are lost.
    Abandon,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (0..STREAMS.len(), -120_000i64..1_800_000, "\\PC{0,40}")
            .prop_map(|(stream, dt, text)| Op::Append { stream, dt, text }),
        1 => Just(Op::Sync),
        1 => Just(Op::CloseExpired),
    ]
}

/// What the writer is expected to have made durable, mirroring its rules: a file's lines
/// are durable once synced, flushed by a full buffer, or closed.
#[derive(Default)]
struct Model {
    open: HashMap<usize, OpenModel>,
    floor: HashMap<usize, UtcTime>,
    durable: u64,
    appended: u64,
}

struct OpenModel {
    end: UtcTime,
    path: String,
    pending_lines: u64,
    pending_bytes: usize,
}

impl Model {
    fn append(&mut self, slot: usize, at: UtcTime, len: usize, cfg: &ArchiveConfig) {
        self.appended += 1;
        if self.open.get(&slot).is_some_and(|f| at >= f.end) {
            self.close(slot);
        }
        let floor = self.floor.get(&slot).copied().unwrap_or(at);
        let f = self.open.entry(slot).or_insert_with(|| {
            let p = STREAMS[slot].partition(at.max(floor), cfg.scalp_window);
            OpenModel { end: p.end, path: p.path, pending_lines: 0, pending_bytes: 0 }
        });
        f.pending_lines += 1;
        f.pending_bytes += len + 1;
        if f.pending_bytes >= cfg.buffer_bytes {
            self.durable += f.pending_lines;
            f.pending_lines = 0;
            f.pending_bytes = 0;
        }
    }

    fn close(&mut self, slot: usize) {
        if let Some(f) = self.open.remove(&slot) {
            self.durable += f.pending_lines;
            self.floor.insert(slot, f.end);
        }
    }

    fn sync(&mut self) {
        for f in self.open.values_mut() {
            self.durable += f.pending_lines;
            f.pending_lines = 0;
            f.pending_bytes = 0;
        }
    }
}

fn archive_lines(root: &Path) -> u64 {
    so_archive::Manifest::load_all(root).unwrap().values().flat_map(|m| m.files.values()).map(|e| e.lines).sum()
}

fn run(ops: Vec<Op>, end: End, torn: bool, small_buffer: bool) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let cfg = ArchiveConfig { buffer_bytes: if small_buffer { 4096 } else { 1 << 20 }, ..cfg() };
    let mut now = kst("2026-01-14T08:55:00.000");
    let (mut w, _) = open_with(root, &cfg, now);
    let mut model = Model::default();
    for (i, op) in ops.into_iter().enumerate() {
        match op {
            Op::Append { stream, dt, text } => {
                now = now.plus_millis(dt);
                let mut l = line(now, i as u64);
                // Arbitrary text, JSON-escaped, to vary line lengths and content.
                l.pop();
                l.extend_from_slice(b",\"text\":");
                l.extend_from_slice(&serde_json::to_vec(&text).unwrap());
                l.push(b'}');
                w.append(STREAMS[stream], now, &l).unwrap();
                model.append(stream, now, l.len(), &cfg);
            }
            Op::Sync => {
                w.sync().unwrap();
                model.sync();
            }
            Op::CloseExpired => {
                w.close_expired(now).unwrap();
                let expired: Vec<usize> = model.open.iter().filter(|(_, f)| f.end <= now).map(|(s, _)| *s).collect();
                for s in expired {
                    model.close(s);
                }
            }
        }
    }
    prop_assert_eq!(w.lines_written(), model.appended);
    let open_paths: Vec<String> = model.open.values().map(|f| f.path.clone()).collect();
    let expected = match end {
        End::Clean => {
            w.close_all(now).unwrap();
            model.appended
        }
        End::Drop => {
            drop(w);
            model.appended
        }
        End::Abandon => {
            w.abandon();
            model.durable
        }
    };
    if torn && let Some(p) = open_paths.first() {
        let mut f = OpenOptions::new().append(true).open(root.join(p)).unwrap();
        f.write_all(br#"{"receive_time":"2026-01-14T0"#).unwrap();
    }

    let later = now.plus_millis(1_000);
    let (w, rec) = open_with(root, &cfg, later);
    prop_assert_eq!(rec.crashed, !matches!(end, End::Clean));
    if torn && !matches!(end, End::Clean) && !open_paths.is_empty() {
        prop_assert_eq!(rec.repaired.len(), 1);
    }
    w.close_all(later).unwrap();
    let report = verify(root, None).unwrap();
    prop_assert!(report.ok(), "{:?}", report.problems);
    prop_assert_eq!(report.lines, expected);
    prop_assert_eq!(archive_lines(root), expected);
    assert_manifests_match_files(root);
    Ok(())
}

proptest! {
    // Each case does real file I/O with fsyncs; a few dozen cases cover the paths.
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn archive_survives_random_crashes(
        ops in prop::collection::vec(op(), 0..60),
        end in prop_oneof![Just(End::Clean), Just(End::Drop), Just(End::Abandon)],
        torn in any::<bool>(),
        small_buffer in any::<bool>(),
    ) {
        // A torn tail only happens to a file a crashed writer left open.
        let torn = torn && !matches!(end, End::Clean);
        run(ops, end, torn, small_buffer)?;
    }
}
