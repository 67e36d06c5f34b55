//! Shared helpers of the integration tests: where the real servers started by
//! `scripts/test.sh` are. A missing server is a loud failure, never a skip.

#![allow(dead_code)]

/// Reads a variable set by `scripts/test.sh`, or panics saying how to run the tests.
pub fn required_env(name: &str) -> String {
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => v,
        _ => panic!(
            "{name} is not set: integration tests need the real servers that scripts/test.sh \
             starts (PostgreSQL, SeaweedFS). Run `bash scripts/test.sh` instead of bare cargo test."
        ),
    }
}

/// Admin URL of the PostgreSQL server used by the tests (may create and drop databases).
pub fn pg_admin_url() -> String {
    required_env("COFFRE_TEST_PG_URL")
}

/// The S3 endpoints standing for regions (at least two).
pub fn s3_endpoints() -> Vec<String> {
    let v: Vec<String> = required_env("COFFRE_TEST_S3_ENDPOINTS")
        .split(',')
        .map(str::to_owned)
        .collect();
    assert!(
        v.len() >= 2,
        "COFFRE_TEST_S3_ENDPOINTS must list two endpoints"
    );
    v
}

/// Access key and secret key of the test S3 servers.
pub fn s3_credentials() -> (String, String) {
    (
        required_env("COFFRE_TEST_S3_ACCESS_KEY"),
        required_env("COFFRE_TEST_S3_SECRET_KEY"),
    )
}

/// A short unique suffix for database and bucket names.
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{prefix}{}x{n}x{nanos:x}", std::process::id())
}
