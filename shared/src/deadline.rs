//! The invocation's deadline, carried to every platform call on the request path. Lambda kills
//! a function at its timeout without an answer; a request path that knows its deadline stops
//! retrying in time to answer 502 instead.

use std::future::Future;
use std::time::Duration;
use tokio::time::Instant;

tokio::task_local! {
    static DEADLINE: Instant;
}

/// Runs `work` with `deadline` as the time by which every platform call must have ended.
pub async fn within<F: Future>(deadline: Instant, work: F) -> F::Output {
    DEADLINE.scope(deadline, work).await
}

/// Time left before the deadline of the running request, if it has one.
pub fn remaining() -> Option<Duration> {
    DEADLINE.try_with(|d| d.saturating_duration_since(Instant::now())).ok()
}

/// A Lambda context deadline (milliseconds since the epoch) as an instant; `None` for 0, which
/// is what a context built without one (a test, a local adapter) carries.
pub fn from_epoch_ms(deadline_ms: u64) -> Option<Instant> {
    if deadline_ms == 0 {
        return None;
    }
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    Some(Instant::now() + Duration::from_millis(deadline_ms.saturating_sub(now_ms)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_deadline_is_seen_inside_its_scope_only() {
        assert_eq!(remaining(), None);
        let left = within(Instant::now() + Duration::from_secs(5), async { remaining() }).await;
        assert!(left.is_some_and(|l| l > Duration::from_secs(4) && l <= Duration::from_secs(5)));
        let past = within(Instant::now(), async { remaining() }).await;
        assert_eq!(past, Some(Duration::ZERO));
    }

    #[test]
    fn a_context_without_a_deadline_has_none() {
        assert!(from_epoch_ms(0).is_none());
        assert!(from_epoch_ms(1).is_some(), "a past deadline is a deadline");
    }
}
