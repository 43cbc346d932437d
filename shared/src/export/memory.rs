//! Embedded export ports, for tests and the local run: jobs in memory, files in memory.

use super::job::{ExportJob, ExportJobs, ExportSink, ExportUpload};
use crate::domain::TenantId;
use crate::store::StoreError;
use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[derive(Default)]
pub struct MemoryExportJobs(Mutex<HashMap<(TenantId, String), ExportJob>>);

#[async_trait]
impl ExportJobs for MemoryExportJobs {
    async fn put(&self, job: &ExportJob) -> Result<(), StoreError> {
        lock(&self.0).insert((job.tenant.clone(), job.export_id.clone()), job.clone());
        Ok(())
    }

    async fn get(&self, tenant: &TenantId, export_id: &str) -> Result<Option<ExportJob>, StoreError> {
        Ok(lock(&self.0).get(&(tenant.clone(), export_id.to_owned())).cloned())
    }
}

/// Files kept in memory; the download URL is `<base>/<key>` (the local run serves them there).
#[derive(Clone)]
pub struct MemorySink {
    files: Arc<Mutex<HashMap<String, Vec<u8>>>>,
    base: String,
}

impl MemorySink {
    pub fn new(base: impl Into<String>) -> Self {
        Self {
            files: Arc::default(),
            base: base.into(),
        }
    }

    pub fn file(&self, key: &str) -> Option<Vec<u8>> {
        lock(&self.files).get(key).cloned()
    }
}

struct MemoryUpload {
    files: Arc<Mutex<HashMap<String, Vec<u8>>>>,
    key: String,
    bytes: Vec<u8>,
}

#[async_trait]
impl ExportSink for MemorySink {
    async fn open(&self, key: &str) -> Result<Box<dyn ExportUpload>, StoreError> {
        Ok(Box::new(MemoryUpload {
            files: self.files.clone(),
            key: key.to_owned(),
            bytes: Vec::new(),
        }))
    }

    async fn download_url(&self, key: &str, _ttl: std::time::Duration) -> Result<String, StoreError> {
        Ok(format!("{}/{key}", self.base))
    }
}

#[async_trait]
impl ExportUpload for MemoryUpload {
    async fn part(&mut self, bytes: Vec<u8>) -> Result<(), StoreError> {
        self.bytes.extend(bytes);
        Ok(())
    }

    async fn finish(self: Box<Self>) -> Result<(), StoreError> {
        lock(&self.files).insert(self.key, self.bytes);
        Ok(())
    }

    async fn abort(self: Box<Self>) {}
}
