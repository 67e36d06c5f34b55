//! A backup killed with SIGKILL in the middle of its upload: nothing is listed,
//! and the next run removes what it left (incomplete multipart uploads,
//! temporary files) before writing its own backup.

use std::process::Command;
use std::time::{Duration, Instant};

use rand::RngExt;

use crate::harness::{BIN, Target, Workspace, stderr};
use crate::store::{admin_client, incomplete_uploads};
use crate::support::{s3_endpoints, unique};

/// An SQLite database of `mib` MiB of random blobs (incompressible: the upload
/// takes several multipart parts).
pub fn random_blobs(path: &std::path::Path, mib: usize) {
    let conn = rusqlite::Connection::open(path).expect("open");
    conn.execute_batch("CREATE TABLE blobs (id INTEGER PRIMARY KEY, data BLOB NOT NULL);")
        .expect("schema");
    let mut rng = rand::rng();
    for i in 0..mib {
        let mut data = vec![0u8; 1 << 20];
        rng.fill(&mut data[..]);
        conn.execute(
            "INSERT INTO blobs (id, data) VALUES (?1, ?2)",
            rusqlite::params![i as i64, data],
        )
        .expect("insert");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_backup_killed_mid_upload_leaves_nothing_listed_and_the_next_run_cleans_up() {
    let endpoint = s3_endpoints()[0].clone();
    let client = admin_client(&endpoint);
    let bucket = unique("killed");
    client
        .create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .expect("create bucket");
    let ws = Workspace::new(
        &[
            Target::S3 {
                name: "region",
                endpoint: endpoint.clone(),
                bucket: bucket.clone(),
            },
            Target::Fs("local"),
        ],
        "[sources.big]\ntype = \"sqlite\"\npath = \"big.db\"\ntargets = [\"region\", \"local\"]\n",
    );
    random_blobs(&ws.path("big.db"), 32);

    let mut child = Command::new(BIN)
        .arg("--config")
        .arg(ws.path("coffre.toml"))
        .args(["backup", "big"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn backup");
    let started = Instant::now();
    loop {
        if !incomplete_uploads(&client, &bucket).await.is_empty() {
            child.kill().expect("SIGKILL"); // Child::kill sends SIGKILL on Unix
            break;
        }
        if let Some(status) = child.try_wait().expect("try_wait") {
            panic!("the backup ended ({status}) before an upload was seen: make the data bigger");
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no multipart upload started within 120 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    child.wait().expect("wait");

    assert!(
        ws.listed("big").is_empty(),
        "a killed backup is never listed"
    );
    assert!(
        !incomplete_uploads(&client, &bucket).await.is_empty(),
        "the kill left an incomplete multipart upload (the case under test)"
    );

    let id = ws.backup_ok("big");
    assert_eq!(ws.listed("big"), vec![id.clone()]);
    assert!(
        incomplete_uploads(&client, &bucket).await.is_empty(),
        "the next run aborted the leftover upload"
    );
    let partials: Vec<_> = walkdir(&ws.path("local"))
        .into_iter()
        .filter(|p| p.contains(".partial-"))
        .collect();
    assert!(partials.is_empty(), "temporary files left: {partials:?}");

    // And the backup is whole.
    let to = ws.path("restored.db");
    let out = ws.run(&["restore", &id, "--to", to.to_str().expect("path")]);
    assert!(out.status.success(), "{}", stderr(&out));
}

/// Every file path under `dir`, recursively.
pub fn walkdir(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let path = e.path();
        if path.is_dir() {
            out.extend(walkdir(&path));
        } else {
            out.push(path.display().to_string());
        }
    }
    out
}

#[test]
fn two_backups_of_one_source_never_overlap() {
    let ws = Workspace::new(
        &[Target::Fs("local")],
        "[sources.big]\ntype = \"sqlite\"\npath = \"big.db\"\ntargets = [\"local\"]\n",
    );
    random_blobs(&ws.path("big.db"), 40);
    let mut first = Command::new(BIN)
        .arg("--config")
        .arg(ws.path("coffre.toml"))
        .args(["backup", "big", "--json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    // Wait until the first run holds the lock (the test cannot take it), then
    // a second run must be refused, naming the source.
    let lock = ws.path("state/locks/big.lock");
    let started = Instant::now();
    loop {
        if let Ok(f) = std::fs::File::open(&lock)
            && matches!(f.try_lock(), Err(std::fs::TryLockError::WouldBlock))
        {
            break;
        }
        if first.try_wait().expect("try_wait").is_some() {
            panic!("the first backup ended before its lock was seen: make the data bigger");
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "lock never taken"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let out = ws.run(&["backup", "big"]);
    assert_eq!(out.status.code(), Some(1));
    let refused = stderr(&out);
    assert!(refused.contains("another coffre job"), "{refused}");
    assert!(refused.contains("big"), "{refused}");
    assert!(first.wait().expect("wait").success());
    assert_eq!(ws.listed("big").len(), 1, "only the first backup exists");
}
