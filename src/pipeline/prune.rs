//! Prune: deletes the backups that a source's retention policy no longer keeps.
//!
//! The decision is [`crate::retention::plan`]'s, made from what the stores hold
//! ([`crate::catalog`]): a backup is a candidate only when some target holds a manifest
//! whose integrity tag checks, and its date is that manifest's `started_at`. A folder
//! whose every manifest is invalid or rejected is never deleted (a forged manifest must
//! not make coffre delete anything, and a folder coffre cannot vouch for is not its to
//! remove); neither is an anonymized copy made for a requester, which the appliance
//! cannot restore. Deleting a backup removes, in every target of its source, the
//! manifest first (so that it stops being listed), then the data object; a target that
//! fails is reported and the others go on. When a target cannot be listed, the plan is
//! shown but nothing is deleted for that source. Deleting holds the source's lock
//! ([`super::lock`]), as backups and heals do.

use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;

use super::lock::SourceLock;
use super::{Context, ContextError};
use crate::catalog::{self, Entry};
use crate::manifest::{self, DATA_OBJECT, MANIFEST_OBJECT};
use crate::retention::{self, Candidate};
use crate::store::DynStore;

/// The note of a source whose policy is empty.
pub const NO_POLICY: &str = "no retention policy: nothing pruned";
/// The first reason of a backup with no trusted manifest.
const NO_TRUSTED_MANIFEST: &str = "no trusted manifest: every copy's manifest is invalid or \
                                   rejected, so coffre cannot vouch for this folder (never deleted)";

/// Added to `finished_at + days`: each object's lock runs from when it was written,
/// and the manifest is written just after `finished_at` (an hour also covers clock
/// skew with the S3 server). Deleting a little late beats a delete the lock refuses.
const LOCK_MARGIN: TimeDelta = TimeDelta::hours(1);

#[derive(Debug, thiserror::Error)]
pub enum PruneError {
    #[error(transparent)]
    Context(#[from] ContextError),
}

/// What `coffre prune` reports.
#[derive(Debug, Clone, Serialize)]
pub struct PruneReport {
    /// True when nothing was deleted on purpose (the plan only).
    pub dry_run: bool,
    /// The time the policies were applied at.
    pub now: DateTime<Utc>,
    /// False when a deletion failed, a source could not be listed, or a target could
    /// not be listed (then that source's plan may be incomplete and nothing of it is
    /// deleted).
    pub ok: bool,
    pub sources: Vec<SourcePrune>,
    /// Backups kept, over every source.
    pub kept: usize,
    /// Backups deleted from every target of their source.
    pub deleted: usize,
    /// Backups whose deletion failed in at least one target.
    pub failed: usize,
    /// Backups the policy deletes that were left in place: a dry run, or a target
    /// that could not be listed.
    pub would_delete: usize,
    /// Folders left alone: no trusted manifest, or an anonymized copy for a requester.
    pub skipped: usize,
}

/// The pruning of one source.
#[derive(Debug, Clone, Serialize)]
pub struct SourcePrune {
    pub source: String,
    /// The policy in one line ([`crate::retention::RetentionPolicy::summary`]).
    pub policy: String,
    /// [`NO_POLICY`], or why nothing was deleted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Why the source could not be pruned at all (its backups could not be listed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// `target: error` for each target that could not be listed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unreachable: Vec<String>,
    /// Newest first; folders left alone come last.
    pub backups: Vec<BackupPrune>,
    pub kept: usize,
    pub deleted: usize,
    pub failed: usize,
    pub would_delete: usize,
    pub skipped: usize,
}

/// The verdict on one backup and what was done about it.
#[derive(Debug, Clone, Serialize)]
pub struct BackupPrune {
    pub id: String,
    /// The `started_at` of its trusted manifest; none when there is none.
    pub created: Option<DateTime<Utc>>,
    /// What the policy decided (folders left alone are kept).
    pub keep: bool,
    pub action: Action,
    /// Every rule that keeps it, or what deletes it; never empty.
    pub reasons: Vec<String>,
    /// One per target of the source, when a deletion was attempted.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<TargetDeletion>,
}

/// What happened to one backup (a string in the JSON report: [`Action::as_str`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Kept,
    /// Dry run: the policy deletes it.
    WouldDelete,
    /// The policy deletes it, but a target of the source could not be listed.
    NotDeletedUnreachable,
    Deleted,
    /// Deleted from some targets only: see `targets`; a later prune retries while a
    /// manifest is left.
    PartiallyDeleted,
    /// Deleted from no target: see `targets`.
    DeleteFailed,
    /// Left alone, whatever the policy: see `reasons`.
    Skipped,
}

impl Action {
    /// As in the JSON report.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Kept => "kept",
            Action::WouldDelete => "would delete",
            Action::NotDeletedUnreachable => "not deleted: a target could not be listed",
            Action::Deleted => "deleted",
            Action::PartiallyDeleted => "partially deleted",
            Action::DeleteFailed => "delete failed",
            Action::Skipped => "skipped",
        }
    }
}

