//! Anonymization policies against real databases: the shipped policies pass the check on
//! the billing schema (the shared one and the project's fixture), typos and columns added
//! later fail it, and `init` writes a policy that passes.

use std::path::{Path, PathBuf};

use coffre::anonymize::policy::{self, Policy};
use coffre::anonymize::rules::Rule;
use coffre::anonymize::schema::{self, SchemaInfo};
use coffre::source::PgDatabase;

use crate::harness::{PgDb, load_billing};

/// How messages name the shipped policy: relative to the repository, as a user types it.
const SHOWN: &str = "policies/billing.toml";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn billing_text() -> String {
    std::fs::read_to_string(repo().join(SHOWN)).expect("read policies/billing.toml")
}

fn billing_policy() -> Policy {
    Policy::from_str_at(&billing_text(), Path::new(SHOWN)).unwrap_or_else(|e| panic!("{e}"))
}

fn pg_schema(db: &PgDb) -> SchemaInfo {
    schema::postgres_schema(&PgDatabase::new(db.url.clone())).expect("read the catalog")
}

/// A scratch database with the project's billing fixture (10 clients).
fn fixture_db() -> PgDb {
    let db = PgDb::create("coffre_pol_");
    load_billing(&db, 10);
    db
}

/// The 1-based line of the first line of `text` containing `needle`.
fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|l| l.contains(needle))
        .map(|i| i + 1)
        .unwrap_or_else(|| panic!("{needle:?} not in text"))
}

fn assert_clean(report: &policy::CheckReport) {
    assert!(
        report.errors.is_empty() && report.warnings.is_empty(),
        "errors:\n{}\nwarnings:\n{}",
        report.errors.join("\n"),
        report.warnings.join("\n")
    );
}

#[test]
fn billing_policy_passes_on_the_shared_schema() {
    let Some(dir) = std::env::var_os("COFFRE_TEST_SHARED_FIXTURES").filter(|d| !d.is_empty())
    else {
        eprintln!("COFFRE_TEST_SHARED_FIXTURES is not set: shared schema not checked");
        return;
    };
    let db = PgDb::create("coffre_pol_shared_");
    db.run_file(&Path::new(&dir).join("schema.sql"));
    let schema = pg_schema(&db);
    assert_eq!(schema.tables.len(), 7, "{schema:?}");
    assert_clean(&policy::check(&billing_policy(), &schema));
}

#[test]
fn billing_policy_passes_on_the_project_fixture() {
    let db = fixture_db();
    let schema = pg_schema(&db);
    let clients = schema.table("public", "clients").expect("clients");
    let email = clients.column("email").expect("email");
    assert!(email.unique && email.not_null, "{email:?}");
    assert_eq!(clients.column("tags").expect("tags").data_type, "text[]");
    assert_clean(&policy::check(&billing_policy(), &schema));
    let policy = billing_policy();
    // The copy of the client's e-mail on invoices gets the same rule, so it still matches.
    assert_eq!(
        policy.rule_for("public", "factures", "email_facturation"),
        policy.rule_for("public", "clients", "email")
    );
    assert_eq!(
        policy.rule_for("public", "mandats_sepa", "iban"),
        Some(&Rule::Iban)
    );
}

#[test]
fn a_misspelt_column_names_its_line_and_the_nearest_name() {
    let db = fixture_db();
    let text = billing_text().replace("email_facturation = ", "email_factoration = ");
    let line = line_of(&text, "email_factoration = ");
    let policy = Policy::from_str_at(&text, Path::new(SHOWN)).expect("parses");
    let report = policy::check(&policy, &pg_schema(&db));
    let header = line_of(&text, "[tables.\"public.factures\"]");
    assert_eq!(
        report.errors,
        [
            format!(
                "policy policies/billing.toml:{header}: column \"email_facturation\" of \
                 public.factures has no rule: add email_facturation = \"RULE\" under \
                 [tables.\"public.factures\"] (\"keep\" only after review), or a \"*\" default"
            ),
            format!(
                "policy policies/billing.toml:{line}: column \"email_factoration\" is not in \
                 table public.factures (did you mean \"email_facturation\"?)"
            ),
        ]
    );
}

#[test]
fn a_column_or_table_added_after_the_policy_fails_the_check() {
    let db = fixture_db();
    db.query("ALTER TABLE clients ADD COLUMN portable text");
    db.query("CREATE TABLE parrainages (id bigint PRIMARY KEY, email_filleul text)");
    // Generated columns are not in dumps: they need no rule.
    db.query("ALTER TABLE factures ADD COLUMN annee int GENERATED ALWAYS AS (extract(year FROM date_emission)::int) STORED");
    let text = billing_text();
    let report = policy::check(&billing_policy(), &pg_schema(&db));
    let header = line_of(&text, "[tables.\"public.clients\"]");
    assert_eq!(
        report.errors,
        [
            format!(
                "policy policies/billing.toml:{header}: column \"portable\" of public.clients \
                 has no rule: add portable = \"RULE\" under [tables.\"public.clients\"] \
                 (\"keep\" only after review), or a \"*\" default"
            ),
            "policy policies/billing.toml: table public.parrainages is not in the policy: add \
             [tables.\"public.parrainages\"] with a rule for each column, or \"*\" = \"keep\" \
             after review"
                .to_owned(),
        ]
    );
}

