//! Running under systemd (`Type=notify`, `WatchdogSec=`): the sd_notify protocol spoken
//! directly, one datagram per message to the unix socket named in `NOTIFY_SOCKET` (`@name`
//! is Linux's abstract namespace). `READY=1` once recording has started, `WATCHDOG=1` every
//! half `WATCHDOG_USEC` only while the archive sink still beats, `STOPPING=1` at shutdown.
//! Without `NOTIFY_SOCKET` nothing is sent.

use std::io;
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use tokio::sync::watch;

/// Where the service manager listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Path(PathBuf),
    /// Abstract namespace: the name without the leading `@`.
    Abstract(Vec<u8>),
}

impl Target {
    /// `NOTIFY_SOCKET`'s value: an absolute path, or `@name`. Anything else (e.g. `vsock:`) is
    /// not supported and yields `None`.
    pub fn parse(value: &str) -> Option<Target> {
        if let Some(name) = value.strip_prefix('@') {
            Some(Target::Abstract(name.as_bytes().to_vec()))
        } else if value.starts_with('/') {
            Some(Target::Path(PathBuf::from(value)))
        } else {
            None
        }
    }
}

/// A connection to the service manager's notification socket.
pub struct Notifier {
    socket: UnixDatagram,
    target: Target,
}

impl Notifier {
    /// From the environment; `None` when `NOTIFY_SOCKET` is unset, empty or unsupported.
    pub fn from_env() -> Option<Notifier> {
        let value = std::env::var("NOTIFY_SOCKET").ok()?;
        let Some(target) = Target::parse(&value) else {
            tracing::warn!(notify_socket = %value, "NOTIFY_SOCKET is not a path or @abstract name; not notifying");
            return None;
        };
        match Notifier::new(target) {
            Ok(n) => Some(n),
            Err(e) => {
                tracing::warn!("cannot open a socket for NOTIFY_SOCKET: {e}");
                None
            }
        }
    }

    pub fn new(target: Target) -> io::Result<Notifier> {
        Ok(Notifier { socket: UnixDatagram::unbound()?, target })
    }

    /// Sends one message (`READY=1`, `WATCHDOG=1`, `STOPPING=1`, `STATUS=…`).
    pub fn notify(&self, message: &str) -> io::Result<()> {
        let sent = match &self.target {
            Target::Path(p) => self.socket.send_to(message.as_bytes(), p)?,
            #[cfg(not(target_os = "linux"))]
            Target::Abstract(_) => {
                return Err(io::Error::new(io::ErrorKind::Unsupported, "abstract sockets are Linux only"));
            }
            #[cfg(target_os = "linux")]
            Target::Abstract(name) => {
                use std::os::linux::net::SocketAddrExt;
                let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
                self.socket.send_to_addr(message.as_bytes(), &addr)?
            }
        };
        if sent != message.len() {
            return Err(io::Error::new(io::ErrorKind::WriteZero, "notification truncated"));
        }
        Ok(())
    }

    fn send(&self, message: &str) {
        if let Err(e) = self.notify(message) {
            tracing::warn!("sd_notify {message:?}: {e}");
        }
    }
}

/// The watchdog timeout systemd asked for (`WATCHDOG_USEC`), when it is meant for this
/// process (`WATCHDOG_PID` unset or ours).
pub fn watchdog_timeout() -> Option<Duration> {
    if let Ok(pid) = std::env::var("WATCHDOG_PID")
        && pid.trim().parse::<u32>().ok() != Some(std::process::id())
    {
        return None;
    }
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.trim().parse().ok()?;
    (usec > 0).then(|| Duration::from_micros(usec))
}

/// Healthy while the archive sink finished an fsync attempt within `stale` (counted from
/// `since`, the moment recording started, before its first).
/// `beat` is `Gauges::sink_beat_unix_ms` (0 before the first fsync attempt).
pub fn sink_alive(beat_unix_ms: i64, since_unix_ms: i64, stale: Duration, now_unix_ms: i64) -> bool {
    now_unix_ms.saturating_sub(beat_unix_ms.max(since_unix_ms)) <= stale.as_millis() as i64
}

