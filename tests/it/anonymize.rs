//! Anonymized backups end to end: policy checked against the live schema (fail
//! closed), rows rewritten in the stream, restored with every constraint, no
//! original personal value left, deterministic under one key; anonymized copies
//! of raw PostgreSQL and SQLite backups equal to anonymized backups.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use rusqlite::types::Value;

use crate::harness::*;

const POLICY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/policies/billing.toml");
pub const KEY_A: &str = "test-key-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const KEY_B: &str = "test-key-bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

/// A workspace backing up `db` with a policy and a key file.
fn anon_workspace(db: &PgDb, policy: &str, key: &str) -> Workspace {
    let ws = Workspace::new(&[Target::Fs("local")], "");
    ws.enable_anonymization(key);
    let mut cfg = std::fs::read_to_string(&ws.config).expect("read");
    cfg.push_str(&pg_source("billing", db, &["local"]));
    cfg.push_str(&format!("policy = \"{policy}\"\n"));
    std::fs::write(&ws.config, cfg).expect("write");
    ws
}

/// Backs up anonymized and restores into a new database.
fn anonymized_copy(ws: &Workspace) -> PgDb {
    let id = anonymized_backup(ws, "billing");
    let dst = PgDb::create("coffre_anon_dst_");
    let (code, r) = ws.json(&["restore", &id, "--to", &dst.url]);
    assert_eq!(code, 0, "restore with every constraint: {r:#}");
    dst
}

/// Backs up `source` anonymized; returns the backup id.
fn anonymized_backup(ws: &Workspace, source: &str) -> String {
    let (code, v) = ws.json(&["backup", source, "--anonymize"]);
    assert_eq!(code, 0, "{v:#}");
    assert_eq!(v["kind"], "anonymized", "{v:#}");
    let id = v["id"].as_str().expect("id").to_owned();
    let manifest = std::fs::read_to_string(manifest_path(ws, source, &id)).expect("manifest");
    assert!(manifest.contains("\"kind\": \"anonymized\"") && manifest.contains("policy_sha256"));
    id
}

fn manifest_path(ws: &Workspace, source: &str, id: &str) -> PathBuf {
    ws.path("local").join(source).join(id).join("manifest.json")
}

/// `coffre anonymize raw --recipient …`; checks the new manifest, returns the copy's id.
fn anonymize_backup(ws: &Workspace, source: &str, raw: &str, recipient: &str) -> String {
    let (code, v) = ws.json(&["anonymize", raw, "--recipient", recipient]);
    assert_eq!(code, 0, "{v:#}");
    assert_eq!(v["kind"], "anonymized");
    assert_eq!(v["status"], "ok", "{v:#}");
    let copy = v["id"].as_str().expect("id").to_owned();
    let manifest = std::fs::read_to_string(manifest_path(ws, source, &copy)).expect("manifest");
    assert!(
        manifest.contains(&format!("\"derived_from\": \"{raw}\"")),
        "{manifest}"
    );
    assert_eq!(
        ws.listed(source),
        vec![raw.to_owned(), copy.clone()],
        "ids sort in time order"
    );
    copy
}

/// Every original personal value of the source, for the leak search.
fn originals(src: &PgDb) -> Vec<String> {
    let q = "SELECT v FROM (\
        SELECT email AS v FROM clients UNION SELECT telephone FROM clients \
        UNION SELECT iban FROM clients UNION SELECT siret FROM clients \
        UNION SELECT adresse FROM clients UNION SELECT email FROM contacts \
        UNION SELECT telephone FROM contacts UNION SELECT iban FROM mandats_sepa \
        UNION SELECT substring(notes from '[a-z0-9.]+@[a-z.]+') FROM clients \
        UNION SELECT substring(notes from '\\+33 6 12 34 56 [0-9]{2}') FROM clients \
        UNION SELECT substring(notes from 'FR76 1027 8060 31[0-9]{10} 42') FROM clients \
        UNION SELECT host(ip) FROM journal_activite) t WHERE v IS NOT NULL AND v <> ''";
    src.query(q).lines().map(str::to_owned).collect()
}

