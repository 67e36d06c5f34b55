//! The billing fixture against a real PostgreSQL and SQLite, and the traps script
//! `tests/fixtures/pg_traps.sql`.

use std::path::Path;
use std::pin::pin;

use coffre::fixture::{self, Billing, FixtureError, TABLES};
use futures::StreamExt;
use sha2::{Digest, Sha256};
use tokio_postgres::{Client, NoTls};

use crate::support;

const SCALE: u64 = 200;

/// A database created for one test, dropped when the guard goes (also on panic).
struct ScratchDb {
    admin_url: String,
    name: String,
    url: String,
}

impl ScratchDb {
    async fn create() -> Self {
        let admin_url = support::pg_admin_url();
        let name = support::unique("coffre_fx_");
        let admin = connect(&admin_url).await;
        admin
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .await
            .expect("create scratch database");
        let mut url = url::Url::parse(&admin_url).expect("COFFRE_TEST_PG_URL is a URL");
        url.set_path(&format!("/{name}"));
        Self {
            admin_url,
            name,
            url: url.to_string(),
        }
    }
}

impl Drop for ScratchDb {
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let sql = format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name);
        // A runtime of its own on a thread of its own: Drop may run inside a runtime.
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            rt.block_on(async {
                let (client, conn) = tokio_postgres::connect(&admin_url, NoTls)
                    .await
                    .map_err(|e| e.to_string())?;
                tokio::spawn(conn);
                client.batch_execute(&sql).await.map_err(|e| e.to_string())
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop scratch database {}: {dropped:?}", self.name);
        }
    }
}

async fn connect(url: &str) -> Client {
    let (client, conn) = tokio_postgres::connect(url, NoTls)
        .await
        .expect("connect to the test PostgreSQL");
    tokio::spawn(conn);
    client
}

async fn count(client: &Client, sql: &str) -> i64 {
    client
        .query_one(sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e:?}"))
        .get(0)
}

/// SHA-256 of each table's `COPY TO STDOUT` text, rows in id order.
async fn table_hashes(client: &Client) -> Vec<(String, String)> {
    client
        .batch_execute("SET TimeZone = 'UTC'; SET DateStyle = 'ISO'")
        .await
        .expect("session settings");
    let mut hashes = Vec::new();
    for table in TABLES {
        let sql = format!("COPY (SELECT * FROM {table} ORDER BY id) TO STDOUT");
        let mut stream = pin!(client.copy_out(&sql).await.expect("copy out"));
        let mut hasher = Sha256::new();
        let mut bytes = 0;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.expect("copy out chunk");
            bytes += chunk.len();
            hasher.update(&chunk);
        }
        assert!(bytes > 0, "{table} is empty");
        hashes.push((table.to_string(), hex::encode(hasher.finalize())));
    }
    hashes
}