fn unix_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// Waits for `started` (the archive opened; the HTTP listener is bound before this is
/// spawned), sends `READY=1`, then `WATCHDOG=1` every half watchdog timeout while the sink
/// beats within `stale`, and `STOPPING=1` once `stop` is set. Returns at once without
/// `NOTIFY_SOCKET`.
pub async fn run(
    live: Arc<engine::Live>,
    mut started: watch::Receiver<bool>,
    stale_floor: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let Some(notifier) = Notifier::from_env() else { return };
    let ready = tokio::select! {
        r = started.wait_for(|s| *s) => r.is_ok(),
        _ = model::stopped(&mut stop) => false,
    };
    if ready {
        notifier.send("READY=1");
        let since = unix_ms();
        match watchdog_timeout() {
            Some(timeout) => {
                let stale = timeout.max(stale_floor);
                let mut tick = tokio::time::interval(timeout / 2);
                let mut warned = false;
                loop {
                    tokio::select! {
                        _ = tick.tick() => {
                            if sink_alive(live.stats.gauges.sink_beat_unix_ms.load(Relaxed), since, stale, unix_ms()) {
                                notifier.send("WATCHDOG=1");
                                warned = false;
                            } else if !warned {
                                tracing::error!("the archive sink has not synced for over {stale:?}: withholding the watchdog ping so the service manager restarts this process");
                                warned = true;
                            }
                        }
                        _ = model::stopped(&mut stop) => break,
                    }
                }
            }
            None => model::stopped(&mut stop).await,
        }
    }
    notifier.send("STOPPING=1");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recv(sock: &UnixDatagram) -> String {
        let mut buf = [0u8; 256];
        let n = sock.recv(&mut buf).unwrap();
        String::from_utf8(buf[..n].to_vec()).unwrap()
    }

    #[test]
    fn parses_notify_socket_values() {
        assert_eq!(Target::parse("/run/systemd/notify"), Some(Target::Path("/run/systemd/notify".into())));
        assert_eq!(Target::parse("@sd-notify"), Some(Target::Abstract(b"sd-notify".to_vec())));
        assert_eq!(Target::parse("vsock:2:1234"), None);
        assert_eq!(Target::parse(""), None);
    }

    #[test]
    fn sends_datagrams_to_a_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let server = UnixDatagram::bind(&path).unwrap();
        let n = Notifier::new(Target::Path(path)).unwrap();
        n.notify("READY=1").unwrap();
        n.notify("WATCHDOG=1").unwrap();
        n.notify("STOPPING=1").unwrap();
        assert_eq!(recv(&server), "READY=1");
        assert_eq!(recv(&server), "WATCHDOG=1");
        assert_eq!(recv(&server), "STOPPING=1");
    }

    #[test]
    fn the_watchdog_is_fed_only_while_the_sink_beats() {
        let stale = Duration::from_secs(30);
        // Before the first fsync attempt, counted from the start of recording.
        assert!(sink_alive(0, 1_000_000, stale, 1_020_000));
        assert!(!sink_alive(0, 1_000_000, stale, 1_031_000));
        // A recent beat; a beat older than `stale` (a hung sink or housekeeping).
        assert!(sink_alive(1_050_000, 1_000_000, stale, 1_060_000));
        assert!(!sink_alive(1_050_000, 1_000_000, stale, 1_080_001));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn sends_datagrams_to_an_abstract_name() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("stock-observer-test-{}", std::process::id());
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let server = UnixDatagram::bind_addr(&addr).unwrap();
        let n = Notifier::new(Target::parse(&format!("@{name}")).unwrap()).unwrap();
        n.notify("READY=1").unwrap();
        assert_eq!(recv(&server), "READY=1");
    }

    #[test]
    fn a_missing_socket_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let n = Notifier::new(Target::Path(dir.path().join("absent.sock"))).unwrap();
        assert!(n.notify("READY=1").is_err());
    }
}
