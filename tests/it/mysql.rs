//! MySQL / MariaDB round trips against a real server (`COFFRE_TEST_MYSQL_URL`, by
//! default root on 127.0.0.1:3306): the billing fixture dumped through
//! `MysqlDatabase` and the streaming rewriter, restored by coffre and by hand with the
//! `mysql` client, compared table by table with checksums computed by the server.
//! An unreachable server fails the tests; it never skips them.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;

use coffre::dump::{DumpStats, Identity, RowTransform, TableInfo, TransformError};
use coffre::fixture::{Billing, TABLES, load_mysql};
use coffre::source::{ChunkSink, Destination, MysqlDatabase, Source, SourceError};

use crate::support;

const SCALE: u64 = 40;

/// The test server, reachable, or a loud failure.
fn server() -> MysqlDatabase {
    let url = std::env::var("COFFRE_TEST_MYSQL_URL")
        .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306".into());
    let db = MysqlDatabase::new(url);
    if let Err(e) = db.query("SELECT 1") {
        panic!(
            "the MySQL/MariaDB test server {} is unreachable: {e}; start it, or point \
             COFFRE_TEST_MYSQL_URL at one",
            db.redacted_url()
        );
    }
    db
}

/// A throwaway database, dropped on drop.
struct MyDb {
    admin: MysqlDatabase,
    name: String,
    db: MysqlDatabase,
}

impl MyDb {
    fn create(prefix: &str) -> MyDb {
        let admin = server();
        let name = support::unique(prefix);
        admin
            .query(&format!("CREATE DATABASE `{name}` CHARACTER SET utf8mb4"))
            .expect("create database");
        let db = admin.with_database(&name).expect("url");
        MyDb { admin, name, db }
    }

    fn billing(prefix: &str) -> MyDb {
        let db = MyDb::create(prefix);
        let stats = load_mysql(&db.db, SCALE).expect("load the fixture");
        let want: Vec<(String, u64)> = Billing::new(SCALE)
            .row_counts()
            .into_iter()
            .map(|(t, n)| (t.to_owned(), n))
            .collect();
        assert_eq!(stats.tables, want);
        db
    }

    fn one(&self, sql: &str) -> String {
        let rows = self.db.query(sql).expect(sql);
        rows.first()
            .and_then(|r| r.first())
            .cloned()
            .unwrap_or_default()
    }
}

impl Drop for MyDb {
    fn drop(&mut self) {
        let _ = self
            .admin
            .query(&format!("DROP DATABASE IF EXISTS `{}`", self.name));
    }
}

struct VecSink(Vec<u8>);

impl ChunkSink for VecSink {
    fn send(&mut self, chunk: Vec<u8>) -> Result<(), SourceError> {
        self.0.extend(chunk);
        Ok(())
    }
}

fn dump(db: &MysqlDatabase, transform: &mut dyn RowTransform) -> (Vec<u8>, DumpStats) {
    let mut sink = VecSink(Vec::new());
    let stats = db.dump(transform, &mut sink).expect("dump");
    (sink.0, stats)
}

/// Restores through the `Destination` API, in pieces; returns what the restore saw.
fn restore(dst: &MysqlDatabase, text: &[u8]) -> DumpStats {
    dst.check_empty().expect("empty destination");
    let mut session = dst.begin().expect("begin");
    for piece in text.chunks(64 << 10) {
        session.write(piece).expect("write");
    }
    let seen = session.end_input().expect("end").expect("stats");
    session.commit().expect("commit");
    seen
}

