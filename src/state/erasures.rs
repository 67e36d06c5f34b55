//! The erasure ledger's local copy (see [`crate::erasure::ledger`]): one row per entry,
//! the entry as JSON, never updated nor deleted; and a cache of which backups hold which
//! subject (a backup never changes, so an answer stays true).

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};

use super::{State, StateError, time_text};

pub(super) const MIGRATION_4: &str = "
    CREATE TABLE erasures (
        id          TEXT PRIMARY KEY,
        source      TEXT NOT NULL,
        recorded_at TEXT NOT NULL,
        entry       TEXT NOT NULL
    );
    CREATE INDEX erasures_by_source ON erasures (source, recorded_at);
    CREATE TRIGGER erasures_no_update BEFORE UPDATE ON erasures
        BEGIN SELECT RAISE(ABORT, 'the erasure ledger is append-only'); END;
    CREATE TRIGGER erasures_no_delete BEFORE DELETE ON erasures
        BEGIN SELECT RAISE(ABORT, 'the erasure ledger is append-only'); END;
    CREATE TABLE subject_scans (
        backup_id TEXT NOT NULL,
        subject   TEXT NOT NULL,
        holds     INTEGER NOT NULL,
        PRIMARY KEY (backup_id, subject)
    );
";

impl State {
    /// Saves a ledger entry; `false` when one with this id is already there.
    pub fn save_erasure(
        &self,
        id: &str,
        source: &str,
        recorded_at: DateTime<Utc>,
        entry: &serde_json::Value,
    ) -> Result<bool, StateError> {
        let text = self.encode("an erasure entry", entry)?;
        self.conn
            .prepare_cached(
                "INSERT INTO erasures (id, source, recorded_at, entry) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT (id) DO NOTHING",
            )
            .and_then(|mut stmt| stmt.execute(params![id, source, time_text(recorded_at), text]))
            .map(|n| n > 0)
            .map_err(|e| self.sql("saving an erasure entry", e))
    }

    /// Ledger entries of `source` (every source with `None`), oldest first.
    pub fn erasures(&self, source: Option<&str>) -> Result<Vec<serde_json::Value>, StateError> {
        let texts: Vec<(String, String)> = self
            .conn
            .prepare_cached(
                "SELECT id, entry FROM erasures WHERE (?1 IS NULL OR source = ?1) \
                 ORDER BY recorded_at, id",
            )
            .and_then(|mut stmt| {
                stmt.query_map(params![source], |row| Ok((row.get(0)?, row.get(1)?)))?
                    .collect()
            })
            .map_err(|e| self.sql("reading the erasure ledger", e))?;
        texts
            .iter()
            .map(|(id, text)| self.json("erasures", id, "entry", text))
            .collect()
    }

    /// Whether backup `backup_id` was found to hold `subject`, if it was scanned.
    pub fn subject_scan(&self, backup_id: &str, subject: &str) -> Result<Option<bool>, StateError> {
        self.conn
            .prepare_cached("SELECT holds FROM subject_scans WHERE backup_id = ?1 AND subject = ?2")
            .and_then(|mut stmt| {
                stmt.query_row(params![backup_id, subject], |row| row.get(0))
                    .optional()
            })
            .map_err(|e| self.sql("reading a subject scan", e))
    }

    /// Records whether backup `backup_id` holds `subject`.
    pub fn save_subject_scan(
        &self,
        backup_id: &str,
        subject: &str,
        holds: bool,
    ) -> Result<(), StateError> {
        self.conn
            .prepare_cached(
                "INSERT INTO subject_scans (backup_id, subject, holds) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (backup_id, subject) DO UPDATE SET holds = excluded.holds",
            )
            .and_then(|mut stmt| stmt.execute(params![backup_id, subject, holds]))
            .map(|_| ())
            .map_err(|e| self.sql("saving a subject scan", e))
    }
}