impl Serialize for Action {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// The deletion of one backup in one target.
#[derive(Debug, Clone, Serialize)]
pub struct TargetDeletion {
    pub target: String,
    /// `deleted` or `failed`.
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl TargetDeletion {
    fn is_deleted(&self) -> bool {
        self.status == "deleted"
    }
}

/// Applies the retention policy of one source (or of every source) at time `now`:
/// deletes what the policy does not keep, or with `dry_run` only says what it would
/// delete. Errors only when the source is unknown or manifests cannot be checked
/// (no integrity key); everything else is in the report.
pub async fn run_prune(
    ctx: &Context,
    source: Option<&str>,
    dry_run: bool,
    now: DateTime<Utc>,
) -> Result<PruneReport, PruneError> {
    let names = match source {
        Some(name) => {
            ctx.config.source(name).map_err(ContextError::from)?;
            vec![name.to_owned()]
        }
        None => ctx.source_names(),
    };
    let with_policy = names.iter().any(|name| {
        ctx.config
            .sources
            .get(name)
            .is_some_and(|s| !s.retention().is_empty())
    });
    if with_policy {
        // Without the key no manifest can be trusted, so nothing could be pruned.
        ctx.integrity_key()?;
    }
    let mut report = PruneReport {
        dry_run,
        now,
        ok: true,
        sources: Vec::new(),
        kept: 0,
        deleted: 0,
        failed: 0,
        would_delete: 0,
        skipped: 0,
    };
    for name in names {
        let pruned = prune_source(ctx, &name, dry_run, now).await;
        report.ok &= pruned.error.is_none() && pruned.failed == 0 && pruned.unreachable.is_empty();
        report.kept += pruned.kept;
        report.deleted += pruned.deleted;
        report.failed += pruned.failed;
        report.would_delete += pruned.would_delete;
        report.skipped += pruned.skipped;
        report.sources.push(pruned);
    }
    Ok(report)
}

async fn prune_source(ctx: &Context, name: &str, dry_run: bool, now: DateTime<Utc>) -> SourcePrune {
    let mut out = SourcePrune {
        source: name.to_owned(),
        policy: String::new(),
        note: None,
        error: None,
        unreachable: Vec::new(),
        backups: Vec::new(),
        kept: 0,
        deleted: 0,
        failed: 0,
        would_delete: 0,
        skipped: 0,
    };
    let config = match ctx.config.source(name) {
        Ok(config) => config,
        Err(e) => {
            out.error = Some(e.to_string());
            return out;
        }
    };
    let policy = config.retention();
    out.policy = policy.summary();
    if policy.is_empty() {
        out.note = Some(NO_POLICY.to_owned());
        return out;
    }
    // Deleting writes: no backup or heal of this source meanwhile (one could copy back
    // what is being deleted). A dry run only reads.
    let _lock = if dry_run {
        None
    } else {
        match SourceLock::acquire(&ctx.config.state_dir, name) {
            Ok(lock) => Some(lock),
            Err(e) => {
                out.error = Some(e.to_string());
                return out;
            }
        }
    };
    let listed = match ctx.stores_of(name) {
        Ok(stores) => catalog::list_source(ctx, name)
            .await
            .map(|listing| (stores, listing)),
        Err(e) => Err(e),
    };
    let (stores, listing) = match listed {
        Ok(listed) => listed,
        Err(e) => {
            out.error = Some(e.to_string());
            return out;
        }
    };
    out.unreachable = listing
        .unreachable
        .iter()
        .map(|(target, e)| format!("{target}: {e}"))
        .collect();
    if !dry_run && !out.unreachable.is_empty() {
        out.note = Some(
            "a target could not be listed: the plan may be incomplete, so nothing was deleted \
             (run prune again when every target answers)"
                .to_owned(),
        );
    }

    let lock_days = config
        .targets()
        .iter()
        .filter_map(|t| ctx.config.targets.get(t)?.object_lock())
        .map(|lock| lock.days)
        .max();
    let every: Vec<Entry> = listing
        .entries
        .iter()
        .chain(&listing.untrusted)
        .cloned()
        .collect();
    let (candidates, left_alone) = candidates(&every, lock_days);
    for verdict in retention::plan(policy, &candidates, now) {
        let mut backup = BackupPrune {
            id: verdict.id,
            created: Some(verdict.created),
            keep: verdict.keep,
            action: Action::Kept,
            reasons: verdict.reasons,
            targets: Vec::new(),
        };
        if verdict.keep {
            out.kept += 1;
        } else if dry_run {
            backup.action = Action::WouldDelete;
            out.would_delete += 1;
        } else if !out.unreachable.is_empty() {
            backup.action = Action::NotDeletedUnreachable;
            out.would_delete += 1;
        } else {
            backup.targets = delete_backup(&stores, name, &backup.id).await;
            let done = backup.targets.iter().filter(|t| t.is_deleted()).count();
            backup.action = if done == backup.targets.len() {
                out.deleted += 1;
                Action::Deleted
            } else if done > 0 {
                out.failed += 1;
                Action::PartiallyDeleted
            } else {
                out.failed += 1;
                Action::DeleteFailed
            };
        }
        out.backups.push(backup);
    }
    out.skipped = left_alone.len();
    out.backups.extend(left_alone);
    out
}

/// The backups the policy decides on, and the folders left alone whatever it says
/// (newest first). `lock_days` is the longest object lock among the source's targets.
fn candidates(entries: &[Entry], lock_days: Option<u32>) -> (Vec<Candidate>, Vec<BackupPrune>) {
    let mut candidates = Vec::new();
    let mut left_alone = Vec::new();
    for entry in entries {
        let Some(manifest) = entry.manifest() else {
            let mut reasons = vec![NO_TRUSTED_MANIFEST.to_owned()];
            reasons.extend(entry.copies.iter().map(|c| match &c.detail {
                Some(detail) => format!("{}: {}: {detail}", c.target, c.status),
                None => format!("{}: {}", c.target, c.status),
            }));
            left_alone.push(BackupPrune {
                id: entry.id.clone(),
                created: None,
                keep: true,
                action: Action::Skipped,
                reasons,
                targets: Vec::new(),
            });
            continue;
        };
        if let Some(original) = &manifest.derived_from {
            left_alone.push(BackupPrune {
                id: entry.id.clone(),
                created: Some(manifest.started_at),
                keep: true,
                action: Action::Skipped,
                reasons: vec![format!(
                    "anonymized copy of {original} encrypted for a requester: not restorable \
                     here, so retention does not count or delete it (delete it by hand when \
                     it is no longer needed)"
                )],
                targets: Vec::new(),
            });
            continue;
        }
        candidates.push(Candidate {
            id: entry.id.clone(),
            created: manifest.started_at,
            good: entry.good_copies().next().is_some(),
            locked_until: lock_days.map(|days| locked_until(manifest.finished_at, days)),
        });
    }
    left_alone.sort_by(|a, b| b.id.cmp(&a.id));
    (candidates, left_alone)
}

/// When an object lock of `days` days on a backup finished at `finished_at` expires,
/// give or take [`LOCK_MARGIN`].
fn locked_until(finished_at: DateTime<Utc>, days: u32) -> DateTime<Utc> {
    finished_at
        .checked_add_signed(TimeDelta::days(i64::from(days)) + LOCK_MARGIN)
        // Past the calendar's end: locked for good.
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// Deletes backup `id` of `source` from every store: the manifest first, so that it
/// stops being listed, then the data object (not attempted when the manifest stays).
async fn delete_backup(stores: &[DynStore], source: &str, id: &str) -> Vec<TargetDeletion> {
    let manifest_key = manifest::object_key(source, id, MANIFEST_OBJECT);
    let data_key = manifest::object_key(source, id, DATA_OBJECT);
    let mut out = Vec::new();
    for store in stores {
        let target = store.name().to_owned();
        let error = match store.delete(&manifest_key).await {
            Err(e) => Some(format!(
                "{e} (the backup is still listed there: a later prune retries)"
            )),
            Ok(()) => match store.delete(&data_key).await {
                Err(e) => Some(format!(
                    "{e} (its manifest is deleted, so no later prune will see it: delete \
                     {data_key} in target {target} by hand)"
                )),
                Ok(()) => None,
            },
        };
        match &error {
            None => {
                tracing::info!(source = %source, id = %id, target_name = %target, "backup deleted")
            }
            Some(e) => {
                tracing::warn!(source = %source, id = %id, target_name = %target, error = %e, "backup not deleted")
            }
        }
        out.push(TargetDeletion {
            target,
            status: if error.is_none() { "deleted" } else { "failed" }.to_owned(),
            error,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::path::PathBuf;

    use bytes::Bytes;
    use chrono::{NaiveDate, TimeZone};
    use sha2::{Digest, Sha256};

    use super::*;
    use crate::catalog::Copy;
    use crate::config::Config;
    use crate::dump::DumpStats;
    use crate::integrity::IntegrityKey;
    use crate::manifest::{BackupKind, Compression, Encryption, FORMAT, Manifest, ObjectEntry};

    const RECIPIENT: &str = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p";
    const GFS: &str = "keep_last = 3\ndaily = 7\nweekly = 4\nmonthly = 6\nyearly = 2\n\
                       max_age_days = 365\n";

    fn at(y: i32, m: u32, d: u32, h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, 0, 0)
            .single()
            .expect("valid test date")
    }

    /// 2026-11-22 03:00 UTC, a Sunday.
    fn now() -> DateTime<Utc> {
        at(2026, 11, 22, 3)
    }

    /// A config in a temporary folder: fs targets `east` and `west`, source `lite`
    /// (both targets, with `retention` as its policy table) and source `plain` (east,
    /// no policy).
    struct Fixture {
        dir: tempfile::TempDir,
        ctx: Context,
    }

    impl Fixture {
        async fn new(retention: &str) -> Fixture {
            let dir = tempfile::tempdir().expect("tempdir");
            std::fs::write(dir.path().join("integrity.key"), [7_u8; 32]).expect("key");
            let text = format!(
                "state_dir = \"state\"\n\
                 [integrity]\nkey_file = \"integrity.key\"\n\
                 [encryption]\nrecipients = [\"{RECIPIENT}\"]\n\
                 [targets.east]\ntype = \"fs\"\npath = \"east\"\n\
                 [targets.west]\ntype = \"fs\"\npath = \"west\"\n\
                 [sources.lite]\ntype = \"sqlite\"\npath = \"lite.db\"\ntargets = [\"east\", \"west\"]\n\
                 [sources.lite.retention]\n{retention}\n\
                 [sources.plain]\ntype = \"sqlite\"\npath = \"plain.db\"\ntargets = [\"east\"]\n"
            );
            let path = dir.path().join("coffre.toml");
            std::fs::write(&path, text).expect("config");
            let config = Config::load(&path).expect("valid config");
            let ctx = Context::new(config).await.expect("context");
            Fixture { dir, ctx }
        }

        fn key(&self) -> &IntegrityKey {
            self.ctx.integrity_key().expect("integrity key")
        }

        fn path(&self, rel: &str) -> PathBuf {
            self.dir.path().join(rel)
        }

        /// Writes a backup of `source` started at `started` into `targets`, through
        /// the Store API, its manifest tagged under `key`; returns its id.
        async fn put(
            &self,
            source: &str,
            targets: &[&str],
            started: DateTime<Utc>,
            key: &IntegrityKey,
            derived_from: Option<&str>,
        ) -> String {
            let id = manifest::new_backup_id(started);
            let data = Bytes::from(format!("stands for an age file: {source} {id}"));
            let manifest = Manifest {
                format: FORMAT.into(),
                id: id.clone(),
                source: source.into(),
                source_type: "sqlite".into(),
                kind: BackupKind::Full,
                started_at: started,
                finished_at: started + TimeDelta::minutes(1),
                coffre_version: "test".into(),
                dump_tool: "sqlite 3".into(),
                compression: Compression {
                    algorithm: "zstd".into(),
                    level: 1,
                },
                encryption: Encryption {
                    algorithm: "age".into(),
                    recipients: vec![RECIPIENT.into()],
                },
                plaintext_bytes: 100,
                objects: vec![ObjectEntry {
                    name: DATA_OBJECT.into(),
                    size: data.len() as u64,
                    sha256: hex::encode(Sha256::digest(&data)),
                }],
                tables: DumpStats::default(),
                unique_columns: Vec::new(),
                policy_sha256: None,
                derived_from: derived_from.map(str::to_owned),
                mac: None,
            };
            let json = Bytes::from(manifest.to_json(key));
            for target in targets {
                let store = self.ctx.store(target).expect("configured target");
                store
                    .put_bytes(
                        &manifest::object_key(source, &id, DATA_OBJECT),
                        data.clone(),
                    )
                    .await
                    .expect("put data");
                store
                    .put_bytes(
                        &manifest::object_key(source, &id, MANIFEST_OBJECT),
                        json.clone(),
                    )
                    .await
                    .expect("put manifest");
            }
            id
        }

        async fn good(&self, started: DateTime<Utc>) -> String {
            self.put("lite", &["east", "west"], started, self.key(), None)
                .await
        }

        /// The folders under `target/source/`, as the file system has them.
        fn folders(&self, target: &str, source: &str) -> BTreeSet<String> {
            match std::fs::read_dir(self.path(&format!("{target}/{source}"))) {
                Ok(entries) => entries
                    .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
                    .collect(),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeSet::new(),
                Err(e) => panic!("{e}"),
            }
        }

        fn exists(&self, rel: &str) -> bool {
            self.path(rel).exists()
        }
    }

    fn source<'a>(report: &'a PruneReport, name: &str) -> &'a SourcePrune {
        report
            .sources
            .iter()
            .find(|s| s.source == name)
            .unwrap_or_else(|| panic!("no source {name} in the report"))
    }

    fn backup<'a>(report: &'a PruneReport, id: &str) -> &'a BackupPrune {
        report
            .sources
            .iter()
            .flat_map(|s| &s.backups)
            .find(|b| b.id == id)
            .unwrap_or_else(|| panic!("no backup {id} in the report"))
    }

