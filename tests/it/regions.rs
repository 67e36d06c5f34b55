//! Several regions in one pass: SeaweedFS instances stand for regions. One is
//! killed mid-backup (and restarted), one gets a flipped byte, one a forged
//! manifest; `list`, `verify --all` and `restore` see it, and `heal` makes every
//! region whole again from the others.
//!
//! The regions that must stop are SeaweedFS instances started by the test itself
//! (`COFFRE_TEST_WEED_BIN`, set by `scripts/test.sh`), on free loopback ports with
//! their own data directory, so that they can be killed, frozen and restarted on
//! the same data; the others are the two instances `scripts/test.sh` starts.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_s3::Client;
use bytes::Bytes;

use crate::harness::{
    BIN, PgDb, Target, Workspace, assert_same, create_bucket, get_object, load_billing,
    pg_fingerprint, pg_source, s3_client, stderr,
};
use crate::support::{required_env, s3_credentials, s3_endpoints, unique};

/// Scale of the PostgreSQL billing fixture of the mid-backup tests: ~80 MB of
/// SQL, ~15 MB stored (three 5 MiB parts), a few seconds of backup.
const BIG_SCALE: u64 = 20_000;

// ---------------------------------------------------------------- a region of our own

/// A SeaweedFS instance owned by one test: killed on drop.
struct Weed {
    dir: tempfile::TempDir,
    /// First of its ten ports (S3 is `base`, as in `scripts/lib/services.sh`).
    base: u16,
    child: Option<Child>,
    endpoint: String,
}

/// Ten consecutive free ports on 127.0.0.1, away from those `scripts/test.sh` uses.
fn free_port_block() -> u16 {
    use std::sync::Mutex;
    static PICKING: Mutex<u32> = Mutex::new(0);
    let mut n = PICKING.lock().unwrap_or_else(|e| e.into_inner());
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0)
        ^ std::process::id().rotate_left(16);
    for attempt in 0..200u32 {
        *n += 1;
        // 20000..26990, step 10: below the kernel's ephemeral range and test.sh's 27300.
        let base = 20_000 + ((seed.wrapping_add(attempt * 7919).wrapping_add(*n * 31)) % 700) * 10;
        let base = base as u16;
        if (base..base + 10).all(|p| TcpListener::bind(("127.0.0.1", p)).is_ok()) {
            return base;
        }
    }
    panic!("no block of ten free ports found on 127.0.0.1 between 20000 and 27000");
}

impl Weed {
    /// Starts a fresh instance and waits until it takes writes.
    async fn start() -> Weed {
        let bin = required_env("COFFRE_TEST_WEED_BIN");
        assert!(
            Path::new(&bin).exists(),
            "COFFRE_TEST_WEED_BIN={bin} does not exist"
        );
        let dir = tempfile::tempdir().expect("tempdir for weed");
        std::fs::create_dir_all(dir.path().join("data")).expect("mkdir weed data");
        let (key, secret) = s3_credentials();
        std::fs::write(
            dir.path().join("s3.json"),
            format!(
                "{{\"identities\":[{{\"name\":\"coffre-test\",\"credentials\":[{{\"accessKey\":\"{key}\",\
                 \"secretKey\":\"{secret}\"}}],\"actions\":[\"Admin\",\"Read\",\"List\",\"Tagging\",\"Write\"]}}]}}\n"
            ),
        )
        .expect("write s3.json");
        let base = free_port_block();
        let mut weed = Weed {
            dir,
            base,
            child: None,
            endpoint: format!("http://127.0.0.1:{base}"),
        };
        weed.spawn();
        weed.wait_ready().await;
        weed
    }

