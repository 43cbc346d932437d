//! Uploaded files in S3 (the export bucket, under `imports/`; the bucket's lifecycle rule removes
//! them with the import): a presigned PUT to upload, HeadObject for the size, and a download to
//! a temporary file to read (an xlsx is a zip, read from its end). Import requests go on SQS for
//! the lead-import function.

use super::job::{FileStat, ImportFiles, ImportRequests, LocalCopy};
use crate::domain::TenantId;
use crate::store::StoreError;
use async_trait::async_trait;
use aws_sdk_s3::error::DisplayErrorContext;
use aws_sdk_s3::presigning::PresigningConfig;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;

pub struct S3ImportFiles {
    client: aws_sdk_s3::Client,
    bucket: String,
    /// Where downloaded copies go (Lambda: /tmp).
    scratch: std::path::PathBuf,
}

impl S3ImportFiles {
    pub fn new(client: aws_sdk_s3::Client, bucket: impl Into<String>) -> Self {
        Self {
            client,
            bucket: bucket.into(),
            scratch: std::env::temp_dir(),
        }
    }
}

#[async_trait]
impl ImportFiles for S3ImportFiles {
    async fn upload_url(&self, key: &str, ttl: std::time::Duration) -> Result<String, StoreError> {
        let config = PresigningConfig::expires_in(ttl).map_err(|e| StoreError::new("presign upload", e))?;
        let request = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .presigned(config)
            .await
            .map_err(|e| StoreError::new("presign upload", DisplayErrorContext(e)))?;
        Ok(request.uri().to_owned())
    }

    async fn stat(&self, key: &str) -> Result<Option<FileStat>, StoreError> {
        // A missing key is a 404 only to a caller who may list the bucket (the template grants
        // it); without, S3 answers 403.
        match self.client.head_object().bucket(&self.bucket).key(key).send().await {
            Ok(out) => Ok(Some(FileStat {
                bytes: out.content_length.unwrap_or(0).max(0) as u64,
                etag: out.e_tag,
            })),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => Ok(None),
            Err(e) => Err(StoreError::new("stat import file", DisplayErrorContext(e))),
        }
    }

    async fn fetch(&self, key: &str, etag: Option<&str>) -> Result<Option<LocalCopy>, StoreError> {
        let name = key.rsplit('/').next().unwrap_or("import");
        let copy = LocalCopy {
            path: self.scratch.join(format!("{}-{name}", std::process::id())),
            temporary: true,
        };
        let mut request = self.client.get_object().bucket(&self.bucket).key(key);
        if let Some(etag) = etag {
            request = request.if_match(etag);
        }
        let out = match request.send().await {
            Ok(out) => out,
            Err(e)
                if e.raw_response()
                    .is_some_and(|r| matches!(r.status().as_u16(), 404 | 412)) =>
            {
                return Ok(None);
            }
            Err(e) => return Err(StoreError::new("fetch import file", DisplayErrorContext(e))),
        };
        let mut body = out.body;
        let mut file = tokio::fs::File::create(&copy.path)
            .await
            .map_err(|e| StoreError::new("fetch import file", e))?;
        while let Some(chunk) = body
            .try_next()
            .await
            .map_err(|e| StoreError::new("fetch import file", e))?
        {
            file.write_all(&chunk)
                .await
                .map_err(|e| StoreError::new("fetch import file", e))?;
        }
        file.flush()
            .await
            .map_err(|e| StoreError::new("fetch import file", e))?;
        Ok(Some(copy))
    }
}

/// The SQS message that asks the lead-import function to run (or continue) an import.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImportMessage {
    pub tenant: TenantId,
    pub import_id: String,
}

pub struct SqsImportRequests {
    client: aws_sdk_sqs::Client,
    url: String,
}

impl SqsImportRequests {
    pub fn new(client: aws_sdk_sqs::Client, url: impl Into<String>) -> Self {
        Self {
            client,
            url: url.into(),
        }
    }
}

#[async_trait]
impl ImportRequests for SqsImportRequests {
    async fn request(&self, tenant: &TenantId, import_id: &str) -> Result<(), StoreError> {
        let message = ImportMessage {
            tenant: tenant.clone(),
            import_id: import_id.to_owned(),
        };
        crate::aws::send_json(&self.client, &self.url, &message, "request import").await
    }
}
