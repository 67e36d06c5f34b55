//! Getting an anonymizer ready for a source: its policy, the anonymization key,
//! the live schema, and the fail-closed check of one against the other — all
//! before a single row is read.

use std::collections::HashSet;
use std::sync::Arc;

use super::policy::{self, CheckReport, Policy};
use super::sample::{self, SampleFrom};
use super::schema::{self, SchemaInfo};
use super::transform::Anonymizer;
use crate::config::{Config, SourceConfig};
use crate::keys::{self, SecretKeyError};
use crate::pipeline::{Context, ContextError};

/// The environment variable that holds the anonymization key (overrides `key_file`).
pub const KEY_ENV: &str = "COFFRE_ANONYMIZATION_KEY";
/// Shortest key accepted, in bytes.
pub const MIN_KEY_BYTES: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(transparent)]
    Context(#[from] ContextError),
    #[error(
        "source {0} has no anonymization policy: add policy = \"policies/{0}.toml\" to [sources.{0}] (`coffre policy init {0}` writes a starting one)"
    )]
    NoPolicy(String),
    #[error(transparent)]
    Policy(#[from] policy::PolicyError),
    #[error(
        "no anonymization key: set {KEY_ENV} or [anonymization] key_file (e.g. `head -c 32 /dev/urandom > /etc/coffre/anonymization.key`)"
    )]
    NoKey,
    #[error("anonymization key {where_}: {reason}")]
    BadKey { where_: String, reason: String },
    #[error("reading the schema of source {source_name}: {reason}")]
    Schema { source_name: String, reason: String },
    #[error("policy check failed ({} problems):\n{}", .0.errors.len(), .0.errors.join("\n"))]
    Check(CheckReport),
}

/// Reads the anonymization key from the environment or the configured file.
pub fn load_key(config: &Config) -> Result<Vec<u8>, SetupError> {
    let file = config.anonymization.key_file.as_deref();
    keys::read_secret_key(KEY_ENV, file, MIN_KEY_BYTES, "").map_err(|e| match e {
        SecretKeyError::Unset => SetupError::NoKey,
        SecretKeyError::Bad { where_, reason } => SetupError::BadKey { where_, reason },
    })
}

/// The policy of a source.
pub fn load_policy(config: &Config, source: &str) -> Result<Policy, SetupError> {
    let cfg = config.source(source).map_err(ContextError::from)?;
    let path = cfg
        .policy()
        .ok_or_else(|| SetupError::NoPolicy(source.to_owned()))?;
    Ok(Policy::load(path)?)
}

/// The schema policies name the tables of a dump that names none: the database of a
/// MySQL source's URL, `main` for SQLite.
pub fn default_schema(config: &Config, source: &str) -> String {
    match config.source(source) {
        Ok(SourceConfig::Mysql(my)) => crate::source::MysqlDatabase::new(my.url.clone())
            .database()
            .unwrap_or_default(),
        _ => crate::anonymize::transform::SQLITE_SCHEMA.to_owned(),
    }
}

/// The live schema of a source (blocking: queries the database).
pub fn live_schema(ctx: &Context, source: &str) -> Result<SchemaInfo, SetupError> {
    let err = |reason: String| SetupError::Schema {
        source_name: source.to_owned(),
        reason,
    };
    match ctx.config.source(source).map_err(ContextError::from)? {
        SourceConfig::Postgres(_) => {
            let db = ctx.postgres(source)?;
            schema::postgres_schema(&db).map_err(|e| err(e.to_string()))
        }
        SourceConfig::Mysql(_) => {
            let db = ctx.mysql(source)?;
            schema::mysql_schema(&db).map_err(|e| err(e.to_string()))
        }
        SourceConfig::Sqlite(s) => schema::sqlite_schema(&s.path).map_err(|e| err(e.to_string())),
    }
}

/// Checks the policy of a source against its live schema (blocking); when the
/// policy is usable, also samples the columns it keeps for personal-looking values.
pub fn check_source(ctx: &Context, source: &str) -> Result<CheckReport, SetupError> {
    let policy = load_policy(&ctx.config, source)?;
    let schema = live_schema(ctx, source)?;
    let mut report = policy::check(&policy, &schema);
    if report.errors.is_empty() {
        report
            .warnings
            .extend(sample_warnings(ctx, source, &policy, &schema)?);
    }
    Ok(report)
}

/// Warnings about kept columns whose sampled values look personal. A sample
/// that cannot be read is itself a warning: the check does not depend on it.
fn sample_warnings(
    ctx: &Context,
    source: &str,
    policy: &Policy,
    schema_info: &SchemaInfo,
) -> Result<Vec<String>, SetupError> {
    let samples = match ctx.config.source(source).map_err(ContextError::from)? {
        SourceConfig::Postgres(_) => {
            let db = ctx.postgres(source)?;
            sample::sample(policy, schema_info, SampleFrom::Postgres(&db))
        }
        SourceConfig::Mysql(_) => {
            let db = ctx.mysql(source)?;
            sample::sample(policy, schema_info, SampleFrom::Mysql(&db))
        }
        SourceConfig::Sqlite(s) => sample::sample(policy, schema_info, SampleFrom::Sqlite(&s.path)),
    };
    Ok(match samples {
        Ok(samples) => sample::findings(&policy.file, &samples),
        Err(e) => vec![format!(
            "policy {}: kept columns could not be sampled for personal data: {e}",
            policy.file.display()
        )],
    })
}

/// A ready anonymizer, with what the manifest records about it.
pub struct Prepared {
    pub anonymizer: Anonymizer,
    pub policy_sha256: String,
    pub unique_columns: Vec<String>,
    pub warnings: Vec<String>,
}

/// Builds an anonymizer from unique columns already known (e.g. from a manifest).
pub fn with_unique(
    config: &Config,
    source: &str,
    unique: &[String],
) -> Result<Prepared, SetupError> {
    let policy = load_policy(config, source)?;
    let key = load_key(config)?;
    let sha = policy.sha256.clone();
    let unique_set: HashSet<String> = unique.iter().cloned().collect();
    Ok(Prepared {
        anonymizer: Anonymizer::new(Arc::new(policy), &key, unique_set)
            .with_default_schema(default_schema(config, source)),
        policy_sha256: sha,
        unique_columns: unique.to_vec(),
        warnings: Vec::new(),
    })
}

/// Loads everything and checks the policy against the live schema; fails closed
/// on any error of the check (blocking).
pub fn prepare(ctx: &Context, source: &str) -> Result<Prepared, SetupError> {
    let policy = load_policy(&ctx.config, source)?;
    let key = load_key(&ctx.config)?;
    let schema = live_schema(ctx, source)?;
    let mut report = policy::check(&policy, &schema);
    if !report.errors.is_empty() {
        return Err(SetupError::Check(report));
    }
    report
        .warnings
        .extend(sample_warnings(ctx, source, &policy, &schema)?);
    let unique = Anonymizer::unique_columns(&schema);
    let mut unique_columns: Vec<String> = unique.iter().cloned().collect();
    unique_columns.sort();
    let sha = policy.sha256.clone();
    Ok(Prepared {
        anonymizer: Anonymizer::new(Arc::new(policy), &key, unique)
            .with_default_schema(default_schema(&ctx.config, source)),
        policy_sha256: sha,
        unique_columns,
        warnings: report.warnings,
    })
}