#[tokio::test]
async fn fixture_loads_postgres_deterministically_with_keys_holding() {
    let (a, b) = tokio::join!(ScratchDb::create(), ScratchDb::create());
    let (stats_a, stats_b) = tokio::join!(
        fixture::load_postgres(&a.url, SCALE),
        fixture::load_postgres(&b.url, SCALE)
    );
    let stats_a = stats_a.expect("load a");
    assert_eq!(stats_a, stats_b.expect("load b"));

    let expected = Billing::new(SCALE).row_counts();
    let fixed: Vec<(&str, u64)> = expected
        .iter()
        .filter(|(t, _)| *t != "paiements")
        .copied()
        .collect();
    assert_eq!(
        fixed,
        [
            ("clients", 200),
            ("contacts", 300),
            ("factures", 1600),
            ("lignes_facture", 4800),
            ("mandats_sepa", 200),
            ("journal_activite", 800),
        ]
    );
    let paid = expected.iter().find(|(t, _)| *t == "paiements");
    assert!(
        paid.is_some_and(|(_, n)| (800..=1000).contains(n)),
        "{paid:?}"
    );
    let expected: Vec<(String, u64)> = expected
        .into_iter()
        .map(|(t, n)| (t.to_owned(), n))
        .collect();
    assert_eq!(stats_a.tables, expected);

    let ca = connect(&a.url).await;
    let cb = connect(&b.url).await;
    for (table, n) in &expected {
        let rows = count(&ca, &format!("SELECT count(*) FROM {table}")).await;
        assert_eq!(rows as u64, *n, "rows in {table}");
    }
    assert_eq!(table_hashes(&ca).await, table_hashes(&cb).await);

    // Foreign keys: declared, validated, and no orphan row.
    let fks = count(
        &ca,
        "SELECT count(*) FROM pg_constraint WHERE contype = 'f' AND convalidated \
         AND connamespace = 'public'::regnamespace",
    )
    .await;
    assert_eq!(fks, 6);
    for (child, column, parent) in [
        ("contacts", "client_id", "clients"),
        ("factures", "client_id", "clients"),
        ("lignes_facture", "facture_id", "factures"),
        ("paiements", "facture_id", "factures"),
        ("mandats_sepa", "client_id", "clients"),
        ("journal_activite", "client_id", "clients"),
    ] {
        let orphans = count(
            &ca,
            &format!(
                "SELECT count(*) FROM {child} c LEFT JOIN {parent} p ON p.id = c.{column} \
                 WHERE p.id IS NULL"
            ),
        )
        .await;
        assert_eq!(orphans, 0, "{child}.{column}");
    }

    // Invoices agree with their lines, their client and their payments.
    let wrong_totals = count(
        &ca,
        "SELECT count(*) FROM factures f JOIN (
             SELECT facture_id, sum(quantite * prix_unitaire)::numeric(12,2) AS ht,
                    sum(quantite * prix_unitaire * taux_tva / 100)::numeric(12,2) AS tva
             FROM lignes_facture GROUP BY facture_id) s ON s.facture_id = f.id
         WHERE f.total_ht <> s.ht OR f.tva <> s.tva OR f.total_ttc <> s.ht + s.tva",
    )
    .await;
    assert_eq!(wrong_totals, 0);
    let wrong_emails = count(
        &ca,
        "SELECT count(*) FROM factures f JOIN clients c ON c.id = f.client_id \
         WHERE f.email_facturation <> c.email",
    )
    .await;
    assert_eq!(wrong_emails, 0);
    let wrong_payments = count(
        &ca,
        "SELECT count(*) FROM paiements p JOIN factures f ON f.id = p.facture_id \
         WHERE p.montant <> f.total_ttc OR f.statut NOT IN ('payee', 'en_retard')",
    )
    .await;
    assert_eq!(wrong_payments, 0);

    // Sequences continue after the loaded ids.
    let next = count(&ca, "SELECT nextval('lignes_facture_id_seq')").await;
    assert_eq!(next, 4801);

    // The traps made it through COPY.
    for (what, sql) in [
        (
            "empty notes",
            "SELECT count(*) FROM clients WHERE notes = ''",
        ),
        (
            "null notes",
            "SELECT count(*) FROM clients WHERE notes IS NULL",
        ),
        (
            "tab and newline",
            "SELECT count(*) FROM clients WHERE notes LIKE E'%\\t%\\n%'",
        ),
        (
            "windows path",
            "SELECT count(*) FROM clients WHERE notes LIKE '%C:\\\\Partage\\\\%'",
        ),
        (
            "emoji",
            "SELECT count(*) FROM clients WHERE notes LIKE '%😀%'",
        ),
        (
            "apostrophe",
            "SELECT count(*) FROM clients WHERE nom = 'D''Almeida'",
        ),
        (
            "empty array",
            "SELECT count(*) FROM clients WHERE tags = '{}'",
        ),
        (
            "null array",
            "SELECT count(*) FROM clients WHERE tags IS NULL",
        ),
        (
            "quoted array",
            "SELECT count(*) FROM clients WHERE tags = ARRAY['à relancer', 'dit \"non\"', 'a,b\\c']",
        ),
        (
            "pdf",
            "SELECT count(*) FROM factures WHERE substring(pdf for 9) = '%PDF-1.4\n'::bytea",
        ),
        ("no pdf", "SELECT count(*) FROM factures WHERE pdf IS NULL"),
        (
            "backslash",
            "SELECT count(*) FROM lignes_facture WHERE description = 'Frais de port\\colis'",
        ),
        (
            "json",
            "SELECT count(*) FROM journal_activite j JOIN clients c ON c.id = j.client_id \
             WHERE j.details->>'email' = c.email AND j.details->>'telephone' = c.telephone \
             AND j.details->>'commentaire' = 'ok \"cité\"'",
        ),
        (
            "inet",
            "SELECT count(*) FROM journal_activite WHERE ip << '10.0.0.0/8'",
        ),
        ("unpaid view", "SELECT count(*) FROM impayes"),
    ] {
        assert!(count(&ca, sql).await > 0, "{what}: {sql}");
    }

    // A second load into the same database fails, naming the step.
    let err = fixture::load_postgres(&a.url, 1)
        .await
        .expect_err("tables already exist");
    assert!(matches!(err, FixtureError::Pg { .. }), "{err}");
    let message = err.to_string();
    assert!(message.contains("creating the billing tables"), "{message}");
    assert!(message.contains("already exists"), "{message}");
}

