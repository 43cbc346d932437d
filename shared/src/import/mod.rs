//! File import: leads from the platforms' own back-office exports, for merchants without API
//! access. What a row of an export means is decided here, once: which column is which (Chinese
//! headers, spacing, full-width forms and order tolerated), how a phone, a time and an id are
//! read, and why a row is refused. `POST /imports` records an import and hands out an upload
//! link; `POST /imports/{id}/start` asks for [`job::run`] off the request path (the lead-import
//! function, or a task in the local run), which writes through the same upsert as a sync.

pub mod cells;
pub mod dynamo;
pub mod headers;
pub mod job;
pub mod memory;
pub mod reader;
pub mod row;
pub mod s3;
pub mod text;

pub use job::{ImportDeps, ImportFiles, ImportJob, ImportJobs, ImportRequests, ImportStatus};
