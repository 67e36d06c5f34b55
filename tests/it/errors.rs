//! Bad input and broken parts: each gives a clear error and a non-zero exit, and
//! no partial backup is ever listed.

use std::path::Path;

use crate::harness::*;

/// Every file under `dir` (relative paths), for "nothing left behind" checks.
fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(dir).unwrap_or(&p).display().to_string());
            }
        }
    }
    out.sort();
    out
}

#[test]
fn unknown_config_key_names_file_line_and_fix() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = dir.path().join("coffre.toml");
    std::fs::write(
        &cfg,
        "state_dir = \"s\"\n[encryption]\nrecipients = [\"age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p\"]\n\
         [targets.paris]\ntype = \"s3\"\nbukket = \"x\"\n[sources.b]\ntype = \"sqlite\"\npath = \"x.db\"\ntargets = [\"paris\"]\n",
    )
    .expect("write");
    let out = std::process::Command::new(BIN)
        .arg("--config")
        .arg(&cfg)
        .args(["list"])
        .output()
        .expect("run");
    assert_ne!(out.status.code(), Some(0));
    let err = stderr(&out);
    assert!(err.contains("coffre.toml:6"), "{err}");
    assert!(
        err.contains("bukket") && err.contains("did you mean \"bucket\""),
        "{err}"
    );
}

