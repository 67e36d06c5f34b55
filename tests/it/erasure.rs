//! The right to erasure across backups, through the real binary against PostgreSQL and two
//! SeaweedFS regions: a client erased after a backup never comes back from it — not by a
//! restore, a drill nor an anonymized copy —, the ledger outlives the appliance's state,
//! forged ledger entries are refused, and the status names exactly the backups that still
//! hold the client, with their expiry.

use std::process::Command;

use crate::harness::*;
use crate::support;

const POLICY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/policies/billing.toml");
const SOURCE: &str = "billing";

/// A workspace over two S3 regions backing up `db` with the billing policy, a 30-day
/// retention and a drill.
async fn workspace(db: &PgDb, policy: &str) -> Workspace {
    Workspace::new(
        &two_regions("er-").await,
        &format!(
            "{}policy = \"{policy}\"\n[sources.{SOURCE}.retention]\nmax_age_days = 30\n\
             [drills.{SOURCE}]\nscratch_url = \"{}\"\n",
            pg_source(SOURCE, db, &["paris", "frankfurt"]),
            support::pg_admin_url()
        ),
    )
}

/// The whole database as SQL text (data only), to search for values.
fn data_text(db: &PgDb) -> String {
    let out = Command::new("pg_dump")
        .args(["--data-only", "--no-owner", "-d", &db.url])
        .output()
        .expect("pg_dump");
    assert!(out.status.success(), "{}", stderr(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Client 42's personal values in the source that no other client shares, even as a part
/// (the fixture repeats phone numbers every 100 clients, and "43 rue …" is inside
/// "143 rue …"): e-mails, phones, IBAN, address of the client, its contacts and mandates.
fn personal_values_of_42(src: &PgDb) -> Vec<String> {
    let values: Vec<String> = src
        .query(
            "WITH mine(v) AS ( \
               SELECT unnest(ARRAY[email, telephone, iban, adresse]) FROM clients WHERE id = 42 \
               UNION SELECT unnest(ARRAY[email, telephone]) FROM contacts WHERE client_id = 42 \
               UNION SELECT iban FROM mandats_sepa WHERE client_id = 42), \
             others(t) AS ( \
               SELECT concat_ws(' ', email, telephone, iban, adresse, notes) FROM clients WHERE id <> 42 \
               UNION ALL SELECT concat_ws(' ', email, telephone) FROM contacts WHERE client_id <> 42 \
               UNION ALL SELECT iban FROM mandats_sepa WHERE client_id <> 42 \
               UNION ALL SELECT details::text FROM journal_activite WHERE client_id IS DISTINCT FROM 42) \
             SELECT v FROM mine WHERE length(v) >= 6 \
               AND NOT EXISTS (SELECT 1 FROM others WHERE position(v IN t) > 0) ORDER BY v",
        )
        .lines()
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
        .collect();
    assert!(
        values.iter().any(|v| v.contains('@')) && values.iter().any(|v| v.starts_with("FR")),
        "client 42 has an e-mail and an IBAN of its own: {values:?}"
    );
    values
}

fn assert_erased(dst: &PgDb, src: &PgDb, values: &[String]) {
    for (table, column) in [
        ("clients", "id"),
        ("contacts", "client_id"),
        ("mandats_sepa", "client_id"),
        ("journal_activite", "client_id"),
    ] {
        assert_eq!(
            dst.query(&format!("SELECT count(*) FROM {table} WHERE {column} = 42")),
            "0",
            "{table} keeps no row of client 42"
        );
    }
    // Invoices, their lines and payments are kept (accounting law), pseudonymized.
    for sql in [
        "SELECT count(*) FROM factures WHERE client_id = 42",
        "SELECT string_agg(numero || ' ' || total_ttc, ',' ORDER BY id) FROM factures WHERE client_id = 42",
        "SELECT count(*) FROM lignes_facture WHERE facture_id IN (SELECT id FROM factures WHERE client_id = 42)",
        "SELECT count(*) FROM paiements WHERE facture_id IN (SELECT id FROM factures WHERE client_id = 42)",
    ] {
        assert_eq!(dst.query(sql), src.query(sql), "{sql}");
    }
    assert_ne!(
        dst.query("SELECT count(*) FROM factures WHERE client_id = 42"),
        "0"
    );
    assert_eq!(
        dst.query(
            "SELECT count(*) FROM factures WHERE client_id = 42 \
             AND pdf IS NOT NULL"
        ),
        "0",
        "the invoices' PDFs (with the e-mail inside) are gone"
    );
    let text = data_text(dst);
    for v in values {
        assert!(
            !text.contains(v.as_str()),
            "{v:?} is still in the restored data"
        );
    }
    // The other clients are untouched.
    for sql in [
        "SELECT string_agg(email, ',' ORDER BY id) FROM clients WHERE id <> 42",
        "SELECT count(*) FROM contacts WHERE client_id <> 42",
        "SELECT string_agg(email_facturation, ',' ORDER BY id) FROM factures WHERE client_id <> 42",
    ] {
        assert_eq!(dst.query(sql), src.query(sql), "{sql}");
    }
}

#[tokio::test]
async fn an_erased_client_never_comes_back_and_the_ledger_outlives_the_appliance() {
    let src = PgDb::create("coffre_erase_src_");
    load_billing(&src, 200);
    let values = personal_values_of_42(&src);
    let ws = workspace(&src, POLICY).await;
    let before = ws.backup_ok(SOURCE);

    // The request, recorded and replicated to both regions.
    let (code, e) = ws.json(&[
        "erase",
        SOURCE,
        "--subject",
        "clients.id=42",
        "--reason",
        "ticket RGPD-7 from the client",
    ]);
    assert_eq!(code, 0, "{e:#}");
    assert_eq!(e["erasure"]["subject"]["table"], "public.clients");
    assert_eq!(e["erasure"]["subject"]["key"], "42");
    assert_eq!(e["stored_in"], serde_json::json!(["paris", "frankfurt"]));
    // Not this source's subject: refused, naming the right one.
    let out = ws.run(&["erase", SOURCE, "--subject", "factures.id=1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("public.clients.id"),
        "{}",
        stderr(&out)
    );

    // A restore of the backup taken before: client 42 is gone, its invoices stay.
    let dst = PgDb::create("coffre_erase_dst_");
    let (code, r) = ws.json(&["restore", &before, "--to", &dst.url]);
    assert_eq!(code, 0, "{r:#}");
    assert_erased(&dst, &src, &values);
    let erasures = &r["erasures"];
    assert_eq!(erasures["subjects"], 1, "{r:#}");
    let rows_of = |table: &str| {
        erasures["tables"]
            .as_array()
            .and_then(|t| t.iter().find(|t| t["table"] == table))
            .map(|t| t["rows"].clone())
            .unwrap_or_else(|| panic!("{table} not in {erasures:#}"))
    };
    assert_eq!(rows_of("public.clients"), 1);
    assert_eq!(
        rows_of("public.contacts").to_string(),
        src.query("SELECT count(*) FROM contacts WHERE client_id = 42")
    );
    assert_eq!(
        rows_of("public.factures").to_string(),
        src.query("SELECT count(*) FROM factures WHERE client_id = 42")
    );
    // The invoices point at a client that is gone: their foreign key is back NOT VALID,
    // the others are whole again.
    assert_eq!(
        dst.query(
            "SELECT string_agg(conname || '=' || convalidated, ',' ORDER BY conname) \
             FROM pg_constraint WHERE contype = 'f' AND NOT convalidated"
        ),
        "factures_client_id_fkey=false"
    );
    assert_eq!(
        dst.query("SELECT count(*) FROM pg_constraint WHERE contype = 'f'"),
        src.query("SELECT count(*) FROM pg_constraint WHERE contype = 'f'")
    );

    // A drill of that backup passes, reports the erasure, and checks every table exactly.
    let (code, d) = ws.json(&["drill", SOURCE]);
    assert_eq!(code, 0, "{d:#}");
    let check = crate::harness::drill_check(&d, "erasures");
    assert_eq!(check["outcome"], "passed", "{d:#}");
    assert!(
        check["detail"]
            .as_str()
            .is_some_and(|t| t.contains("no erased row is left")),
        "{d:#}"
    );
    assert_eq!(d["erasures"]["subjects"], 1);
    assert!(
        d["tables"]
            .as_array()
            .expect("tables")
            .iter()
            .all(|t| t["ok"] == true && t["expected_checksum"] == t["restored_checksum"]),
        "{d:#}"
    );

    // Production erases the client too (the application's own button); the next backup
    // no longer holds it, and the status names exactly the one that does.
    src.query(
        "ALTER TABLE factures DROP CONSTRAINT factures_client_id_fkey; \
         DELETE FROM contacts WHERE client_id = 42; DELETE FROM mandats_sepa WHERE client_id = 42; \
         DELETE FROM journal_activite WHERE client_id = 42; DELETE FROM clients WHERE id = 42",
    );
    ws.backup_ok(SOURCE);
    let (code, s) = ws.json(&["erasure", "status", SOURCE, "--subject", "clients.id=42"]);
    assert_eq!(code, 0, "{s:#}");
    let holding: Vec<&str> = s["holding"]
        .as_array()
        .expect("holding")
        .iter()
        .map(|h| h["id"].as_str().expect("id"))
        .collect();
    assert_eq!(holding, [before.as_str()], "{s:#}");
    assert_eq!(s["without"], 1, "{s:#}");
    let h = &s["holding"][0];
    let created = chrono::DateTime::parse_from_rfc3339(h["created"].as_str().expect("created"))
        .expect("time");
    let expires = chrono::DateTime::parse_from_rfc3339(h["expires"].as_str().expect("expires"))
        .expect("time");
    assert_eq!(expires - created, chrono::Duration::days(30));
    assert_eq!(s["all_gone_by"], h["expires"]);
    assert_eq!(h["how"], "scanned");
    // A client never erased nor known: held by no backup.
    let (_, s) = ws.json(&["erasure", "status", SOURCE, "--subject", "clients.id=77"]);
    assert_eq!(s["holding"].as_array().map(Vec::len), Some(2), "{s:#}");
    let (_, s) = ws.json(&[
        "erasure",
        "status",
        SOURCE,
        "--subject",
        "clients.id=999999",
    ]);
    assert_eq!(s["holding"].as_array().map(Vec::len), Some(0), "{s:#}");

    // The appliance is lost: a fresh state store rebuilds the ledger from the stores, and
    // a restore still erases.
    std::fs::remove_dir_all(ws.path("state")).expect("remove state_dir");
    let (code, l) = ws.json(&["erasure", "list", SOURCE]);
    assert_eq!(code, 0, "{l:#}");
    assert_eq!(l[0]["ledger"]["rebuilt"], 1, "{l:#}");
    assert_eq!(l[0]["ledger"]["erasures"].as_array().map(Vec::len), Some(1));
    std::fs::remove_dir_all(ws.path("state")).expect("remove state_dir again");
    let dst2 = PgDb::create("coffre_erase_dst2_");
    let (code, r) = ws.json(&["restore", &before, "--to", &dst2.url]);
    assert_eq!(code, 0, "{r:#}");
    assert_erased(&dst2, &src, &values);

    // Skipping the ledger takes an explicit flag, and it is in the audit log.
    let dst3 = PgDb::create("coffre_erase_dst3_");
    let (code, r) = ws.json(&["restore", &before, "--to", &dst3.url, "--skip-erasures"]);
    assert_eq!(code, 0, "{r:#}");
    assert_eq!(
        dst3.query("SELECT count(*) FROM clients WHERE id = 42"),
        "1"
    );
    assert!(r["erasures_skipped_by"].as_str().is_some(), "{r:#}");
    let db = rusqlite::Connection::open(ws.path("state/state.db")).expect("state.db");
    let (action, target): (String, String) = db
        .query_row(
            "SELECT action, target FROM audit_log WHERE action = 'restore_skip_erasures'",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .expect("the skip is audited");
    assert_eq!(action, "restore_skip_erasures");
    assert_eq!(target, format!("backup:{before}"));

    // An anonymized copy for support leaves the erased client out, and restores with psql
    // alone (its foreign keys into clients are NOT VALID).
    ws.enable_anonymization("erasure-test-key-0123456789abcdef");
    let (requester, recipient) = requester_key(&ws);
    let (code, c) = ws.json(&["anonymize", &before, "--recipient", &recipient]);
    assert_eq!(code, 0, "{c:#}");
    let copy = c["id"].as_str().expect("id");
    let object = ws.path("copy.age");
    let bytes = fetch_object(&ws, &format!("{SOURCE}/{copy}/data.sql.zst.age")).await;
    std::fs::write(&object, bytes).expect("write copy");
    let sql = ws.path("copy.sql");
    let pipeline = format!(
        "age -d -i {} {} | zstd -d -q > {}",
        requester.display(),
        object.display(),
        sql.display()
    );
    let out = Command::new("bash")
        .args(["-c", &pipeline])
        .output()
        .expect("age | zstd");
    assert!(out.status.success(), "{}", stderr(&out));
    let by_hand = PgDb::create("coffre_erase_copy_");
    by_hand.run_file(&sql);
    assert_eq!(
        by_hand.query("SELECT count(*) FROM clients WHERE id = 42"),
        "0"
    );
    assert_eq!(
        by_hand.query("SELECT count(*) FROM contacts WHERE client_id = 42"),
        "0"
    );
    assert_eq!(
        by_hand.query("SELECT count(*) FROM factures WHERE client_id = 42"),
        src.query("SELECT count(*) FROM factures WHERE client_id = 42")
    );
    let text = data_text(&by_hand);
    for v in &values {
        assert!(!text.contains(v.as_str()), "{v:?} is in the copy");
    }
}

/// Reads an object of the first region (paris) through the S3 API.
async fn fetch_object(ws: &Workspace, key: &str) -> Vec<u8> {
    let cfg = std::fs::read_to_string(&ws.config).expect("config");
    let bucket = cfg
        .split("[targets.paris]")
        .nth(1)
        .and_then(|t| t.lines().find(|l| l.starts_with("bucket = ")))
        .map(|l| {
            l.trim_start_matches("bucket = ")
                .trim_matches('"')
                .to_owned()
        })
        .expect("bucket of paris");
    let client = s3_client(&support::s3_endpoints()[0]);
    get_object(&client, &bucket, &format!("coffre/{key}")).await
}

#[tokio::test]
async fn forged_ledger_entries_are_refused_and_entries_are_encrypted() {
    let src = PgDb::create("coffre_erase_forge_");
    load_billing(&src, 50);
    let ws = Workspace::new(
        &[Target::Fs("local")],
        &format!(
            "{}policy = \"{POLICY}\"\n",
            pg_source(SOURCE, &src, &["local"])
        ),
    );
    let id = ws.backup_ok(SOURCE);
    let (code, e) = ws.json(&[
        "erase",
        SOURCE,
        "--subject",
        "public.clients.id=7",
        "--reason",
        "Mme Unique-Raison-Texte asked",
    ]);
    assert_eq!(code, 0, "{e:#}");
    let dir = ws.path("local/_coffre/erasures").join(SOURCE);
    let entries: Vec<_> = std::fs::read_dir(&dir).expect("ledger dir").collect();
    assert_eq!(entries.len(), 1);
    let stored = std::fs::read(entries[0].as_ref().expect("entry").path()).expect("read");
    assert!(stored.starts_with(b"age-encryption.org/v1"));
    assert!(
        !String::from_utf8_lossy(&stored).contains("Unique-Raison-Texte"),
        "the reason is encrypted"
    );

    // Someone with write access to the bucket plants an erasure of client 8, encrypted to
    // the public recipient but without the appliance's integrity key.
    let forged = serde_json::json!({
        "format": "coffre-erasure/1",
        "id": "20260101T000000.000Z-deadbeef",
        "source": SOURCE,
        "subject": { "table": "public.clients", "column": "id", "key": "8" },
        "actor": "cli:mallory",
        "recorded_at": "2026-01-01T00:00:00Z",
        "mac": "hmac-sha256:00",
    });
    let plain = ws.path("forged.json");
    std::fs::write(&plain, forged.to_string()).expect("write");
    let out = Command::new("age")
        .args(["-r", &ws.recipient, "-o"])
        .arg(dir.join("20260101T000000.000Z-deadbeef.json.age"))
        .arg(&plain)
        .output()
        .expect("age");
    assert!(out.status.success(), "{}", stderr(&out));

    let (code, l) = ws.json(&["erasure", "list", SOURCE]);
    assert_eq!(code, 1, "a refused entry fails the listing: {l:#}");
    assert_eq!(l[0]["ledger"]["erasures"].as_array().map(Vec::len), Some(1));
    assert!(
        l[0]["ledger"]["rejected"][0]
            .as_str()
            .is_some_and(|r| r.contains("deadbeef") && r.contains("does not check")),
        "{l:#}"
    );
    // The restore erases client 7 only.
    let dst = PgDb::create("coffre_erase_forge_dst_");
    let (code, r) = ws.json(&["restore", &id, "--to", &dst.url]);
    assert_eq!(code, 0, "{r:#}");
    assert_eq!(
        dst.query("SELECT count(*) FROM clients WHERE id IN (7, 8)"),
        "1"
    );
    assert_eq!(dst.query("SELECT count(*) FROM clients WHERE id = 8"), "1");

    // With the state store unreadable, the stores alone give the ledger.
    std::fs::remove_dir_all(ws.path("state")).expect("remove state_dir");
    std::fs::write(ws.path("state"), "not a folder").expect("state_dir as a file");
    let dst2 = PgDb::create("coffre_erase_forge_dst2_");
    let (code, r) = ws.json(&["restore", &id, "--to", &dst2.url]);
    assert_eq!(code, 0, "{r:#}");
    assert_eq!(dst2.query("SELECT count(*) FROM clients WHERE id = 7"), "0");
    assert_eq!(dst2.query("SELECT count(*) FROM clients WHERE id = 8"), "1");
}

#[test]
fn erasure_rules_are_checked_against_the_schema_with_their_line() {
    let src = PgDb::create("coffre_erase_policy_");
    load_billing(&src, 10);
    let text = std::fs::read_to_string(POLICY).expect("policy");
    let bad = text.replace(
        "\"public.contacts\" = { match = \"client_id\", action = \"delete\" }",
        "\"public.contacts\" = { match = \"clientid\", action = \"delete\" }",
    );
    assert_ne!(bad, text, "the policy has the contacts rule");
    let line = bad
        .lines()
        .position(|l| l.contains("\"clientid\""))
        .expect("line")
        + 1;
    let ws = Workspace::new(&[Target::Fs("local")], "");
    let policy = ws.path("billing.toml");
    std::fs::write(&policy, bad).expect("policy");
    let mut cfg = std::fs::read_to_string(&ws.config).expect("config");
    cfg.push_str(&pg_source(SOURCE, &src, &["local"]));
    cfg.push_str("policy = \"billing.toml\"\n");
    std::fs::write(&ws.config, cfg).expect("config");
    let out = ws.run(&["policy", "check", SOURCE]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
    assert!(
        all.contains(&format!(
            "billing.toml:{line}: erasure: column \"clientid\" is not in table public.contacts (did you mean \"client_id\"?)"
        )),
        "{all}"
    );
    // The request itself is recorded whatever the rules say (it must never be lost); a
    // restore then refuses to run on rules that do not fit the backup (fail closed).
    let id = ws.backup_ok(SOURCE);
    let out = ws.run(&["erase", SOURCE, "--subject", "clients.id=1"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let dst = PgDb::create("coffre_erase_policy_dst_");
    let out = ws.run(&["restore", &id, "--to", &dst.url]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("public.contacts.clientid, which this backup does not hold"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        dst.query("SELECT count(*) FROM pg_class WHERE relname = 'clients'"),
        "0",
        "nothing was committed"
    );
}

#[test]
fn sqlite_restores_and_drills_apply_the_ledger_in_the_stream() {
    let ws = Workspace::new(&[Target::Fs("local")], "");
    std::fs::write(ws.path("billing-sqlite.toml"), billing_policy_for("main")).expect("policy");
    let mut cfg = std::fs::read_to_string(&ws.config).expect("config");
    cfg.push_str(
        "[sources.lite]\ntype = \"sqlite\"\npath = \"billing.db\"\ntargets = [\"local\"]\n\
         policy = \"billing-sqlite.toml\"\n[drills.lite]\n",
    );
    std::fs::write(&ws.config, cfg).expect("config");
    load_billing_sqlite(ws.path("billing.db"), 60);
    let src = rusqlite::Connection::open(ws.path("billing.db")).expect("source");
    let count = |db: &rusqlite::Connection, sql: &str| -> i64 {
        db.query_row(sql, [], |r| r.get(0)).expect(sql)
    };
    let email: String = src
        .query_row("SELECT email FROM clients WHERE id = 42", [], |r| r.get(0))
        .expect("client 42");
    let invoices = count(&src, "SELECT count(*) FROM factures WHERE client_id = 42");
    assert!(invoices > 0);
    let id = ws.backup_ok("lite");
    let (code, e) = ws.json(&["erase", "lite", "--subject", "clients.id=42"]);
    assert_eq!(code, 0, "{e:#}");

    let restored = ws.path("restored.db");
    let (code, r) = ws.json(&["restore", &id, "--to", restored.to_str().expect("path")]);
    assert_eq!(code, 0, "{r:#}");
    assert_eq!(r["erasures"]["subjects"], 1, "{r:#}");
    let dst = rusqlite::Connection::open(&restored).expect("restored");
    for sql in [
        "SELECT count(*) FROM clients WHERE id = 42",
        "SELECT count(*) FROM contacts WHERE client_id = 42",
        "SELECT count(*) FROM mandats_sepa WHERE client_id = 42",
        "SELECT count(*) FROM journal_activite WHERE client_id = 42",
    ] {
        assert_eq!(count(&dst, sql), 0, "{sql}");
    }
    assert_eq!(
        count(&dst, "SELECT count(*) FROM factures WHERE client_id = 42"),
        invoices
    );
    let leaked = count(
        &dst,
        &format!(
            "SELECT count(*) FROM factures WHERE email_facturation = '{}'",
            email.replace('\'', "''")
        ),
    );
    assert_eq!(leaked, 0, "the kept invoices carry a pseudonym");
    assert_eq!(
        count(&dst, "SELECT count(*) FROM clients"),
        count(&src, "SELECT count(*) FROM clients") - 1
    );
    // Everybody else is as they were.
    assert_eq!(
        count(
            &dst,
            "SELECT count(*) FROM factures WHERE client_id <> 42 AND email_facturation LIKE '%@exemple.fr'"
        ),
        count(
            &src,
            "SELECT count(*) FROM factures WHERE client_id <> 42 AND email_facturation LIKE '%@exemple.fr'"
        )
    );

    let (code, d) = ws.json(&["drill", "lite"]);
    assert_eq!(code, 0, "{d:#}");
    let check = crate::harness::drill_check(&d, "erasures");
    assert_eq!(check["outcome"], "passed", "{d:#}");
}