/// Per table: row count, CHECKSUM TABLE, an ordered SHA-256 of every value (hex,
/// so NULL and '' differ) and the table definition; plus the views, routines and
/// triggers.
fn fingerprint(d: &MyDb, skip_column: Option<(&str, &str)>) -> BTreeMap<String, String> {
    let mut fp = BTreeMap::new();
    for table in TABLES {
        let cols =
            d.db.query(&format!(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = \
                 DATABASE() AND table_name = '{table}' ORDER BY ordinal_position"
            ))
            .expect("columns");
        let exprs: Vec<String> = cols
            .iter()
            .map(|c| c[0].clone())
            .filter(|c| skip_column != Some((table, c.as_str())))
            .map(|c| format!("IFNULL(HEX(`{c}`), 'null')"))
            .collect();
        let content = d.one(&format!(
            "SET SESSION group_concat_max_len = 1073741824; \
             SELECT SHA2(GROUP_CONCAT(CONCAT_WS(',', {}) ORDER BY id SEPARATOR ';'), 256) \
             FROM `{table}`",
            exprs.join(", ")
        ));
        fp.insert(format!("{table} content"), content);
        fp.insert(
            format!("{table} rows"),
            d.one(&format!("SELECT count(*) FROM `{table}`")),
        );
        if skip_column.is_none_or(|(t, _)| t != *table) {
            let checksum =
                d.db.query(&format!("CHECKSUM TABLE `{table}`"))
                    .expect("checksum");
            fp.insert(format!("{table} checksum"), checksum[0][1].clone());
        }
        let ddl =
            d.db.query(&format!("SHOW CREATE TABLE `{table}`"))
                .expect("ddl");
        fp.insert(format!("{table} ddl"), ddl[0][1].clone());
    }
    for (what, sql) in [
        (
            "views",
            "SELECT GROUP_CONCAT(table_name, ':', view_definition) FROM \
             information_schema.views WHERE table_schema = DATABASE()",
        ),
        (
            "routines",
            "SELECT GROUP_CONCAT(routine_name, ':', routine_definition) FROM \
             information_schema.routines WHERE routine_schema = DATABASE()",
        ),
        (
            "triggers",
            "SELECT GROUP_CONCAT(trigger_name, ':', action_statement) FROM \
             information_schema.triggers WHERE trigger_schema = DATABASE()",
        ),
    ] {
        // information_schema names the database in view bodies.
        let text = d.one(sql).replace(&format!("`{}`.", d.name), "");
        fp.insert(what.to_owned(), text);
    }
    fp
}

fn assert_same(want: &BTreeMap<String, String>, got: &BTreeMap<String, String>) {
    for (k, v) in want {
        assert_eq!(got.get(k), Some(v), "{k}");
    }
    assert_eq!(want.len(), got.len());
}

#[test]
fn billing_round_trips_through_dump_and_restore() {
    let src = MyDb::billing("coffre_my_rt_src_");
    let want = fingerprint(&src, None);
    assert_ne!(want["views"], "NULL");
    assert_ne!(want["routines"], "NULL");
    assert_ne!(want["triggers"], "NULL");
    let (text, stats) = dump(&src.db, &mut Identity);
    // mysqldump writes the tables in name order.
    let mut counts: Vec<(&str, u64)> = stats
        .tables
        .iter()
        .map(|t| (t.name.as_str(), t.rows))
        .collect();
    counts.sort();
    let mut generated = Billing::new(SCALE).row_counts();
    generated.sort();
    assert_eq!(counts, generated);
    let clients = stats.tables.iter().find(|t| t.name == "clients");
    assert_eq!(clients.map(|t| t.columns.len()), Some(17));

    let dst = MyDb::create("coffre_my_rt_dst_");
    let seen = restore(&dst.db, &text);
    assert_eq!(
        seen, stats,
        "the restore counts and checksums what the backup did"
    );
    assert_same(&want, &fingerprint(&dst, None));
    let names: Vec<(String, String)> = stats
        .tables
        .iter()
        .map(|t| (t.schema.clone(), t.name.clone()))
        .collect();
    let restored = dst.db.count_rows(&names).expect("count");
    let expected: Vec<u64> = stats.tables.iter().map(|t| t.rows).collect();
    assert_eq!(restored, expected);

    // A second dump of the restored database is the same text.
    let (again, again_stats) = dump(&dst.db, &mut Identity);
    assert_eq!(again_stats, stats);
    // Up to the database names in comments and the definers' hosts.
    let lines = |t: &[u8], name: &str| -> Vec<String> {
        String::from_utf8_lossy(t)
            .lines()
            .filter(|l| !l.starts_with("-- Host:") && !l.contains("DEFINER"))
            .map(|l| l.replace(name, "DB"))
            .collect()
    };
    let (a, b) = (lines(&again, &dst.name), lines(&text, &src.name));
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        assert!(x == y, "the second dump differs:\n{x}\n{y}");
    }
}

