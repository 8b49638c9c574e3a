#![allow(dead_code)]

use std::path::Path;

use archive::{ArchiveConfig, ArchiveWriter, Stream};
use model::{Day, Market, Meta, Provider, Record, SessionId, SystemEvent, UtcTime};

pub fn day(s: &str) -> Day {
    s.parse().unwrap()
}

/// `hh:mm` Seoul time on `d`.
pub fn at(d: Day, hh: i64, mm: i64) -> UtcTime {
    d.start().plus_millis((hh * 60 + mm) * 60_000)
}

pub fn cfg() -> ArchiveConfig {
    ArchiveConfig {
        buffer_bytes: 64 * 1024,
        io_queue_buffers: 4,
        fsync_interval: "1s".parse().unwrap(),
        scalp_window: "5m".parse().unwrap(),
    }
}

fn line(t: UtcTime, session: &SessionId, n: u64, pad: usize) -> Vec<u8> {
    format!(
        r#"{{"provider":"kis","kind":"ws","seq":{n},"frame":"0|H0STCNT0|001|005930^{n}^{}","schema_version":"1.0","event_time":"{t}","receive_time":"{t}","session_id":"{session}","mitigation_level":0,"quality_flag":"normal"}}"#,
        "x".repeat(pad)
    )
    .into_bytes()
}

/// Writes a closed archive day: raw, swing and scalp files of two providers over
/// 09:00–11:00, an events file with `events` (and one gap marker), a universe file.
/// `lines_per_hour` raw lines per provider and hour. Returns the data dir's file count.
pub fn write_day(root: &Path, d: Day, lines_per_hour: u64, events: &[SystemEvent]) {
    let t0 = at(d, 9, 0);
    let session = SessionId::starting_at(t0);
    let (mut w, _) = ArchiveWriter::open(root, &cfg(), t0, &session).unwrap();
    for p in [Provider::Kis, Provider::Upbit] {
        for h in 0..2 {
            for i in 0..lines_per_hour {
                let t = t0.plus_millis(h * 3_600_000 + (i as i64 * 3_600_000 / lines_per_hour as i64));
                w.append(Stream::Raw(p), t, &line(t, &session, i, 40)).unwrap();
                if i % 10 == 0 {
                    w.append(Stream::Swing(p, Market::KrStocks), t, &line(t, &session, i, 0)).unwrap();
                    w.append(Stream::Scalp(p, Market::KrStocks), t, &line(t, &session, i, 0)).unwrap();
                }
            }
        }
    }
    let t = at(d, 10, 30);
    let gap = SystemEvent::gap(t, t.plus_millis(45_000), "scalp", "ws_disconnect", None);
    for e in std::iter::once(&gap).chain(events) {
        let rec = Record { body: e, meta: Meta::new(t, t, session.clone()) };
        w.append(Stream::Events(Provider::Kis), t, &serde_json::to_vec(&rec).unwrap()).unwrap();
    }
    w.close_all(at(d, 23, 59)).unwrap();
    std::fs::create_dir_all(root.join("universe")).unwrap();
    std::fs::write(root.join(format!("universe/{d}_kr_stocks.json")), b"{\"symbols\":[\"005930\"]}\n").unwrap();
}

/// Runs `cmd` with `args` in `dir`; (success, stdout+stderr).
pub fn run(dir: &Path, cmd: &str, args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new(cmd).args(args).current_dir(dir).output().unwrap();
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

/// A temporary directory on tmpfs when there is one: these tests make thousands of real
/// fsyncs (every file, rename and directory), which cost milliseconds each on a disk and
/// nothing there, and what they check is the order of the steps, not the device.
pub fn tempdir() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() { tempfile::tempdir_in(shm).unwrap() } else { tempfile::tempdir().unwrap() }
}
