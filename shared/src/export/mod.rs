//! Export jobs: any number of leads, written off the request path into one CSV object with a
//! multipart upload, batch by batch with flat memory, and handed out as a short-lived download
//! link. `POST /leads/exports` records a job and asks for it; a worker (the lead-export
//! function, or a task in the local run) runs [`job::run`].

pub mod csv;
pub mod dynamo;
pub mod job;
pub mod memory;
pub mod s3;

pub use job::{ExportDeps, ExportJob, ExportJobs, ExportRequests, ExportSink, ExportStatus, ExportUpload};
