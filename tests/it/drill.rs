//! Restore drills through the real binary: every region proven in turn, with counts and
//! checksums per table; failures on a tampered object, a false assertion and lost rows
//! each named; no scratch database left, even after a drill was killed.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::*;
use crate::support;

/// Scratch databases of coffre drills on the test server whose name holds `source`.
fn scratch_dbs(source: &str) -> Vec<String> {
    let out = Command::new("psql")
        .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d"])
        .arg(support::pg_admin_url())
        .arg("-c")
        .arg(format!(
            "SELECT datname FROM pg_database WHERE datname LIKE 'coffre\\_drill\\_{source}\\_%' ORDER BY 1"
        ))
        .output()
        .expect("run psql");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

fn drill_table(source: &str, extra: &str) -> String {
    format!(
        "[drills.{source}]\nscratch_url = \"{}\"\nrto_seconds = 900\n{extra}",
        support::pg_admin_url()
    )
}

#[tokio::test]
async fn drills_prove_each_region_in_turn_with_counts_and_checksums() {
    let source = "drill_regions";
    let src = PgDb::create("coffre_drill_src_");
    load_billing(&src, 300);
    let [paris, frankfurt] = two_regions("dr-").await;
    let assertions = "assertions = [\n  \"SELECT count(*) = 0 FROM factures WHERE total_ttc < 0\",\n  \
                      \"SELECT count(*) = 300 FROM clients\",\n]\n";
    let ws = Workspace::new(
        &[paris, frankfurt, Target::Fs("local")],
        &format!(
            "{}{}",
            pg_source(source, &src, &["paris", "frankfurt", "local"]),
            drill_table(source, assertions)
        ),
    );
    let id = ws.backup_ok(source);
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(
            ws.path("local")
                .join(source)
                .join(&id)
                .join("manifest.json"),
        )
        .expect("manifest"),
    )
    .expect("manifest json");

    let mut drilled = Vec::new();
    for _ in 0..3 {
        let (code, r) = ws.json(&["drill", source]);
        assert_eq!(code, 0, "{r:#}");
        assert_eq!(r["ok"], true, "{r:#}");
        assert_eq!(r["backup_id"], id.as_str());
        for name in [
            "backup",
            "integrity",
            "restore",
            "rows",
            "erasures",
            "assertions",
            "rto",
            "cleanup",
        ] {
            assert_eq!(drill_check(&r, name)["outcome"], "passed", "{name}: {r:#}");
        }
        // Every table of the manifest, with its count and checksum, restored alike.
        let tables = r["tables"].as_array().expect("tables");
        let want = manifest["tables"]["tables"]
            .as_array()
            .expect("manifest tables");
        assert_eq!(tables.len(), 7, "{r:#}");
        assert_eq!(tables.len(), want.len());
        for w in want {
            let name = format!(
                "{}.{}",
                w["schema"].as_str().unwrap_or(""),
                w["name"].as_str().unwrap_or("")
            );
            let t = tables
                .iter()
                .find(|t| t["table"] == name.as_str())
                .unwrap_or_else(|| panic!("{name} not in the report"));
            assert_eq!(t["expected_rows"], w["rows"]);
            assert_eq!(t["restored_rows"], w["rows"]);
            assert_eq!(t["expected_checksum"], w["checksum"]);
            assert_eq!(t["restored_checksum"], w["checksum"]);
            assert_eq!(t["ok"], true);
        }
        assert_eq!(r["assertions"].as_array().map(Vec::len), Some(2));
        assert!(r["timings"]["recovery_s"].as_f64().is_some_and(|s| s > 0.0));
        assert!(r["rpo_seconds"].as_f64().is_some_and(|s| s >= 0.0));
        assert!(
            r["mac"]
                .as_str()
                .is_some_and(|m| m.starts_with("hmac-sha256:"))
        );
        drilled.push(r["target"].as_str().expect("target").to_owned());
        assert!(
            scratch_dbs(source).is_empty(),
            "scratch left: {:?}",
            scratch_dbs(source)
        );
    }
    drilled.sort();
    assert_eq!(
        drilled,
        ["frankfurt", "local", "paris"],
        "each region in turn"
    );

    // Reports: in the state store, and sealed in the targets.
    let (code, v) = ws.json(&["drill", "reports", source]);
    assert_eq!(code, 0);
    assert_eq!(v.as_array().map(Vec::len), Some(3), "{v:#}");
    let dir = ws.path("local").join("_coffre/drills").join(source);
    let files: Vec<_> = std::fs::read_dir(&dir)
        .expect("reports in the fs target")
        .map(|e| e.expect("entry").path())
        .collect();
    assert_eq!(files.len(), 3, "{files:?}");
    let file = files[0].to_str().expect("utf8").to_owned();
    let (code, v) = ws.json(&["drill", "verify-report", &file]);
    assert_eq!((code, &v["valid"]), (0, &serde_json::json!(true)), "{v:#}");
    let text = std::fs::read_to_string(&file).expect("report");
    let altered = text.replacen("\"expected_rows\": 300", "\"expected_rows\": 299", 1);
    assert_ne!(altered, text, "the report should list clients' 300 rows");
    std::fs::write(&file, altered).expect("alter");
    let (code, v) = ws.json(&["drill", "verify-report", &file]);
    assert_eq!(code, 1, "{v:#}");
    assert!(
        v["error"].as_str().is_some_and(|e| e.contains("altered")),
        "{v:#}"
    );
}