#[test]
fn empty_recipients_is_refused_before_anything_connects() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = dir.path().join("coffre.toml");
    std::fs::write(
        &cfg,
        "state_dir = \"s\"\n[encryption]\nrecipients = []\n[targets.l]\ntype = \"fs\"\npath = \"l\"\n\
         [sources.b]\ntype = \"postgres\"\nurl = \"postgres://nobody@127.0.0.1:1/x\"\ntargets = [\"l\"]\n",
    )
    .expect("write");
    let out = std::process::Command::new(BIN)
        .arg("--config")
        .arg(&cfg)
        .args(["backup", "b", "--json"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("coffre.toml:3") && err.contains("coffre keygen"),
        "{err}"
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json on failure too");
    assert_eq!(v["status"], "failed");
    assert!(!dir.path().join("l").exists(), "nothing was written");
}

#[test]
fn unreachable_database_fails_and_lists_nothing() {
    let db = PgDb {
        name: "never_created".into(),
        url: "postgres://nobody@127.0.0.1:1/nothing".into(),
    };
    let ws = Workspace::new(
        &[Target::Fs("local")],
        &pg_source("billing", &db, &["local"]),
    );
    std::mem::forget(db);
    let (code, v) = ws.json(&["backup", "billing"]);
    assert_eq!(code, 1, "{v:#}");
    assert_eq!(v["status"], "failed");
    let err = v["error"].as_str().unwrap_or_default();
    assert!(
        err.contains("pg_dump") && err.contains("127.0.0.1"),
        "{err}"
    );
    assert!(ws.listed("billing").is_empty());
    assert_eq!(files_under(&ws.path("local")), Vec::<String>::new());
}

#[test]
fn source_dying_mid_dump_leaves_nothing() {
    let src = PgDb::create("coffre_err_die_");
    load_billing(&src, 300);
    let ws = Workspace::new(&[Target::Fs("local")], "");
    // A pg_dump that sends part of a real dump and then fails.
    let fake = ws.path("fake_pg_dump.sh");
    std::fs::write(
        &fake,
        "#!/bin/bash\npg_dump \"$@\" | head -c 300000\nexit 1\n",
    )
    .expect("write");
    let _ = std::process::Command::new("chmod")
        .arg("+x")
        .arg(&fake)
        .status();
    let mut cfg = std::fs::read_to_string(&ws.config).expect("read");
    cfg.push_str(&pg_source("billing", &src, &["local"]));
    cfg.push_str(&format!("pg_dump = \"{}\"\n", fake.display()));
    std::fs::write(&ws.config, cfg).expect("write");
    let (code, v) = ws.json(&["backup", "billing"]);
    assert_eq!(code, 1, "{v:#}");
    assert!(
        v["error"].as_str().unwrap_or_default().contains("pg_dump"),
        "{v:#}"
    );
    assert!(ws.listed("billing").is_empty());
    assert_eq!(files_under(&ws.path("local")), Vec::<String>::new());
}

#[test]
fn unreachable_bucket_fails_alone_or_degrades_beside_a_good_target() {
    let src = PgDb::create("coffre_err_s3_");
    load_billing(&src, 100);
    let dead = || Target::S3 {
        name: "dead",
        endpoint: "http://127.0.0.1:1".into(),
        bucket: "nowhere".into(),
    };
    let ws = Workspace::new(&[dead()], &pg_source("billing", &src, &["dead"]));
    let (code, v) = ws.json(&["backup", "billing"]);
    assert_eq!(code, 1, "{v:#}");
    assert_eq!(v["status"], "failed");
    assert!(
        v["error"].as_str().unwrap_or_default().contains("dead"),
        "{v:#}"
    );
    let (code, _) = ws.json(&["list", "billing"]);
    assert_eq!(code, 1, "an unreachable target makes list fail");

    let ws = Workspace::new(
        &[Target::Fs("local"), dead()],
        &pg_source("billing", &src, &["local", "dead"]),
    );
    let (code, v) = ws.json(&["backup", "billing"]);
    assert_eq!(code, 3, "degraded exit code: {v:#}");
    assert_eq!(v["status"], "degraded");
    let targets = v["targets"].as_array().expect("targets");
    assert_eq!(targets[0]["status"], "ok");
    assert_eq!(targets[1]["status"], "failed");
    assert!(
        targets[1]["error"]
            .as_str()
            .unwrap_or_default()
            .contains("127.0.0.1:1"),
        "{v:#}"
    );
    let id = v["id"].as_str().expect("id").to_owned();
    // The good copy restores.
    let dst = PgDb::create("coffre_err_s3_dst_");
    let (code, r) = ws.json(&["restore", &id, "--to", &dst.url]);
    assert_eq!(code, 0, "{r:#}");
    assert_eq!(r["target"], "local");
}

#[test]
fn wrong_identity_is_named_and_the_destination_stays_empty() {
    let src = PgDb::create("coffre_err_id_");
    load_billing(&src, 50);
    let ws = Workspace::new(
        &[Target::Fs("local")],
        &pg_source("billing", &src, &["local"]),
    );
    let id = ws.backup_ok("billing");
    let other = ws.path("other.txt");
    let out = std::process::Command::new(BIN)
        .args(["keygen", "--out"])
        .arg(&other)
        .output()
        .expect("keygen");
    assert!(out.status.success());
    let cfg = std::fs::read_to_string(&ws.config)
        .expect("read")
        .replace("identity.txt", "other.txt");
    std::fs::write(&ws.config, cfg).expect("write");
    let dst = PgDb::create("coffre_err_id_dst_");
    let out = ws.run(&["restore", &id, "--to", &dst.url]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("other.txt") && err.contains("does not decrypt"),
        "{err}"
    );
    assert_eq!(
        dst.query("SELECT count(*) FROM pg_class WHERE relnamespace = 'public'::regnamespace"),
        "0"
    );
}

#[test]
fn corrupted_copy_is_found_by_verify_and_skipped_by_restore() {
    let src = PgDb::create("coffre_err_rot_");
    load_billing(&src, 200);
    let ws = Workspace::new(
        &[Target::Fs("a"), Target::Fs("b")],
        &pg_source("billing", &src, &["a", "b"]),
    );
    let id = ws.backup_ok("billing");
    let data = ws
        .path("a")
        .join("billing")
        .join(&id)
        .join("data.sql.zst.age");
    let mut bytes = std::fs::read(&data).expect("read");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    std::fs::write(&data, bytes).expect("write");

    let (code, v) = ws.json(&["verify", &id]);
    assert_eq!(code, 1, "{v:#}");
    let copies = v["backups"][0]["copies"].as_array().expect("copies");
    assert_eq!(copies[0]["target"], "a");
    assert_eq!(copies[0]["status"], "corrupt");
    assert!(
        copies[0]["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("SHA-256"),
        "{v:#}"
    );
    assert_eq!(copies[1]["status"], "ok");

    let dst = PgDb::create("coffre_err_rot_dst_");
    let out = ws.run(&["restore", &id, "--to", &dst.url, "--target", "a"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("target a"), "{}", stderr(&out));
    assert_eq!(
        dst.query("SELECT count(*) FROM pg_class WHERE relnamespace = 'public'::regnamespace"),
        "0"
    );

    let (code, r) = ws.json(&["restore", &id, "--to", &dst.url]);
    assert_eq!(code, 0, "{r:#}");
    assert_eq!(r["target"], "b");
    assert!(
        r["failed_attempts"][0]
            .as_str()
            .unwrap_or_default()
            .contains("target a"),
        "{r:#}"
    );
    assert_same(&pg_fingerprint(&src), &pg_fingerprint(&dst));
}

#[test]
fn restore_refuses_a_non_empty_destination() {
    let src = PgDb::create("coffre_err_full_");
    load_billing(&src, 20);
    let ws = Workspace::new(
        &[Target::Fs("local")],
        &pg_source("billing", &src, &["local"]),
    );
    let id = ws.backup_ok("billing");
    let out = ws.run(&["restore", &id, "--to", &src.url]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("not empty"), "{}", stderr(&out));
}

#[test]
fn truncated_or_half_written_objects_are_never_listed() {
    let src = PgDb::create("coffre_err_half_");
    load_billing(&src, 20);
    let ws = Workspace::new(
        &[Target::Fs("local")],
        &pg_source("billing", &src, &["local"]),
    );
    let id = ws.backup_ok("billing");
    // A folder with data but no manifest (a crash before the manifest) is not a backup.
    let ghost = ws
        .path("local")
        .join("billing")
        .join("20250101T000000.000Z-abcd");
    std::fs::create_dir_all(&ghost).expect("mkdir");
    std::fs::write(ghost.join("data.sql.zst.age"), b"partial").expect("write");
    assert_eq!(ws.listed("billing"), vec![id.clone()]);
    // A forged, unparsable manifest is not listed as good either.
    let forged = ws
        .path("local")
        .join("billing")
        .join("20250102T000000.000Z-abcd");
    std::fs::create_dir_all(&forged).expect("mkdir");
    std::fs::write(forged.join("manifest.json"), b"{\"not\": \"a manifest\"}").expect("write");
    assert_eq!(ws.listed("billing"), vec![id]);
}