    /// The days `retention::tests::gfs_series_with_max_age` keeps out of 400 daily
    /// backups under [`GFS`].
    fn gfs_days() -> BTreeSet<NaiveDate> {
        crate::retention::tests::gfs_series_expected()
    }

    #[tokio::test]
    async fn gfs_series_dry_run_then_prune() {
        let f = Fixture::new(GFS).await;
        let last = at(2026, 11, 22, 2);
        let mut ids = Vec::new();
        for back in 0..400 {
            ids.push(f.good(last - TimeDelta::days(back)).await);
        }
        let all: BTreeSet<String> = ids.iter().cloned().collect();
        let expected_ids: BTreeSet<String> = ids
            .iter()
            .enumerate()
            .filter(|(back, _)| {
                let created = last - TimeDelta::days(*back as i64);
                gfs_days().contains(&created.date_naive())
            })
            .map(|(_, id)| id.clone())
            .collect();
        assert_eq!(expected_ids.len(), 16);

        // The plan, without deleting anything.
        let report = run_prune(&f.ctx, Some("lite"), true, now())
            .await
            .expect("dry run");
        assert!(report.ok && report.dry_run);
        assert_eq!(
            (
                report.kept,
                report.would_delete,
                report.deleted,
                report.failed
            ),
            (16, 384, 0, 0)
        );
        let lite = source(&report, "lite");
        assert_eq!(
            lite.policy,
            "keep_last 3, daily 7, weekly 4, monthly 6, yearly 2, max_age_days 365"
        );
        assert_eq!(lite.backups.len(), 400);
        assert_eq!(lite.backups[0].id, ids[0], "newest first");
        let kept: BTreeSet<String> = lite
            .backups
            .iter()
            .filter(|b| b.keep)
            .map(|b| b.id.clone())
            .collect();
        assert_eq!(kept, expected_ids);
        for b in &lite.backups {
            let want = if b.keep {
                Action::Kept
            } else {
                Action::WouldDelete
            };
            assert_eq!(b.action, want, "{}", b.id);
            assert!(b.targets.is_empty());
        }
        for target in ["east", "west"] {
            assert_eq!(
                f.folders(target, "lite"),
                all,
                "dry run deleted in {target}"
            );
        }

        // The real thing: exactly the GFS set is left, in both targets.
        let report = run_prune(&f.ctx, Some("lite"), false, now())
            .await
            .expect("prune");
        assert!(report.ok, "{report:#?}");
        assert_eq!(
            (
                report.kept,
                report.deleted,
                report.failed,
                report.would_delete
            ),
            (16, 384, 0, 0)
        );
        for target in ["east", "west"] {
            assert_eq!(f.folders(target, "lite"), expected_ids, "left in {target}");
        }
        assert!(f.folders("east", "lite").contains(&ids[0]), "newest kept");
        let limit = now() - TimeDelta::days(365);
        for b in &source(&report, "lite").backups {
            let created = b.created.expect("dated");
            if created < limit {
                assert_eq!(b.action, Action::Deleted, "{}", b.id);
                let names: Vec<&str> = b.targets.iter().map(|t| t.target.as_str()).collect();
                assert_eq!(names, ["east", "west"]);
                assert!(b.targets.iter().all(TargetDeletion::is_deleted));
            }
        }
        let listing = catalog::list_source(&f.ctx, "lite").await.expect("list");
        assert_eq!(listing.entries.len(), 16);
        assert!(listing.entries.iter().all(|e| e.good_copies().count() == 2));

        // Applying the same policy again deletes nothing more.
        let again = run_prune(&f.ctx, None, false, now()).await.expect("prune");
        assert_eq!((again.kept, again.deleted), (16, 0));
    }

