mod common;
use common::*;
use model::{Market, Provider};
use so_archive::Stream;
#[test]
fn perf() {
    let dir = tempfile::tempdir().unwrap();
    let now = kst("2026-01-14T09:00:00.000");
    let (mut w, _) = open(dir.path(), now);
    let streams = [
        Stream::Raw(Provider::Sim),
        Stream::Swing(Provider::Sim, Market::KrStocks),
        Stream::Scalp(Provider::Sim, Market::KrStocks),
    ];
    let l = line(now, 123456);
    let mut l = l;
    l.pop();
    l.extend_from_slice(b",\"pad\":\"xxxxxxxxxxxxxxxxxxxxxxxxx\"}");
    let n = 3_000_000u64;
    let t0 = std::time::Instant::now();
    for i in 0..n {
        let at = now.plus_millis((i / 1000) as i64);
        w.append(streams[(i % 3) as usize], at, &l).unwrap();
    }
    w.sync().unwrap();
    let dt = t0.elapsed();
    eprintln!(
        "line {} bytes: {:.0} appends/s, {:.0} MB/s",
        l.len(),
        n as f64 / dt.as_secs_f64(),
        (n * l.len() as u64) as f64 / dt.as_secs_f64() / 1e6
    );
    w.close_all(now.plus_millis(3_600_000)).unwrap();
}