#[test]
fn every_shipped_policy_parses() {
    let mut found = 0;
    for entry in std::fs::read_dir(repo().join("policies")).expect("policies/") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "toml") {
            let policy = Policy::load(&path).unwrap_or_else(|e| panic!("{e}"));
            assert!(
                !policy.tables.is_empty(),
                "{} has no tables",
                path.display()
            );
            found += 1;
        }
    }
    assert!(found >= 1, "no policies/*.toml");
}

#[test]
fn init_writes_a_policy_that_passes_the_check() {
    let db = fixture_db();
    let schema = pg_schema(&db);
    let text = policy::init(&schema, coffre::anonymize::rules::Locale::FrFr);
    let policy = Policy::from_str_at(&text, Path::new("init.toml"))
        .unwrap_or_else(|e| panic!("{e}\n{text}"));
    let report = policy::check(&policy, &schema);
    assert!(report.is_ok(), "{}\n{text}", report.errors.join("\n"));
    let rule = |table, column| {
        policy
            .rule_for("public", table, column)
            .map(Rule::name)
            .unwrap_or_else(|| panic!("no rule for {table}.{column}"))
    };
    for (table, column, expected) in [
        ("clients", "id", "keep"),
        ("clients", "raison_sociale", "company"),
        ("clients", "siret", "siret"),
        ("clients", "prenom", "first_name"),
        ("clients", "nom", "last_name"),
        ("clients", "email", "email"),
        ("clients", "telephone", "phone"),
        ("clients", "adresse", "street_address"),
        ("clients", "code_postal", "postcode"),
        ("clients", "ville", "city"),
        ("clients", "date_naissance", "date_shift"),
        ("clients", "iban", "iban"),
        ("clients", "tags", "array"),
        ("clients", "notes", "scrub"),
        ("factures", "email_facturation", "email"),
        ("lignes_facture", "description", "scrub"),
        ("mandats_sepa", "bic", "bic"),
        ("journal_activite", "ip", "ip_address"),
        ("journal_activite", "user_agent", "user_agent"),
        ("journal_activite", "details", "json"),
        ("journal_activite", "action", "keep"),
    ] {
        assert_eq!(rule(table, column), expected, "{table}.{column}\n{text}");
    }
}

#[test]
fn sqlite_fixture_schema_lists_unique_columns() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("billing.db");
    crate::harness::load_billing_sqlite(&file, 5);
    let schema = schema::sqlite_schema(&file).expect("sqlite schema");
    let names: Vec<String> = schema.tables.iter().map(|t| t.qualified()).collect();
    assert_eq!(
        names,
        [
            "main.clients",
            "main.contacts",
            "main.factures",
            "main.journal_activite",
            "main.lignes_facture",
            "main.mandats_sepa",
            "main.paiements",
        ]
    );
    let unique: Vec<String> = schema
        .tables
        .iter()
        .flat_map(|t| {
            t.columns
                .iter()
                .filter(|c| c.unique)
                .map(move |c| format!("{}.{}", t.name, c.name))
        })
        .collect();
    assert_eq!(
        unique,
        [
            "clients.id",
            "clients.email",
            "contacts.id",
            "factures.id",
            "factures.numero",
            "journal_activite.id",
            "lignes_facture.id",
            "mandats_sepa.id",
            "mandats_sepa.rum",
            "paiements.id",
        ]
    );
    // The same policy written for SQLite passes there too (JSON text for tags and details).
    let text = policy::init(&schema, coffre::anonymize::rules::Locale::En);
    let policy = Policy::from_str_at(&text, Path::new("init.toml"))
        .unwrap_or_else(|e| panic!("{e}\n{text}"));
    let report = policy::check(&policy, &schema);
    assert!(report.is_ok(), "{}\n{text}", report.errors.join("\n"));
    let sqlite_billing = billing_text()
        .replace("\"public.", "\"main.")
        .replace("-> public.", "-> main.");
    let policy = Policy::from_str_at(&sqlite_billing, Path::new("billing-sqlite.toml"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_clean(&policy::check(&policy, &schema));
}

#[test]
fn readme_examples_parse() {
    let readme = std::fs::read_to_string(repo().join("policies/README.md")).expect("README");
    let format = readme
        .split("## File format")
        .nth(1)
        .and_then(|rest| rest.split("```toml\n").nth(1))
        .and_then(|block| block.split("```").next())
        .expect("a toml block under ## File format");
    Policy::from_str_at(format, Path::new("README.md")).unwrap_or_else(|e| panic!("{e}"));
    // Every rule of the table, as written in its second column.
    let mut rules = 0;
    for line in readme.lines().filter(|l| l.starts_with("| `")) {
        let written = line.split(" | ").nth(1).expect("a second column");
        let written = written.trim().trim_matches('`');
        let doc: toml::Table =
            toml::from_str(&format!("r = {written}")).unwrap_or_else(|e| panic!("{written}: {e}"));
        Rule::from_toml(&doc["r"]).unwrap_or_else(|e| panic!("{written}: {e}"));
        rules += 1;
    }
    assert_eq!(rules, 24, "one row per rule");
}
