//! One POST to a subscriber: checked against the target policy, no redirects followed (a
//! redirect is how a public URL would lead us to a private one), no proxy, a hard timeout, and
//! only the first bytes of the answer read.

use super::target::{GuardedResolver, Lookup, SystemLookup, TargetPolicy};
use async_trait::async_trait;
use std::sync::Arc;
use std::time::Duration;

/// What came back, or why nothing did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: Option<u16>,
    /// At most the configured cap, lossily decoded.
    pub body: String,
    /// Transport failure or refused target, in words safe to show the subscriber.
    pub error: Option<String>,
}

impl Answer {
    pub fn refused(why: impl Into<String>) -> Self {
        Self {
            status: None,
            body: String::new(),
            error: Some(why.into()),
        }
    }

    pub fn is_success(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s))
    }
}

#[async_trait]
pub trait Transport: Send + Sync {
    async fn post(&self, url: &str, headers: &[(String, String)], body: Vec<u8>) -> Answer;
}

pub struct HttpTransport {
    client: reqwest::Client,
    policy: TargetPolicy,
    cap: usize,
}

impl HttpTransport {
    pub fn new(policy: TargetPolicy, timeout: Duration, cap: usize) -> Self {
        Self::with_lookup(policy, timeout, cap, Arc::new(SystemLookup))
    }

    pub fn from_config(config: &crate::config::OutboundConfig) -> Self {
        Self::new(TargetPolicy::from_config(config), config.timeout, config.response_cap)
    }

    pub fn with_lookup(policy: TargetPolicy, timeout: Duration, cap: usize, lookup: Arc<dyn Lookup>) -> Self {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(3)))
            .user_agent("douyin-leads-webhooks/1")
            .dns_resolver(Arc::new(GuardedResolver {
                policy: policy.clone(),
                lookup,
            }))
            .build()
            .expect("the delivery HTTP client builds");
        Self { client, policy, cap }
    }
}

#[async_trait]
impl Transport for HttpTransport {
    async fn post(&self, url: &str, headers: &[(String, String)], body: Vec<u8>) -> Answer {
        if let Err(why) = self.policy.check_url(url) {
            return Answer::refused(format!("target not allowed: {why}"));
        }
        let mut request = self
            .client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
        for (name, value) in headers {
            request = request.header(name.as_str(), value.as_str());
        }
        let mut response = match request.send().await {
            Ok(r) => r,
            Err(e) => return Answer::refused(describe(&e)),
        };
        let status = response.status().as_u16();
        let mut bytes = Vec::new();
        while bytes.len() < self.cap {
            match response.chunk().await {
                Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
                // A body that breaks off or times out still leaves the status we got.
                Ok(None) | Err(_) => break,
            }
        }
        bytes.truncate(self.cap);
        Answer {
            status: Some(status),
            body: String::from_utf8_lossy(&bytes).into_owned(),
            error: None,
        }
    }
}

/// The failure in words for the delivery log: the kind, never our internals.
fn describe(e: &reqwest::Error) -> String {
    let refused = std::iter::successors(std::error::Error::source(e), |s| s.source())
        .find(|s| s.to_string().contains("is not public") || s.to_string().contains("does not resolve"));
    if let Some(why) = refused {
        format!("target not allowed: {why}")
    } else if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        "could not connect".into()
    } else {
        "the request failed".into()
    }
}
