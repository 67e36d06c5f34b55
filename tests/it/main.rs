//! One integration-test binary against real PostgreSQL and S3 servers
//! (started by `scripts/test.sh`).

mod anonymize;
mod docs;
mod errors;
mod fixture;
mod harness;
mod integrity;
mod policy;
mod roundtrip;
mod store;
mod support;