#[test]
fn failures_name_the_region_the_assertion_and_the_lost_rows() {
    let source = "drill_failures";
    let src = PgDb::create("coffre_drill_src_");
    load_billing(&src, 100);
    let assertions = "assertions = [\"SELECT count(*) = 100 FROM clients\", \
                      \"SELECT count(*) = 0 FROM clients\"]\n";
    let ws = Workspace::new(
        &[Target::Fs("local"), Target::Fs("backup2")],
        &format!(
            "{}{}",
            pg_source(source, &src, &["local", "backup2"]),
            drill_table(source, assertions)
        ),
    );
    let id = ws.backup_ok(source);

    // A false assertion fails the drill, naming the assertion.
    let (code, r) = ws.json(&["drill", source, "--target", "local"]);
    assert_eq!(code, 1, "{r:#}");
    assert_eq!(r["ok"], false);
    assert_eq!(drill_check(&r, "rows")["outcome"], "passed", "{r:#}");
    let failed = drill_check(&r, "assertions");
    assert_eq!(failed["outcome"], "failed");
    let detail = failed["detail"].as_str().unwrap_or("");
    assert!(
        detail.contains("SELECT count(*) = 0 FROM clients"),
        "{detail}"
    );
    assert!(
        !detail.contains("= 100"),
        "only the false one is named: {detail}"
    );
    assert_eq!(drill_check(&r, "cleanup")["outcome"], "passed");

    // A tampered object fails on integrity, naming the region.
    let data = ws
        .path("backup2")
        .join(source)
        .join(&id)
        .join("data.sql.zst.age");
    let mut bytes = std::fs::read(&data).expect("data");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&data, bytes).expect("tamper");
    let (code, r) = ws.json(&["drill", source, "--target", "backup2"]);
    assert_eq!(code, 1, "{r:#}");
    let failed = drill_check(&r, "integrity");
    assert_eq!(failed["outcome"], "failed", "{r:#}");
    let detail = failed["detail"].as_str().unwrap_or("");
    assert!(detail.contains("target backup2"), "{detail}");
    assert!(detail.contains("SHA-256"), "{detail}");
    assert!(
        r["failure"]
            .as_str()
            .is_some_and(|f| f.starts_with("integrity"))
    );
    assert_eq!(drill_check(&r, "rows")["outcome"], "skipped");

    // A restore that lost rows: the manifest (re-sealed with the integrity key) records
    // one client more than the data holds, as if the restore had dropped one.
    let config = coffre::config::Config::load(&ws.config).expect("config");
    let key = coffre::integrity::IntegrityKey::load(&config).expect("key");
    let manifest_path = ws
        .path("local")
        .join(source)
        .join(&id)
        .join("manifest.json");
    let bytes = std::fs::read(&manifest_path).expect("manifest");
    let mut m = coffre::manifest::Manifest::parse(&bytes, "manifest", &key).expect("parse");
    let clients = m
        .tables
        .tables
        .iter_mut()
        .find(|t| t.name == "clients")
        .expect("clients");
    clients.rows += 1;
    std::fs::write(&manifest_path, m.to_json(&key)).expect("forge");
    let (code, r) = ws.json(&["drill", source, "--target", "local"]);
    assert_eq!(code, 1, "{r:#}");
    let failed = drill_check(&r, "rows");
    assert_eq!(failed["outcome"], "failed", "{r:#}");
    let detail = failed["detail"].as_str().unwrap_or("");
    assert!(detail.contains("clients"), "{detail}");
    assert!(detail.contains("100"), "{detail}");
    assert!(scratch_dbs(source).is_empty(), "{:?}", scratch_dbs(source));

    // Drill runs are in the state store, failures included.
    let (_, v) = ws.json(&["drill", "reports", source]);
    let oks: Vec<bool> = v
        .as_array()
        .expect("reports")
        .iter()
        .map(|r| r["ok"].as_bool().expect("ok"))
        .collect();
    assert_eq!(oks, [false, false, false]);
}

