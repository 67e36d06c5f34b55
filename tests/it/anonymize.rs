//! Anonymized backups end to end: policy checked against the live schema (fail
//! closed), rows rewritten in the stream, restored with every constraint, no
//! original personal value left, deterministic under one key.

use std::process::Command;

use crate::harness::*;

const POLICY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/policies/billing.toml");
const KEY_A: &str = "test-key-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const KEY_B: &str = "test-key-bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

/// A workspace backing up `db` with a policy and a key file.
fn anon_workspace(db: &PgDb, policy: &str, key: &str) -> Workspace {
    let ws = Workspace::new(&[Target::Fs("local")], "");
    std::fs::write(ws.path("anon.key"), key).expect("key");
    let mut cfg = std::fs::read_to_string(&ws.config).expect("read");
    cfg = cfg.replacen(
        "[encryption]",
        "[anonymization]\nkey_file = \"anon.key\"\n[encryption]",
        1,
    );
    cfg.push_str(&pg_source("billing", db, &["local"]));
    cfg.push_str(&format!("policy = \"{policy}\"\n"));
    std::fs::write(&ws.config, cfg).expect("write");
    ws
}

/// Backs up anonymized and restores into a new database.
fn anonymized_copy(ws: &Workspace) -> PgDb {
    let (code, v) = ws.json(&["backup", "billing", "--anonymize"]);
    assert_eq!(code, 0, "{v:#}");
    assert_eq!(v["kind"], "anonymized", "{v:#}");
    let id = v["id"].as_str().expect("id").to_owned();
    let manifest = std::fs::read_to_string(
        ws.path("local")
            .join("billing")
            .join(&id)
            .join("manifest.json"),
    )
    .expect("manifest");
    assert!(manifest.contains("\"kind\": \"anonymized\"") && manifest.contains("policy_sha256"));
    let dst = PgDb::create("coffre_anon_dst_");
    let (code, r) = ws.json(&["restore", &id, "--to", &dst.url]);
    assert_eq!(code, 0, "restore with every constraint: {r:#}");
    dst
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
}

#[test]
fn an_anonymized_copy_of_a_backup_opens_only_with_the_requesters_key() {
    let src = PgDb::create("coffre_anon_copy_");
    load_billing(&src, 150);
    let ws = anon_workspace(&src, POLICY, KEY_A);
    let raw = ws.backup_ok("billing");
    let requester = ws.path("requester.txt");
    let out = Command::new(BIN)
        .args(["keygen", "--json", "--out"])
        .arg(&requester)
        .output()
        .expect("keygen");
    let recipient =
        serde_json::from_slice::<serde_json::Value>(&out.stdout).expect("json")["recipient"]
            .as_str()
            .expect("recipient")
            .to_owned();
    let (code, v) = ws.json(&["anonymize", &raw, "--recipient", &recipient]);
    assert_eq!(code, 0, "{v:#}");
    assert_eq!(v["kind"], "anonymized");
    let copy = v["id"].as_str().expect("id").to_owned();
    let folder = ws.path("local").join("billing").join(&copy);
    let manifest = std::fs::read_to_string(folder.join("manifest.json")).expect("manifest");
    assert!(
        manifest.contains(&format!("\"derived_from\": \"{raw}\"")),
        "{manifest}"
    );
    assert_eq!(
        ws.listed("billing"),
        vec![raw.clone(), copy.clone()],
        "ids sort in time order"
    );

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