    /// Starts `weed mini` with the flags of `scripts/lib/services.sh`, on our
    /// ports and data directory (kept across restarts).
    fn spawn(&mut self) {
        let bin = required_env("COFFRE_TEST_WEED_BIN");
        let b = self.base;
        let (master, vol, filer, admin) = (b + 2, b + 4, b + 6, b + 8);
        let d = self.dir.path();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(d.join("weed.log"))
            .expect("open weed.log");
        let mut cmd = if Path::new("/usr/bin/setpriv").exists() {
            // Dies with the test's thread even if the test binary is killed.
            let mut c = Command::new("/usr/bin/setpriv");
            c.args(["--pdeathsig", "KILL", "--"]).arg(&bin);
            c
        } else {
            Command::new(&bin)
        };
        cmd.arg("-logtostderr")
            .arg("mini")
            .arg(format!("-dir={}", d.join("data").display()))
            .args(["-ip=127.0.0.1", "-ip.bind=127.0.0.1"])
            .arg(format!("-s3.config={}", d.join("s3.json").display()))
            .args([
                "-master.telemetry=false",
                "-admin.ui=false",
                "-webdav=false",
                "-s3.port.iceberg=0",
                "-s3.port.lance=0",
                "-metricsIp=127.0.0.1",
            ])
            .arg(format!("-master.port={master}"))
            .arg(format!("-master.port.grpc={}", master + 1))
            .arg(format!("-volume.port={vol}"))
            .arg(format!("-volume.port.grpc={}", vol + 1))
            .arg(format!("-filer.port={filer}"))
            .arg(format!("-filer.port.grpc={}", filer + 1))
            .arg(format!("-s3.port={b}"))
            .arg(format!("-s3.port.grpc={}", b + 1))
            .arg(format!("-admin.port={admin}"))
            .arg(format!("-admin.port.grpc={}", admin + 1))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup log"))
            .stderr(log);
        self.child = Some(cmd.spawn().expect("start weed"));
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().expect("weed is running").id()
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.dir.path().join("weed.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// Waits (60 s at most) for the S3 port, then for a real write, read and delete.
    async fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let client = s3_client(&self.endpoint);
        let probe = format!("probe-{}", self.base);
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().expect("wait weed"))
            {
                panic!("weed exited at start ({status}):\n{}", self.log_tail());
            }
            assert!(
                Instant::now() < deadline,
                "weed on {} not ready within 60 s:\n{}",
                self.endpoint,
                self.log_tail()
            );
            if TcpStream::connect(("127.0.0.1", self.base)).is_ok()
                && probe_write(&client, &probe).await
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    /// Kills the server at once (SIGKILL), as a crash or a lost region would.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same ports and data.
    async fn restart(&mut self) {
        assert!(self.child.is_none(), "restart of a running weed");
        self.spawn();
        self.wait_ready().await;
    }

    /// Sends a signal (`STOP`, `CONT`) to the server.
    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} {}", self.pid());
    }
}

impl Drop for Weed {
    fn drop(&mut self) {
        if let Some(child) = &self.child {
            // A frozen server does not die of SIGKILL any slower, but be sure.
            let _ = Command::new("kill")
                .arg("-CONT")
                .arg(child.id().to_string())
                .status();
        }
        self.kill();
        // Sockets weed leaves in /tmp, named after its ports.
        if let Ok(entries) = std::fs::read_dir("/tmp") {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.starts_with("seaweedfs-")
                    && (self.base..self.base + 10).any(|p| name.ends_with(&format!("-{p}.sock")))
                {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
    }
}

// ---------------------------------------------------------------- S3 behind coffre's back

/// Creates a bucket, writes, reads and deletes an object: true when all worked.
async fn probe_write(client: &Client, bucket: &str) -> bool {
    let created = client.create_bucket().bucket(bucket).send().await;
    if let Err(e) = &created {
        let owned = e
            .as_service_error()
            .is_some_and(|s| s.is_bucket_already_owned_by_you());
        if !owned {
            return false;
        }
    }
    let put = client
        .put_object()
        .bucket(bucket)
        .key("probe")
        .body(Bytes::from_static(b"probe").into())
        .send()
        .await;
    if put.is_err() {
        return false;
    }
    let Ok(got) = client.get_object().bucket(bucket).key("probe").send().await else {
        return false;
    };
    let ok = got
        .body
        .collect()
        .await
        .is_ok_and(|b| b.into_bytes() == "probe");
    let _ = client
        .delete_object()
        .bucket(bucket)
        .key("probe")
        .send()
        .await;
    ok
}

async fn put_object(client: &Client, bucket: &str, key: &str, data: Vec<u8>) {
    client
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(Bytes::from(data).into())
        .send()
        .await
        .unwrap_or_else(|e| {
            panic!(
                "put s3://{bucket}/{key}: {}",
                aws_sdk_s3::error::DisplayErrorContext(&e)
            )
        });
}

/// Keys under `prefix` in a bucket.
async fn object_keys(client: &Client, bucket: &str, prefix: &str) -> Vec<String> {
    client
        .list_objects_v2()
        .bucket(bucket)
        .prefix(prefix)
        .send()
        .await
        .expect("list objects")
        .contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_owned))
        .collect()
}

async fn open_uploads(client: &Client, bucket: &str) -> Vec<String> {
    client
        .list_multipart_uploads()
        .bucket(bucket)
        .send()
        .await
        .expect("list multipart uploads")
        .uploads()
        .iter()
        .map(|u| u.key().unwrap_or("?").to_owned())
        .collect()
}

