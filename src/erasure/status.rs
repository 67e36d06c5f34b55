//! Proof for a data protection officer: which backups of a source still hold a subject,
//! and when each one expires under the source's retention (`max_age_days`).
//!
//! A backup holds a subject when its dump has the subject's row (the row of the policy's
//! subject table whose key column is the subject's key). coffre looks inside: it downloads
//! the backup, decrypts it with the identity, and reads the rows up to the end of the
//! subject's table (the rest is not read). A backup never changes, so the answer is kept
//! in the state store and the next status asks only about new backups. An anonymized copy
//! made for a requester is encrypted to the requester alone: it holds the subject when the
//! backup it was made from does (its rows are that backup's, rewritten).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use super::ledger::{LedgerError, Subject, SubjectArg, lock, resolve_subject, rules_of};
use crate::catalog;
use crate::dump::mysql_rows::MysqlRewriter;
use crate::dump::pg_plain::{Output, PgPlainParser};
use crate::dump::sqlite_rows::SqliteRewriter;
use crate::dump::{RowTransform, TableInfo, TransformError, pump};
use crate::keys::Identities;
use crate::manifest::Manifest;
use crate::pipeline::restore::{download, open_plaintext};
use crate::pipeline::{CHUNK, Context, ContextError, channel};
use crate::progress::Progress;
use crate::state::State;

/// One backup that holds the subject.
#[derive(Debug, Clone, Serialize)]
pub struct Holding {
    pub id: String,
    pub kind: String,
    pub created: DateTime<Utc>,
    /// `created + max_age_days`; `None` when the retention sets no maximum age.
    pub expires: Option<DateTime<Utc>>,
    /// How the expiry was found, or why there is none.
    pub expiry: String,
    /// Targets holding a copy.
    pub targets: Vec<String>,
    /// `scanned` (read now), `cached` (read before), or `derived from ID`.
    pub how: String,
}

/// What `coffre erasure status` reports.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub source: String,
    pub subject: String,
    /// Ledger entries for this subject (empty: not erased yet).
    pub erasures: Vec<String>,
    pub max_age_days: Option<u32>,
    /// The backups that hold the subject, oldest first.
    pub holding: Vec<Holding>,
    /// How many backups were found without it.
    pub without: usize,
    /// Backups that could not be read, with why (they may hold the subject).
    pub unknown: Vec<String>,
    /// When the last backup holding the subject expires (`None`: one never does, or none
    /// holds it).
    pub all_gone_by: Option<DateTime<Utc>>,
}

/// Finds the subject's row while the dump streams by, and stops after its table.
struct Watch<'a> {
    subject: &'a Subject,
    /// The subject table's name, schema left out when the dump names none.
    column: Option<usize>,
    seen_table: bool,
    found: bool,
    mask: Vec<bool>,
}

/// The error [`Watch`] stops the dump with once the subject's table is read.
const DONE: &str = "coffre: subject table read";

impl RowTransform for Watch<'_> {
    fn begin_table(&mut self, table: &TableInfo) -> Result<bool, TransformError> {
        if self.seen_table {
            return Err(TransformError(DONE.into()));
        }
        let (schema, name) = self
            .subject
            .table
            .split_once('.')
            .unwrap_or(("", &self.subject.table));
        let same = table.name == name && (table.schema.is_empty() || table.schema == schema);
        if !same {
            return Ok(false);
        }
        self.seen_table = true;
        self.column = table.columns.iter().position(|c| *c == self.subject.column);
        self.mask = table
            .columns
            .iter()
            .map(|c| *c == self.subject.column)
            .collect();
        Ok(self.column.is_some())
    }

    fn transform_row(
        &mut self,
        _table: &TableInfo,
        fields: &mut [Option<Vec<u8>>],
    ) -> Result<(), TransformError> {
        if let Some(i) = self.column
            && fields.get(i).and_then(|f| f.as_deref()) == Some(self.subject.key.as_bytes())
        {
            self.found = true;
        }
        Ok(())
    }

    fn column_mask(&self) -> Option<&[bool]> {
        Some(&self.mask)
    }
}

