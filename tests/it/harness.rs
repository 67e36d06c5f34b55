//! Helpers to drive the real `coffre` binary against real servers: scratch
//! PostgreSQL databases, S3 buckets, a workspace with keys and a config file,
//! and database fingerprints to compare a source with its restore.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sha2::{Digest, Sha256};

use crate::support;

/// A scratch PostgreSQL database, dropped on drop.
pub struct PgDb {
    pub name: String,
    pub url: String,
}

fn admin_psql(sql: &str) -> Output {
    Command::new("psql")
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d"])
        .arg(support::pg_admin_url())
        .args(["-c", sql])
        .output()
        .expect("run psql")
}

/// URL of database `name` on the test server.
pub fn db_url(name: &str) -> String {
    let admin = url::Url::parse(&support::pg_admin_url()).expect("admin url");
    let mut u = admin.clone();
    u.set_path(&format!("/{name}"));
    u.to_string()
}

impl PgDb {
    pub fn create(prefix: &str) -> PgDb {
        let name = support::unique(prefix);
        let out = admin_psql(&format!("CREATE DATABASE \"{name}\""));
        assert!(
            out.status.success(),
            "create database: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        PgDb {
            url: db_url(&name),
            name,
        }
    }

    /// Runs a SQL file into this database (psql, stop on error).
    pub fn run_file(&self, path: &Path) {
        let out = Command::new("psql")
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", &self.url, "-f"])
            .arg(path)
            .output()
            .expect("run psql");
        assert!(
            out.status.success(),
            "psql -f {}: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Runs SQL and returns unaligned tuples-only output.
    pub fn query(&self, sql: &str) -> String {
        let out = Command::new("psql")
            .args([
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                &self.url,
                "-c",
                sql,
            ])
            .output()
            .expect("run psql");
        assert!(
            out.status.success(),
            "psql -c {sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
}

impl Drop for PgDb {
    fn drop(&mut self) {
        let _ = admin_psql(&format!(
            "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
            self.name
        ));
    }
}

/// Everything that makes a PostgreSQL database what it is, comparable between
/// two databases: the schema as pg_dump prints it, each table's row count and
/// order-independent content checksum, and each sequence's state.
pub fn pg_fingerprint(db: &PgDb) -> BTreeMap<String, String> {
    let mut fp = BTreeMap::new();
    let schema = Command::new("pg_dump")
        .args([
            "--schema-only",
            "--no-owner",
            "--no-privileges",
            "-d",
            &db.url,
        ])
        .output()
        .expect("pg_dump");
    assert!(schema.status.success());
    let schema: String = String::from_utf8_lossy(&schema.stdout)
        .lines()
        .filter(|l| {
            !l.starts_with("--") && !l.starts_with("\\restrict") && !l.starts_with("\\unrestrict")
        })
        .collect::<Vec<_>>()
        .join("\n");
    fp.insert("schema".into(), schema);
    let tables = db.query(
        "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relkind IN ('r', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
         AND n.nspname NOT LIKE 'pg_toast%' ORDER BY 1",
    );
    for t in tables.lines().filter(|l| !l.is_empty()) {
        let out = Command::new("psql")
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", &db.url, "-c"])
            .arg(format!("COPY (SELECT * FROM {t}) TO STDOUT"))
            .env("PGTZ", "UTC")
            .output()
            .expect("psql copy");
        assert!(
            out.status.success(),
            "copy {t}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut rows = 0u64;
        let mut sum = 0u128;
        for line in out.stdout.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            rows += 1;
            let d = Sha256::digest(line);
            sum = sum.wrapping_add(u128::from_le_bytes(d[..16].try_into().expect("16 bytes")));
        }
        fp.insert(format!("table {t}"), format!("{rows} rows, {sum:032x}"));
    }
    let seqs = db.query(
        "SELECT format('%I.%I', schemaname, sequencename) || '=' || coalesce(last_value::text, 'null') FROM pg_sequences ORDER BY 1",
    );
    fp.insert("sequences".into(), seqs);
    let los = db.query(
        "SELECT count(*) || ':' || coalesce(md5(string_agg(oid::text || '=' || md5(lo_get(oid)), ',' ORDER BY oid)), '') \
         FROM pg_largeobject_metadata",
    );
    fp.insert("large objects".into(), los);
    fp
}

/// Asserts two fingerprints are equal, showing the first differences.
pub fn assert_same(a: &BTreeMap<String, String>, b: &BTreeMap<String, String>) {
    let diffs: Vec<String> = a
        .keys()
        .chain(b.keys())
        .filter(|k| a.get(*k) != b.get(*k))
        .map(|k| {
            let short = |v: Option<&String>| v.map(|s| s.chars().take(300).collect::<String>());
            format!("{k}: {:?} != {:?}", short(a.get(k)), short(b.get(k)))
        })
        .collect();
    assert!(diffs.is_empty(), "databases differ:\n{}", diffs.join("\n"));
}

/// An S3 client of the tests' servers (path style, the test credentials).
pub fn s3_client(endpoint: &str) -> aws_sdk_s3::Client {
    let (key, secret) = support::s3_credentials();
    let conf = aws_sdk_s3::config::Builder::new()
        .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
        .region(aws_sdk_s3::config::Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .force_path_style(true)
        .credentials_provider(aws_sdk_s3::config::Credentials::new(
            key, secret, None, None, "test",
        ))
        .build();
    aws_sdk_s3::Client::from_conf(conf)
}

/// Creates a bucket on an S3 endpoint of the tests.
pub async fn create_bucket(endpoint: &str, bucket: &str) {
    s3_client(endpoint)
        .create_bucket()
        .bucket(bucket)
        .send()
        .await
        .expect("create bucket");
}

/// Targets `paris` and `frankfurt`: a new bucket (named from `prefix`) on each of the two
/// S3 servers of the tests.
pub async fn two_regions(prefix: &str) -> [Target; 2] {
    let eps = support::s3_endpoints();
    let (b1, b2) = (
        support::unique(&format!("{prefix}a-")),
        support::unique(&format!("{prefix}b-")),
    );
    create_bucket(&eps[0], &b1).await;
    create_bucket(&eps[1], &b2).await;
    [
        Target::S3 {
            name: "paris",
            endpoint: eps[0].clone(),
            bucket: b1,
        },
        Target::S3 {
            name: "frankfurt",
            endpoint: eps[1].clone(),
            bucket: b2,
        },
    ]
}

/// Reads a whole object behind coffre's back.
pub async fn get_object(client: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Vec<u8> {
    client
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap_or_else(|e| {
            panic!(
                "get s3://{bucket}/{key}: {}",
                aws_sdk_s3::error::DisplayErrorContext(&e)
            )
        })
        .body
        .collect()
        .await
        .expect("read object")
        .into_bytes()
        .to_vec()
}

/// How a target of a workspace is configured.
pub enum Target {
    Fs(&'static str),
    S3 {
        name: &'static str,
        endpoint: String,
        bucket: String,
    },
}

/// A folder with an identity, a config and the stores' directories.
pub struct Workspace {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub recipient: String,
}

pub const BIN: &str = env!("CARGO_BIN_EXE_coffre");

impl Workspace {
    /// `sources` are TOML tables (`[sources.x] ...`) appended to the config.
    pub fn new(targets: &[Target], sources: &str) -> Workspace {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = Command::new(BIN)
            .args(["keygen", "--json", "--out"])
            .arg(dir.path().join("identity.txt"))
            .output()
            .expect("keygen");
        assert!(out.status.success());
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("keygen json");
        let recipient = v["recipient"].as_str().expect("recipient").to_owned();
        let out = Command::new(BIN)
            .args(["keygen", "--secret"])
            .arg(dir.path().join("integrity.key"))
            .output()
            .expect("keygen --secret");
        assert!(out.status.success(), "keygen --secret failed");
        let mut text = format!(
            "state_dir = \"state\"\n[integrity]\nkey_file = \"integrity.key\"\n\
             [encryption]\nrecipients = [\"{recipient}\"]\nidentity_file = \"identity.txt\"\n"
        );
        for t in targets {
            match t {
                Target::Fs(name) => text.push_str(&format!("[targets.{name}]\ntype = \"fs\"\npath = \"{name}\"\n")),
                Target::S3 { name, endpoint, bucket } => text.push_str(&format!(
                    "[targets.{name}]\ntype = \"s3\"\nbucket = \"{bucket}\"\nendpoint = \"{endpoint}\"\nprefix = \"coffre/\"\n\
                     access_key_id_env = \"COFFRE_TEST_S3_ACCESS_KEY\"\nsecret_access_key_env = \"COFFRE_TEST_S3_SECRET_KEY\"\n\
                     part_size_mib = 5\n"
                )),
            }
        }
        text.push_str(sources);
        let config = dir.path().join("coffre.toml");
        std::fs::write(&config, text).expect("write config");
        Workspace {
            dir,
            config,
            recipient,
        }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Adds `[anonymization] key_file = "anon.key"` to the config, with `key` in that file.
    pub fn enable_anonymization(&self, key: &str) {
        std::fs::write(self.path("anon.key"), key).expect("key");
        let cfg = std::fs::read_to_string(&self.config).expect("config");
        std::fs::write(
            &self.config,
            cfg.replacen(
                "[encryption]",
                "[anonymization]\nkey_file = \"anon.key\"\n[encryption]",
                1,
            ),
        )
        .expect("config");
    }

    /// Runs `coffre --config <this> args…`.
    pub fn run(&self, args: &[&str]) -> Output {
        Command::new(BIN)
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .output()
            .expect("run coffre")
    }

    /// Runs with `--json`; returns (exit code, parsed stdout).
    pub fn json(&self, args: &[&str]) -> (i32, serde_json::Value) {
        let mut a = args.to_vec();
        a.push("--json");
        let out = self.run(&a);
        let v = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "coffre {args:?}: stdout is not JSON ({e}): {}\nstderr: {}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        });
        (out.status.code().unwrap_or(-1), v)
    }

    /// Backs up and asserts success; returns the backup id.
    pub fn backup_ok(&self, source: &str) -> String {
        let (code, v) = self.json(&["backup", source]);
        assert_eq!(code, 0, "backup failed: {v:#}");
        assert_eq!(v["status"], "ok", "{v:#}");
        v["id"].as_str().expect("id").to_owned()
    }

    /// Ids listed for a source.
    pub fn listed(&self, source: &str) -> Vec<String> {
        let (code, v) = self.json(&["list", source]);
        assert_eq!(code, 0, "list failed: {v:#}");
        v["backups"]
            .as_array()
            .expect("backups")
            .iter()
            .map(|b| b["id"].as_str().expect("id").to_owned())
            .collect()
    }
}

/// A requester's key pair in the workspace: (identity file, recipient).
pub fn requester_key(ws: &Workspace) -> (PathBuf, String) {
    let requester = ws.path("requester.txt");
    let out = Command::new(BIN)
        .args(["keygen", "--json", "--out"])
        .arg(&requester)
        .output()
        .expect("keygen");
    assert!(out.status.success(), "{}", stderr(&out));
    let recipient =
        serde_json::from_slice::<serde_json::Value>(&out.stdout).expect("json")["recipient"]
            .as_str()
            .expect("recipient")
            .to_owned();
    (requester, recipient)
}

/// The check `name` of a drill report (JSON).
pub fn drill_check<'a>(report: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    report["checks"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == name))
        .unwrap_or_else(|| panic!("no check {name} in {report:#}"))
}

/// `policies/billing.toml` written for the tables of `schema` (`main` for SQLite, a MySQL
/// source's database) instead of `public`, erasure links included.
pub fn billing_policy_for(schema: &str) -> String {
    std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/policies/billing.toml"
    ))
    .expect("policies/billing.toml")
    .replace("\"public.", &format!("\"{schema}."))
    .replace("-> public.", &format!("-> {schema}."))
}

/// A `[sources.NAME]` table for a PostgreSQL database.
pub fn pg_source(name: &str, db: &PgDb, targets: &[&str]) -> String {
    let t: Vec<String> = targets.iter().map(|t| format!("\"{t}\"")).collect();
    format!(
        "[sources.{name}]\ntype = \"postgres\"\nurl = \"{}\"\ntargets = [{}]\n",
        db.url,
        t.join(", ")
    )
}

/// Loads the project's billing fixture at `scale` into `db`.
pub fn load_billing(db: &PgDb, scale: u64) {
    run_fixture(std::ffi::OsStr::new(&db.url), scale);
}

/// Writes the project's billing fixture at `scale` into a new SQLite file.
pub fn load_billing_sqlite(path: impl AsRef<Path>, scale: u64) {
    run_fixture(path.as_ref().as_os_str(), scale);
}

fn run_fixture(to: &std::ffi::OsStr, scale: u64) {
    let out = Command::new(BIN)
        .args(["fixture", "--scale", &scale.to_string(), "--to"])
        .arg(to)
        .output()
        .expect("coffre fixture");
    assert!(
        out.status.success(),
        "fixture: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Stderr of an output, as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}
