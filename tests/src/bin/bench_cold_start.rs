//! `scripts/bench cold`: how fast each function binary is ready for its first event, and how
//! much memory it holds then. A stand-in Lambda Runtime API on 127.0.0.1 notes when the process
//! first asks `/runtime/invocation/next`; the process is then measured (VmRSS) and stopped.
//! Binaries come from `target/release` (`BENCH_BIN_DIR` overrides); median of 5 starts each.

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use devkit::moto::unique;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Notify;

const FUNCTIONS: [&str; 4] = ["auth-url", "auth-callback", "lead-sync", "leads-api"];
const RUNS: usize = 5;

async fn next_invocation(State(asked): State<Arc<Notify>>) -> &'static str {
    asked.notify_one();
    // Never answer: the process waits for work while it is measured, then it is stopped.
    std::future::pending::<()>().await;
    ""
}

fn rss_mb(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

#[tokio::main]
async fn main() {
    let dir = std::env::var("BENCH_BIN_DIR")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../target/release").into());
    let asked = Arc::new(Notify::new());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api = listener.local_addr().unwrap().to_string();
    let router = Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next_invocation))
        .with_state(asked.clone());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });

    println!("{:<14} {:>12} {:>12}", "function", "ready (ms)", "RSS (MB)");
    for function in FUNCTIONS {
        let mut times = Vec::new();
        let mut rss = Vec::new();
        for _ in 0..RUNS {
            let started = Instant::now();
            let mut child = Command::new(format!("{dir}/{function}"))
                .env_clear()
                .env("AWS_LAMBDA_RUNTIME_API", &api)
                .env("AWS_LAMBDA_FUNCTION_NAME", function)
                .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
                .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
                .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/bench")
                .env("AWS_LAMBDA_LOG_STREAM_NAME", unique("stream"))
                .env("AWS_REGION", "ap-northeast-1")
                .env("AWS_ACCESS_KEY_ID", "bench")
                .env("AWS_SECRET_ACCESS_KEY", "bench")
                .env("DOUYIN_CLIENT_KEY", "awbenchkey")
                .env("OCEANENGINE_APP_ID", "1700000000000001")
                .env(
                    "OAUTH_CALLBACK_URL",
                    "https://api.example.com/api/v1/lead/douyin/auth/callback",
                )
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("start {dir}/{function}: {e} (build with scripts/bench cold)"));
            let ready = tokio::time::timeout(Duration::from_secs(10), asked.notified()).await;
            let elapsed = started.elapsed().as_secs_f64() * 1000.0;
            let memory = rss_mb(child.id());
            let _ = child.kill();
            let _ = child.wait();
            assert!(ready.is_ok(), "{function} never asked for an event");
            times.push(elapsed);
            rss.push(memory);
        }
        times.sort_by(f64::total_cmp);
        rss.sort_by(f64::total_cmp);
        println!("{function:<14} {:>12.1} {:>12.1}", times[RUNS / 2], rss[RUNS / 2]);
    }
}