    #[tokio::test]
    async fn the_newest_good_backup_survives_max_age() {
        let f = Fixture::new("max_age_days = 30").await;
        let newest_good = f.good(now() - TimeDelta::days(100)).await;
        let older = f.good(now() - TimeDelta::days(200)).await;
        // Newer, but its data is gone from both targets: not restorable.
        let broken = f.good(now() - TimeDelta::days(10)).await;
        for target in ["east", "west"] {
            std::fs::remove_file(f.path(&format!("{target}/lite/{broken}/{DATA_OBJECT}")))
                .expect("remove data");
        }
        let report = run_prune(&f.ctx, None, false, now()).await.expect("prune");
        assert!(report.ok, "{report:#?}");
        let kept = backup(&report, &newest_good);
        assert!(kept.keep);
        assert_eq!(
            kept.reasons,
            ["newest good backup: never deleted (would be deleted: older than max_age_days = 30)"]
        );
        assert_eq!(backup(&report, &older).action, Action::Deleted);
        assert_eq!(backup(&report, &broken).action, Action::Deleted);
        assert_eq!(backup(&report, &broken).reasons, ["not restorable"]);
        for target in ["east", "west"] {
            assert_eq!(
                f.folders(target, "lite"),
                BTreeSet::from([newest_good.clone()])
            );
        }
    }

