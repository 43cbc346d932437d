//! Everything that runs the system without AWS or ByteDance: the platform simulator, moto
//! helpers, the store contract suite and the local all-in-one server.

pub mod app;
pub mod bench;
pub mod connections;
pub mod contract;
pub mod ddb_counter;
pub mod faulty_leads;
pub mod local;
pub mod local_auth;
pub mod log_capture;
pub mod moto;
pub mod outbound;
pub mod sample_exports;
pub mod sim;
pub mod streams;
pub mod sync_fixtures;
pub mod sync_harness;
pub mod sync_requests;
pub mod xlsx;