/// Upper-cases `clients.nom` (the only column it asks for) and records the notes it
/// is not allowed to see.
struct UpperNom {
    mask: Vec<bool>,
    nom: usize,
    rows: u64,
}

impl RowTransform for UpperNom {
    fn begin_table(&mut self, table: &TableInfo) -> Result<bool, TransformError> {
        if table.name != "clients" {
            return Ok(false);
        }
        self.nom = table
            .columns
            .iter()
            .position(|c| c == "nom")
            .ok_or_else(|| TransformError("no column nom".into()))?;
        self.mask = table.columns.iter().map(|c| c == "nom").collect();
        Ok(true)
    }
    fn transform_row(
        &mut self,
        _table: &TableInfo,
        fields: &mut [Option<Vec<u8>>],
    ) -> Result<(), TransformError> {
        for (i, f) in fields.iter_mut().enumerate() {
            if i == self.nom {
                if let Some(v) = f {
                    *v = String::from_utf8_lossy(v).to_uppercase().into_bytes();
                }
            } else if f.is_some() {
                return Err(TransformError(format!("column {i} was decoded")));
            }
        }
        self.rows += 1;
        Ok(())
    }
    fn column_mask(&self) -> Option<&[bool]> {
        Some(&self.mask)
    }
}

/// Records every decoded field of `clients`.
struct Collect(Vec<Vec<Option<Vec<u8>>>>);

impl RowTransform for Collect {
    fn begin_table(&mut self, table: &TableInfo) -> Result<bool, TransformError> {
        Ok(table.name == "clients")
    }
    fn transform_row(
        &mut self,
        _table: &TableInfo,
        fields: &mut [Option<Vec<u8>>],
    ) -> Result<(), TransformError> {
        self.0.push(fields.to_vec());
        Ok(())
    }
}

#[test]
fn a_transform_rewrites_rows_on_the_way() {
    let src = MyDb::billing("coffre_my_tr_src_");

    // The decoder reads back exactly what the generator wrote (tabs, newlines,
    // backslashes, quotes, emoji, NULL next to '').
    let mut collect = Collect(Vec::new());
    dump(&src.db, &mut collect);
    let clients: Vec<_> = Billing::new(SCALE).clients().collect();
    assert_eq!(collect.0.len(), clients.len());
    for (fields, c) in collect.0.iter().zip(&clients) {
        assert_eq!(
            fields[15].as_deref(),
            c.notes.as_deref().map(str::as_bytes),
            "client {}",
            c.id
        );
        assert_eq!(fields[4].as_deref(), Some(c.nom.as_bytes()));
        assert_eq!(
            fields[16].as_deref(),
            Some(format!("{}", c.cree_le).as_bytes())
        );
    }
    assert!(clients.iter().any(|c| c.notes.as_deref() == Some("")));
    assert!(clients.iter().any(|c| c.notes.is_none()));

    let mut upper = UpperNom {
        mask: Vec::new(),
        nom: 0,
        rows: 0,
    };
    let (text, stats) = dump(&src.db, &mut upper);
    assert_eq!(upper.rows, SCALE);
    let dst = MyDb::create("coffre_my_tr_dst_");
    assert_eq!(restore(&dst.db, &text), stats);
    assert_eq!(
        dst.one("SELECT count(*) FROM clients WHERE BINARY nom <> BINARY UPPER(nom)"),
        "0"
    );
    assert_ne!(
        src.one("SELECT count(*) FROM clients WHERE BINARY nom <> BINARY UPPER(nom)"),
        "0"
    );
    assert_eq!(
        dst.one("SELECT nom FROM clients WHERE id = 19"),
        "D'ALMEIDA"
    );
    // Everything else is as it was.
    assert_same(
        &fingerprint(&src, Some(("clients", "nom"))),
        &fingerprint(&dst, Some(("clients", "nom"))),
    );
}

