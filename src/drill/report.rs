//! The drill report: every check with its outcome, per-table counts and checksums,
//! timings, RTO and RPO, and an HMAC-SHA256 tag under the integrity key (domain
//! `coffre-drill-report/1`) so that an altered report is detected later
//! (`coffre drill verify-report`).
//!
//! Reports are kept in the state store and written to the source's targets as
//! `_coffre/drills/SOURCE/TIME-TARGET.json` (no source name starts with `_`, so the key
//! space never meets a backup's), where they outlive the appliance.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::integrity::IntegrityKey;

/// `format` of a report.
pub const FORMAT: &str = "coffre-drill-report/1";
/// The MAC domain of reports.
const DOMAIN: &str = "coffre-drill-report/1";
/// Where reports are kept in a store.
pub const STORE_PREFIX: &str = "_coffre/drills/";

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Passed,
    Failed,
    /// Not reached: an earlier check failed.
    Skipped,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Passed => "passed",
            Outcome::Failed => "failed",
            Outcome::Skipped => "skipped",
        }
    }
}

/// The checks of a drill, in the order they run.
pub const CHECKS: [&str; 8] = [
    "backup",
    "integrity",
    "restore",
    "rows",
    "erasures",
    "assertions",
    "rto",
    "cleanup",
];

/// One check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Check {
    /// One of [`CHECKS`].
    pub name: String,
    pub outcome: Outcome,
    pub detail: String,
}

/// One table of the restored database against the manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableResult {
    pub table: String,
    pub expected_rows: u64,
    pub restored_rows: Option<u64>,
    pub expected_checksum: String,
    pub restored_checksum: Option<String>,
    pub ok: bool,
}

/// One SQL assertion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AssertionResult {
    pub sql: String,
    pub ok: bool,
    /// What the query returned, or its error.
    pub result: String,
}

/// Seconds spent in each stage.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Timings {
    /// Download, integrity checks, decryption, decompression and restore (streamed
    /// together).
    pub restore_s: f64,
    /// Reading the restored database back for counts and checksums.
    pub verify_s: f64,
    pub assertions_s: f64,
    /// What the RTO is measured on: restore + verify + assertions.
    pub recovery_s: f64,
    /// The whole drill, cleanup included.
    pub total_s: f64,
}

/// A drill's report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DrillReport {
    pub format: String,
    /// `TIME-TARGET`, unique per source.
    pub id: String,
    pub source: String,
    pub source_type: String,
    pub target: String,
    pub backup_id: Option<String>,
    pub backup_kind: Option<String>,
    pub backup_finished_at: Option<DateTime<Utc>>,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub ok: bool,
    /// The first failed check's detail, when the drill failed.
    pub failure: Option<String>,
    pub checks: Vec<Check>,
    pub tables: Vec<TableResult>,
    pub assertions: Vec<AssertionResult>,
    pub timings: Timings,
    pub rto_seconds: Option<u64>,
    /// Age of the backup when the drill started: the data a restore at that moment
    /// would have lost.
    pub rpo_seconds: Option<f64>,
    pub stored_bytes: Option<u64>,
    pub rows: Option<u64>,
    /// The erasure ledger as the restore re-applied it (absent: the ledger was empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub erasures: Option<crate::erasure::apply::Applied>,
    /// The scratch database (never with a password).
    pub scratch: String,
    pub coffre_version: String,
    /// `hmac-sha256:…` over the rest of the report.
    pub mac: Option<String>,
}

impl DrillReport {
    /// The check called `name`.
    pub fn check(&self, name: &str) -> Option<&Check> {
        self.checks.iter().find(|c| c.name == name)
    }

    /// The key of this report in a store.
    pub fn store_key(&self) -> String {
        format!("{STORE_PREFIX}{}/{}.json", self.source, self.id)
    }

    /// The report as JSON with its tag.
    pub fn sealed(&self, key: &IntegrityKey) -> Value {
        let mut doc = serde_json::to_value(self).unwrap_or(Value::Null);
        if let Value::Object(map) = &mut doc {
            map.remove("mac");
            let tag = key.tag_json(DOMAIN, &Value::Object(map.clone()), "mac");
            map.insert("mac".into(), Value::String(tag));
        }
        doc
    }
}

/// Why a report does not verify.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("{what} is not a drill report: {reason}")]
    Invalid { what: String, reason: String },
    #[error("{what}: {reason}")]
    Forged { what: String, reason: String },
}

