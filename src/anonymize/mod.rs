//! Anonymization: policies, deterministic fake data, and the row transform
//! that applies them inside the pipeline.

pub mod rules;