    #[tokio::test]
    async fn untrusted_unknown_and_derived_folders_are_left_alone() {
        let f = Fixture::new("keep_last = 1\nmax_age_days = 30").await;
        let newest = f.good(now() - TimeDelta::days(1)).await;
        let expired = f.good(now() - TimeDelta::days(100)).await;
        // A backup forged under another key (well-formed, wrong tag), very old.
        let forger = IntegrityKey::from_bytes(vec![9; 32], "forger").expect("key");
        let forged = f
            .put(
                "lite",
                &["east", "west"],
                now() - TimeDelta::days(900),
                &forger,
                None,
            )
            .await;
        // A backup whose manifests are not even JSON.
        let garbled = f.good(now() - TimeDelta::days(800)).await;
        for target in ["east", "west"] {
            std::fs::write(
                f.path(&format!("{target}/lite/{garbled}/{MANIFEST_OBJECT}")),
                "{ not json",
            )
            .expect("garble");
        }
        // Folders that are not backups: no manifest, or a name coffre never makes.
        let unfinished = manifest::new_backup_id(now() - TimeDelta::days(700));
        std::fs::create_dir_all(f.path(&format!("east/lite/{unfinished}"))).expect("mkdir");
        std::fs::write(
            f.path(&format!("east/lite/{unfinished}/{DATA_OBJECT}")),
            "x",
        )
        .expect("write");
        std::fs::create_dir_all(f.path("east/lite/notes")).expect("mkdir");
        std::fs::write(f.path("east/lite/notes/README"), "mine").expect("write");
        // An anonymized copy of an old backup, made for a requester.
        let derived = f
            .put(
                "lite",
                &["east", "west"],
                now() - TimeDelta::days(60),
                f.key(),
                Some(&expired),
            )
            .await;

        let report = run_prune(&f.ctx, Some("lite"), false, now())
            .await
            .expect("prune");
        assert!(report.ok, "{report:#?}");
        assert_eq!(
            (report.kept, report.deleted, report.skipped),
            (1, 1, 3),
            "{report:#?}"
        );
        assert_eq!(backup(&report, &newest).action, Action::Kept);
        assert_eq!(backup(&report, &expired).action, Action::Deleted);
        for id in [&forged, &garbled] {
            let b = backup(&report, id);
            assert_eq!(b.action, Action::Skipped);
            assert_eq!(b.created, None);
            assert!(b.reasons[0].starts_with("no trusted manifest"), "{b:?}");
            assert_eq!(b.reasons.len(), 3, "one line per copy: {b:?}");
        }
        assert!(
            backup(&report, &forged).reasons[1].starts_with("east: rejected-manifest: "),
            "{:?}",
            backup(&report, &forged).reasons
        );
        assert!(backup(&report, &derived).reasons[0].starts_with(&format!(
            "anonymized copy of {expired} encrypted for a requester"
        )));
        let json = serde_json::to_value(&report).expect("json");
        let actions: Vec<&str> = json["sources"][0]["backups"]
            .as_array()
            .expect("backups")
            .iter()
            .map(|b| b["action"].as_str().expect("action"))
            .collect();
        assert_eq!(
            actions,
            ["kept", "deleted", "skipped", "skipped", "skipped"]
        );

        let mut left = BTreeSet::from([
            newest.clone(),
            forged.clone(),
            garbled.clone(),
            derived.clone(),
        ]);
        assert_eq!(f.folders("west", "lite"), left);
        left.extend([unfinished.clone(), "notes".to_owned()]);
        assert_eq!(f.folders("east", "lite"), left);
        for target in ["east", "west"] {
            for id in [&forged, &garbled] {
                for name in [MANIFEST_OBJECT, DATA_OBJECT] {
                    assert!(f.exists(&format!("{target}/lite/{id}/{name}")));
                }
            }
        }
        assert!(f.exists(&format!("east/lite/{unfinished}/{DATA_OBJECT}")));
        assert!(f.exists("east/lite/notes/README"));
    }