/// Checks a report's tag and reads it; `what` names it in errors.
pub fn verify(bytes: &[u8], what: &str, key: &IntegrityKey) -> Result<DrillReport, ReportError> {
    let invalid = |reason: String| ReportError::Invalid {
        what: what.to_owned(),
        reason,
    };
    let doc: Value = serde_json::from_slice(bytes).map_err(|e| invalid(e.to_string()))?;
    if doc.get("format").and_then(Value::as_str) != Some(FORMAT) {
        return Err(invalid(format!("its format is not {FORMAT:?}")));
    }
    key.check_json(DOMAIN, &doc, "mac")
        .map_err(|reason| ReportError::Forged {
            what: what.to_owned(),
            reason,
        })?;
    serde_json::from_value(doc).map_err(|e| invalid(e.to_string()))
}

/// The drilled target and start time of a report key (`_coffre/drills/S/TIME-TARGET.json`).
pub fn parse_store_key(key: &str, source: &str) -> Option<(DateTime<Utc>, String)> {
    let rest = key
        .strip_prefix(STORE_PREFIX)?
        .strip_prefix(source)?
        .strip_prefix('/')?
        .strip_suffix(".json")?;
    let (time, target) = rest.split_once('-')?;
    let time = chrono::NaiveDateTime::parse_from_str(time, "%Y%m%dT%H%M%S%.fZ").ok()?;
    Some((time.and_utc(), target.to_owned()))
}

/// The id of a report: start time (to the millisecond) and target.
pub fn report_id(started_at: DateTime<Utc>, target: &str) -> String {
    format!("{}-{target}", started_at.format("%Y%m%dT%H%M%S%.3fZ"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> IntegrityKey {
        IntegrityKey::from_bytes(vec![byte; 32], "test").expect("key")
    }

    fn report() -> DrillReport {
        let started_at = DateTime::parse_from_rfc3339("2026-11-23T04:30:00.125Z")
            .expect("time")
            .with_timezone(&Utc);
        DrillReport {
            format: FORMAT.into(),
            id: report_id(started_at, "paris"),
            source: "billing".into(),
            source_type: "postgres".into(),
            target: "paris".into(),
            backup_id: Some("20261123T020000Z-abcd".into()),
            backup_kind: Some("full".into()),
            backup_finished_at: Some(started_at),
            started_at,
            finished_at: started_at,
            ok: true,
            failure: None,
            checks: vec![Check {
                name: "rows".into(),
                outcome: Outcome::Passed,
                detail: "7 tables".into(),
            }],
            tables: vec![],
            assertions: vec![],
            timings: Timings::default(),
            rto_seconds: Some(900),
            rpo_seconds: Some(9000.0),
            stored_bytes: Some(1),
            rows: Some(1),
            erasures: None,
            scratch: "postgres://drill@h/coffre_drill_x".into(),
            coffre_version: "0".into(),
            mac: None,
        }
    }

    #[test]
    fn a_sealed_report_verifies_and_an_altered_one_does_not() {
        let r = report();
        let sealed = serde_json::to_vec(&r.sealed(&key(1))).expect("json");
        let back = verify(&sealed, "r.json", &key(1)).expect("verifies");
        assert!(back.mac.is_some());
        assert_eq!(DrillReport { mac: None, ..back }, r);

        let altered = String::from_utf8(sealed.clone())
            .expect("utf8")
            .replace("\"ok\":true", "\"ok\":false");
        let err = verify(altered.as_bytes(), "r.json", &key(1)).expect_err("altered");
        assert!(matches!(err, ReportError::Forged { .. }), "{err}");
        let err = verify(&sealed, "r.json", &key(2)).expect_err("other key");
        assert!(err.to_string().contains("r.json"), "{err}");
        let err = verify(b"{}", "r.json", &key(1)).expect_err("not a report");
        assert!(matches!(err, ReportError::Invalid { .. }), "{err}");
    }

    #[test]
    fn store_keys_give_back_time_and_target() {
        let r = report();
        let key = r.store_key();
        assert_eq!(
            key,
            "_coffre/drills/billing/20261123T043000.125Z-paris.json"
        );
        assert_eq!(
            parse_store_key(&key, "billing"),
            Some((r.started_at, "paris".to_owned()))
        );
        assert_eq!(parse_store_key(&key, "bill"), None);
        // Target names may hold "-".
        let key = format!(
            "{STORE_PREFIX}billing/{}.json",
            report_id(r.started_at, "eu-west")
        );
        assert_eq!(
            parse_store_key(&key, "billing").map(|(_, t)| t),
            Some("eu-west".to_owned())
        );
    }
}
