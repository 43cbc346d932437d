//! DynamoDB Streams read back from DynamoDB Local and handed over as Lambda delivers them, and a
//! bus whose events land in a queue a test can read: the outbox's real wire on both ends.

use aws_sdk_dynamodbstreams::types::{AttributeValue, ShardIteratorType};
use serde_json::{Map, Value, json};
use shared::aws::AwsClients;

async fn client() -> aws_sdk_dynamodbstreams::Client {
    let shared = aws_config::defaults(aws_config::BehaviorVersion::latest()).load().await;
    let mut config = aws_sdk_dynamodbstreams::config::Builder::from(&shared);
    // Streams are DynamoDB's (DynamoDB Local serves them on its own port), not moto's.
    if let Ok(url) = std::env::var("AWS_ENDPOINT_URL_DYNAMODB") {
        config = config.endpoint_url(url);
    }
    aws_sdk_dynamodbstreams::Client::from_conf(config.build())
}

/// DynamoDB's typed JSON of a value, as in a Lambda stream event.
fn typed(value: &AttributeValue) -> Value {
    use base64::Engine;
    let b64 =
        |b: &aws_sdk_dynamodbstreams::primitives::Blob| base64::engine::general_purpose::STANDARD.encode(b.as_ref());
    match value {
        AttributeValue::S(s) => json!({"S": s}),
        AttributeValue::N(n) => json!({"N": n}),
        AttributeValue::B(b) => json!({"B": b64(b)}),
        AttributeValue::Bool(b) => json!({"BOOL": b}),
        AttributeValue::Null(_) => json!({"NULL": true}),
        AttributeValue::Ss(v) => json!({"SS": v}),
        AttributeValue::Ns(v) => json!({"NS": v}),
        AttributeValue::Bs(v) => json!({"BS": v.iter().map(b64).collect::<Vec<_>>()}),
        AttributeValue::L(v) => json!({"L": v.iter().map(typed).collect::<Vec<_>>()}),
        AttributeValue::M(m) => json!({"M": image(m)}),
        other => panic!("unexpected attribute {other:?}"),
    }
}

fn image(item: &std::collections::HashMap<String, AttributeValue>) -> Value {
    Value::Object(item.iter().map(|(k, v)| (k.clone(), typed(v))).collect::<Map<_, _>>())
}

/// Every record the table's stream holds, oldest first, as one Lambda DynamoDB Streams event.
pub async fn lambda_event(aws: &AwsClients, table: &str) -> Value {
    let streams = client().await;
    let arn = aws
        .dynamodb
        .describe_table()
        .table_name(table)
        .send()
        .await
        .expect("describe table")
        .table
        .and_then(|t| t.latest_stream_arn)
        .expect("the table has a stream");
    let description = streams
        .describe_stream()
        .stream_arn(&arn)
        .send()
        .await
        .expect("describe stream")
        .stream_description
        .expect("stream description");
    let mut records: Vec<(u128, Value)> = Vec::new();
    for shard in description.shards() {
        let mut iterator = streams
            .get_shard_iterator()
            .stream_arn(&arn)
            .shard_id(shard.shard_id().unwrap_or_default())
            .shard_iterator_type(ShardIteratorType::TrimHorizon)
            .send()
            .await
            .expect("shard iterator")
            .shard_iterator;
        while let Some(it) = iterator.take() {
            let out = streams
                .get_records()
                .shard_iterator(it)
                .send()
                .await
                .expect("get records");
            if out.records().is_empty() {
                break;
            }
            for r in out.records() {
                let change = r.dynamodb().expect("a change");
                let sequence = change.sequence_number().unwrap_or_default().to_owned();
                let mut dynamodb = json!({"SequenceNumber": sequence, "StreamViewType": "NEW_AND_OLD_IMAGES"});
                if let Some(keys) = change.keys() {
                    dynamodb["Keys"] = image(keys);
                }
                if let Some(new) = change.new_image() {
                    dynamodb["NewImage"] = image(new);
                }
                if let Some(old) = change.old_image() {
                    dynamodb["OldImage"] = image(old);
                }
                let record = json!({
                    "eventID": r.event_id(), "eventName": r.event_name().map(|e| e.as_str()),
                    "eventSource": "aws:dynamodb", "eventSourceARN": arn, "dynamodb": dynamodb,
                });
                records.push((sequence.parse().unwrap_or(0), record));
            }
            iterator = out.next_shard_iterator;
        }
    }
    records.sort_by_key(|(sequence, _)| *sequence);
    json!({"Records": records.into_iter().map(|(_, r)| r).collect::<Vec<_>>()})
}

/// A bus on moto with a rule that copies the events matching `pattern` into a queue; returns
/// the bus name and the queue URL.
pub async fn bus_with_queue(aws: &AwsClients, pattern: &Value) -> (String, String) {
    let bus = crate::moto::unique("leads-bus");
    aws.events
        .create_event_bus()
        .name(&bus)
        .send()
        .await
        .expect("create bus");
    let queue_url = aws
        .sqs
        .create_queue()
        .queue_name(crate::moto::unique("outbound"))
        .send()
        .await
        .expect("create queue")
        .queue_url
        .expect("queue url");
    let attributes = aws
        .sqs
        .get_queue_attributes()
        .queue_url(&queue_url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .expect("queue attributes")
        .attributes
        .unwrap_or_default();
    let arn = attributes[&aws_sdk_sqs::types::QueueAttributeName::QueueArn].clone();
    aws.events
        .put_rule()
        .name("outbound")
        .event_bus_name(&bus)
        .event_pattern(pattern.to_string())
        .send()
        .await
        .expect("rule");
    aws.events
        .put_targets()
        .rule("outbound")
        .event_bus_name(&bus)
        .targets(
            aws_sdk_eventbridge::types::Target::builder()
                .id("queue")
                .arn(arn)
                .build()
                .expect("target"),
        )
        .send()
        .await
        .expect("target");
    (bus, queue_url)
}

/// Every event the bus delivered to the queue, as EventBridge wrapped it.
pub async fn drain(aws: &AwsClients, queue_url: &str) -> Vec<Value> {
    let mut events = Vec::new();
    loop {
        let out = aws
            .sqs
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(10)
            .send()
            .await
            .expect("receive");
        if out.messages().is_empty() {
            return events;
        }
        for m in out.messages() {
            events.push(serde_json::from_str(m.body().unwrap_or("{}")).expect("an event as JSON"));
            if let Some(handle) = m.receipt_handle() {
                aws.sqs
                    .delete_message()
                    .queue_url(queue_url)
                    .receipt_handle(handle)
                    .send()
                    .await
                    .expect("delete");
            }
        }
    }
}