/// Waits until a multipart upload in `bucket` has at least one part, while
/// `backup` is still running (panics if it ended first: the fixture is too small).
async fn wait_for_first_part(client: &Client, bucket: &str, backup: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(status) = backup.try_wait().expect("wait backup") {
            panic!(
                "the backup ended ({status}) before its first part reached {bucket}: raise BIG_SCALE"
            );
        }
        assert!(
            Instant::now() < deadline,
            "no part uploaded to {bucket} within 120 s"
        );
        if let Ok(out) = client.list_multipart_uploads().bucket(bucket).send().await {
            for u in out.uploads() {
                let (Some(key), Some(upload_id)) = (u.key(), u.upload_id()) else {
                    continue;
                };
                let parts = client
                    .list_parts()
                    .bucket(bucket)
                    .key(key)
                    .upload_id(upload_id)
                    .send()
                    .await;
                if parts.is_ok_and(|p| !p.parts().is_empty()) {
                    return;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---------------------------------------------------------------- coffre's side

/// `coffre backup SOURCE --json`, started in the background.
fn spawn_backup(ws: &Workspace, source: &str) -> Child {
    Command::new(BIN)
        .arg("--config")
        .arg(&ws.config)
        .args(["backup", source, "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start coffre backup")
}

/// Waits for a background coffre (at most `limit`); kills it and panics past that.
fn finish(
    mut child: Child,
    limit: Duration,
    on_timeout: impl FnOnce(),
) -> (i32, serde_json::Value) {
    let deadline = Instant::now() + limit;
    while child.try_wait().expect("wait coffre").is_none() {
        if Instant::now() >= deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("collect coffre");
            on_timeout();
            panic!(
                "coffre did not end within {} s (killed); stderr:\n{}",
                limit.as_secs(),
                stderr(&out)
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out: Output = child.wait_with_output().expect("collect coffre");
    let v = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            stderr(&out)
        )
    });
    (out.status.code().unwrap_or(-1), v)
}

/// The backup `id` in a `list --json`.
fn listed<'a>(list: &'a serde_json::Value, id: &str) -> &'a serde_json::Value {
    list["backups"]
        .as_array()
        .expect("backups")
        .iter()
        .find(|b| b["id"] == id)
        .unwrap_or_else(|| panic!("{id} not listed: {list:#}"))
}

/// Targets holding a copy of `id` in a `list --json`, with each copy's status.
fn copies(list: &serde_json::Value, id: &str) -> Vec<(String, String)> {
    listed(list, id)["copies"]
        .as_array()
        .expect("copies")
        .iter()
        .map(|c| {
            (
                c["target"].as_str().expect("target").to_owned(),
                c["status"].as_str().expect("status").to_owned(),
            )
        })
        .collect()
}

/// The copy of `id` in `target` in a `verify --json` or `heal --json` report.
fn copy_in<'a>(report: &'a serde_json::Value, id: &str, target: &str) -> &'a serde_json::Value {
    let backup = report["backups"]
        .as_array()
        .expect("backups")
        .iter()
        .find(|b| b["id"] == id)
        .unwrap_or_else(|| panic!("{id} not in the report: {report:#}"));
    backup["copies"]
        .as_array()
        .expect("copies")
        .iter()
        .find(|c| c["target"] == target)
        .unwrap_or_else(|| panic!("no copy in {target}: {backup:#}"))
}

/// Asserts that `verify --all` finds every copy of every backup whole.
fn assert_all_whole(ws: &Workspace) {
    let (code, v) = ws.json(&["verify", "--all"]);
    assert_eq!(code, 0, "{v:#}");
    assert_eq!(v["ok"], true, "{v:#}");
    for b in v["backups"].as_array().expect("backups") {
        for c in b["copies"].as_array().expect("copies") {
            assert_eq!(c["status"], "ok", "{v:#}");
        }
    }
}

/// Number of tables and sequences in a PostgreSQL database (0 after a refused restore).
fn user_relations(db: &PgDb) -> u64 {
    db.query(
        "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relkind IN ('r', 'p', 'S', 'v', 'm') \
         AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'",
    )
    .parse()
    .expect("a count")
}

fn data_key(source: &str, id: &str) -> String {
    format!("{source}/{id}/data.sql.zst.age")
}

fn sqlite_workspace(targets: &[Target], names: &[&str]) -> Workspace {
    let t: Vec<String> = names.iter().map(|n| format!("\"{n}\"")).collect();
    let ws = Workspace::new(
        targets,
        &format!(
            "[sources.lite]\ntype = \"sqlite\"\npath = \"billing.db\"\ntargets = [{}]\n",
            t.join(", ")
        ),
    );
    crate::harness::load_billing_sqlite(ws.path("billing.db"), 50);
    ws
}

