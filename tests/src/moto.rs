//! AWS for tests: moto_server reached through the official SDK via `AWS_ENDPOINT_URL`. Tables are
//! created from the definitions in template.yaml, so tests and deploys share one schema.

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection, ProjectionType,
    ScalarAttributeType, TimeToLiveSpecification,
};
use serde_yaml::Value;
use shared::aws::AwsClients;

/// Clients for the moto server the test command started. Panics with the fix when there is none.
pub async fn aws() -> AwsClients {
    if std::env::var("AWS_ENDPOINT_URL").map_or(true, |v| v.is_empty()) {
        panic!("AWS_ENDPOINT_URL is not set: run the tests with scripts/test, which starts moto_server");
    }
    AwsClients::from_env().await
}

/// A name no other test uses, so tests share one moto server safely.
pub fn unique(prefix: &str) -> String {
    let mut bytes = [0u8; 6];
    getrandom::fill(&mut bytes).expect("OS randomness");
    let suffix: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("{prefix}-{suffix}")
}

pub fn template() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml");
    let text = std::fs::read_to_string(path).expect("template.yaml is readable");
    serde_yaml::from_str(&text).expect("template.yaml is valid YAML")
}

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("template: {key} is missing or not a string"))
}

fn key_schema(list: &Value) -> Vec<KeySchemaElement> {
    list.as_sequence()
        .expect("KeySchema is a list")
        .iter()
        .map(|k| {
            KeySchemaElement::builder()
                .attribute_name(str_of(k, "AttributeName"))
                .key_type(KeyType::from(str_of(k, "KeyType")))
                .build()
                .expect("key schema element")
        })
        .collect()
}

/// Creates the table that `logical_id` defines in template.yaml, under `name`.
pub async fn create_table_from_template(ddb: &aws_sdk_dynamodb::Client, logical_id: &str, name: &str) {
    create_table(ddb, logical_id, name, false).await
}

/// As the template has it; its stream only when `streams` (DynamoDB Local writes many times
/// slower with one, so only the outbox's tests turn it on).
pub async fn create_table(ddb: &aws_sdk_dynamodb::Client, logical_id: &str, name: &str, streams: bool) {
    let template = template();
    let props = template
        .get("Resources")
        .and_then(|r| r.get(logical_id))
        .and_then(|r| r.get("Properties"))
        .unwrap_or_else(|| panic!("template.yaml has no resource {logical_id}"));
    let mut req = ddb
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest);
    for def in props
        .get("AttributeDefinitions")
        .and_then(Value::as_sequence)
        .expect("AttributeDefinitions")
    {
        req = req.attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(str_of(def, "AttributeName"))
                .attribute_type(ScalarAttributeType::from(str_of(def, "AttributeType")))
                .build()
                .expect("attribute definition"),
        );
    }
    req = req.set_key_schema(Some(key_schema(props.get("KeySchema").expect("KeySchema"))));
    for gsi in props
        .get("GlobalSecondaryIndexes")
        .and_then(Value::as_sequence)
        .into_iter()
        .flatten()
    {
        let projection = gsi.get("Projection").expect("GSI Projection");
        let mut p = Projection::builder().projection_type(ProjectionType::from(str_of(projection, "ProjectionType")));
        for attr in projection
            .get("NonKeyAttributes")
            .and_then(Value::as_sequence)
            .into_iter()
            .flatten()
        {
            p = p.non_key_attributes(attr.as_str().expect("attribute name"));
        }
        req = req.global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(str_of(gsi, "IndexName"))
                .set_key_schema(Some(key_schema(gsi.get("KeySchema").expect("GSI KeySchema"))))
                .projection(p.build())
                .build()
                .expect("GSI"),
        );
    }
    if let Some(stream) = props.get("StreamSpecification").filter(|_| streams) {
        req = req.stream_specification(
            aws_sdk_dynamodb::types::StreamSpecification::builder()
                .stream_enabled(true)
                .stream_view_type(aws_sdk_dynamodb::types::StreamViewType::from(str_of(
                    stream,
                    "StreamViewType",
                )))
                .build()
                .expect("stream specification"),
        );
    }
    req.send().await.unwrap_or_else(|e| {
        panic!(
            "create table {name}: {}",
            aws_sdk_dynamodb::error::DisplayErrorContext(e)
        )
    });
    if let Some(ttl) = props.get("TimeToLiveSpecification") {
        ddb.update_time_to_live()
            .table_name(name)
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .attribute_name(str_of(ttl, "AttributeName"))
                    .enabled(true)
                    .build()
                    .expect("ttl spec"),
            )
            .send()
            .await
            .expect("enable TTL");
    }
}

