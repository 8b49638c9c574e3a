//! How full the file system under the data dir is, as `df` reports it.

/// Bytes in use and bytes still available to an unprivileged writer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiskUsage {
    pub used: u64,
    pub avail: u64,
}

impl DiskUsage {
    /// `df`'s Use%: used over what a normal user could ever fill (root's reserve left out).
    pub fn percent(self) -> f64 {
        let all = self.used + self.avail;
        if all == 0 { 0.0 } else { self.used as f64 * 100.0 / all as f64 }
    }

    /// Bytes to free to get down to `percent`.
    pub fn above(self, percent: f64) -> u64 {
        let allowed = ((self.used + self.avail) as f64 * percent / 100.0) as u64;
        self.used.saturating_sub(allowed)
    }
}

/// The usage of the file system holding `path`; `None` if it cannot be read.
pub fn disk_usage(path: &std::path::Path) -> Option<DiskUsage> {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
        // SAFETY: statvfs is plain integers, for which all-zero bytes are a valid value.
        #[allow(unsafe_code)]
        let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
        // SAFETY: `c` is a valid NUL-terminated path and `s` a writable statvfs.
        #[allow(unsafe_code)]
        let failed = unsafe { libc::statvfs(c.as_ptr(), &mut s) } != 0;
        if failed {
            return None;
        }
        let frsize = s.f_frsize as u64;
        let used = (s.f_blocks as u64).saturating_sub(s.f_bfree as u64) * frsize;
        Some(DiskUsage { used, avail: s.f_bavail as u64 * frsize })
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_and_bytes_above_a_mark() {
        let d = DiskUsage { used: 90, avail: 10 };
        assert_eq!(d.percent(), 90.0);
        assert_eq!(d.above(80.0), 10);
        assert_eq!(d.above(95.0), 0);
        assert!(disk_usage(std::path::Path::new("/")).is_some_and(|d| d.used + d.avail > 0));
    }
}
