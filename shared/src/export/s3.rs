//! Export files in S3 (one multipart upload per job; an aborted one is cleaned up at once, and the
//! bucket's lifecycle rule removes any left behind), download links presigned, and job requests
//! on SQS for the lead-export function.

use super::job::{ExportRequests, ExportSink, ExportUpload};
use crate::domain::TenantId;
use crate::store::StoreError;
use async_trait::async_trait;
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use serde::{Deserialize, Serialize};

pub struct S3Sink {
    client: aws_sdk_s3::Client,
    bucket: String,
}

impl S3Sink {
    pub fn new(client: aws_sdk_s3::Client, bucket: impl Into<String>) -> Self {
        Self {
            client,
            bucket: bucket.into(),
        }
    }
}

fn s3_error(operation: &'static str, e: impl std::fmt::Display) -> StoreError {
    StoreError::new(operation, e)
}

struct S3Upload {
    client: aws_sdk_s3::Client,
    bucket: String,
    key: String,
    upload_id: String,
    parts: Vec<CompletedPart>,
}

#[async_trait]
impl ExportSink for S3Sink {
    async fn open(&self, key: &str) -> Result<Box<dyn ExportUpload>, StoreError> {
        let file = key.rsplit('/').next().unwrap_or("leads.csv");
        let out = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .content_type("text/csv; charset=utf-8")
            .content_disposition(format!("attachment; filename=\"{file}\""))
            .send()
            .await
            .map_err(|e| s3_error("start export upload", aws_sdk_s3::error::DisplayErrorContext(e)))?;
        let upload_id = out
            .upload_id
            .ok_or_else(|| StoreError::new("start export upload", "no upload id"))?;
        Ok(Box::new(S3Upload {
            client: self.client.clone(),
            bucket: self.bucket.clone(),
            key: key.to_owned(),
            upload_id,
            parts: Vec::new(),
        }))
    }

    async fn download_url(&self, key: &str, ttl: std::time::Duration) -> Result<String, StoreError> {
        let config = PresigningConfig::expires_in(ttl).map_err(|e| s3_error("presign export", e))?;
        let request = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .presigned(config)
            .await
            .map_err(|e| s3_error("presign export", aws_sdk_s3::error::DisplayErrorContext(e)))?;
        Ok(request.uri().to_owned())
    }
}

#[async_trait]
impl ExportUpload for S3Upload {
    async fn part(&mut self, bytes: Vec<u8>) -> Result<(), StoreError> {
        let number = self.parts.len() as i32 + 1;
        let out = self
            .client
            .upload_part()
            .bucket(&self.bucket)
            .key(&self.key)
            .upload_id(&self.upload_id)
            .part_number(number)
            .body(bytes.into())
            .send()
            .await
            .map_err(|e| s3_error("upload export part", aws_sdk_s3::error::DisplayErrorContext(e)))?;
        self.parts.push(
            CompletedPart::builder()
                .part_number(number)
                .set_e_tag(out.e_tag)
                .build(),
        );
        Ok(())
    }

    async fn finish(self: Box<Self>) -> Result<(), StoreError> {
        self.client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(&self.key)
            .upload_id(&self.upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(self.parts.clone()))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| s3_error("finish export upload", aws_sdk_s3::error::DisplayErrorContext(e)))?;
        Ok(())
    }

    async fn abort(self: Box<Self>) {
        let result = self
            .client
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(&self.key)
            .upload_id(&self.upload_id)
            .send()
            .await;
        if let Err(e) = result {
            tracing::warn!(error = %aws_sdk_s3::error::DisplayErrorContext(e), "abandoned export upload left to the lifecycle rule");
        }
    }
}

/// The SQS message that asks the lead-export function to run a job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExportMessage {
    pub tenant: TenantId,
    pub export_id: String,
}

pub struct SqsExportRequests {
    client: aws_sdk_sqs::Client,
    url: String,
}

impl SqsExportRequests {
    pub fn new(client: aws_sdk_sqs::Client, url: impl Into<String>) -> Self {
        Self {
            client,
            url: url.into(),
        }
    }
}

#[async_trait]
impl ExportRequests for SqsExportRequests {
    async fn request(&self, tenant: &TenantId, export_id: &str) -> Result<(), StoreError> {
        let message = ExportMessage {
            tenant: tenant.clone(),
            export_id: export_id.to_owned(),
        };
        crate::aws::send_json(&self.client, &self.url, &message, "request export").await
    }
}