/// Stall timeout of the frozen region in the stall test (the smallest allowed).
const STALL_SECS: u64 = 5;

/// Sets `stall_timeout_secs` on the S3 target of `bucket` in a workspace's config.
fn set_stall_timeout(ws: &Workspace, bucket: &str, secs: u64) {
    let text = std::fs::read_to_string(&ws.config).expect("read config");
    let marker = format!("bucket = \"{bucket}\"\n");
    assert!(text.contains(&marker), "no target with bucket {bucket}");
    let text = text.replace(&marker, &format!("{marker}stall_timeout_secs = {secs}\n"));
    std::fs::write(&ws.config, text).expect("write config");
}

// ---------------------------------------------------------------- the tests

/// One region's server is killed mid-backup: the backup is degraded and restores
/// from the other region; once the server is back, `heal` makes it whole and a
/// restore from it gives the same database.
#[tokio::test]
async fn a_region_killed_mid_backup_is_healed_after_it_returns() {
    let src = PgDb::create("coffre_rg_kill_");
    load_billing(&src, BIG_SCALE);
    let want = pg_fingerprint(&src);
    let paris_ep = s3_endpoints()[0].clone();
    let mut weed = Weed::start().await;
    let (paris_bucket, fra_bucket) = (unique("rg-kill-a-"), unique("rg-kill-b-"));
    create_bucket(&paris_ep, &paris_bucket).await;
    create_bucket(&weed.endpoint, &fra_bucket).await;
    let ws = Workspace::new(
        &[
            Target::S3 {
                name: "paris",
                endpoint: paris_ep.clone(),
                bucket: paris_bucket.clone(),
            },
            Target::S3 {
                name: "frankfurt",
                endpoint: weed.endpoint.clone(),
                bucket: fra_bucket.clone(),
            },
        ],
        &pg_source("billing", &src, &["paris", "frankfurt"]),
    );
    let fra = s3_client(&weed.endpoint);

    // Kill frankfurt's server once the first part of the data object is there.
    let mut backup = spawn_backup(&ws, "billing");
    wait_for_first_part(&fra, &fra_bucket, &mut backup).await;
    weed.kill();
    let (code, v) = finish(backup, Duration::from_secs(300), || {});
    assert_eq!(
        code, 3,
        "a backup stored in one region only is degraded: {v:#}"
    );
    assert_eq!(v["status"], "degraded", "{v:#}");
    let id = v["id"].as_str().expect("id").to_owned();
    let targets = v["targets"].as_array().expect("targets");
    assert_eq!(targets[0]["target"], "paris");
    assert_eq!(targets[0]["status"], "ok", "{v:#}");
    assert_eq!(targets[1]["target"], "frankfurt");
    assert_eq!(targets[1]["status"], "failed", "{v:#}");
    assert!(
        targets[1]["error"]
            .as_str()
            .is_some_and(|e| e.contains("frankfurt")),
        "the error names the region: {v:#}"
    );

    // While frankfurt is down: listed from paris, frankfurt reported unreachable.
    let (code, list) = ws.json(&["list", "billing"]);
    assert_eq!(code, 1, "an unreachable region fails list: {list:#}");
    assert!(
        list["unreachable"]
            .as_array()
            .expect("unreachable")
            .iter()
            .any(|u| u.as_str().is_some_and(|u| u.starts_with("frankfurt"))),
        "{list:#}"
    );
    assert_eq!(copies(&list, &id), [("paris".into(), "ok".into())]);

    // The backup restores from the region that has it.
    let dst = PgDb::create("coffre_rg_kill_dst_");
    let (code, r) = ws.json(&["restore", &id, "--to", &dst.url]);
    assert_eq!(code, 0, "{r:#}");
    assert_eq!(r["target"], "paris");
    assert_same(&want, &pg_fingerprint(&dst));
    drop(dst);

    // heal while the region is down: reported, not fatal, nothing else to do.
    let started = Instant::now();
    let (code, h) = ws.json(&["heal", "billing"]);
    assert_eq!(code, 3, "{h:#}");
    assert_eq!(h["status"], "degraded", "{h:#}");
    let c = copy_in(&h, &id, "frankfurt");
    assert_eq!(c["status"], "failed", "{h:#}");
    assert_eq!(c["problem"], "unreachable", "{h:#}");
    assert_eq!(copy_in(&h, &id, "paris")["status"], "ok", "{h:#}");
    assert!(
        started.elapsed() < Duration::from_secs(120),
        "heal took {:?} with a region down",
        started.elapsed()
    );

    // The region comes back, without the backup.
    weed.restart().await;
    let (code, list) = ws.json(&["list", "billing"]);
    assert_eq!(code, 0, "{list:#}");
    assert_eq!(
        copies(&list, &id),
        [("paris".into(), "ok".into())],
        "frankfurt's copy is missing"
    );
    let (code, v) = ws.json(&["verify", "--all"]);
    assert_eq!(code, 1, "{v:#}");
    assert_eq!(copy_in(&v, &id, "frankfurt")["status"], "missing", "{v:#}");
    assert_eq!(copy_in(&v, &id, "paris")["status"], "ok", "{v:#}");

    // A dry run says what it would do and writes nothing.
    let (code, h) = ws.json(&["heal", "--dry-run"]);
    assert_eq!(code, 3, "{h:#}");
    assert_eq!(h["dry_run"], true);
    let c = copy_in(&h, &id, "frankfurt");
    assert_eq!(c["status"], "would-heal", "{h:#}");
    assert_eq!(c["problem"], "missing", "{h:#}");
    assert_eq!(c["from"], "paris", "{h:#}");
    assert!(
        object_keys(&fra, &fra_bucket, "coffre/billing/")
            .await
            .is_empty()
    );

    // heal makes it whole, and leaves no incomplete upload of the killed backup.
    let (code, h) = ws.json(&["heal", "billing"]);
    assert_eq!(code, 0, "{h:#}");
    assert_eq!(h["status"], "healed", "{h:#}");
    assert_eq!(h["healed"], 1, "{h:#}");
    let c = copy_in(&h, &id, "frankfurt");
    assert_eq!(c["status"], "healed", "{h:#}");
    assert_eq!(c["from"], "paris", "{h:#}");
    assert_eq!(c["bytes"], listed(&list, &id)["stored_bytes"], "{h:#}");
    assert!(
        open_uploads(&fra, &fra_bucket).await.is_empty(),
        "{:?}",
        open_uploads(&fra, &fra_bucket).await
    );
    assert_all_whole(&ws);
    let (_, list) = ws.json(&["list", "billing"]);
    assert_eq!(
        copies(&list, &id),
        [
            ("paris".into(), "ok".into()),
            ("frankfurt".into(), "ok".into())
        ]
    );

    // The healed region restores the same database; a second heal has nothing to do.
    let dst = PgDb::create("coffre_rg_kill_dst_");
    let (code, r) = ws.json(&["restore", &id, "--to", &dst.url, "--target", "frankfurt"]);
    assert_eq!(code, 0, "{r:#}");
    assert_eq!(r["target"], "frankfurt");
    assert_same(&want, &pg_fingerprint(&dst));
    let (code, h) = ws.json(&["heal"]);
    assert_eq!(code, 0, "{h:#}");
    assert_eq!(h["status"], "ok", "{h:#}");
}

