//! `cargo run -p devkit --bin local`: the whole system on one port, no AWS account needed.

use devkit::local::{self, LocalOptions};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();
    let options = LocalOptions::from_env()?;
    let router = local::build(&options)?;
    let listener = tokio::net::TcpListener::bind((options.host.as_str(), options.port)).await?;
    let base = format!("http://{}:{}", options.host, options.port);
    println!("douyin-leads local run on {base}");
    println!("  token:     curl -s '{base}/local/token?tenant=demo-tenant'");
    println!(
        "  consent:   curl -s -H \"Authorization: Bearer $TOKEN\" '{base}/api/v1/lead/douyin/auth/url?provider=douyin'"
    );
    println!("  simulator: {base}/sim (Douyin and Ocean Engine)");
    axum::serve(listener, router).await?;
    Ok(())
}
