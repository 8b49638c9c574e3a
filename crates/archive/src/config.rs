use model::settings::{Checker, Interval, Validate};
use serde::{Deserialize, Serialize};

const MIN_BUFFER: usize = 4 * 1024;
const MAX_BUFFER: usize = 64 * 1024 * 1024;
/// Bounds the memory the I/O queue may hold (with `MAX_BUFFER`) to something sane.
const MAX_QUEUE: usize = 1024;
const HOUR_MS: u64 = 3_600_000;

/// The `archive` section of the configuration.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ArchiveConfig {
    /// Per open file; a file's buffer is handed to the OS once it reaches this size.
    pub buffer_bytes: usize,
    /// Full buffers that may wait for the archive's I/O thread before appends wait too.
    pub io_queue_buffers: usize,
    /// Wall-clock period at which the engine calls [`crate::ArchiveWriter::sync`]; the
    /// writer itself never looks at a clock.
    pub fsync_interval: Interval,
    /// Length of a scalp file; whole seconds dividing one hour so every hour starts a file.
    pub scalp_window: Interval,
}

impl Default for ArchiveConfig {
    fn default() -> Self {
        ArchiveConfig {
            buffer_bytes: 1024 * 1024,
            io_queue_buffers: 16,
            fsync_interval: Interval::from_millis(1_000),
            scalp_window: Interval::from_millis(300_000),
        }
    }
}

impl Validate for ArchiveConfig {
    fn validate(&self, c: &mut Checker) {
        c.range("buffer_bytes", self.buffer_bytes, MIN_BUFFER, MAX_BUFFER);
        c.range("io_queue_buffers", self.io_queue_buffers, 1, MAX_QUEUE);
        c.check(
            self.fsync_interval.as_millis() <= HOUR_MS,
            "fsync_interval",
            format_args!("{} is longer than 1h", self.fsync_interval),
        );
        let w = self.scalp_window.as_millis();
        c.check(
            w >= 1_000 && w.is_multiple_of(1_000) && HOUR_MS.is_multiple_of(w),
            "scalp_window",
            format_args!("{} must be whole seconds that divide 1h evenly (e.g. 10s, 1m, 5m, 15m)", self.scalp_window),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(cfg: &ArchiveConfig) -> Vec<String> {
        let mut c = Checker::default();
        c.section("archive", |c| cfg.validate(c));
        c.problems.iter().map(|p| p.to_string()).collect()
    }

    #[test]
    fn default_is_valid() {
        assert!(problems(&ArchiveConfig::default()).is_empty());
    }

    #[test]
    fn rejects_bad_values_naming_the_key() {
        let cfg = ArchiveConfig {
            buffer_bytes: 100,
            io_queue_buffers: 16,
            fsync_interval: "2h".parse().unwrap(),
            scalp_window: "7m".parse().unwrap(),
        };
        let p = problems(&cfg);
        assert_eq!(p.len(), 3, "{p:?}");
        assert!(p[0].starts_with("archive.buffer_bytes:"));
        assert!(p[1].starts_with("archive.fsync_interval:"));
        assert!(p[2].starts_with("archive.scalp_window:"));
        for bad in ["1500ms", "500ms", "2h"] {
            let cfg = ArchiveConfig { scalp_window: bad.parse().unwrap(), ..ArchiveConfig::default() };
            assert_eq!(problems(&cfg).len(), 1, "{bad}");
        }
        for good in ["1s", "10s", "1m", "5m", "1h"] {
            let cfg = ArchiveConfig { scalp_window: good.parse().unwrap(), ..ArchiveConfig::default() };
            assert!(problems(&cfg).is_empty(), "{good}");
        }
    }

    #[test]
    fn rejects_unknown_keys() {
        let err = serde_json::from_str::<ArchiveConfig>(
            r#"{"buffer_bytes":4096,"io_queue_buffers":4,"fsync_interval":"1s","scalp_window":"5m","x":1}"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("unknown field"));
    }
}
