//! AWS SDK clients, built once per container. Local runs and tests point them at moto through
//! `AWS_ENDPOINT_URL`; production code has no special case for that.

use aws_config::BehaviorVersion;

#[derive(Clone, Debug)]
pub struct AwsClients {
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub secrets: aws_sdk_secretsmanager::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub events: aws_sdk_eventbridge::Client,
}

impl AwsClients {
    pub async fn from_env() -> Self {
        let config = aws_config::load_defaults(BehaviorVersion::latest()).await;
        Self {
            dynamodb: aws_sdk_dynamodb::Client::new(&config),
            secrets: aws_sdk_secretsmanager::Client::new(&config),
            sqs: aws_sdk_sqs::Client::new(&config),
            events: aws_sdk_eventbridge::Client::new(&config),
        }
    }
}
