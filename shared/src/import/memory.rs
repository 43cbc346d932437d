//! Embedded import ports, for tests and the local run: records in memory, files in a directory
//! (the local run takes the upload's PUT itself and writes it there).

use super::job::{FileStat, ImportJob, ImportJobs, LocalCopy};
use crate::domain::TenantId;
use crate::store::StoreError;
use async_trait::async_trait;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[derive(Default)]
pub struct MemoryImportJobs(Mutex<HashMap<(TenantId, String), ImportJob>>);

#[async_trait]
impl ImportJobs for MemoryImportJobs {
    async fn put(&self, job: &ImportJob) -> Result<(), StoreError> {
        lock(&self.0).insert((job.tenant.clone(), job.import_id.clone()), job.clone());
        Ok(())
    }

    async fn get(&self, tenant: &TenantId, import_id: &str) -> Result<Option<ImportJob>, StoreError> {
        Ok(lock(&self.0).get(&(tenant.clone(), import_id.to_owned())).cloned())
    }

    async fn advance(&self, job: &ImportJob) -> Result<bool, StoreError> {
        let mut all = lock(&self.0);
        let key = (job.tenant.clone(), job.import_id.clone());
        // As DynamoDB's condition: only a stored record at the revision before moves.
        if all.get(&key).is_none_or(|stored| stored.revision + 1 != job.revision) {
            return Ok(false);
        }
        all.insert(key, job.clone());
        Ok(true)
    }
}

/// A file's version as its size and modification time (what an ETag tells S3's callers).
fn etag_of(m: &std::fs::Metadata) -> String {
    let modified = m
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    format!("{}-{modified}", m.len())
}

/// Uploaded files as files in `dir`; the upload link is `<base>/<key>`, which the local run
/// answers with a PUT that writes `dir/<key>`.
pub struct DirectoryFiles {
    dir: PathBuf,
    base: String,
}

impl DirectoryFiles {
    pub fn new(dir: impl Into<PathBuf>, base: impl Into<String>) -> Self {
        Self {
            dir: dir.into(),
            base: base.into(),
        }
    }

    /// Where an uploaded `key` is written; `None` for a key that is not an import file's.
    pub fn path_of(&self, key: &str) -> Option<PathBuf> {
        let name = key.strip_prefix("imports/")?;
        let plausible = !name.is_empty()
            && name.len() <= 80
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
            && !name.starts_with('.');
        plausible.then(|| self.dir.join(name))
    }
}

#[async_trait]
impl super::job::ImportFiles for DirectoryFiles {
    async fn upload_url(&self, key: &str, _ttl: std::time::Duration) -> Result<String, StoreError> {
        Ok(format!("{}/{key}", self.base))
    }

    async fn stat(&self, key: &str) -> Result<Option<FileStat>, StoreError> {
        let Some(path) = self.path_of(key) else {
            return Ok(None);
        };
        match tokio::fs::metadata(&path).await {
            Ok(m) => Ok(Some(FileStat {
                bytes: m.len(),
                etag: Some(etag_of(&m)),
            })),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StoreError::new("stat import file", e)),
        }
    }

    async fn fetch(&self, key: &str, etag: Option<&str>) -> Result<Option<LocalCopy>, StoreError> {
        let Some(stat) = self.stat(key).await? else {
            return Ok(None);
        };
        if etag.is_some_and(|e| stat.etag.as_deref() != Some(e)) {
            return Ok(None);
        }
        Ok(self.path_of(key).map(|path| LocalCopy { path, temporary: false }))
    }
}
