//! One integration-test binary against real PostgreSQL and S3 servers
//! (started by `scripts/test.sh`).

mod errors;
mod fixture;
mod harness;
mod roundtrip;
mod store;
mod support;
mod docs;
