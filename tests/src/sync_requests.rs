//! Stand-ins for the event bus behind `POST /fans/sync`: one that runs the requested sync in
//! this process (the local run), one that only records the requests (router tests).

use async_trait::async_trait;
use shared::store::StoreError;
use shared::sync::requests::SyncRequests;
use shared::sync::{SyncEngine, SyncRequest};
use std::sync::{Arc, Mutex};

pub struct InProcessSyncRequests(pub Arc<SyncEngine>);

#[async_trait]
impl SyncRequests for InProcessSyncRequests {
    async fn request(&self, request: &SyncRequest) -> Result<(), StoreError> {
        let (engine, request) = (self.0.clone(), request.clone());
        tokio::spawn(async move {
            if let Err(e) = engine.run(request, None).await {
                tracing::error!(error = %e, "requested sync failed");
            }
        });
        Ok(())
    }
}

#[derive(Default)]
pub struct RecordedSyncRequests(pub Mutex<Vec<SyncRequest>>);

#[async_trait]
impl SyncRequests for RecordedSyncRequests {
    async fn request(&self, request: &SyncRequest) -> Result<(), StoreError> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push(request.clone());
        Ok(())
    }
}