#[tokio::test]
async fn fixture_creates_sqlite() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("billing.sqlite");
    let stats = fixture::create_sqlite(&path, SCALE).expect("create sqlite");
    let expected: Vec<(String, u64)> = Billing::new(SCALE)
        .row_counts()
        .into_iter()
        .map(|(t, n)| (t.to_owned(), n))
        .collect();
    assert_eq!(stats.tables, expected);
    assert_eq!(stats.rows("lignes_facture"), Some(4800));

    let conn = rusqlite::Connection::open(&path).expect("open");
    for (table, n) in &expected {
        let rows: i64 = conn
            .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
            .expect("count");
        assert_eq!(rows as u64, *n, "rows in {table}");
    }
    let orphans: i64 = conn
        .query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |r| {
            r.get(0)
        })
        .expect("foreign_key_check");
    assert_eq!(orphans, 0);
    let total: String = conn
        .query_row("SELECT total_ttc FROM factures WHERE id = 1", [], |r| {
            r.get(0)
        })
        .expect("total");
    assert!(total.contains('.'), "exact decimal as text: {total}");

    let again = fixture::create_sqlite(&path, 1).expect_err("file is not empty");
    assert!(again.to_string().contains("not empty"), "{again}");
}

#[tokio::test]
async fn fixture_pg_traps_script_loads() {
    let db = ScratchDb::create().await;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pg_traps.sql");
    let out = tokio::process::Command::new("psql")
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-f"])
        .arg(&script)
        .arg(&db.url)
        .output()
        .await
        .expect("run psql");
    assert!(
        out.status.success(),
        "psql failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let client = connect(&db.url).await;
    for (sql, n) in [
        (r#"SELECT count(*) FROM "Compta"."LivreJournal""#, 5),
        (r#"SELECT count(*) FROM "Compta".mouvements_2023"#, 2),
        (r#"SELECT count(*) FROM "Compta".mouvements_2024"#, 2),
        (r#"SELECT count(*) FROM "Compta".vide"#, 0),
        ("SELECT count(*) FROM public.sans_colonnes", 2),
        ("SELECT count(*) FROM public.tous_types", 10),
        (r#"SELECT last_value FROM "Compta".pieces_id_seq"#, 1000),
        (r#"SELECT max(id)::bigint FROM "Compta".pieces"#, 3),
        (
            "SELECT count(*) FROM public.tous_types WHERE txt = '\\N'",
            1,
        ),
        (
            "SELECT count(*) FROM public.tous_types WHERE txt = '\\.'",
            1,
        ),
        ("SELECT count(*) FROM public.tous_types WHERE txt = ''", 1),
    ] {
        assert_eq!(count(&client, sql).await, n, "{sql}");
    }
}
