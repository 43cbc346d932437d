//! One HTTP client for all platform calls: timeouts, and retries with exponential backoff and
//! jitter for faults that are worth another try.

use super::{ErrorKind, Platform, PlatformError};
use crate::config::HttpConfig;
use std::time::Duration;

/// Whether sending a request twice is harmless. A code exchange or a rotating refresh is not:
/// if the first attempt reached the platform, the second fails or, worse, rotates again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replay {
    Safe,
    OnlyIfNotProcessed,
}

#[derive(Debug, Clone)]
pub struct PlatformHttp {
    client: reqwest::Client,
    config: HttpConfig,
}

/// Less than this left before the request's deadline, no attempt is started: it could not finish.
const MIN_ATTEMPT: Duration = Duration::from_millis(100);

/// A response read in full: status and body bytes.
pub struct RawResponse {
    pub status: u16,
    pub body: bytes::Bytes,
}

impl PlatformHttp {
    pub fn new(config: &HttpConfig) -> Self {
        let client = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.connect_timeout)
            .user_agent(concat!("douyin-leads/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("a TLS backend is compiled in");
        Self {
            client,
            config: config.clone(),
        }
    }

    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// Sends the request `build` makes and decodes it with `decode`, retrying what may be retried.
    /// Within a request's deadline ([`crate::deadline`]) each attempt's timeout is cut to the
    /// time left, and no attempt or backoff starts that could not end before it.
    pub async fn call<T>(
        &self,
        platform: Platform,
        replay: Replay,
        build: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
        decode: impl Fn(RawResponse) -> Result<T, PlatformError>,
    ) -> Result<T, PlatformError> {
        let mut attempt = 1;
        loop {
            let left = crate::deadline::remaining();
            if left.is_some_and(|l| l < MIN_ATTEMPT) {
                return Err(out_of_time(platform));
            }
            let timeout = left.map_or(self.config.timeout, |l| l.min(self.config.timeout));
            let result = match build(&self.client).timeout(timeout).send().await {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    match resp.bytes().await {
                        Ok(body) => decode(RawResponse { status, body }),
                        Err(e) => Err(transport(platform, e)),
                    }
                }
                Err(e) => Err(transport(platform, e)),
            };
            let err = match result {
                Ok(value) => return Ok(value),
                Err(err) => err,
            };
            let retryable = matches!(err.kind(), ErrorKind::Throttled | ErrorKind::Transient)
                && (replay == Replay::Safe || err.surely_not_processed());
            if !retryable || attempt >= self.config.max_attempts {
                return Err(err);
            }
            let delay = backoff(&self.config, attempt);
            if crate::deadline::remaining().is_some_and(|l| l < delay + MIN_ATTEMPT) {
                tracing::warn!(%platform, attempt, error = %err, "platform call failed; no time left to retry before the deadline");
                return Err(err);
            }
            tracing::warn!(%platform, attempt, delay_ms = delay.as_millis() as u64, error = %err, "platform call failed; retrying");
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }
}

/// The request's deadline came before the call could be (re)tried.
fn out_of_time(platform: Platform) -> PlatformError {
    PlatformError::Transport {
        platform,
        message: "no time left before the request's deadline".into(),
        before_send: true,
    }
}

fn transport(platform: Platform, e: reqwest::Error) -> PlatformError {
    // Without the URL: query strings may carry account ids we do not want in error text.
    let before_send = e.is_connect();
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else {
        "transfer failed"
    };
    PlatformError::Transport {
        platform,
        message: format!("{kind}: {}", e.without_url()),
        before_send,
    }
}

/// Exponential backoff with jitter in [d/2, d], so many clients retrying do not align.
pub fn backoff(config: &HttpConfig, attempt: u32) -> Duration {
    let exp = config.retry_base.saturating_mul(1u32 << (attempt - 1).min(16));
    let capped = exp.min(config.retry_max);
    let half = capped / 2;
    half + half.mul_f64(random_unit())
}

fn random_unit() -> f64 {
    let mut buf = [0u8; 4];
    // The jitter need not be strong; fall back to none rather than fail a retry.
    if getrandom::fill(&mut buf).is_err() {
        return 0.0;
    }
    f64::from(u32::from_le_bytes(buf)) / f64::from(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> HttpConfig {
        HttpConfig {
            timeout: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(1),
            max_attempts: 5,
            retry_base: Duration::from_millis(100),
            retry_max: Duration::from_millis(1000),
        }
    }

    #[test]
    fn backoff_grows_and_is_capped_with_jitter() {
        let c = cfg();
        for _ in 0..50 {
            let first = backoff(&c, 1);
            assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(100));
            let third = backoff(&c, 3);
            assert!(third >= Duration::from_millis(200) && third <= Duration::from_millis(400));
            let late = backoff(&c, 12);
            assert!(late >= Duration::from_millis(500) && late <= Duration::from_millis(1000));
        }
    }
}
