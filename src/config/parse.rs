//! TOML text → typed [`Config`]: keys checked, defaults applied, paths resolved.
//!
//! The text is parsed into a spanned tree first, so every problem names its line. Each
//! table is then checked for unknown keys (with a "did you mean"), its `type` read by
//! hand, and the rest deserialized into a private raw struct with `deny_unknown_fields`.
//! Sub-tables (`[sources.NAME.retention]`, a target's `object_lock`, inline or not) are
//! taken out first and read the same way, so that their keys too are named with a line.
//! Required keys are checked here; values (ranges, names, URLs, references) are checked
//! by [`super::validate`].

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Component, Path, PathBuf};

use serde::Deserialize;
use serde::de::DeserializeOwned;
use toml::Spanned;
use toml::de::{DeTable, DeValue, ValueDeserializer};

use super::locate::{LineIndex, Locations};
use super::{
    AlertsConfig, AnonymizationConfig, ApiConfig, CompressionConfig, Config,
    DEFAULT_STALL_TIMEOUT_SECS, DrillConfig, DrillPick, EncryptionConfig, FsTarget,
    IntegrityConfig, MysqlSource, ObjectLockConfig, ObjectLockMode, PostgresSource, Problem,
    S3Target, ServiceConfig, SourceConfig, SqliteSource, TargetConfig, did_you_mean, table_label,
};
use crate::retention::RetentionPolicy;

