//! Anonymization: policies, deterministic fake data, and the row transform
//! that applies them inside the pipeline.

pub mod policy;
pub mod rules;
pub mod sample;
pub mod schema;
pub mod setup;
pub mod transform;
