//! Outbound deliveries in tests and the local run: pumping the in-process delivery queue, and a
//! loopback receiver that records what it is sent (headers and raw body) and can be told to be
//! down, or to answer as a throttled bot.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use lead_events::Outbound;
use shared::outbound::deliver::{Deliverer, Step};
use shared::outbound::queue::MemoryDeliveryQueue;
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Handles due messages forever, every `every` (the local run's stand-in for SQS polling).
pub async fn pump(queue: Arc<MemoryDeliveryQueue>, outbound: Arc<Outbound>, every: std::time::Duration) {
    loop {
        for message in queue.take_due() {
            if let Err(e) = outbound.handle(&message).await {
                tracing::warn!(error = %e, "local delivery failed; it is tried again");
                let _ = shared::outbound::queue::DeliveryQueue::send(queue.as_ref(), &[message], every).await;
            }
        }
        tokio::time::sleep(every).await;
    }
}

/// Handles every message due now with `handle`, and those they queue due now too; the steps.
async fn drain_with<T, F>(queue: &MemoryDeliveryQueue, mut handle: F) -> Vec<T>
where
    F: AsyncFnMut(&shared::outbound::queue::DeliveryMessage) -> Result<T, shared::store::StoreError>,
{
    let mut steps = Vec::new();
    loop {
        let due = queue.take_due();
        if due.is_empty() {
            return steps;
        }
        for message in due {
            steps.push(handle(&message).await.expect("the outcome is recorded"));
        }
    }
}

/// Every write-back and delivery due now.
pub async fn drain_all(queue: &MemoryDeliveryQueue, outbound: &Outbound) -> Vec<String> {
    drain_with(queue, async |m| outbound.handle(m).await).await
}

/// Every delivery due now.
pub async fn drain(queue: &MemoryDeliveryQueue, deliverer: &Deliverer) -> Vec<Step> {
    drain_with(queue, async |m| deliverer.handle(m).await).await
}

/// One request as the receiver got it.
#[derive(Debug, Clone)]
pub struct Received {
    pub at: std::time::Instant,
    pub path_and_query: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }
}

#[derive(Default)]
struct ReceiverState {
    received: Mutex<Vec<Received>>,
    /// The status answered; 200 when 0.
    status: AtomicU16,
    /// Requests answered as a throttled bot before answering normally again.
    throttle_next: AtomicUsize,
    /// The body of a 2xx answer (a bot's `{"errcode":0}`).
    ok_body: Mutex<String>,
    throttled_body: Mutex<String>,
}

/// A loopback HTTP server that records every request.
#[derive(Clone)]
pub struct Receiver {
    state: Arc<ReceiverState>,
    pub url: String,
}

impl Receiver {
    pub async fn start() -> Self {
        let state = Arc::new(ReceiverState::default());
        *state.ok_body.lock().unwrap() = r#"{"errcode":0,"errmsg":"ok","code":0}"#.into();
        *state.throttled_body.lock().unwrap() = r#"{"errcode":45009,"errmsg":"api freq out of limit"}"#.into();
        let app = Router::new().fallback(record).with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a receiver");
        let url = format!("http://{}/hooks/leads", listener.local_addr().expect("bound address"));
        tokio::spawn(async move {
            axum::serve(listener, app).await.expect("the receiver serves");
        });
        Self { state, url }
    }

    /// Answers `status` from now on (0 or 200: up).
    pub fn answer(&self, status: u16) {
        self.state.status.store(status, Ordering::SeqCst);
    }

    /// Answers the next `n` requests as a bot over its rate limit.
    pub fn throttle_next(&self, n: usize, body: &str) {
        *self.state.throttled_body.lock().unwrap() = body.into();
        self.state.throttle_next.store(n, Ordering::SeqCst);
    }

    pub fn received(&self) -> Vec<Received> {
        self.state.received.lock().unwrap().clone()
    }
}

async fn record(
    State(state): State<Arc<ReceiverState>>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> impl IntoResponse {
    state.received.lock().unwrap().push(Received {
        at: std::time::Instant::now(),
        path_and_query: uri.path_and_query().map(|p| p.to_string()).unwrap_or_default(),
        headers,
        body,
    });
    let throttled = state
        .throttle_next
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    if throttled {
        return (StatusCode::OK, state.throttled_body.lock().unwrap().clone());
    }
    let status = match state.status.load(Ordering::SeqCst) {
        0 => StatusCode::OK,
        s => StatusCode::from_u16(s).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
    };
    let body = if status.is_success() {
        state.ok_body.lock().unwrap().clone()
    } else {
        "receiver down".to_owned()
    };
    (status, body)
}