#[test]
fn a_killed_drill_leaves_nothing_after_the_next_one() {
    let source = "drill_killed";
    let src = PgDb::create("coffre_drill_src_");
    load_billing(&src, 3000);
    let ws = Workspace::new(
        &[Target::Fs("local")],
        &format!(
            "{}{}",
            pg_source(source, &src, &["local"]),
            drill_table(source, "")
        ),
    );
    ws.backup_ok(source);
    let mut child = Command::new(BIN)
        .arg("--config")
        .arg(&ws.config)
        .args(["drill", source])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn drill");
    let deadline = Instant::now() + Duration::from_secs(60);
    while scratch_dbs(source).is_empty() {
        assert!(
            child.try_wait().expect("wait").is_none(),
            "the drill ended before its scratch database was seen"
        );
        assert!(Instant::now() < deadline, "no scratch database appeared");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().expect("SIGKILL");
    child.wait().expect("reap");
    let left = scratch_dbs(source);
    assert_eq!(left.len(), 1, "the killed drill's database stays: {left:?}");

    let (code, r) = ws.json(&["drill", source]);
    assert_eq!(code, 0, "{r:#}");
    assert!(
        scratch_dbs(source).is_empty(),
        "left: {:?}",
        scratch_dbs(source)
    );
}

#[test]
fn sqlite_sources_drill_into_a_temporary_file() {
    let ws = Workspace::new(
        &[Target::Fs("local")],
        "[sources.demo]\ntype = \"sqlite\"\npath = \"demo.db\"\ntargets = [\"local\"]\n\
         [drills.demo]\nassertions = [\"SELECT count(*) = 50 FROM clients\"]\n",
    );
    load_billing_sqlite(ws.path("demo.db"), 50);
    ws.backup_ok("demo");
    let out = ws.run(&["drill", "demo"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}\n{}", stderr(&out));
    assert!(
        text.contains("drill of demo from target local: PASSED"),
        "{text}"
    );
    assert!(text.contains("clients"), "{text}");
    let scratch = ws.path("state/drills/scratch/demo");
    let left: Vec<_> = std::fs::read_dir(&scratch)
        .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn a_postgres_drill_without_scratch_server_says_what_to_add() {
    let src = PgDb::create("coffre_drill_src_");
    let ws = Workspace::new(
        &[Target::Fs("local")],
        &pg_source("noscratch", &src, &["local"]),
    );
    let out = ws.run(&["drill", "noscratch"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("[drills.noscratch]") && err.contains("scratch_url"),
        "{err}"
    );
}

#[tokio::test]
async fn the_shared_seed_drills_from_each_region_when_present() {
    let Ok(dir) = std::env::var("COFFRE_TEST_SHARED_FIXTURES") else {
        // Beside the repository in CI only; scripts/test.sh says so loudly when absent.
        eprintln!("COFFRE_TEST_SHARED_FIXTURES unset: the shared seed is not drilled");
        return;
    };
    let source = "drill_shared";
    let src = PgDb::create("coffre_drill_shared_");
    src.run_file(&std::path::Path::new(&dir).join("schema.sql"));
    src.run_file(&std::path::Path::new(&dir).join("seed.sql"));
    let [paris, frankfurt] = two_regions("drs-").await;
    let ws = Workspace::new(
        &[paris, frankfurt],
        &format!(
            "{}{}",
            pg_source(source, &src, &["paris", "frankfurt"]),
            drill_table(
                source,
                "assertions = [\"SELECT count(*) = 0 FROM factures WHERE total_ttc < 0\"]\n"
            )
        ),
    );
    ws.backup_ok(source);
    for target in ["paris", "frankfurt"] {
        let (code, r) = ws.json(&["drill", source, "--target", target]);
        assert_eq!(code, 0, "{target}: {r:#}");
        assert_eq!(r["target"], target);
        let tables = r["tables"].as_array().expect("tables");
        assert!(tables.len() >= 7, "{r:#}");
        for t in tables {
            assert_eq!(t["ok"], true, "{t}");
            assert_eq!(t["restored_rows"], t["expected_rows"], "{t}");
            assert_eq!(t["restored_checksum"], t["expected_checksum"], "{t}");
        }
    }
    assert!(scratch_dbs(source).is_empty(), "{:?}", scratch_dbs(source));
}