/// Reads backup `m` from its first whole copy up to the end of the subject's table.
async fn scan(
    ctx: &Context,
    entry: &catalog::Entry,
    m: &Manifest,
    subject: &Subject,
    identities: Arc<Identities>,
) -> Result<bool, String> {
    let copy = entry
        .good_copies()
        .next()
        .ok_or_else(|| "no whole copy".to_owned())?;
    let store = ctx
        .store(&copy.target)
        .ok_or_else(|| format!("target {} is not configured", copy.target))?;
    let (tx, rx) = channel();
    let dl = tokio::spawn(download(store, m.clone(), tx, Progress::new()));
    let subject = subject.clone();
    let format = m.source_type.clone();
    let result = tokio::task::spawn_blocking(move || -> Result<bool, String> {
        let mut plain = open_plaintext(rx, &identities).map_err(|e| e.to_string())?;
        let mut watch = Watch {
            subject: &subject,
            column: None,
            seen_table: false,
            found: false,
            mask: Vec::new(),
        };
        let mut discard = |_: Vec<u8>| Ok::<(), String>(());
        let read_err = |e: std::io::Error| e.to_string();
        let dump_err = |e: crate::dump::DumpError| e.to_string();
        let run = match format.as_str() {
            "postgres" => pump(
                &mut plain,
                PgPlainParser::new(&mut watch, Output::Discard),
                CHUNK,
                &mut discard,
                read_err,
                dump_err,
            ),
            "sqlite" => pump(
                &mut plain,
                SqliteRewriter::new(&mut watch),
                CHUNK,
                &mut discard,
                read_err,
                dump_err,
            ),
            "mysql" => pump(
                &mut plain,
                MysqlRewriter::new(&mut watch),
                CHUNK,
                &mut discard,
                read_err,
                dump_err,
            ),
            other => return Err(format!("{other} backups cannot be read")),
        };
        match run {
            Ok(_) => Ok(watch.found),
            Err(e) if e.contains(DONE) => Ok(watch.found),
            Err(e) => Err(e),
        }
    })
    .await
    .map_err(|e| e.to_string())?;
    // Stopping early leaves the download unfinished: only its own errors matter when the
    // read failed.
    if result.is_err()
        && let Ok(Err(e)) = dl.await
    {
        return Err(e.to_string());
    }
    result
}

/// Which backups of `source` hold `subject`, with their expiry.
pub async fn status(
    ctx: &Context,
    state: &Mutex<State>,
    source: &str,
    subject: &SubjectArg,
) -> Result<Status, LedgerError> {
    let cfg = ctx.config.source(source).map_err(ContextError::from)?;
    let max_age_days = cfg.retention().max_age_days;
    let (_, rules) = rules_of(ctx, source)?;
    let subject = resolve_subject(&rules, subject)?;
    let label = subject.to_string();
    let ledger = super::ledger::load(ctx, Some(state), source, false).await?;
    let erasures: Vec<String> = ledger
        .erasures
        .iter()
        .filter(|e| e.subject == subject)
        .map(|e| e.id.clone())
        .collect();
    let identities = Arc::new(ctx.identities()?.0);
    let listing = catalog::list(ctx, Some(source)).await?;
    let mut found: BTreeMap<String, bool> = BTreeMap::new();
    let mut out = Status {
        source: source.to_owned(),
        subject: label.clone(),
        erasures,
        max_age_days,
        holding: Vec::new(),
        without: 0,
        unknown: listing
            .unreachable
            .iter()
            .map(|(t, e)| format!("target {t} could not be listed: {e}"))
            .collect(),
        all_gone_by: None,
    };
    let mut never = false;
    for entry in &listing.entries {
        let Some(m) = entry.manifest() else { continue };
        let cached = lock(state)?.subject_scan(&entry.id, &label)?;
        let (holds, how) = if let Some(parent) = &m.derived_from {
            match found.get(parent) {
                Some(h) => (*h, format!("derived from {parent}")),
                None => {
                    out.unknown.push(format!(
                        "{}: an anonymized copy of {parent}, which is no longer listed",
                        entry.id
                    ));
                    continue;
                }
            }
        } else if let Some(h) = cached {
            (h, "cached".to_owned())
        } else {
            match scan(ctx, entry, m, &subject, identities.clone()).await {
                Ok(h) => {
                    lock(state)?.save_subject_scan(&entry.id, &label, h)?;
                    (h, "scanned".to_owned())
                }
                Err(why) => {
                    out.unknown
                        .push(format!("{}: cannot be read: {why}", entry.id));
                    continue;
                }
            }
        };
        found.insert(entry.id.clone(), holds);
        if !holds {
            out.without += 1;
            continue;
        }
        let expires = max_age_days.map(|d| m.started_at + Duration::days(i64::from(d)));
        let expiry = match max_age_days {
            Some(d) => format!(
                "created + max_age_days ({d}); `coffre prune` deletes it then (kept longer only \
                 while it is the newest restorable backup or under object lock)"
            ),
            None => "never: the source's retention sets no max_age_days".to_owned(),
        };
        never |= expires.is_none();
        out.all_gone_by = out.all_gone_by.max(expires);
        out.holding.push(Holding {
            id: entry.id.clone(),
            kind: m.kind.as_str().to_owned(),
            created: m.started_at,
            expires,
            expiry,
            targets: entry.good_copies().map(|c| c.target.clone()).collect(),
            how,
        });
    }
    if never {
        out.all_gone_by = None;
    }
    Ok(out)
}