    #[tokio::test]
    async fn a_failing_target_is_reported_and_the_others_go_on() {
        let f = Fixture::new("keep_last = 1").await;
        let newest = f.good(now() - TimeDelta::days(1)).await;
        let old = f.good(now() - TimeDelta::days(2)).await;
        // West's manifest cannot be deleted: in its place stands a directory (a file
        // mode would not stop root).
        let west_manifest = f.path(&format!("west/lite/{old}/{MANIFEST_OBJECT}"));
        let saved = std::fs::read(&west_manifest).expect("read");
        std::fs::remove_file(&west_manifest).expect("remove");
        std::fs::create_dir_all(west_manifest.join("stuck")).expect("mkdir");

        let report = run_prune(&f.ctx, None, false, now()).await.expect("prune");
        assert!(!report.ok);
        assert_eq!((report.kept, report.deleted, report.failed), (1, 0, 1));
        let b = backup(&report, &old);
        assert_eq!(b.action, Action::PartiallyDeleted);
        assert_eq!(b.targets[0].target, "east");
        assert!(b.targets[0].is_deleted());
        assert_eq!(b.targets[1].target, "west");
        assert_eq!(b.targets[1].status, "failed");
        let error = b.targets[1].error.as_deref().expect("error");
        assert!(
            error.contains("target west") && error.contains("a later prune retries"),
            "{error}"
        );
        assert!(!f.exists(&format!("east/lite/{old}")));
        assert!(
            f.exists(&format!("west/lite/{old}/{DATA_OBJECT}")),
            "data stays while its manifest does"
        );
        assert_eq!(backup(&report, &newest).action, Action::Kept);

        // Once the target is healthy again, the next prune finishes the job.
        std::fs::remove_dir_all(&west_manifest).expect("rmdir");
        std::fs::write(&west_manifest, saved).expect("restore manifest");
        let report = run_prune(&f.ctx, None, false, now()).await.expect("prune");
        assert!(report.ok, "{report:#?}");
        assert_eq!(backup(&report, &old).action, Action::Deleted);
        assert!(!f.exists(&format!("west/lite/{old}")));
        assert_eq!(f.folders("west", "lite"), BTreeSet::from([newest]));
    }

