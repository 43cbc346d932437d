//! The crate every douyin-leads function shares: configuration, domain types, platform clients,
//! storage ports and adapters, and the HTTP conventions.

pub mod analytics;
pub mod aws;
pub mod clock;
pub mod config;
pub mod connect;
pub mod deadline;
pub mod domain;
pub mod events;
pub mod export;
pub mod failure;
pub mod http;
pub mod import;
pub mod lead;
pub mod lead_merge;
pub mod lead_query;
pub mod lead_view;
pub mod lenient;
pub mod outbound;
pub mod platform;
pub mod read_model;
pub mod secret;
pub mod sources;
pub mod spend;
pub mod store;
pub mod sync;
pub mod task;
pub mod writeback;

pub use config::Config;
pub use secret::Secret;
