//! What the api crate's test binaries share.

use std::sync::{Arc, Mutex, OnceLock};

#[derive(Clone, Default)]
struct Buf(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Buf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Everything so_api has logged in this test binary (a global subscriber: the server's
/// tasks run on the runtime's threads, not the test's).
pub fn logs() -> String {
    static LOGS: OnceLock<Buf> = OnceLock::new();
    let buf = LOGS.get_or_init(|| {
        use tracing_subscriber::prelude::*;
        let buf = Buf::default();
        let out = buf.clone();
        let layer = tracing_subscriber::fmt::layer()
            .with_ansi(false)
            .with_writer(move || out.clone())
            .with_filter(tracing_subscriber::filter::Targets::new().with_target("so_api", tracing::Level::TRACE));
        tracing_subscriber::registry().with(layer).init();
        buf
    });
    String::from_utf8_lossy(&buf.0.lock().unwrap()).into_owned()
}