fn data_text(db: &PgDb) -> String {
    let out = Command::new("pg_dump")
        .args(["--data-only", "-d", &db.url])
        .output()
        .expect("pg_dump");
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn assert_no_leak(src: &PgDb, dst: &PgDb) {
    let values = originals(src);
    assert!(
        values.len() > 100,
        "the search has material: {}",
        values.len()
    );
    let text = data_text(dst);
    // Also the COPY-escaped form (a value with a backslash or tab is escaped there).
    let leaks: Vec<&String> = values
        .iter()
        .filter(|v| text.contains(v.as_str()))
        .collect();
    assert!(
        leaks.is_empty(),
        "{} original values left, e.g. {:?}",
        leaks.len(),
        &leaks[..leaks.len().min(5)]
    );
    assert_eq!(
        dst.query(
            "SELECT count(*) FROM factures f JOIN clients c ON c.id = f.client_id \
             WHERE f.email_facturation <> c.email"
        ),
        "0",
        "every invoice keeps its client's (fake) e-mail"
    );
}

#[test]
fn anonymized_backup_restores_whole_with_no_original_value() {
    let src = PgDb::create("coffre_anon_src_");
    load_billing(&src, 300);
    let ws = anon_workspace(&src, POLICY, KEY_A);
    let dst = anonymized_copy(&ws);
    assert_no_leak(&src, &dst);
    // Same row counts as the source, table by table.
    for t in [
        "clients",
        "contacts",
        "factures",
        "lignes_facture",
        "paiements",
        "mandats_sepa",
        "journal_activite",
    ] {
        assert_eq!(
            src.query(&format!("SELECT count(*) FROM {t}")),
            dst.query(&format!("SELECT count(*) FROM {t}")),
            "{t}"
        );
    }
    // French-looking fakes: +33 phones, FR IBANs.
    assert_eq!(
        dst.query("SELECT count(*) FROM clients WHERE telephone NOT LIKE '+33 %'"),
        "0"
    );
    assert_eq!(
        dst.query("SELECT count(*) FROM clients WHERE iban NOT LIKE 'FR%'"),
        "0"
    );
}

#[test]
fn the_shared_seed_anonymizes_without_leaks_when_present() {
    let Ok(dir) = std::env::var("COFFRE_TEST_SHARED_FIXTURES") else {
        eprintln!("COFFRE_TEST_SHARED_FIXTURES unset: shared seed anonymization not run");
        return;
    };
    let src = PgDb::create("coffre_anon_shared_");
    src.run_file(&std::path::Path::new(&dir).join("schema.sql"));
    src.run_file(&std::path::Path::new(&dir).join("seed.sql"));
    let ws = anon_workspace(&src, POLICY, KEY_A);
    let dst = anonymized_copy(&ws);
    assert_no_leak(&src, &dst);
}

#[test]
fn one_key_gives_the_same_data_and_another_key_other_data() {
    let src = PgDb::create("coffre_anon_det_");
    load_billing(&src, 100);
    let a1 = anonymized_copy(&anon_workspace(&src, POLICY, KEY_A));
    let a2 = anonymized_copy(&anon_workspace(&src, POLICY, KEY_A));
    let b = anonymized_copy(&anon_workspace(&src, POLICY, KEY_B));
    let (fa1, fa2, fb) = (pg_fingerprint(&a1), pg_fingerprint(&a2), pg_fingerprint(&b));
    assert_same(&fa1, &fa2);
    assert_ne!(
        fa1.get("table public.clients"),
        fb.get("table public.clients")
    );
    assert_eq!(
        fa1.get("table public.lignes_facture"),
        fb.get("table public.lignes_facture"),
        "kept tables stay"
    );
}

#[test]
fn a_misspelled_column_fails_naming_file_and_line() {
    let src = PgDb::create("coffre_anon_typo_");
    load_billing(&src, 10);
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("billing.toml");
    let text = std::fs::read_to_string(POLICY).expect("policy");
    let line = text
        .lines()
        .position(|l| l.starts_with("telephone = "))
        .expect("telephone")
        + 1;
    std::fs::write(&bad, text.replacen("telephone = ", "telephnoe = ", 1)).expect("write");
    let ws = anon_workspace(&src, bad.to_str().expect("path"), KEY_A);
    let out = ws.run(&["policy", "check", "billing"]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(&format!("billing.toml:{line}:")), "{text}");
    assert!(
        text.contains("telephnoe") && text.contains("\"telephone\""),
        "{text}"
    );
    let (code, v) = ws.json(&["backup", "billing", "--anonymize"]);
    assert_eq!(code, 1, "{v:#}");
    assert!(ws.listed("billing").is_empty(), "nothing stored");
}

#[test]
fn a_column_added_after_the_policy_fails_closed() {
    let src = PgDb::create("coffre_anon_new_");
    load_billing(&src, 10);
    let ws = anon_workspace(&src, POLICY, KEY_A);
    let out = ws.run(&["policy", "check", "billing"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    src.query("ALTER TABLE clients ADD COLUMN surnom text");
    let out = ws.run(&["policy", "check", "billing"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("surnom"));
    let (code, v) = ws.json(&["backup", "billing", "--anonymize"]);
    assert_eq!(code, 1, "{v:#}");
    assert!(
        v["error"].as_str().unwrap_or_default().contains("surnom"),
        "{v:#}"
    );
    assert!(ws.listed("billing").is_empty());
    // pg_dump, started while the policy was checked, was stopped with the backup: no
    // session of coffre's is left on the database (the server notices a closed
    // connection at once, or at its next write).
    let sessions = || {
        src.query(
            "SELECT count(*) FROM pg_stat_activity \
             WHERE datname = current_database() AND application_name = 'coffre'",
        )
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while sessions() != "0" && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(sessions(), "0", "a dump session outlived the failed backup");
}

#[test]
fn an_anonymized_copy_of_a_backup_opens_only_with_the_requesters_key() {
    let src = PgDb::create("coffre_anon_copy_");
    load_billing(&src, 150);
    let ws = anon_workspace(&src, POLICY, KEY_A);
    let raw = ws.backup_ok("billing");
    let (requester, recipient) = requester_key(&ws);
    let copy = anonymize_backup(&ws, "billing", &raw, &recipient);
    let folder = ws.path("local").join("billing").join(&copy);

    // The appliance's own identity cannot open it.
    let dst = PgDb::create("coffre_anon_copy_dst_");
    let out = ws.run(&["restore", &copy, "--to", &dst.url]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("does not decrypt"),
        "{}",
        stderr(&out)
    );

    // The requester opens it by hand with age, zstd and psql.
    let script = format!(
        "set -euo pipefail; age -d -i '{}' '{}' | zstd -d | psql -X -q -v ON_ERROR_STOP=1 --single-transaction -d '{}' > /dev/null",
        requester.display(),
        folder.join("data.sql.zst.age").display(),
        dst.url
    );
    let out = Command::new("bash")
        .args(["-c", &script])
        .output()
        .expect("bash");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_no_leak(&src, &dst);

    // Same key, same policy: the copy equals an anonymized backup of the live database.
    let direct = anonymized_copy(&ws);
    assert_same(&pg_fingerprint(&direct), &pg_fingerprint(&dst));
}

/// The billing tables of the fixture.
const BILLING_TABLES: [&str; 7] = [
    "clients",
    "contacts",
    "factures",
    "lignes_facture",
    "paiements",
    "mandats_sepa",
    "journal_activite",
];

/// A workspace backing up the SQLite file `db` as source `lite`, with the billing
/// policy written for SQLite (tables of schema "main") and a key file.
pub fn sqlite_anon_workspace(db: &Path, key: &str) -> Workspace {
    let ws = Workspace::new(&[Target::Fs("local")], "");
    ws.enable_anonymization(key);
    std::fs::write(ws.path("billing-sqlite.toml"), billing_policy_for("main")).expect("policy");
    let mut cfg = std::fs::read_to_string(&ws.config).expect("read");
    cfg.push_str(&format!(
        "[sources.lite]\ntype = \"sqlite\"\npath = \"{}\"\ntargets = [\"local\"]\n\
         policy = \"billing-sqlite.toml\"\n",
        db.display()
    ));
    std::fs::write(&ws.config, cfg).expect("write");
    ws
}

fn sqlite_conn(path: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .expect("open sqlite")
}

/// Every table of an SQLite file with its rows in rowid order, and its schema.
fn sqlite_contents(path: &Path) -> BTreeMap<String, Vec<Vec<Value>>> {
    let conn = sqlite_conn(path);
    let mut out = BTreeMap::new();
    let mut stmt = conn
        .prepare("SELECT name, sql FROM sqlite_schema WHERE sql IS NOT NULL ORDER BY name")
        .expect("schema");
    let items: Vec<(String, String)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("schema")
        .collect::<Result<_, _>>()
        .expect("schema");
    out.insert(
        "schema".into(),
        items
            .iter()
            .map(|(n, sql)| vec![Value::Text(n.clone()), Value::Text(sql.clone())])
            .collect(),
    );
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name")
        .expect("tables")
        .query_map([], |r| r.get(0))
        .expect("tables")
        .collect::<Result<_, _>>()
        .expect("tables");
    for t in tables {
        let mut stmt = conn
            .prepare(&format!("SELECT * FROM \"{t}\" ORDER BY rowid"))
            .expect("select");
        let n = stmt.column_count();
        let rows: Vec<Vec<Value>> = stmt
            .query_map([], |r| (0..n).map(|i| r.get::<_, Value>(i)).collect())
            .expect("rows")
            .collect::<Result<_, _>>()
            .expect("rows");
        out.insert(format!("table {t}"), rows);
    }
    out
}

fn sqlite_count(path: &Path, table: &str) -> i64 {
    sqlite_conn(path)
        .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
        .expect("count")
}

/// The originals `originals` searches in PostgreSQL, read from the SQLite fixture.
fn sqlite_originals(path: &Path) -> Vec<String> {
    let conn = sqlite_conn(path);
    let q = "SELECT email FROM clients UNION SELECT telephone FROM clients \
        UNION SELECT iban FROM clients UNION SELECT siret FROM clients \
        UNION SELECT adresse FROM clients UNION SELECT email FROM contacts \
        UNION SELECT telephone FROM contacts UNION SELECT iban FROM mandats_sepa \
        UNION SELECT ip FROM journal_activite";
    let mut values: Vec<String> = conn
        .prepare(q)
        .expect("originals")
        .query_map([], |r| r.get::<_, Option<String>>(0))
        .expect("originals")
        .filter_map(|v| v.expect("value"))
        .collect();
    let patterns = [
        r"[a-z0-9.]+@[a-z.]+",
        r"\+33 6 12 34 56 [0-9]{2}",
        r"FR76 1027 8060 31[0-9]{10} 42",
    ]
    .map(|p| regex::Regex::new(p).expect("regex"));
    let notes: Vec<Option<String>> = conn
        .prepare("SELECT notes FROM clients")
        .expect("notes")
        .query_map([], |r| r.get(0))
        .expect("notes")
        .collect::<Result<_, _>>()
        .expect("notes");
    for n in notes.iter().flatten() {
        for p in &patterns {
            values.extend(p.find(n).map(|m| m.as_str().to_owned()));
        }
    }
    values.retain(|v| !v.is_empty());
    values
}

/// Every text and blob of an SQLite file, one per line.
fn sqlite_text(path: &Path) -> String {
    let mut text = String::new();
    for (_, rows) in sqlite_contents(path) {
        for v in rows.iter().flatten() {
            match v {
                Value::Text(t) => text.push_str(t),
                Value::Blob(b) => text.push_str(&String::from_utf8_lossy(b)),
                _ => continue,
            }
            text.push('\n');
        }
    }
    text
}

#[test]
fn an_anonymized_copy_of_an_sqlite_backup_equals_an_anonymized_backup() {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = dir.path().join("billing.db");
    crate::harness::load_billing_sqlite(&src, 150);
    // The fixture's PDFs are binary BLOBs under the `null` rule: they must pass
    // (a rule that ignores the value never asks for UTF-8 text).
    let binary_pdfs: i64 = rusqlite::Connection::open(&src)
        .expect("open")
        .query_row(
            "SELECT count(*) FROM factures WHERE typeof(pdf) = 'blob'",
            [],
            |r| r.get(0),
        )
        .expect("count pdfs");
    assert!(binary_pdfs > 0, "the fixture has binary PDFs");
    let ws = sqlite_anon_workspace(&src, KEY_A);
    let raw = ws.backup_ok("lite");
    let (_, recipient) = requester_key(&ws);
    let copy = anonymize_backup(&ws, "lite", &raw, &recipient);

    // The appliance's own identity cannot open it; the requester's restores it,
    // checked against the copy's manifest (size, SHA-256, row counts and checksums).
    let out = ws.run(&[
        "restore",
        &copy,
        "--to",
        ws.path("nope.db").to_str().expect("path"),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("does not decrypt"),
        "{}",
        stderr(&out)
    );
    let requester_config = ws.path("requester.toml");
    std::fs::write(
        &requester_config,
        std::fs::read_to_string(&ws.config)
            .expect("config")
            .replace(
                "identity_file = \"identity.txt\"",
                "identity_file = \"requester.txt\"",
            ),
    )
    .expect("config");
    let restored = ws.path("copy.db");
    let out = Command::new(BIN)
        .arg("--config")
        .arg(&requester_config)
        .args(["restore", &copy, "--to"])
        .arg(&restored)
        .output()
        .expect("restore");
    assert!(out.status.success(), "{}", stderr(&out));

    // No original personal value left; same rows; invoices still match their client.
    let values = sqlite_originals(&src);
    assert!(
        values.len() > 100,
        "the search has material: {}",
        values.len()
    );
    let text = sqlite_text(&restored);
    let leaks: Vec<&String> = values
        .iter()
        .filter(|v| text.contains(v.as_str()))
        .collect();
    assert!(
        leaks.is_empty(),
        "{} original values left, e.g. {:?}",
        leaks.len(),
        &leaks[..leaks.len().min(5)]
    );
    for t in BILLING_TABLES {
        assert_eq!(sqlite_count(&src, t), sqlite_count(&restored, t), "{t}");
        assert!(sqlite_count(&restored, t) > 0, "{t} has rows");
    }
    assert_eq!(
        sqlite_conn(&restored)
            .query_row(
                "SELECT count(*) FROM factures f JOIN clients c ON c.id = f.client_id \
                 WHERE f.email_facturation <> c.email",
                [],
                |r| r.get::<_, i64>(0),
            )
            .expect("join"),
        0,
        "every invoice keeps its client's (fake) e-mail"
    );

    // Same key, same policy: the copy is an anonymized backup of the live database,
    // to the byte (same size, same per-table row checksums) and once restored.
    let direct = anonymized_backup(&ws, "lite");
    let manifest = |id: &str| -> serde_json::Value {
        serde_json::from_str(
            &std::fs::read_to_string(manifest_path(&ws, "lite", id)).expect("manifest"),
        )
        .expect("manifest json")
    };
    let (m_copy, m_direct) = (manifest(&copy), manifest(&direct));
    assert_eq!(m_copy["tables"], m_direct["tables"]);
    assert_eq!(m_copy["plaintext_bytes"], m_direct["plaintext_bytes"]);
    let restored_direct = ws.path("direct.db");
    let (code, r) = ws.json(&[
        "restore",
        &direct,
        "--to",
        restored_direct.to_str().expect("path"),
    ]);
    assert_eq!(code, 0, "{r:#}");
    let (want, got) = (
        sqlite_contents(&restored_direct),
        sqlite_contents(&restored),
    );
    assert_eq!(
        want.keys().collect::<Vec<_>>(),
        got.keys().collect::<Vec<_>>()
    );
    for (k, rows) in &want {
        assert!(
            &got[k] == rows,
            "{k} differs between the copy and the anonymized backup"
        );
    }
    assert_ne!(
        sqlite_contents(&src)["table clients"],
        got["table clients"],
        "the clients were rewritten"
    );
}