    #[tokio::test]
    async fn an_unlisted_target_stops_deletions_for_its_source() {
        let f = Fixture::new("keep_last = 1").await;
        let newest = f.good(now() - TimeDelta::days(1)).await;
        let old = f.good(now() - TimeDelta::days(2)).await;
        // West's root is a file: it cannot be listed.
        std::fs::remove_dir_all(f.path("west")).expect("rm");
        std::fs::write(f.path("west"), "not a directory").expect("write");

        let report = run_prune(&f.ctx, Some("lite"), false, now())
            .await
            .expect("prune");
        assert!(!report.ok);
        let lite = source(&report, "lite");
        assert_eq!(lite.unreachable.len(), 1, "{lite:#?}");
        assert!(lite.unreachable[0].starts_with("west: "), "{lite:#?}");
        assert!(
            lite.note
                .as_deref()
                .is_some_and(|n| n.contains("nothing was deleted"))
        );
        assert_eq!(backup(&report, &old).action, Action::NotDeletedUnreachable);
        assert_eq!((report.deleted, report.would_delete), (0, 1));
        assert_eq!(f.folders("east", "lite"), BTreeSet::from([newest, old]));
    }

    #[tokio::test]
    async fn a_running_job_on_the_source_defers_deletions() {
        let f = Fixture::new("keep_last = 1").await;
        let newest = f.good(now() - TimeDelta::days(1)).await;
        let old = f.good(now() - TimeDelta::days(2)).await;
        let lock = SourceLock::acquire(&f.ctx.config.state_dir, "lite").expect("lock");

        let plan = run_prune(&f.ctx, Some("lite"), true, now())
            .await
            .expect("dry run");
        assert!(plan.ok, "a dry run only reads: {plan:#?}");
        assert_eq!(backup(&plan, &old).action, Action::WouldDelete);

        let report = run_prune(&f.ctx, Some("lite"), false, now())
            .await
            .expect("prune");
        assert!(!report.ok);
        let error = source(&report, "lite").error.as_deref().expect("error");
        assert!(error.contains("another coffre job"), "{error}");
        assert_eq!(
            f.folders("east", "lite"),
            BTreeSet::from([newest.clone(), old.clone()])
        );

        drop(lock);
        let report = run_prune(&f.ctx, Some("lite"), false, now())
            .await
            .expect("prune");
        assert_eq!(backup(&report, &old).action, Action::Deleted);
        assert_eq!(f.folders("east", "lite"), BTreeSet::from([newest]));
    }

    #[tokio::test]
    async fn sources_without_a_policy_are_not_touched() {
        let f = Fixture::new("").await;
        let ids = [
            f.put(
                "plain",
                &["east"],
                now() - TimeDelta::days(3000),
                f.key(),
                None,
            )
            .await,
            f.put(
                "plain",
                &["east"],
                now() - TimeDelta::days(1),
                f.key(),
                None,
            )
            .await,
        ];
        // An empty [sources.lite.retention] table is no policy either.
        let report = run_prune(&f.ctx, None, false, now()).await.expect("prune");
        assert!(report.ok);
        for name in ["lite", "plain"] {
            let s = source(&report, name);
            assert_eq!(s.note.as_deref(), Some(NO_POLICY));
            assert_eq!(s.policy, "no retention policy (keep everything)");
            assert!(s.backups.is_empty());
        }
        assert_eq!(f.folders("east", "plain"), BTreeSet::from(ids));

        let err = run_prune(&f.ctx, Some("lit"), true, now())
            .await
            .expect_err("unknown source");
        assert!(err.to_string().contains("no source named \"lit\""), "{err}");
    }

    fn entry(id: &str, copies: Vec<Copy>) -> Entry {
        Entry {
            id: id.to_owned(),
            source: "lite".to_owned(),
            copies,
        }
    }

    fn copy(target: &str, status: &str, manifest: Option<Manifest>) -> Copy {
        Copy {
            target: target.to_owned(),
            status: status.to_owned(),
            detail: None,
            manifest,
        }
    }

    fn sample_manifest(id: &str, started: DateTime<Utc>) -> Manifest {
        Manifest {
            format: FORMAT.into(),
            id: id.into(),
            source: "lite".into(),
            source_type: "sqlite".into(),
            kind: BackupKind::Full,
            started_at: started,
            finished_at: started + TimeDelta::hours(1),
            coffre_version: "test".into(),
            dump_tool: "sqlite 3".into(),
            compression: Compression {
                algorithm: "zstd".into(),
                level: 1,
            },
            encryption: Encryption {
                algorithm: "age".into(),
                recipients: vec![RECIPIENT.into()],
            },
            plaintext_bytes: 1,
            objects: vec![ObjectEntry {
                name: DATA_OBJECT.into(),
                size: 1,
                sha256: "00".into(),
            }],
            tables: DumpStats::default(),
            unique_columns: Vec::new(),
            policy_sha256: None,
            derived_from: None,
            mac: None,
        }
    }