/// A byte flipped in one region's data object: `verify --all` names the region
/// and the object, a restore from that region fails and leaves nothing, the
/// default restore uses the other region, and `heal` repairs the copy.
#[tokio::test]
async fn a_flipped_byte_is_named_refused_and_healed() {
    let src = PgDb::create("coffre_rg_flip_");
    load_billing(&src, 300);
    let want = pg_fingerprint(&src);
    let eps = s3_endpoints();
    let (paris_bucket, fra_bucket) = (unique("rg-flip-a-"), unique("rg-flip-b-"));
    create_bucket(&eps[0], &paris_bucket).await;
    create_bucket(&eps[1], &fra_bucket).await;
    let ws = Workspace::new(
        &[
            Target::S3 {
                name: "paris",
                endpoint: eps[0].clone(),
                bucket: paris_bucket.clone(),
            },
            Target::S3 {
                name: "frankfurt",
                endpoint: eps[1].clone(),
                bucket: fra_bucket.clone(),
            },
        ],
        &pg_source("billing", &src, &["paris", "frankfurt"]),
    );
    let id = ws.backup_ok("billing");
    let key = data_key("billing", &id);
    let (paris, fra) = (s3_client(&eps[0]), s3_client(&eps[1]));
    let good = get_object(&paris, &paris_bucket, &format!("coffre/{key}")).await;

    // Flip one bit in the middle of frankfurt's copy; same size.
    let mut bad = get_object(&fra, &fra_bucket, &format!("coffre/{key}")).await;
    assert!(bad == good);
    let middle = bad.len() / 2;
    bad[middle] ^= 0x10;
    put_object(&fra, &fra_bucket, &format!("coffre/{key}"), bad).await;
    // Same size: only hashing finds it, list does not.
    let (_, list) = ws.json(&["list", "billing"]);
    assert_eq!(
        copies(&list, &id),
        [
            ("paris".into(), "ok".into()),
            ("frankfurt".into(), "ok".into())
        ]
    );

    // verify --all names the region and the object key.
    let (code, v) = ws.json(&["verify", "--all"]);
    assert_eq!(code, 1, "{v:#}");
    assert_eq!(v["ok"], false);
    assert_eq!(copy_in(&v, &id, "paris")["status"], "ok", "{v:#}");
    let c = copy_in(&v, &id, "frankfurt");
    assert_eq!(c["status"], "corrupt", "{v:#}");
    assert_eq!(c["key"], key.as_str(), "{v:#}");
    assert!(
        c["detail"].as_str().is_some_and(|d| d.contains("SHA-256")),
        "{v:#}"
    );
    let out = ws.run(&["verify", "--all"]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.contains(&id) && l.contains("frankfurt"))
        .unwrap_or_else(|| panic!("no line for frankfurt:\n{text}"));
    assert!(
        line.contains("corrupt") && line.contains(&key) && line.contains(&fra_bucket),
        "{line}"
    );
    assert!(text.contains("PROBLEMS FOUND"), "{text}");
    // The older spellings still work; --all with an id is a usage error.
    let (code, v) = ws.json(&["verify", &id]);
    assert_eq!(code, 1, "{v:#}");
    assert_eq!(copy_in(&v, &id, "frankfurt")["status"], "corrupt");
    let (code, v) = ws.json(&["verify", "--source", "billing"]);
    assert_eq!(code, 1, "{v:#}");
    assert_eq!(copy_in(&v, &id, "frankfurt")["status"], "corrupt");
    assert_eq!(ws.run(&["verify", "--all", &id]).status.code(), Some(2));

    // A restore from frankfurt fails cleanly: nothing in the destination.
    let dst = PgDb::create("coffre_rg_flip_dst_");
    let out = ws.run(&["restore", &id, "--to", &dst.url, "--target", "frankfurt"]);
    assert_ne!(out.status.code(), Some(0));
    let err = stderr(&out);
    assert!(err.contains("frankfurt"), "{err}");
    assert_eq!(user_relations(&dst), 0, "a refused restore leaves nothing");
    // The default restore picks the good region.
    let (code, r) = ws.json(&["restore", &id, "--to", &dst.url]);
    assert_eq!(code, 0, "{r:#}");
    assert_eq!(r["target"], "paris");
    assert_same(&want, &pg_fingerprint(&dst));

    // heal --dry-run: what it would do, nothing written.
    let (code, h) = ws.json(&["heal", "billing", "--dry-run"]);
    assert_eq!(code, 3, "{h:#}");
    let c = copy_in(&h, &id, "frankfurt");
    assert_eq!(c["status"], "would-heal", "{h:#}");
    assert_eq!(c["problem"], "corrupt", "{h:#}");
    assert_eq!(c["key"], key.as_str(), "{h:#}");
    assert!(get_object(&fra, &fra_bucket, &format!("coffre/{key}")).await != good);

    // heal: frankfurt's copy is paris's again.
    let (code, h) = ws.json(&["heal", "billing"]);
    assert_eq!(code, 0, "{h:#}");
    assert_eq!(h["status"], "healed", "{h:#}");
    let c = copy_in(&h, &id, "frankfurt");
    assert_eq!(c["status"], "healed", "{h:#}");
    assert_eq!(c["problem"], "corrupt", "{h:#}");
    assert_eq!(c["from"], "paris", "{h:#}");
    assert_eq!(copy_in(&h, &id, "paris")["status"], "ok", "{h:#}");
    assert!(get_object(&fra, &fra_bucket, &format!("coffre/{key}")).await == good);
    assert_all_whole(&ws);
    let out = ws.run(&["heal"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("0 healed, 0 not healed"), "{text}");
}

/// A forged manifest (and data) in one region: heal replaces both with the
/// other region's copy, manifest byte for byte. A backup that has no trusted
/// copy anywhere is never copied.
#[tokio::test]
async fn a_forged_manifest_in_one_region_is_replaced_by_heal() {
    let eps = s3_endpoints();
    let (paris_bucket, fra_bucket) = (unique("rg-forge-a-"), unique("rg-forge-b-"));
    create_bucket(&eps[0], &paris_bucket).await;
    create_bucket(&eps[1], &fra_bucket).await;
    let ws = sqlite_workspace(
        &[
            Target::S3 {
                name: "paris",
                endpoint: eps[0].clone(),
                bucket: paris_bucket.clone(),
            },
            Target::S3 {
                name: "frankfurt",
                endpoint: eps[1].clone(),
                bucket: fra_bucket.clone(),
            },
        ],
        &["paris", "frankfurt"],
    );
    let id = ws.backup_ok("lite");
    let (paris, fra) = (s3_client(&eps[0]), s3_client(&eps[1]));
    let manifest_key = format!("coffre/lite/{id}/manifest.json");
    let data_key = format!("coffre/{}", data_key("lite", &id));
    let good_manifest = get_object(&paris, &paris_bucket, &manifest_key).await;
    let good_data = get_object(&paris, &paris_bucket, &data_key).await;

    // Someone with write access to frankfurt swaps the data and describes it in
    // a well-formed manifest; without the integrity key the tag no longer checks.
    let forged_data = b"age-encryption.org/v1 (not really)\n".repeat(100);
    let mut doc: serde_json::Value = serde_json::from_slice(&good_manifest).expect("manifest");
    doc["objects"][0]["size"] = forged_data.len().into();
    doc["objects"][0]["sha256"] = hex_sha256(&forged_data).into();
    put_object(&fra, &fra_bucket, &data_key, forged_data).await;
    put_object(
        &fra,
        &fra_bucket,
        &manifest_key,
        serde_json::to_vec_pretty(&doc).expect("print"),
    )
    .await;
    let (_, list) = ws.json(&["list", "lite"]);
    assert_eq!(
        copies(&list, &id),
        [
            ("paris".into(), "ok".into()),
            ("frankfurt".into(), "rejected-manifest".into())
        ]
    );

    let (code, h) = ws.json(&["heal", "lite"]);
    assert_eq!(code, 0, "{h:#}");
    let c = copy_in(&h, &id, "frankfurt");
    assert_eq!(c["status"], "healed", "{h:#}");
    assert_eq!(c["problem"], "rejected-manifest", "{h:#}");
    assert_eq!(c["from"], "paris", "{h:#}");
    assert!(
        get_object(&fra, &fra_bucket, &manifest_key).await == good_manifest,
        "the manifest is paris's, byte for byte"
    );
    assert!(get_object(&fra, &fra_bucket, &data_key).await == good_data);
    let (_, list) = ws.json(&["list", "lite"]);
    assert_eq!(
        copies(&list, &id),
        [
            ("paris".into(), "ok".into()),
            ("frankfurt".into(), "ok".into())
        ]
    );
    assert_all_whole(&ws);

    // A folder only ever seen with a rejected manifest (forged in paris alone) is
    // not a backup: heal never copies it, says so, and leaves frankfurt untouched.
    let forged_id = "20200101T000000.000Z-0bad";
    let mut doc: serde_json::Value = serde_json::from_slice(&good_manifest).expect("manifest");
    doc["id"] = forged_id.into();
    put_object(
        &paris,
        &paris_bucket,
        &format!("coffre/lite/{forged_id}/manifest.json"),
        serde_json::to_vec_pretty(&doc).expect("print"),
    )
    .await;
    put_object(
        &paris,
        &paris_bucket,
        &format!("coffre/lite/{forged_id}/data.sql.zst.age"),
        good_data.clone(),
    )
    .await;
    let (code, h) = ws.json(&["heal", "lite"]);
    assert_eq!(code, 0, "{h:#}");
    assert_eq!(h["status"], "ok", "{h:#}");
    let untrusted = h["untrusted"].as_array().expect("untrusted");
    assert_eq!(untrusted.len(), 1, "{h:#}");
    assert_eq!(untrusted[0]["id"], forged_id, "{h:#}");
    assert_eq!(untrusted[0]["copies"][0]["target"], "paris", "{h:#}");
    assert_eq!(
        untrusted[0]["copies"][0]["status"], "rejected-manifest",
        "{h:#}"
    );
    assert!(
        !h["backups"].to_string().contains(forged_id),
        "never healed: {h:#}"
    );
    assert!(
        object_keys(&fra, &fra_bucket, &format!("coffre/lite/{forged_id}"))
            .await
            .is_empty()
    );
    let out = ws.run(&["heal", "lite"]);
    assert_eq!(out.status.code(), Some(0));
    let err = stderr(&out);
    assert!(
        err.contains(forged_id) && err.contains("target paris") && err.contains("left alone"),
        "{err}"
    );
}

/// `heal` with a region down heals the others and reports that region; once the
/// region is back (its data kept across the restart), everything is whole.
#[tokio::test]
async fn heal_goes_on_when_a_region_is_down() {
    let paris_ep = s3_endpoints()[0].clone();
    let mut weed = Weed::start().await;
    let (paris_bucket, fra_bucket) = (unique("rg-down-a-"), unique("rg-down-b-"));
    create_bucket(&paris_ep, &paris_bucket).await;
    create_bucket(&weed.endpoint, &fra_bucket).await;
    let ws = sqlite_workspace(
        &[
            Target::S3 {
                name: "paris",
                endpoint: paris_ep,
                bucket: paris_bucket,
            },
            Target::S3 {
                name: "frankfurt",
                endpoint: weed.endpoint.clone(),
                bucket: fra_bucket,
            },
            Target::Fs("local"),
        ],
        &["paris", "frankfurt", "local"],
    );
    let id = ws.backup_ok("lite");
    weed.kill();
    let local_data: PathBuf = ws.path(&format!("local/{}", data_key("lite", &id)));
    std::fs::remove_file(&local_data).expect("remove the local data object");

    let out = ws.run(&["heal"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.lines()
            .any(|l| l.contains("frankfurt") && l.contains("FAILED") && l.contains("unreachable")),
        "{text}"
    );
    assert!(text.contains("unreachable target frankfurt"), "{text}");
    let (code, h) = ws.json(&["heal"]);
    // The first run healed local already.
    assert_eq!(code, 3, "{h:#}");
    assert_eq!(copy_in(&h, &id, "local")["status"], "ok", "{h:#}");
    assert_eq!(copy_in(&h, &id, "frankfurt")["problem"], "unreachable");
    assert!(local_data.exists(), "local was healed from paris");

    weed.restart().await;
    let (code, h) = ws.json(&["heal", "lite"]);
    assert_eq!(code, 0, "{h:#}");
    assert_eq!(h["status"], "ok", "frankfurt kept its copy: {h:#}");
    assert_all_whole(&ws);
}

/// One region's server frozen (SIGSTOP) mid-backup: the backup drops it after
/// its `stall_timeout_secs` instead of hanging, and `heal` repairs it later.
#[tokio::test]
async fn a_region_stalled_mid_backup_is_dropped_then_healed() {
    let src = PgDb::create("coffre_rg_stall_");
    load_billing(&src, BIG_SCALE);
    let want = pg_fingerprint(&src);
    let paris_ep = s3_endpoints()[0].clone();
    let weed = Weed::start().await;
    let (paris_bucket, fra_bucket) = (unique("rg-stall-a-"), unique("rg-stall-b-"));
    create_bucket(&paris_ep, &paris_bucket).await;
    create_bucket(&weed.endpoint, &fra_bucket).await;
    let ws = Workspace::new(
        &[
            Target::S3 {
                name: "paris",
                endpoint: paris_ep,
                bucket: paris_bucket,
            },
            Target::S3 {
                name: "frankfurt",
                endpoint: weed.endpoint.clone(),
                bucket: fra_bucket.clone(),
            },
        ],
        &pg_source("billing", &src, &["paris", "frankfurt"]),
    );
    set_stall_timeout(&ws, &fra_bucket, STALL_SECS);
    let fra = s3_client(&weed.endpoint);
    let mut backup = spawn_backup(&ws, "billing");
    wait_for_first_part(&fra, &fra_bucket, &mut backup).await;
    weed.signal("STOP");
    // Never hang: a backup still running long after the stall timeout fails the test.
    let (code, v) = finish(backup, Duration::from_secs(20 * STALL_SECS), || {
        weed.signal("CONT")
    });
    weed.signal("CONT");
    assert_eq!(code, 3, "{v:#}");
    assert_eq!(v["status"], "degraded", "{v:#}");
    let id = v["id"].as_str().expect("id").to_owned();
    assert_eq!(v["targets"][0]["status"], "ok", "{v:#}");
    assert_eq!(v["targets"][1]["status"], "failed", "{v:#}");
    assert!(
        v["targets"][1]["error"]
            .as_str()
            .is_some_and(|e| e.contains("frankfurt") && e.contains("stall")),
        "{v:#}"
    );

    let (code, h) = ws.json(&["heal", "billing"]);
    assert_eq!(code, 0, "{h:#}");
    assert_eq!(copy_in(&h, &id, "frankfurt")["status"], "healed", "{h:#}");
    assert_all_whole(&ws);
    let dst = PgDb::create("coffre_rg_stall_dst_");
    let (code, r) = ws.json(&["restore", &id, "--to", &dst.url, "--target", "frankfurt"]);
    assert_eq!(code, 0, "{r:#}");
    assert_same(&want, &pg_fingerprint(&dst));
}

fn hex_sha256(data: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
