//! coffre: streaming, encrypted, multi-region backups of billing databases.
//!
//! The data flow is a pipeline of stages on their own tasks, joined by bounded channels:
//!
//! ```text
//! source (postgres | sqlite) → dump parser (row events, stats) → zstd → age → SHA-256
//!   → fan-out → store (s3 region A, s3 region B, local dir)
//! restore: store → SHA-256 → age⁻¹ → zstd⁻¹ → dump parser (stats) → destination
//! ```
//!
//! See `ARCHITECTURE.md` for the module map and the invariants.

pub mod anonymize;
pub mod api;
pub mod audit;
pub mod auth;
pub mod catalog;
pub mod cli;
pub mod config;
pub mod demo;
pub mod drill;
pub mod dump;
pub mod erasure;
pub mod fixture;
pub mod integrity;
pub mod keys;
pub mod manifest;
pub mod memo;
pub mod pipeline;
pub mod progress;
pub mod retention;
pub mod schedule;
pub mod service;
pub mod source;
pub mod state;
pub mod store;