const TOP_KEYS: &[&str] = &[
    "state_dir",
    "encryption",
    "compression",
    "anonymization",
    "integrity",
    "service",
    "alerts",
    "api",
    "targets",
    "sources",
    "drills",
];
const TARGET_TYPES: &[&str] = &["s3", "fs"];
const SOURCE_TYPES: &[&str] = &["postgres", "mysql", "sqlite"];
/// Types people will try that coffre knows of but does not support (yet).
const SOURCE_TYPES_NOT_YET: &[&str] = &["mssql", "oracle"];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEncryption {
    recipients: Option<Vec<String>>,
    identity_file: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCompression {
    level: Option<i64>,
    threads: Option<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawService {
    time_zone: Option<String>,
    max_concurrent_jobs: Option<i64>,
    catch_up_window_hours: Option<i64>,
    jitter_secs: Option<i64>,
    listen: Option<String>,
    shutdown_grace_secs: Option<i64>,
    prune_schedule: Option<String>,
    heal_schedule: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAlerts {
    webhook_url: Option<String>,
    webhook_token_env: Option<String>,
    timeout_secs: Option<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApi {
    listen: Option<String>,
    allow_plain_http: Option<bool>,
    tls_cert: Option<String>,
    tls_key: Option<String>,
    session_minutes: Option<i64>,
    password_max_age_days: Option<i64>,
    token_max_days: Option<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDrill {
    schedule: Option<String>,
    scratch_url: Option<String>,
    rto_seconds: Option<i64>,
    assertions: Option<Vec<String>>,
    targets: Option<Vec<String>>,
    pick: Option<Spanned<String>>,
    window_days: Option<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKeyFile {
    key_file: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawS3 {
    bucket: Option<String>,
    region: Option<String>,
    endpoint: Option<String>,
    prefix: Option<String>,
    access_key_id_env: Option<String>,
    secret_access_key_env: Option<String>,
    part_size_mib: Option<i64>,
    stall_timeout_secs: Option<i64>,
}

/// `object_lock` of an S3 target, inline (`{ mode = "governance", days = 30 }`) or a table.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawObjectLock {
    mode: Option<Spanned<String>>,
    days: Option<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFs {
    path: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPostgres {
    url: Option<String>,
    password_file: Option<String>,
    targets: Option<Vec<String>>,
    owners_and_privileges: Option<bool>,
    pg_dump: Option<String>,
    psql: Option<String>,
    policy: Option<String>,
    anonymize: Option<bool>,
    schedule: Option<String>,
    rpo_hours: Option<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMysql {
    url: Option<String>,
    password_file: Option<String>,
    targets: Option<Vec<String>>,
    mysqldump: Option<String>,
    mysql: Option<String>,
    events: Option<bool>,
    policy: Option<String>,
    anonymize: Option<bool>,
    schedule: Option<String>,
    rpo_hours: Option<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSqlite {
    path: Option<String>,
    targets: Option<Vec<String>>,
    policy: Option<String>,
    anonymize: Option<bool>,
    schedule: Option<String>,
    rpo_hours: Option<i64>,
}

/// Parses `text`, loaded from `file`, into a config and the line of every key; or every
/// problem found on the way.
pub(super) fn parse(text: &str, file: PathBuf) -> Result<(Config, Locations), Vec<Problem>> {
    let lines = LineIndex::new(text);
    let root = DeTable::parse(text).map_err(|e| vec![syntax_problem(text, &lines, &e)])?;
    let locations = Locations::from_document(root.get_ref(), &lines);
    let base_dir = file.parent().unwrap_or(Path::new("")).to_path_buf();
    let mut parser = Parser {
        lines: &lines,
        base_dir: &base_dir,
        problems: Vec::new(),
    };
    let config = parser.document(root.into_inner(), file);
    match config {
        Some(config) if parser.problems.is_empty() => Ok((config, locations)),
        _ => Err(parser.problems),
    }
}

pub(crate) fn syntax_problem(text: &str, lines: &LineIndex, error: &toml::de::Error) -> Problem {
    let mut message = error.message().trim().to_lowercase();
    if message == "duplicate key" {
        message.push_str(": each key and each [table] may appear only once");
    }
    match error.span() {
        Some(span) => Problem {
            line: Some(lines.line(span.start)),
            message: format!(
                "invalid toml at column {}: {message}",
                lines.column(text, span.start)
            ),
        },
        None => Problem {
            line: None,
            message: format!("invalid toml: {message}"),
        },
    }
}

/// A table being read, for messages: `[targets.paris]` and its header line.
struct Scope {
    /// `None` for the top level of the document.
    label: Option<String>,
    line: Option<usize>,
}

impl Scope {
    fn top() -> Self {
        Scope {
            label: None,
            line: None,
        }
    }

    /// `in [targets.paris]` or `at the top level`.
    fn place(&self) -> String {
        match &self.label {
            Some(label) => format!("in {label}"),
            None => "at the top level".to_owned(),
        }
    }
}

struct Parser<'a> {
    lines: &'a LineIndex,
    base_dir: &'a Path,
    problems: Vec<Problem>,
}

impl Parser<'_> {
    fn report(&mut self, line: Option<usize>, message: String) {
        self.problems.push(Problem { line, message });
    }

    fn line(&self, span: &Range<usize>) -> Option<usize> {
        Some(self.lines.line(span.start))
    }

    fn scope(&self, label: String, key_span: &Range<usize>) -> Scope {
        Scope {
            label: Some(label),
            line: self.line(key_span),
        }
    }

    fn document(&mut self, mut root: DeTable<'_>, file: PathBuf) -> Option<Config> {
        let top = Scope::top();
        self.unknown_keys(&root, TOP_KEYS, &top);

        let state_dir = match root.remove("state_dir") {
            Some(value) => self.value::<String>(value, "state_dir", &top),
            None => {
                self.missing("state_dir", &top);
                None
            }
        };

        let encryption = match root.remove_entry("encryption") {
            Some((key, value)) => {
                let scope = self.scope("[encryption]".to_owned(), &key.span());
                self.encryption(value, &scope)
            }
            None => {
                self.report(
                    None,
                    "missing table [encryption]: add it with recipients = [\"age1...\"] \
                     (run `coffre keygen` to make a recipient)"
                        .to_owned(),
                );
                None
            }
        };

        let compression = match root.remove_entry("compression") {
            Some((key, value)) => {
                let scope = self.scope("[compression]".to_owned(), &key.span());
                self.compression(value, &scope)
            }
            None => Some(CompressionConfig::default()),
        };

        let anonymization = self
            .key_file_section("anonymization", &mut root)
            .map(|key_file| AnonymizationConfig { key_file });
        let integrity = self
            .key_file_section("integrity", &mut root)
            .map(|key_file| IntegrityConfig { key_file });

        let service = match root.remove_entry("service") {
            Some((key, value)) => {
                let scope = self.scope("[service]".to_owned(), &key.span());
                self.service(value, &scope)
            }
            None => Some(ServiceConfig::default()),
        };

        let alerts = match root.remove_entry("alerts") {
            Some((key, value)) => {
                let scope = self.scope("[alerts]".to_owned(), &key.span());
                self.alerts(value, &scope)
            }
            None => Some(AlertsConfig::default()),
        };

        let api = match root.remove_entry("api") {
            Some((key, value)) => {
                let scope = self.scope("[api]".to_owned(), &key.span());
                let raw: Option<RawApi> = self.fields(value, &scope, &[]);
                raw.map(|raw| {
                    let default = ApiConfig::default();
                    ApiConfig {
                        listen: raw.listen,
                        allow_plain_http: raw.allow_plain_http.unwrap_or(false),
                        tls_cert: raw.tls_cert.map(|p| self.resolve(&p)),
                        tls_key: raw.tls_key.map(|p| self.resolve(&p)),
                        session_minutes: raw
                            .session_minutes
                            .map_or(default.session_minutes, unsigned),
                        password_max_age_days: raw
                            .password_max_age_days
                            .map_or(default.password_max_age_days, unsigned),
                        token_max_days: raw.token_max_days.map_or(default.token_max_days, unsigned),
                    }
                })
            }
            None => Some(ApiConfig::default()),
        };

        let targets = self.named("targets", &mut root, Self::target);
        let sources = self.named("sources", &mut root, Self::source);
        let drills = self.named("drills", &mut root, Self::drill);

        Some(Config {
            file,
            state_dir: self.resolve(&state_dir?),
            encryption: encryption?,
            compression: compression?,
            anonymization: anonymization?,
            integrity: integrity?,
            targets,
            sources,
            service: service?,
            drills,
            alerts: alerts?,
            api: api?,
        })
    }

    /// An optional section holding only `key_file`: `Some(None)` when absent.
    fn key_file_section(&mut self, name: &str, root: &mut DeTable<'_>) -> Option<Option<PathBuf>> {
        match root.remove_entry(name) {
            Some((key, value)) => {
                let scope = self.scope(format!("[{name}]"), &key.span());
                let raw: Option<RawKeyFile> = self.fields(value, &scope, &[]);
                raw.map(|raw| raw.key_file.map(|p| self.resolve(&p)))
            }
            None => Some(None),
        }
    }

    fn encryption(
        &mut self,
        value: Spanned<DeValue<'_>>,
        scope: &Scope,
    ) -> Option<EncryptionConfig> {
        let raw: RawEncryption = self.fields(value, scope, &[])?;
        let recipients = self.require(raw.recipients, "recipients", scope)?;
        Some(EncryptionConfig {
            recipients,
            identity_file: raw.identity_file.map(|p| self.resolve(&p)),
        })
    }

    fn compression(
        &mut self,
        value: Spanned<DeValue<'_>>,
        scope: &Scope,
    ) -> Option<CompressionConfig> {
        let raw: RawCompression = self.fields(value, scope, &[])?;
        let default = CompressionConfig::default();
        // Out-of-range numbers are clamped to values that are still out of range, so that
        // validation reports them with the allowed range.
        Some(CompressionConfig {
            level: raw.level.map_or(default.level, |level| {
                i32::try_from(level).unwrap_or(if level < 0 { i32::MIN } else { i32::MAX })
            }),
            threads: raw.threads.map_or(default.threads, |threads| {
                u32::try_from(threads).unwrap_or(u32::MAX)
            }),
        })
    }

    /// `[service]`: every key optional. Out-of-range numbers stay out of range (negative
    /// ones become the largest value), for validation to report with the allowed range.
    fn service(&mut self, value: Spanned<DeValue<'_>>, scope: &Scope) -> Option<ServiceConfig> {
        let raw: RawService = self.fields(value, scope, &[])?;
        let default = ServiceConfig::default();
        Some(ServiceConfig {
            time_zone: raw.time_zone.unwrap_or(default.time_zone),
            max_concurrent_jobs: raw
                .max_concurrent_jobs
                .map_or(default.max_concurrent_jobs, |n| {
                    u32::try_from(n).unwrap_or(if n < 0 { 0 } else { u32::MAX })
                }),
            catch_up_window_hours: raw
                .catch_up_window_hours
                .map_or(default.catch_up_window_hours, unsigned),
            jitter_secs: raw.jitter_secs.map_or(default.jitter_secs, unsigned),
            listen: raw.listen.unwrap_or(default.listen),
            shutdown_grace_secs: raw
                .shutdown_grace_secs
                .map_or(default.shutdown_grace_secs, unsigned),
            prune_schedule: raw.prune_schedule,
            heal_schedule: raw.heal_schedule,
        })
    }

    /// `[alerts]`: every key optional.
    fn alerts(&mut self, value: Spanned<DeValue<'_>>, scope: &Scope) -> Option<AlertsConfig> {
        let raw: RawAlerts = self.fields(value, scope, &[])?;
        let default = AlertsConfig::default();
        Some(AlertsConfig {
            webhook_url: raw.webhook_url,
            webhook_token_env: raw.webhook_token_env,
            timeout_secs: raw.timeout_secs.map_or(default.timeout_secs, unsigned),
        })
    }

    /// `[drills.SOURCE]`: every key optional here (what a source needs is validated).
    fn drill(&mut self, value: Spanned<DeValue<'_>>, scope: &Scope) -> Option<DrillConfig> {
        let raw: RawDrill = self.fields(value, scope, &[])?;
        let pick = match raw.pick {
            None => DrillPick::Newest,
            Some(pick) => {
                let line = self.line(&pick.span());
                let written = pick.into_inner();
                let Some(found) = DrillPick::ALL.into_iter().find(|p| p.as_str() == written) else {
                    let names = DrillPick::ALL.map(DrillPick::as_str);
                    self.report(
                        line,
                        format!(
                            "unknown pick {written:?} {} (expected one of: {})",
                            scope.place(),
                            names.join(", ")
                        ),
                    );
                    return None;
                };
                found
            }
        };
        Some(DrillConfig {
            schedule: raw.schedule,
            scratch_url: raw.scratch_url,
            rto_seconds: raw.rto_seconds.map(unsigned),
            assertions: raw.assertions.unwrap_or_default(),
            targets: raw.targets.unwrap_or_default(),
            pick,
            window_days: raw.window_days.map_or(30, unsigned),
        })
    }

    /// `[targets.*]` or `[sources.*]`: a table of named tables, each read by `read`.
    fn named<T>(
        &mut self,
        section: &str,
        root: &mut DeTable<'_>,
        read: fn(&mut Self, Spanned<DeValue<'_>>, &Scope) -> Option<T>,
    ) -> BTreeMap<String, T> {
        let mut out = BTreeMap::new();
        let Some((key, value)) = root.remove_entry(section) else {
            return out;
        };
        let scope = self.scope(format!("[{section}]"), &key.span());
        let Some(entries) = self.table(value, &scope) else {
            return out;
        };
        for (name, value) in entries.into_inner() {
            let scope = self.scope(table_label(section, name.get_ref()), &name.span());
            if let Some(item) = read(self, value, &scope) {
                out.insert(name.into_inner().into_owned(), item);
            }
        }
        out
    }

    fn target(&mut self, value: Spanned<DeValue<'_>>, scope: &Scope) -> Option<TargetConfig> {
        let mut table = self.table(value, scope)?;
        match self.kind(table.get_mut(), scope, TARGET_TYPES, &[])? {
            "s3" => {
                // Read apart, so that its own keys are checked and located.
                let object_lock = match self.sub_table(table.get_mut(), "object_lock", scope) {
                    Some((value, lock_scope)) => self.object_lock(value, &lock_scope).map(Some),
                    None => Some(None),
                };
                let raw: RawS3 =
                    self.fields_around(table_value(table), scope, &["type"], &["object_lock"])?;
                let bucket = self.require(raw.bucket, "bucket", scope)?;
                Some(TargetConfig::S3(S3Target {
                    bucket,
                    region: raw.region.unwrap_or_else(|| "us-east-1".to_owned()),
                    endpoint: raw.endpoint,
                    prefix: raw.prefix.unwrap_or_default(),
                    access_key_id_env: raw.access_key_id_env,
                    secret_access_key_env: raw.secret_access_key_env,
                    part_size_mib: raw
                        .part_size_mib
                        .map_or(8, |size| u64::try_from(size).unwrap_or(u64::MAX)),
                    stall_timeout_secs: raw
                        .stall_timeout_secs
                        .map_or(DEFAULT_STALL_TIMEOUT_SECS, |secs| {
                            u64::try_from(secs).unwrap_or(0)
                        }),
                    object_lock: object_lock?,
                }))
            }
            _ => {
                let raw: RawFs = self.fields(table_value(table), scope, &["type"])?;
                let path = self.require(raw.path, "path", scope)?;
                Some(TargetConfig::Fs(FsTarget {
                    path: self.resolve(&path),
                }))
            }
        }
    }

    fn source(&mut self, value: Spanned<DeValue<'_>>, scope: &Scope) -> Option<SourceConfig> {
        let mut table = self.table(value, scope)?;
        let kind = self.kind(table.get_mut(), scope, SOURCE_TYPES, SOURCE_TYPES_NOT_YET);
        // Read apart, so that its own keys are checked and located.
        let retention = match self.sub_table(table.get_mut(), "retention", scope) {
            Some((value, retention_scope)) => {
                self.fields::<RetentionPolicy>(value, &retention_scope, &[])
            }
            None => Some(RetentionPolicy::default()),
        };
        const AFTER: &[&str] = &["retention"];
        match kind? {
            "postgres" => {
                let raw: RawPostgres =
                    self.fields_around(table_value(table), scope, &["type"], AFTER)?;
                let url = self.require(raw.url, "url", scope);
                let targets = self.require(raw.targets, "targets", scope);
                Some(SourceConfig::Postgres(PostgresSource {
                    url: url?,
                    password_file: raw.password_file.map(|p| self.resolve(&p)),
                    targets: targets?,
                    owners_and_privileges: raw.owners_and_privileges.unwrap_or(false),
                    pg_dump: self.program(raw.pg_dump.as_deref().unwrap_or("pg_dump")),
                    psql: self.program(raw.psql.as_deref().unwrap_or("psql")),
                    policy: raw.policy.map(|p| self.resolve(&p)),
                    anonymize: raw.anonymize.unwrap_or(false),
                    schedule: raw.schedule,
                    rpo_hours: raw.rpo_hours.map(unsigned),
                    retention: retention?,
                }))
            }
            "mysql" => {
                let raw: RawMysql =
                    self.fields_around(table_value(table), scope, &["type"], AFTER)?;
                let url = self.require(raw.url, "url", scope);
                let targets = self.require(raw.targets, "targets", scope);
                Some(SourceConfig::Mysql(MysqlSource {
                    url: url?,
                    password_file: raw.password_file.map(|p| self.resolve(&p)),
                    targets: targets?,
                    mysqldump: raw.mysqldump.as_deref().map(|p| self.program(p)),
                    mysql: raw.mysql.as_deref().map(|p| self.program(p)),
                    events: raw.events.unwrap_or(true),
                    policy: raw.policy.map(|p| self.resolve(&p)),
                    anonymize: raw.anonymize.unwrap_or(false),
                    schedule: raw.schedule,
                    rpo_hours: raw.rpo_hours.map(unsigned),
                    retention: retention?,
                }))
            }
            _ => {
                let raw: RawSqlite =
                    self.fields_around(table_value(table), scope, &["type"], AFTER)?;
                let path = self.require(raw.path, "path", scope);
                let targets = self.require(raw.targets, "targets", scope);
                Some(SourceConfig::Sqlite(SqliteSource {
                    path: self.resolve(&path?),
                    targets: targets?,
                    policy: raw.policy.map(|p| self.resolve(&p)),
                    anonymize: raw.anonymize.unwrap_or(false),
                    schedule: raw.schedule,
                    rpo_hours: raw.rpo_hours.map(unsigned),
                    retention: retention?,
                }))
            }
        }
    }

    /// Removes the sub-table `key` from `table`, with its scope for messages
    /// (`[targets.paris.object_lock]`, at the line of `key`).
    fn sub_table<'i>(
        &self,
        table: &mut DeTable<'i>,
        key: &str,
        parent: &Scope,
    ) -> Option<(Spanned<DeValue<'i>>, Scope)> {
        let (name, value) = table.remove_entry(key)?;
        let parent_label = parent.label.as_deref().unwrap_or("[]");
        let label = format!("{}.{key}]", parent_label.trim_end_matches(']'));
        Some((value, self.scope(label, &name.span())))
    }

    /// `object_lock`: a mode and a number of days, both required.
    fn object_lock(
        &mut self,
        value: Spanned<DeValue<'_>>,
        scope: &Scope,
    ) -> Option<ObjectLockConfig> {
        let raw: RawObjectLock = self.fields(value, scope, &[])?;
        let mode = self.require(raw.mode, "mode", scope);
        let days = self.require(raw.days, "days", scope);
        let (mode, days) = (mode?, days?);
        let line = self.line(&mode.span());
        let written = mode.into_inner();
        let Some(mode) = ObjectLockMode::ALL
            .into_iter()
            .find(|m| m.as_str() == written)
        else {
            let names = ObjectLockMode::ALL.map(ObjectLockMode::as_str);
            let mut message = format!(
                "unknown object lock mode {written:?} {} (expected one of: {}",
                scope.place(),
                names.join(", ")
            );
            if let Some(close) = did_you_mean(&written, names) {
                message.push_str(&format!("; did you mean {close:?}?"));
            }
            message.push(')');
            self.report(line, message);
            return None;
        };
        // Out of range stays out of range, for validation to report with the allowed range.
        let days = u32::try_from(days).unwrap_or(if days < 0 { 0 } else { u32::MAX });
        Some(ObjectLockConfig { mode, days })
    }

    /// Removes and checks `type`; returns it as one of `known`.
    fn kind(
        &mut self,
        table: &mut DeTable<'_>,
        scope: &Scope,
        known: &'static [&'static str],
        not_yet: &[&str],
    ) -> Option<&'static str> {
        let expected = known.join(", ");
        let Some(value) = table.remove("type") else {
            self.report(
                scope.line,
                format!(
                    "missing key \"type\" {}: add type = \"{}\" (expected one of: {expected})",
                    scope.place(),
                    known.first().copied().unwrap_or_default(),
                ),
            );
            return None;
        };
        let line = self.line(&value.span());
        let Some(kind) = value.get_ref().as_str() else {
            self.report(
                line,
                format!(
                    "key \"type\" {} must be a string, one of: {expected}",
                    scope.place()
                ),
            );
            return None;
        };
        if let Some(&known) = known.iter().find(|&&k| k == kind) {
            return Some(known);
        }
        let label = scope.label.as_deref().unwrap_or_default();
        if not_yet.contains(&kind) {
            let what = label
                .trim_start_matches('[')
                .split('.')
                .next()
                .unwrap_or_default();
            self.report(
                line,
                format!(
                    "{label}: {kind} {what} are not supported yet (supported types: {expected})"
                ),
            );
            return None;
        }
        let mut message = format!("unknown type {kind:?} in {label} (expected one of: {expected}");
        if let Some(close) = did_you_mean(kind, known.iter().copied()) {
            message.push_str(&format!("; did you mean {close:?}?"));
        } else if kind == "mariadb" {
            message.push_str("; MariaDB sources are type = \"mysql\"");
        }
        message.push(')');
        self.report(line, message);
        None
    }

    /// The table inside `value`, or a problem saying it must be one.
    fn table<'i>(
        &mut self,
        value: Spanned<DeValue<'i>>,
        scope: &Scope,
    ) -> Option<Spanned<DeTable<'i>>> {
        let span = value.span();
        match value.into_inner() {
            DeValue::Table(table) => Some(Spanned::new(span, table)),
            other => {
                let label = scope.label.as_deref().unwrap_or_default();
                let header = label.trim_start_matches('[').trim_end_matches(']');
                self.report(
                    self.line(&span),
                    format!(
                        "{header} must be a table, not {}: write {label} on a line of its own \
                         followed by its keys",
                        with_article(other.type_str())
                    ),
                );
                None
            }
        }
    }

    /// Checks the keys of the table in `value` against the fields of `T` (and `extra`,
    /// already removed), then deserializes it.
    fn fields<T: DeserializeOwned>(
        &mut self,
        value: Spanned<DeValue<'_>>,
        scope: &Scope,
        extra: &[&str],
    ) -> Option<T> {
        self.fields_around(value, scope, extra, &[])
    }

    /// Like [`Self::fields`], with keys read apart listed before (`before`) and after
    /// (`after`) the fields of `T` in messages.
    fn fields_around<T: DeserializeOwned>(
        &mut self,
        value: Spanned<DeValue<'_>>,
        scope: &Scope,
        before: &[&str],
        after: &[&str],
    ) -> Option<T> {
        let mut table = self.table(value, scope)?;
        let expected: Vec<&str> = before
            .iter()
            .chain(fields_of::<T>())
            .chain(after)
            .copied()
            .collect();
        let unknown = self.unknown_keys(table.get_ref(), &expected, scope);
        for key in &unknown {
            table.get_mut().remove(key.as_str());
        }
        let keys: Vec<(String, Range<usize>)> = table
            .get_ref()
            .iter()
            .map(|(k, v)| (k.get_ref().to_string(), v.span()))
            .collect();
        match T::deserialize(ValueDeserializer::from(table_value(table))) {
            // A misspelt key is likely a required one: reporting it missing too is noise.
            Ok(raw) => unknown.is_empty().then_some(raw),
            Err(error) => {
                let offset = error.span().map(|span| span.start);
                let key = offset.and_then(|offset| {
                    keys.iter()
                        .find(|(_, span)| span.contains(&offset))
                        .map(|(key, _)| key.as_str())
                });
                let line = offset.and_then(|o| self.line(&(o..o))).or(scope.line);
                self.report(line, type_message(error.message(), key, scope));
                None
            }
        }
    }

    /// Deserializes one value of the top level.
    fn value<T: DeserializeOwned>(
        &mut self,
        value: Spanned<DeValue<'_>>,
        key: &str,
        scope: &Scope,
    ) -> Option<T> {
        let line = self.line(&value.span());
        match T::deserialize(ValueDeserializer::from(value)) {
            Ok(value) => Some(value),
            Err(error) => {
                self.report(line, type_message(error.message(), Some(key), scope));
                None
            }
        }
    }

    /// Reports every key of `table` not in `expected`, and returns them.
    fn unknown_keys(
        &mut self,
        table: &DeTable<'_>,
        expected: &[&str],
        scope: &Scope,
    ) -> Vec<String> {
        let mut unknown = Vec::new();
        for key in table.keys() {
            let name = key.get_ref();
            if expected.contains(&name.as_ref()) {
                continue;
            }
            let mut message = format!(
                "unknown key {name:?} {} (expected one of: {}",
                scope.place(),
                expected.join(", ")
            );
            if let Some(close) = did_you_mean(name, expected.iter().copied()) {
                message.push_str(&format!("; did you mean {close:?}?"));
            }
            message.push(')');
            if scope.label.is_some() && TOP_KEYS.contains(&name.as_ref()) {
                message.push_str(&format!(
                    "; keys after a [table] header belong to that table: move {name} above \
                     the first [table]"
                ));
            }
            self.report(self.line(&key.span()), message);
            unknown.push(name.to_string());
        }
        unknown
    }

    fn require<T>(&mut self, value: Option<T>, key: &str, scope: &Scope) -> Option<T> {
        if value.is_none() {
            self.missing(key, scope);
        }
        value
    }

    fn missing(&mut self, key: &str, scope: &Scope) {
        let example = match key {
            "state_dir" => "\"/var/lib/coffre\"",
            "recipients" => "[\"age1...\"]",
            "bucket" => "\"my-backups\"",
            "path" => "\"/var/backups/coffre\"",
            "url" => "\"postgres://backup@db.internal:5432/billing\"",
            "targets" => "[\"local\"]",
            "mode" => "\"governance\" (or \"compliance\")",
            "days" => "30",
            _ => "...",
        };
        let mut message = format!(
            "missing key {key:?} {}: add {key} = {example}",
            scope.place()
        );
        if scope.label.is_none() {
            message.push_str(" above the first [table]");
        }
        self.report(scope.line, message);
    }

    /// A path from the config, relative to the config file's directory. Empty paths and
    /// paths starting with `~` are kept as written, for validation to reject.
    fn resolve(&self, raw: &str) -> PathBuf {
        if raw.is_empty() || raw.starts_with('~') {
            return PathBuf::from(raw);
        }
        self.base_dir
            .join(raw)
            .components()
            .filter(|c| !matches!(c, Component::CurDir))
            .collect()
    }

    /// A program: a bare name is kept for a `PATH` lookup, any other path is resolved.
    fn program(&self, raw: &str) -> PathBuf {
        if Path::new(raw).components().count() == 1 && !Path::new(raw).has_root() {
            PathBuf::from(raw)
        } else {
            self.resolve(raw)
        }
    }
}

/// A count read as unsigned: negative numbers become the largest value, for validation
/// to report with the allowed range.
fn unsigned(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(u64::MAX)
}

/// `an integer`, `a string`.
fn with_article(noun: &str) -> String {
    let article = if noun.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    };
    format!("{article} {noun}")
}

fn table_value(table: Spanned<DeTable<'_>>) -> Spanned<DeValue<'_>> {
    let span = table.span();
    Spanned::new(span, DeValue::Table(table.into_inner()))
}

/// Rewrites a serde type error in the terms of the config file.
fn type_message(message: &str, key: Option<&str>, scope: &Scope) -> String {
    let subject = match key {
        Some(key) => format!("key {key:?} {}", scope.place()),
        None => scope.place().trim_start_matches("in ").to_owned(),
    };
    let Some(detail) = message.strip_prefix("invalid type: ") else {
        // Unsigned fields read straight into their type (`[sources.NAME.retention]`).
        if let Some(rest) = message.strip_prefix("invalid value: integer `")
            && let Some((number, expected)) = rest.split_once("`, expected ")
            && let Some(max) = unsigned_max(expected)
        {
            return format!("{subject} must be an integer between 0 and {max}, not {number}");
        }
        return format!("{subject} has an invalid value: {}", message.to_lowercase());
    };
    let detail = detail
        .replace("expected i64", "expected an integer")
        .replace("expected u32", "expected an integer")
        .replace("expected a sequence", "expected an array");
    let (found, expected) = detail.split_once(", expected ").unwrap_or((&detail, ""));
    let fix = if found.starts_with("string")
        && (expected.contains("integer") || expected.contains("boolean"))
    {
        " (remove the quotes)"
    } else if expected == "a string" && !found.starts_with("sequence") {
        " (put it in quotes)"
    } else if expected == "an array" && found.starts_with("string") {
        " (write a list: [\"...\"])"
    } else {
        ""
    };
    format!("{subject} has the wrong type: found {detail}{fix}")
}

/// The largest value of serde's name for an unsigned integer type (`u32`).
fn unsigned_max(name: &str) -> Option<u64> {
    match name {
        "u8" => Some(u8::MAX.into()),
        "u16" => Some(u16::MAX.into()),
        "u32" => Some(u32::MAX.into()),
        "u64" => Some(u64::MAX),
        _ => None,
    }
}

/// The field names of a struct deriving `Deserialize`, as serde sees them.
fn fields_of<T: DeserializeOwned>() -> &'static [&'static str] {
    struct Capture<'a>(&'a mut &'static [&'static str]);

    impl<'de> serde::Deserializer<'de> for Capture<'_> {
        type Error = serde::de::value::Error;

        fn deserialize_any<V: serde::de::Visitor<'de>>(
            self,
            _: V,
        ) -> Result<V::Value, Self::Error> {
            Err(serde::de::Error::custom("only structs are captured"))
        }

        fn deserialize_struct<V: serde::de::Visitor<'de>>(
            self,
            _name: &'static str,
            fields: &'static [&'static str],
            _visitor: V,
        ) -> Result<V::Value, Self::Error> {
            *self.0 = fields;
            Err(serde::de::Error::custom("captured"))
        }

        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
            byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map enum
            identifier ignored_any
        }
    }

    let mut fields: &'static [&'static str] = &[];
    // The error is expected: capturing stops deserialization at the first call.
    let _ = T::deserialize(Capture(&mut fields));
    fields
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ConfigError, EXAMPLE};

    /// The error message for `text`, which must fail to load.
    fn error(text: &str) -> String {
        match Config::from_str_at(text, Path::new("/etc/coffre.toml")) {
            Ok(_) => panic!("config loaded:\n{text}"),
            Err(e @ ConfigError::Invalid { .. }) => e.to_string(),
            Err(e) => panic!("not a validation error: {e}"),
        }
    }

    /// The 1-based line of the first line of `text` containing `needle`.
    fn line_of(text: &str, needle: &str) -> usize {
        text.lines()
            .position(|l| l.contains(needle))
            .map(|i| i + 1)
            .unwrap_or_else(|| panic!("{needle:?} not in text"))
    }

    #[test]
    fn fields_are_captured_in_declaration_order() {
        assert_eq!(
            fields_of::<RawS3>(),
            [
                "bucket",
                "region",
                "endpoint",
                "prefix",
                "access_key_id_env",
                "secret_access_key_env",
                "part_size_mib",
                "stall_timeout_secs"
            ]
        );
        assert_eq!(fields_of::<RawObjectLock>(), ["mode", "days"]);
        assert_eq!(
            fields_of::<RetentionPolicy>(),
            [
                "keep_last",
                "daily",
                "weekly",
                "monthly",
                "yearly",
                "max_age_days"
            ]
        );
    }

    #[test]
    fn unknown_key_names_line_expected_keys_and_suggestion() {
        let text = EXAMPLE.replace("bucket = \"billing-paris\"", "bukket = \"billing-paris\"");
        let line = line_of(&text, "bukket");
        assert_eq!(
            error(&text),
            format!(
                "config /etc/coffre.toml:{line}: unknown key \"bukket\" in [targets.paris] \
                 (expected one of: type, bucket, region, endpoint, prefix, access_key_id_env, \
                 secret_access_key_env, part_size_mib, stall_timeout_secs, object_lock; did you \
                 mean \"bucket\"?)"
            )
        );
    }

    #[test]
    fn a_misspelt_required_key_is_not_also_reported_missing() {
        let text = EXAMPLE.replace("recipients = [", "recipientz = [");
        let err = error(&text);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains("did you mean \"recipients\"?"), "{err}");
    }

    #[test]
    fn unknown_keys_everywhere_are_all_reported() {
        let text = EXAMPLE
            .replace("state_dir =", "stat_dir =")
            .replace("threads = 0", "thread = 0")
            .replace(
                "targets = [\"local\"]",
                "targets = [\"local\"]\npth = \"x\"",
            );
        let err = error(&text);
        assert!(
            err.contains(&format!(
                ":{}: unknown key \"stat_dir\" at the top level (expected one of: state_dir, \
             encryption, compression, anonymization, integrity, service, alerts, api, targets, \
             sources, drills; did you mean \"state_dir\"?)",
                line_of(&text, "stat_dir")
            )),
            "{err}"
        );
        assert!(
            err.contains(&format!(
                ":{}: unknown key \"thread\" in [compression]",
                line_of(&text, "thread =")
            )),
            "{err}"
        );
        assert!(
            err.contains(&format!(
                ":{}: unknown key \"pth\" in [sources.demo] (expected one of: type, path, targets, policy, anonymize, \
             schedule, rpo_hours, retention; did you mean \"path\"?)",
                line_of(&text, "pth")
            )),
            "{err}"
        );
        // state_dir is then missing too: reported without a line.
        assert!(
            err.contains("config /etc/coffre.toml: missing key \"state_dir\""),
            "{err}"
        );
    }

    #[test]
    fn top_level_key_below_a_table_is_explained() {
        let text = EXAMPLE.replace("state_dir = \"/var/lib/coffre\"\n", "")
            + "state_dir = \"/var/lib/coffre\"\n";
        let err = error(&text);
        assert!(
            err.contains("unknown key \"state_dir\" in [drills.billing]"),
            "{err}"
        );
        assert!(
            err.contains("move state_dir above the first [table]"),
            "{err}"
        );
    }

    #[test]
    fn missing_key_is_reported_at_the_table_header() {
        let text = EXAMPLE.replace("bucket = \"billing-paris\"\n", "");
        assert_eq!(
            error(&text),
            format!(
                "config /etc/coffre.toml:{}: missing key \"bucket\" in [targets.paris]: \
                 add bucket = \"my-backups\"",
                line_of(&text, "[targets.paris]")
            )
        );
        let text = EXAMPLE.replace("targets = [\"local\"]\n", "");
        let err = error(&text);
        assert!(
            err.contains(&format!(
                ":{}: missing key \"targets\" in [sources.demo]: add targets = [\"local\"]",
                line_of(&text, "[sources.demo]")
            )),
            "{err}"
        );
        let start = EXAMPLE.find("recipients = [").expect("marker in the text");
        let end = start + EXAMPLE[start..].find("]\n").expect("marker in the text") + 2;
        let text = format!("{}{}", &EXAMPLE[..start], &EXAMPLE[end..]);
        let err = error(&text);
        assert!(
            err.contains(&format!(
                ":{}: missing key \"recipients\" in [encryption]",
                line_of(&text, "[encryption]")
            )),
            "{err}"
        );
    }

    #[test]
    fn missing_encryption_table() {
        let start = EXAMPLE.find("[encryption]").expect("marker in the text");
        let end = EXAMPLE
            .find("# Optional section.")
            .expect("marker in the text");
        let text = format!("{}{}", &EXAMPLE[..start], &EXAMPLE[end..]);
        let err = error(&text);
        assert!(
            err.starts_with(
                "config /etc/coffre.toml: missing table [encryption]: add it with recipients"
            ),
            "{err}"
        );
    }

    #[test]
    fn syntax_error_names_line_and_column() {
        let text = EXAMPLE.replace("region = \"eu-west-3\"", "region = eu-west-3");
        let line = line_of(&text, "region = eu-west-3");
        let err = error(&text);
        assert!(
            err.starts_with(&format!(
                "config /etc/coffre.toml:{line}: invalid toml at column 10: "
            )),
            "{err}"
        );
        let text = format!("{EXAMPLE}\n[targets.local]\ntype = \"fs\"\n");
        let err = error(&text);
        assert!(
            err.contains("duplicate key: each key and each [table] may appear only once"),
            "{err}"
        );
    }

    #[test]
    fn wrong_types_name_the_key_and_line() {
        let text = EXAMPLE.replace("level = 1 ", "level = \"1\"");
        assert_eq!(
            error(&text),
            format!(
                "config /etc/coffre.toml:{}: key \"level\" in [compression] has the wrong type: \
                 found string \"1\", expected an integer (remove the quotes)",
                line_of(&text, "level = \"1\"")
            )
        );
        let text = EXAMPLE.replace("targets = [\"local\"]", "targets = \"local\"");
        let err = error(&text);
        assert!(err.contains(&format!(
            ":{}: key \"targets\" in [sources.demo] has the wrong type: found string \"local\", \
             expected an array (write a list: [\"...\"])",
            line_of(&text, "targets = \"local\"")
        )), "{err}");
        let text = EXAMPLE.replace("bucket = \"billing-paris\"", "bucket = 12");
        let err = error(&text);
        assert!(
            err.contains(&format!(
                ":{}: key \"bucket\" in [targets.paris] has the wrong type: found integer `12`, \
             expected a string (put it in quotes)",
                line_of(&text, "bucket = 12")
            )),
            "{err}"
        );
        let text = EXAMPLE.replace("state_dir = \"/var/lib/coffre\"", "state_dir = 1");
        let err = error(&text);
        assert!(
            err.contains(":5: key \"state_dir\" at the top level has the wrong type"),
            "{err}"
        );
        let text = EXAMPLE.replace(
            "owners_and_privileges = false",
            "owners_and_privileges = \"no\"",
        );
        let err = error(&text);
        assert!(
            err.contains("expected a boolean (remove the quotes)"),
            "{err}"
        );
    }

    #[test]
    fn a_section_that_is_not_a_table() {
        let text = "state_dir = \"/s\"\ncompression = 3\ntargets = [\"local\"]\n\
                    [encryption]\nrecipients = []\n[sources.x]\ntype = \"sqlite\"\n\
                    path = \"x.db\"\ntargets = [\"local\"]\n";
        let err = error(text);
        assert!(
            err.contains(
                "config /etc/coffre.toml:2: compression must be a table, not an integer: \
                 write [compression] on a line of its own followed by its keys"
            ),
            "{err}"
        );
        assert!(
            err.contains("config /etc/coffre.toml:3: targets must be a table, not an array"),
            "{err}"
        );
    }

    #[test]
    fn unsupported_types_and_mariadb_are_explained() {
        let text = EXAMPLE.replace("type = \"sqlite\"", "type = \"oracle\"");
        assert_eq!(
            error(&text),
            format!(
                "config /etc/coffre.toml:{}: [sources.demo]: oracle sources are not supported yet \
                 (supported types: postgres, mysql, sqlite)",
                line_of(&text, "type = \"oracle\"")
            )
        );
        let text = EXAMPLE.replace("type = \"sqlite\"", "type = \"mariadb\"");
        assert!(
            error(&text).contains("; MariaDB sources are type = \"mysql\")"),
            "{}",
            error(&text)
        );
    }

    #[test]
    fn unknown_and_missing_types() {
        let text = EXAMPLE.replace("type = \"s3\"", "type = \"s4\"");
        assert_eq!(
            error(&text),
            format!(
                "config /etc/coffre.toml:{}: unknown type \"s4\" in [targets.paris] \
                 (expected one of: s3, fs; did you mean \"s3\"?)",
                line_of(&text, "type = \"s4\"")
            )
        );
        let text = EXAMPLE.replace("type = \"postgres\"\n", "");
        assert_eq!(
            error(&text),
            format!(
                "config /etc/coffre.toml:{}: missing key \"type\" in [sources.billing]: \
                 add type = \"postgres\" (expected one of: postgres, mysql, sqlite)",
                line_of(&text, "[sources.billing]")
            )
        );
    }

    const LOCK: &str = "object_lock = { mode = \"governance\", days = 30 }";

    #[test]
    fn object_lock_inline_or_as_a_table() {
        let lock = |text: &str| {
            let config = Config::from_str_at(text, Path::new("/etc/coffre.toml"))
                .unwrap_or_else(|e| panic!("{e}\n{text}"));
            config.targets["paris"].object_lock().copied()
        };
        let compliance = Some(ObjectLockConfig {
            mode: ObjectLockMode::Compliance,
            days: 3650,
        });
        let text = EXAMPLE.replace(LOCK, "object_lock = { mode = \"compliance\", days = 3650 }");
        assert_eq!(lock(&text), compliance);
        // The table form, after the target's other keys.
        let text = EXAMPLE.replace(
            LOCK,
            "[targets.paris.object_lock]\nmode = \"compliance\"\ndays = 3650",
        );
        assert_eq!(lock(&text), compliance);
        // Dotted keys are the same table too.
        let text = EXAMPLE.replace(
            LOCK,
            "object_lock.mode = \"compliance\"\nobject_lock.days = 3650",
        );
        assert_eq!(lock(&text), compliance);
        let text = EXAMPLE.replace(LOCK, "");
        assert_eq!(lock(&text), None);
    }

    #[test]
    fn object_lock_errors_name_the_line_and_the_fix() {
        let text = EXAMPLE.replace(LOCK, "object_lock = { mode = \"governence\", days = 30 }");
        assert_eq!(
            error(&text),
            format!(
                "config /etc/coffre.toml:{}: unknown object lock mode \"governence\" in \
                 [targets.paris.object_lock] (expected one of: governance, compliance; did you \
                 mean \"governance\"?)",
                line_of(&text, "governence")
            )
        );
        // The S3 API's spelling is not the config's.
        let text = EXAMPLE.replace(
            LOCK,
            "[targets.paris.object_lock]\nmode = \"COMPLIANCE\"\ndays = 30",
        );
        assert!(
            error(&text).starts_with(&format!(
                "config /etc/coffre.toml:{}: unknown object lock mode \"COMPLIANCE\"",
                line_of(&text, "COMPLIANCE")
            )),
            "{}",
            error(&text)
        );
        let text = EXAMPLE.replace(LOCK, "object_lock = { mode = \"governance\" }");
        assert_eq!(
            error(&text),
            format!(
                "config /etc/coffre.toml:{}: missing key \"days\" in [targets.paris.object_lock]: \
                 add days = 30",
                line_of(&text, "object_lock =")
            )
        );
        let text = EXAMPLE.replace(LOCK, "object_lock = { mode = \"governance\", dais = 30 }");
        assert_eq!(
            error(&text),
            format!(
                "config /etc/coffre.toml:{}: unknown key \"dais\" in [targets.paris.object_lock] \
                 (expected one of: mode, days; did you mean \"days\"?)",
                line_of(&text, "dais")
            )
        );
        let text = EXAMPLE.replace(
            LOCK,
            "object_lock = { mode = \"governance\", days = \"30\" }",
        );
        assert!(
            error(&text).contains(&format!(
                ":{}: key \"days\" in [targets.paris.object_lock] has the wrong type: found \
                 string \"30\", expected an integer (remove the quotes)",
                line_of(&text, "object_lock =")
            )),
            "{}",
            error(&text)
        );
        let text = EXAMPLE.replace(LOCK, "object_lock = \"governance\"");
        assert!(
            error(&text).contains(&format!(
                ":{}: targets.paris.object_lock must be a table, not a string",
                line_of(&text, "object_lock =")
            )),
            "{}",
            error(&text)
        );
        // Object Lock is an S3 feature.
        let text = EXAMPLE.replace(
            "path = \"/var/backups/coffre\"",
            "path = \"/var/backups/coffre\"\nobject_lock = { mode = \"governance\", days = 1 }",
        );
        assert!(
            error(&text).contains("unknown key \"object_lock\" in [targets.local]"),
            "{}",
            error(&text)
        );
    }

    #[test]
    fn retention_keys_and_types_are_checked() {
        let text = EXAMPLE.replace("weekly = 8", "wekly = 8");
        assert_eq!(
            error(&text),
            format!(
                "config /etc/coffre.toml:{}: unknown key \"wekly\" in [sources.billing.retention] \
                 (expected one of: keep_last, daily, weekly, monthly, yearly, max_age_days; did \
                 you mean \"weekly\"?)",
                line_of(&text, "wekly")
            )
        );
        let text = EXAMPLE.replace("daily = 14", "daily = -1");
        assert_eq!(
            error(&text),
            format!(
                "config /etc/coffre.toml:{}: key \"daily\" in [sources.billing.retention] must be \
                 an integer between 0 and 4294967295, not -1",
                line_of(&text, "daily = -1")
            )
        );
        let text = EXAMPLE.replace("yearly = 3", "yearly = \"3\"");
        assert_eq!(
            error(&text),
            format!(
                "config /etc/coffre.toml:{}: key \"yearly\" in [sources.billing.retention] has the \
                 wrong type: found string \"3\", expected an integer (remove the quotes)",
                line_of(&text, "yearly =")
            )
        );
        let text = EXAMPLE.replace("[sources.billing.retention]", "[sources.billing.retension]");
        assert!(
            error(&text).starts_with(&format!(
                "config /etc/coffre.toml:{}: unknown key \"retension\" in [sources.billing] \
                 (expected one of: type, url, password_file, targets, owners_and_privileges, \
                 pg_dump, psql, policy, anonymize, schedule, rpo_hours, retention; did you mean \
                 \"retention\"?)",
                line_of(&text, "retension")
            )),
            "{}",
            error(&text)
        );
        // A problem in the retention table does not hide one elsewhere in its source.
        let text = EXAMPLE
            .replace("weekly = 8", "wekly = 8")
            .replace("psql = \"/usr/bin/psql\"", "psq = \"/usr/bin/psql\"");
        assert_eq!(error(&text).lines().count(), 2, "{}", error(&text));
        // The inline form, on a SQLite source.
        let text = EXAMPLE.replace(
            "targets = [\"local\"]",
            "targets = [\"local\"]\nretention = { keep_last = 3, max_age_days = 30 }",
        );
        let config = Config::from_str_at(&text, Path::new("/x.toml")).expect("valid config");
        assert_eq!(
            config.sources["demo"].retention(),
            &RetentionPolicy {
                keep_last: 3,
                max_age_days: Some(30),
                ..RetentionPolicy::default()
            }
        );
    }

    #[test]
    fn paths_resolve_against_the_config_directory() {
        let base = Path::new("/etc/coffre");
        let parser = Parser {
            lines: &LineIndex::new(""),
            base_dir: base,
            problems: Vec::new(),
        };
        assert_eq!(parser.resolve("a/./b"), Path::new("/etc/coffre/a/b"));
        assert_eq!(parser.resolve("./a"), Path::new("/etc/coffre/a"));
        assert_eq!(parser.resolve("/abs"), Path::new("/abs"));
        assert_eq!(parser.resolve("~/x"), Path::new("~/x"));
        assert_eq!(parser.resolve(""), Path::new(""));
        assert_eq!(parser.program("pg_dump"), Path::new("pg_dump"));
        assert_eq!(
            parser.program("./pg_dump"),
            Path::new("/etc/coffre/pg_dump")
        );
        assert_eq!(parser.program("/usr/bin/psql"), Path::new("/usr/bin/psql"));
    }
}
