//! The stop signal every task watches: a `watch` channel that turns `true` once.

use tokio::sync::watch;

/// Resolves once `stop` is `true` (or its sender is gone). The borrow of the channel is
/// released before returning, so the future can be held across awaits in `select!`.
pub async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}