/// Fresh tables for one test, created from the template.
#[derive(Debug, Clone)]
pub struct Tables {
    pub connections: String,
    pub oauth_states: String,
    pub leads: String,
    pub sync_tasks: String,
    pub webhooks: String,
    pub spend: String,
}

impl Tables {
    /// The table variables for `shared::Config`.
    pub fn env(&self) -> [(String, String); 6] {
        [
            ("SPEND_TABLE".into(), self.spend.clone()),
            ("WEBHOOKS_TABLE".into(), self.webhooks.clone()),
            ("CONNECTIONS_TABLE".into(), self.connections.clone()),
            ("OAUTH_STATES_TABLE".into(), self.oauth_states.clone()),
            ("LEADS_TABLE".into(), self.leads.clone()),
            ("SYNC_TASKS_TABLE".into(), self.sync_tasks.clone()),
        ]
    }
}

pub async fn create_tables(ddb: &aws_sdk_dynamodb::Client) -> Tables {
    create_tables_with(ddb, false).await
}

/// The tables, with the streams the template gives them when `streams`.
pub async fn create_tables_with(ddb: &aws_sdk_dynamodb::Client, streams: bool) -> Tables {
    let tables = Tables {
        connections: unique("connections"),
        oauth_states: unique("oauth-states"),
        leads: unique("leads"),
        sync_tasks: unique("sync-tasks"),
        webhooks: unique("webhooks"),
        spend: unique("spend"),
    };
    create_table(ddb, "ConnectionsTable", &tables.connections, streams).await;
    create_table(ddb, "OAuthStatesTable", &tables.oauth_states, streams).await;
    create_table(ddb, "LeadsTable", &tables.leads, streams).await;
    create_table(ddb, "SyncTasksTable", &tables.sync_tasks, streams).await;
    create_table(ddb, "WebhooksTable", &tables.webhooks, false).await;
    create_table(ddb, "SpendTable", &tables.spend, false).await;
    tables
}

/// A fresh bucket for export files.
pub async fn create_bucket(s3: &aws_sdk_s3::Client) -> String {
    use aws_sdk_s3::types::{BucketLocationConstraint, CreateBucketConfiguration};
    let name = unique("exports");
    let region = s3.config().region().map(|r| r.to_string()).unwrap_or_default();
    let mut request = s3.create_bucket().bucket(&name);
    if !region.is_empty() && region != "us-east-1" {
        request = request.create_bucket_configuration(
            CreateBucketConfiguration::builder()
                .location_constraint(BucketLocationConstraint::from(region.as_str()))
                .build(),
        );
    }
    request
        .send()
        .await
        .unwrap_or_else(|e| panic!("create bucket {name}: {}", aws_sdk_s3::error::DisplayErrorContext(e)));
    name
}

/// Writes the app-credentials secret in the shape the functions read.
pub async fn put_app_credentials(secrets: &aws_sdk_secretsmanager::Client, id: &str, douyin: &str, oceanengine: &str) {
    let value = serde_json::json!({"douyinClientSecret": douyin, "oceanengineSecret": oceanengine}).to_string();
    secrets
        .create_secret()
        .name(id)
        .secret_string(value)
        .send()
        .await
        .expect("create app credentials secret");
}