    #[test]
    fn candidates_take_dates_goodness_and_locks_from_trusted_manifests() {
        let started = at(2026, 1, 1, 2);
        let a = "20260101T020000.000Z-0001";
        let b = "20260102T020000.000Z-0002";
        let entries = [
            // Whole in west only: good, dated by its manifest.
            entry(
                a,
                vec![
                    copy("east", "size-mismatch", Some(sample_manifest(a, started))),
                    copy("west", "ok", Some(sample_manifest(a, started))),
                ],
            ),
            // Trusted manifest, data missing everywhere: a candidate, not good.
            entry(
                b,
                vec![copy(
                    "east",
                    "missing-data",
                    Some(sample_manifest(b, started + TimeDelta::days(1))),
                )],
            ),
            // Rejected everywhere: not a candidate.
            entry(
                "20260103T020000.000Z-0003",
                vec![copy("east", "rejected-manifest", None)],
            ),
        ];
        let (found, left_alone) = candidates(&entries, Some(30));
        assert_eq!(
            found,
            [
                Candidate {
                    id: a.to_owned(),
                    created: started,
                    good: true,
                    locked_until: Some(at(2026, 1, 31, 4)),
                },
                Candidate {
                    id: b.to_owned(),
                    created: started + TimeDelta::days(1),
                    good: false,
                    locked_until: Some(at(2026, 2, 1, 4)),
                },
            ]
        );
        assert_eq!(left_alone.len(), 1);
        assert_eq!(left_alone[0].id, "20260103T020000.000Z-0003");
        assert_eq!(
            left_alone[0].reasons[1], "east: rejected-manifest",
            "{left_alone:?}"
        );

        let (found, _) = candidates(&entries, None);
        assert!(found.iter().all(|c| c.locked_until.is_none()));
        assert_eq!(locked_until(started, 36500), at(2125, 12, 8, 3));
    }

    #[test]
    fn locked_backups_are_kept_until_the_lock_expires() {
        let policy = crate::retention::RetentionPolicy {
            keep_last: 1,
            ..Default::default()
        };
        let old = "20261101T020000.000Z-0001";
        let new = "20261120T020000.000Z-0002";
        let entries = [
            entry(
                old,
                vec![copy(
                    "east",
                    "ok",
                    Some(sample_manifest(old, at(2026, 11, 1, 2))),
                )],
            ),
            entry(
                new,
                vec![copy(
                    "east",
                    "ok",
                    Some(sample_manifest(new, at(2026, 11, 20, 2))),
                )],
            ),
        ];
        // Finished 2026-11-01 03:00, locked 30 days (and the margin): still locked.
        let (found, _) = candidates(&entries, Some(30));
        let verdicts = retention::plan(&policy, &found, now());
        assert!(verdicts.iter().all(|v| v.keep), "{verdicts:?}");
        assert!(verdicts[1].reasons[0].starts_with("object lock until 2026-12-01T04:00:00Z"));
        // A 7-day lock has expired by then.
        let (found, _) = candidates(&entries, Some(7));
        let verdicts = retention::plan(&policy, &found, now());
        assert!(!verdicts[1].keep, "{verdicts:?}");
    }

    #[test]
    fn report_json_shape() {
        let report = PruneReport {
            dry_run: false,
            now: now(),
            ok: false,
            sources: vec![SourcePrune {
                source: "lite".into(),
                policy: "keep_last 1".into(),
                note: None,
                error: None,
                unreachable: Vec::new(),
                backups: vec![BackupPrune {
                    id: "20261101T020000.000Z-0001".into(),
                    created: Some(at(2026, 11, 1, 2)),
                    keep: false,
                    action: Action::PartiallyDeleted,
                    reasons: vec!["not selected by keep_last/daily/weekly/monthly/yearly".into()],
                    targets: vec![
                        TargetDeletion {
                            target: "east".into(),
                            status: "deleted".into(),
                            error: None,
                        },
                        TargetDeletion {
                            target: "west".into(),
                            status: "failed".into(),
                            error: Some("target west: delete …".into()),
                        },
                    ],
                }],
                kept: 0,
                deleted: 0,
                failed: 1,
                would_delete: 0,
                skipped: 0,
            }],
            kept: 0,
            deleted: 0,
            failed: 1,
            would_delete: 0,
            skipped: 0,
        };
        let json = serde_json::to_value(&report).expect("json");
        assert_eq!(
            json,
            serde_json::json!({
                "dry_run": false,
                "now": "2026-11-22T03:00:00Z",
                "ok": false,
                "sources": [{
                    "source": "lite",
                    "policy": "keep_last 1",
                    "backups": [{
                        "id": "20261101T020000.000Z-0001",
                        "created": "2026-11-01T02:00:00Z",
                        "keep": false,
                        "action": "partially deleted",
                        "reasons": ["not selected by keep_last/daily/weekly/monthly/yearly"],
                        "targets": [
                            {"target": "east", "status": "deleted"},
                            {"target": "west", "status": "failed", "error": "target west: delete …"}
                        ]
                    }],
                    "kept": 0, "deleted": 0, "failed": 1, "would_delete": 0, "skipped": 0
                }],
                "kept": 0, "deleted": 0, "failed": 1, "would_delete": 0, "skipped": 0
            })
        );
    }
}
