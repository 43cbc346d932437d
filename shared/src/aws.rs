//! AWS SDK clients, built once per container. Local runs and tests point them at moto through
//! `AWS_ENDPOINT_URL`; production code has no special case for that.

use aws_config::BehaviorVersion;

#[derive(Clone, Debug)]
pub struct AwsClients {
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub secrets: aws_sdk_secretsmanager::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub events: aws_sdk_eventbridge::Client,
    pub s3: aws_sdk_s3::Client,
}

impl AwsClients {
    pub async fn from_env() -> Self {
        let config = aws_config::load_defaults(BehaviorVersion::latest()).await;
        Self {
            dynamodb: aws_sdk_dynamodb::Client::new(&config),
            secrets: aws_sdk_secretsmanager::Client::new(&config),
            sqs: aws_sdk_sqs::Client::new(&config),
            events: aws_sdk_eventbridge::Client::new(&config),
            s3: s3_client(&config),
        }
    }
}

/// An S3 endpoint given by URL (an emulator) serves buckets by path, not by host name.
fn s3_client(config: &aws_config::SdkConfig) -> aws_sdk_s3::Client {
    let custom_endpoint = ["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"]
        .iter()
        .any(|v| std::env::var(v).is_ok_and(|v| !v.is_empty()));
    let s3 = aws_sdk_s3::config::Builder::from(config)
        .force_path_style(custom_endpoint)
        .build();
    aws_sdk_s3::Client::from_conf(s3)
}

/// Sends `message` as JSON to the queue at `url` (a job request: an export, an import).
pub async fn send_json(
    client: &aws_sdk_sqs::Client,
    url: &str,
    message: &impl serde::Serialize,
    operation: &'static str,
) -> Result<(), crate::store::StoreError> {
    let body = serde_json::to_string(message).map_err(|e| crate::store::StoreError::new(operation, e))?;
    client
        .send_message()
        .queue_url(url)
        .message_body(body)
        .send()
        .await
        .map_err(|e| crate::store::StoreError::new(operation, aws_sdk_sqs::error::DisplayErrorContext(e)))?;
    Ok(())
}