#[test]
fn the_dump_restores_by_hand_with_the_mysql_client() {
    let src = MyDb::billing("coffre_my_hand_src_");
    let (text, _) = dump(&src.db, &mut Identity);
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("dump.sql");
    std::fs::write(&file, &text).expect("write dump");
    let dst = MyDb::create("coffre_my_hand_dst_");
    // `mysql billing < dump.sql`, with the connection options of the test server.
    let (mut cmd, _defaults) = dst.db.command(Path::new("mysql")).expect("command");
    let out = cmd
        .arg(&dst.name)
        .stdin(Stdio::from(std::fs::File::open(&file).expect("open")))
        .output()
        .expect("run mysql");
    assert!(
        out.status.success(),
        "mysql < dump.sql: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_same(&fingerprint(&src, None), &fingerprint(&dst, None));
}

#[test]
fn a_failed_restore_leaves_nothing_behind() {
    let src = MyDb::billing("coffre_my_ab_src_");
    let (text, _) = dump(&src.db, &mut Identity);
    let dst = MyDb::create("coffre_my_ab_dst_");
    dst.db
        .query("CREATE TABLE mine (id INT PRIMARY KEY); INSERT INTO mine VALUES (1)")
        .expect("a table of its own");
    let e = dst.db.check_empty().expect_err("not empty");
    assert!(e.to_string().contains("1 tables, 0 views"), "{e}");
    let mut session = dst.db.begin().expect("begin");
    // The text is cut inside the rows of a table: a truncated backup.
    let at = |needle: &[u8]| text.windows(needle.len()).position(|w| w == needle);
    let cut = at(b"INSERT INTO `factures`").expect("factures rows") + 300;
    session.write(&text[..cut]).expect("write");
    let e = session.end_input().expect_err("truncated");
    assert!(e.to_string().contains("truncated"), "{e}");
    session.abort();
    let left = dst
        .db
        .query(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE() \
             UNION ALL SELECT routine_name FROM information_schema.routines \
             WHERE routine_schema = DATABASE()",
        )
        .expect("list");
    assert_eq!(
        left,
        [vec!["mine".to_owned()]],
        "only what was there before"
    );
}

// ---- through the binary: config, backup, restore, anonymized backup, drill ----

/// A workspace with the MySQL source `shop` on `src`, an fs target, a drill into the
/// test server and, when `policy` is set, the billing policy written for `src`'s database.
fn shop_workspace(src: &MyDb, extra: &str) -> crate::harness::Workspace {
    let server_url = server().url;
    crate::harness::Workspace::new(
        &[crate::harness::Target::Fs("local")],
        &format!(
            "[sources.shop]\ntype = \"mysql\"\nurl = \"{}\"\ntargets = [\"local\"]\n{extra}\
             [drills.shop]\nscratch_url = \"{server_url}\"\n\
             assertions = [\"SELECT count(*) = {SCALE} FROM clients\", \
             \"SELECT count(*) = 0 FROM factures WHERE total_ttc < 0\"]\n",
            src.db.url
        ),
    )
}

/// The host or port of a `mysql://` URL.
fn url_part(url: &str, part: &str) -> String {
    let u = url::Url::parse(url).expect("url");
    match part {
        "host" => u.host_str().unwrap_or("127.0.0.1").to_owned(),
        _ => u.port().unwrap_or(3306).to_string(),
    }
}

fn drill_schemas() -> Vec<String> {
    server()
        .query("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE 'coffre\\_drill\\_shop\\_%'")
        .expect("schemata")
        .into_iter()
        .filter_map(|r| r.into_iter().next())
        .collect()
}

#[test]
fn coffre_backs_up_restores_and_drills_a_mysql_source() {
    let src = MyDb::billing("coffre_my_cli_src_");
    let ws = shop_workspace(&src, "");
    let id = ws.backup_ok("shop");

    let dst = MyDb::create("coffre_my_cli_dst_");
    let (code, r) = ws.json(&["restore", &id, "--to", &dst.db.url]);
    assert_eq!(code, 0, "{r:#}");
    assert_eq!(
        r["tables"].as_array().map(Vec::len),
        Some(TABLES.len()),
        "{r:#}"
    );
    let want = fingerprint(&src, None);
    assert_same(&want, &fingerprint(&dst, None));

    // The README's recipe, with the standard tools alone.
    let by_hand = MyDb::create("coffre_my_cli_hand_");
    let data = ws
        .path("local")
        .join("shop")
        .join(&id)
        .join("data.sql.zst.age");
    let script = format!(
        "age -d -i {} {} | zstd -d | {} --binary-mode -h {} -P {} -u root {}",
        ws.path("identity.txt").display(),
        data.display(),
        server().client.display(),
        url_part(&server().url, "host"),
        url_part(&server().url, "port"),
        by_hand.name
    );
    let out = std::process::Command::new("bash")
        .args(["-o", "pipefail", "-c", &script])
        .output()
        .expect("bash");
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_same(&want, &fingerprint(&by_hand, None));

    let (code, d) = ws.json(&["drill", "shop"]);
    assert_eq!(code, 0, "{d:#}");
    assert_eq!(d["ok"], true, "{d:#}");
    let tables = d["tables"].as_array().expect("tables");
    assert_eq!(tables.len(), TABLES.len(), "{d:#}");
    assert!(tables.iter().all(|t| t["ok"] == true), "{d:#}");
    assert!(drill_schemas().is_empty(), "{:?}", drill_schemas());
}

#[test]
fn an_anonymized_mysql_backup_keeps_no_original_personal_value_and_keeps_joins() {
    let src = MyDb::billing("coffre_my_anon_src_");
    let policy = crate::harness::billing_policy_for(&src.name);
    let ws = shop_workspace(&src, "policy = \"billing-mysql.toml\"\n");
    std::fs::write(ws.path("billing-mysql.toml"), policy).expect("policy");
    ws.enable_anonymization("a key of the test, long enough");

    let out = ws.run(&["policy", "check", "shop"]);
    assert!(out.status.success(), "{}", crate::harness::stderr(&out));
    let (code, b) = ws.json(&["backup", "shop", "--anonymize"]);
    assert_eq!(code, 0, "{b:#}");
    assert_eq!(b["kind"], "anonymized");
    let id = b["id"].as_str().expect("id").to_owned();
    let dst = MyDb::create("coffre_my_anon_dst_");
    let (code, r) = ws.json(&["restore", &id, "--to", &dst.db.url]);
    assert_eq!(code, 0, "{r:#}");

    // Every original e-mail, phone, IBAN, SIRET and street address, searched for in every
    // text of the restored copy.
    let mut originals: Vec<String> = Vec::new();
    for (table, column) in [
        ("clients", "email"),
        ("clients", "telephone"),
        ("clients", "iban"),
        ("clients", "siret"),
        ("clients", "adresse"),
        ("contacts", "email"),
        ("contacts", "telephone"),
        ("mandats_sepa", "iban"),
        ("factures", "email_facturation"),
    ] {
        for row in src
            .db
            .query(&format!(
                "SELECT HEX(`{column}`) FROM `{table}` WHERE `{column}` <> ''"
            ))
            .expect("originals")
        {
            let bytes = hex::decode(&row[0]).expect("hex");
            originals.push(String::from_utf8(bytes).expect("utf8"));
        }
    }
    assert!(originals.len() > 100, "{}", originals.len());
    let mut copy = String::new();
    for table in TABLES {
        for row in dst
            .db
            .query(&format!(
                "SELECT HEX(CONCAT_WS('\\n', {})) FROM `{table}`",
                dst.db
                    .query(&format!(
                        "SELECT GROUP_CONCAT(CONCAT('`', column_name, '`')) FROM \
                         information_schema.columns WHERE table_schema = DATABASE() AND \
                         table_name = '{table}' AND data_type NOT LIKE '%blob%'"
                    ))
                    .expect("columns")[0][0]
            ))
            .expect("copy")
        {
            copy.push_str(&String::from_utf8_lossy(
                &hex::decode(&row[0]).expect("hex"),
            ));
            copy.push('\n');
        }
    }
    let left: Vec<&String> = originals
        .iter()
        .filter(|o| copy.contains(o.as_str()))
        .collect();
    assert!(
        left.is_empty(),
        "original values left in the copy: {left:?}"
    );

    // Joins survive: the invoice e-mail is the (fake) e-mail of its client, as in the source.
    let mismatched = "SELECT count(*) FROM factures f JOIN clients c ON c.id = f.client_id \
                      WHERE f.email_facturation <> c.email";
    assert_eq!(src.one(mismatched), dst.one(mismatched));
    assert_eq!(dst.one("SELECT count(*) FROM clients"), SCALE.to_string());
}

#[test]
fn mysql_restores_and_drills_apply_the_erasure_ledger() {
    let src = MyDb::billing("coffre_my_erase_src_");
    let policy = crate::harness::billing_policy_for(&src.name);
    let server_url = server().url;
    let ws = crate::harness::Workspace::new(
        &[crate::harness::Target::Fs("local")],
        &format!(
            "[sources.erased]\ntype = \"mysql\"\nurl = \"{}\"\ntargets = [\"local\"]\n\
             policy = \"billing-mysql.toml\"\n\
             [drills.erased]\nscratch_url = \"{server_url}\"\n",
            src.db.url
        ),
    );
    std::fs::write(ws.path("billing-mysql.toml"), policy).expect("policy");
    let one = |db: &MyDb, sql: &str| -> String {
        db.db
            .query(sql)
            .expect(sql)
            .into_iter()
            .next()
            .and_then(|r| r.into_iter().next())
            .unwrap_or_default()
    };
    let invoices = one(&src, "SELECT count(*) FROM factures WHERE client_id = 7");
    assert_ne!(invoices, "0");
    let email = one(&src, "SELECT email FROM clients WHERE id = 7");
    let id = ws.backup_ok("erased");
    let (code, e) = ws.json(&["erase", "erased", "--subject", "clients.id=7"]);
    assert_eq!(code, 0, "{e:#}");

    let dst = MyDb::create("coffre_my_erase_dst_");
    let (code, r) = ws.json(&["restore", &id, "--to", &dst.db.url]);
    assert_eq!(code, 0, "{r:#}");
    assert_eq!(r["erasures"]["subjects"], 1, "{r:#}");
    for sql in [
        "SELECT count(*) FROM clients WHERE id = 7",
        "SELECT count(*) FROM contacts WHERE client_id = 7",
        "SELECT count(*) FROM mandats_sepa WHERE client_id = 7",
        "SELECT count(*) FROM journal_activite WHERE client_id = 7",
    ] {
        assert_eq!(one(&dst, sql), "0", "{sql}");
    }
    assert_eq!(
        one(&dst, "SELECT count(*) FROM factures WHERE client_id = 7"),
        invoices
    );
    assert_eq!(
        one(
            &dst,
            &format!("SELECT count(*) FROM factures WHERE email_facturation = '{email}'")
        ),
        "0",
        "the kept invoices carry a pseudonym"
    );
    assert_eq!(
        one(&dst, "SELECT count(*) FROM clients"),
        (SCALE - 1).to_string()
    );

    let (code, d) = ws.json(&["drill", "erased"]);
    assert_eq!(code, 0, "{d:#}");
    let check = crate::harness::drill_check(&d, "erasures");
    assert_eq!(check["outcome"], "passed", "{d:#}");
    // This source's scratch databases only: other tests drill "shop" at the same time.
    let left = server()
        .query(
            "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA \
             WHERE SCHEMA_NAME LIKE 'coffre\\_drill\\_erased\\_%'",
        )
        .expect("schemata");
    assert!(left.is_empty(), "{left:?}");
}
