//! One integration-test binary against real PostgreSQL and S3 servers
//! (started by `scripts/test.sh`).

mod alerts;
mod anonymize;
mod api;
mod docs;
mod drill;
mod erasure;
mod errors;
mod fixture;
mod harness;
mod integrity;
mod interrupted;
mod mysql;
mod policy;
mod regions;
mod retention;
mod roundtrip;
mod service;
mod store;
mod support;
