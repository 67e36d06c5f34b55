//! The configuration file: typed structs, loading, and errors that name the line and the fix.
//!
//! Loading is three pure steps, none of which touches a database, the network or any file
//! but the config itself:
//!
//! 1. [`parse`] turns the TOML text into a [`Config`]: unknown keys, missing keys, wrong
//!    types and unsupported `type`s are reported with their line; defaults are applied and
//!    relative paths resolved against the config file's directory.
//! 2. [`locate`] remembers the line of every key, so that later checks can point at it.
//! 3. [`validate`] checks values: age recipients, names, bucket names, URLs, ranges, and
//!    that every target a source names exists.
//!
//! Every problem found is reported at once, in file order, one per line, e.g.
//! `config /etc/coffre.toml:12: unknown key "bukket" in [targets.paris] (…; did you mean "bucket"?)`.
//! [`EXAMPLE`] is a complete, commented configuration.

pub(crate) mod locate;
pub(crate) mod parse;
mod validate;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::retention::RetentionPolicy;

/// The largest config file [`Config::load`] reads.
pub const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// A complete configuration with every key, documented; it parses and validates as is.
pub const EXAMPLE: &str = r#"# coffre configuration.
# Relative paths are resolved against the directory of this file; "~" is not expanded.

# Where coffre keeps its own state (catalog cache, locks, drill scratch space).
state_dir = "/var/lib/coffre"

[encryption]
# Every backup is encrypted to all of these age X25519 recipients (public keys).
# Run `coffre keygen` to make a key pair; keep the identity (secret key) offline.
recipients = [
    "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p",
]
# Optional: the identity file, only needed to restore and to run drills.
identity_file = "/etc/coffre/identity.age"

# Optional section.
[compression]
level = 1      # zstd level, 1 (fastest) to 19 (smallest); default 1 (on billing dumps
               # it is both faster and smaller than 3: see ARCHITECTURE.md)
threads = 0    # zstd worker threads, 0 to 64; 0 (default) = on the encoding thread; more
               # helps only when the database outruns one core and cores are spare

# Optional section: the secret key of anonymization (see policies/README.md). Fake values
# derive from it, so the same key gives the same fakes in every table and every run.
# COFFRE_ANONYMIZATION_KEY in the environment overrides the file.
[anonymization]
key_file = "/etc/coffre/anonymization.key"

# The appliance's integrity key: every manifest carries an HMAC-SHA256 tag under it,
# and a backup whose manifest does not check is never listed, restored or verified
# (age recipients are public: anyone could encrypt a forged backup to them). Needed
# by every command that writes or reads backups; COFFRE_INTEGRITY_KEY overrides it.
# Make one with `head -c 32 /dev/urandom > /etc/coffre/integrity.key`.
[integrity]
key_file = "/etc/coffre/integrity.key"

# Optional section: `coffre serve`, the long-running service that backs up each source
# with a `schedule` (see the sources below). Every key is optional.
[service]
time_zone = "UTC"              # IANA zone the schedules are read in, e.g. "Europe/Paris";
                               # default "UTC"
max_concurrent_jobs = 2        # jobs running at once over all sources, 1 to 64; default 2
catch_up_window_hours = 24     # at start-up, a run missed at most this long ago runs once;
                               # 0 to 8760, 0 = never catch up; default 24
jitter_secs = 0                # each source starts up to this long after its slot (a fixed
                               # offset per source, to spread them); 0 to 3600; default 0
listen = "127.0.0.1:9187"      # /healthz, /readyz and /metrics (unauthenticated: keep them
                               # on loopback or a private network); default "127.0.0.1:9187"
shutdown_grace_secs = 60       # on SIGTERM or SIGINT, how long running jobs may finish
                               # before they are cancelled; 0 to 3600; default 60
prune_schedule = "0 5 * * *"   # optional: prune every source that has a retention table
heal_schedule = "30 5 * * *"   # optional: heal every source (copy backups to the targets
                               # that miss them, from a whole copy)

# Optional section: the admin API (/api/v1) of `coffre serve`: users with roles (admin,
# operator, support, auditor), argon2id passwords, TOTP for admin and operator, API
# tokens, and a tamper-evident audit log. Off unless listen is set. Make the first admin
# with `coffre user create-admin NAME`. See README.md ("Admin API").
[api]
listen = "127.0.0.1:8080"      # without TLS: loopback only, unless allow_plain_http
# tls_cert = "/etc/coffre/api.crt"   # optional: HTTPS with this certificate chain (PEM)
# tls_key = "/etc/coffre/api.key"    # and its private key (PEM); then any address
allow_plain_http = false       # true: plain HTTP on any address (a TLS proxy in front)
session_minutes = 15           # login sessions last this long, 1 to 1440; default 15
password_max_age_days = 90     # passwords expire, 1 to 3650; default 90
token_max_days = 365           # API tokens last at most this long, 1 to 3650; default 365

# Optional section: a generic JSON webhook, POSTed on a failed or degraded backup, a
# failed drill, a failed prune or heal, and a source whose newest good backup is older
# than its rpo_hours. See README.md ("Alerts") for the payload.
[alerts]
webhook_url = "https://hooks.example.com/coffre"
webhook_token_env = "COFFRE_WEBHOOK_TOKEN"   # optional: NAME of a variable holding a
                                             # bearer token (sent as Authorization)
timeout_secs = 10                            # optional, 1 to 300; default 10

# Targets are where backups are stored; every source names one or more of them.
# Names use lowercase letters, digits, "_" and "-" (they become part of object keys).
[targets.paris]
type = "s3"
bucket = "billing-paris"
region = "eu-west-3"                      # optional, default "us-east-1"
# endpoint = "http://127.0.0.1:8333"      # optional, for S3-compatible servers
prefix = "coffre/"                        # optional, default ""; ends with "/" when set
# Optional: the NAMES of environment variables holding the credentials (never the
# secrets themselves); set both or neither (neither = the default AWS credential chain).
access_key_id_env = "PARIS_KEY_ID"
secret_access_key_env = "PARIS_SECRET"
part_size_mib = 8                         # optional, multipart part size 5 to 512; default 8
stall_timeout_secs = 120                  # optional, 5 to 3600; default 120: a backup drops
                                          # this target (the others go on) once it has
                                          # accepted no data for this long
# Optional: S3 Object Lock (WORM) on every object coffre writes here, for `days` days
# (1 to 36500) from its writing. The bucket must have been created with Object Lock
# enabled. "governance": users with s3:BypassGovernanceRetention can still delete;
# "compliance": nobody can, not even the root account. `coffre prune` keeps locked backups.
# Also written as a table: [targets.paris.object_lock] with mode = ... and days = ...
object_lock = { mode = "governance", days = 30 }

[targets.local]
type = "fs"
path = "/var/backups/coffre"

# Sources are the databases to back up.
[sources.billing]
type = "postgres"
# No password here: use PGPASSWORD, PGPASSFILE or password_file.
url = "postgres://backup@db.internal:5432/billing"
password_file = "/etc/coffre/pg.pass"     # optional
targets = ["paris", "local"]
owners_and_privileges = false             # optional; false = pg_dump --no-owner --no-privileges
pg_dump = "/usr/bin/pg_dump"              # optional, default "pg_dump" from PATH
psql = "/usr/bin/psql"                    # optional, default "psql" from PATH
policy = "policies/billing.toml"          # optional: the anonymization policy of this source
anonymize = false                         # optional: true = every backup is anonymized
schedule = "0 2 * * *"                    # optional: when `coffre serve` backs it up (cron:
                                          # minute hour day-of-month month day-of-week, or 6
                                          # fields with seconds first; in [service] time_zone)
rpo_hours = 26                            # optional: `coffre serve` alerts when the newest
                                          # good backup is older than this many hours

# Optional: which backups `coffre prune` keeps (grandfather-father-son, UTC calendar).
# keep_last keeps the N newest; daily, weekly, monthly and yearly keep the newest backup
# of each of the N most recent days, ISO weeks, months and years that have one (a backup
# may fill several slots); max_age_days (at least 1) then deletes what is older, even if
# a count wanted it. The newest restorable backup and backups under object lock are never
# deleted. Every key is optional (0 or absent = unset); no table = keep everything.
[sources.billing.retention]
keep_last = 7
daily = 14
weekly = 8
monthly = 12
yearly = 3
max_age_days = 1095

[sources.shop]
type = "mysql"                            # MySQL or MariaDB
# No password here: use password_file.
url = "mysql://backup@db.internal:3306/shop"
password_file = "/etc/coffre/mysql.pass"  # optional
targets = ["local", "paris"]
# mysqldump = "/usr/bin/mariadb-dump"     # optional, default mariadb-dump, else mysqldump
# mysql = "/usr/bin/mariadb"              # optional, default mariadb, else mysql
events = true                             # optional: dump events too (needs the EVENT
                                          # privilege); default true

[sources.demo]
type = "sqlite"
path = "demo.db"                          # relative: next to this file
targets = ["local"]

# Optional: restore drills, named after the source they drill (`coffre drill billing`).
# A drill restores a backup from one target into a fresh scratch database, checks every
# table's row count and checksum against the manifest (by reading the restored database
# back), runs the assertions, measures the time, drops the scratch database and keeps a
# signed report. Targets are drilled in turn, so that every region is proven.
[drills.billing]
schedule = "30 4 * * 0"                   # optional: when `coffre serve` runs it
scratch_url = "postgres://drill@127.0.0.1:5432/postgres"   # PostgreSQL sources: a server
                                          # where the drill may CREATE and DROP databases
                                          # (coffre_drill_*); no password in the URL
rto_seconds = 900                         # optional: fail when download + restore + checks
                                          # take longer
assertions = [                            # optional: each must return one true value
    "SELECT count(*) = 0 FROM factures WHERE total_ttc < 0",
]
# targets = ["paris"]                     # optional: default all of the source's targets
# pick = "random"                         # optional: "newest" (default) or "random" within
# window_days = 30                        # the last window_days days (default 30)
"#;

/// A loaded and validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it was loaded from (absolute when loaded with [`Config::load`]).
    pub file: PathBuf,
    /// Where coffre keeps its state, resolved against the config file's directory.
    pub state_dir: PathBuf,
    pub encryption: EncryptionConfig,
    pub compression: CompressionConfig,
    /// `[anonymization]` (optional).
    pub anonymization: AnonymizationConfig,
    /// `[integrity]` (optional in the file, needed to write or read backups).
    pub integrity: IntegrityConfig,
    /// Targets by name.
    pub targets: BTreeMap<String, TargetConfig>,
    /// Sources by name.
    pub sources: BTreeMap<String, SourceConfig>,
    /// `[service]` (optional): settings of `coffre serve`.
    pub service: ServiceConfig,
    /// `[drills.SOURCE]`: restore drills, by source name.
    pub drills: BTreeMap<String, DrillConfig>,
    /// `[alerts]` (optional): where failures are reported.
    pub alerts: AlertsConfig,
    /// `[api]` (optional): the admin API of `coffre serve`; off without `listen`.
    pub api: ApiConfig,
}

/// `[api]`: the authenticated admin API (see [`crate::api`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiConfig {
    /// Address of `/api/v1`; `None`: no API.
    pub listen: Option<String>,
    /// Plain HTTP on an address other than loopback (behind a TLS-terminating proxy).
    pub allow_plain_http: bool,
    /// HTTPS: the certificate chain (PEM), resolved against the config directory.
    pub tls_cert: Option<PathBuf>,
    /// HTTPS: the private key (PEM) of `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// How long a login session lasts.
    pub session_minutes: u64,
    /// Passwords expire after this many days.
    pub password_max_age_days: u64,
    /// API tokens last at most this many days.
    pub token_max_days: u64,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            listen: None,
            allow_plain_http: false,
            tls_cert: None,
            tls_key: None,
            session_minutes: 15,
            password_max_age_days: 90,
            token_max_days: 365,
        }
    }
}

/// `[drills.SOURCE]`: how to prove that a source's backups restore.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrillConfig {
    /// When `coffre serve` runs the drill (cron, in `[service] time_zone`), if at all.
    pub schedule: Option<String>,
    /// The PostgreSQL server where scratch databases are created (its database is only
    /// connected to, to create and drop them). Required for PostgreSQL sources; SQLite
    /// sources drill into a temporary file under `state_dir`.
    pub scratch_url: Option<String>,
    /// The recovery time objective: a drill whose download, restore and checks take
    /// longer fails.
    pub rto_seconds: Option<u64>,
    /// SQL queries that must each return one true value on the restored database.
    pub assertions: Vec<String>,
    /// The targets drilled in turn (the least recently drilled first); empty = all of
    /// the source's targets.
    pub targets: Vec<String>,
    /// Which backup a drill restores.
    pub pick: DrillPick,
    /// With `pick = "random"`: backups at most this many days old are drawn from.
    pub window_days: u64,
}

/// `pick` of a drill.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DrillPick {
    /// The newest backup with a whole copy in the drilled target.
    Newest,
    /// A random backup of the last `window_days` days.
    Random,
}

impl DrillPick {
    pub const ALL: [DrillPick; 2] = [DrillPick::Newest, DrillPick::Random];

    pub fn as_str(self) -> &'static str {
        match self {
            DrillPick::Newest => "newest",
            DrillPick::Random => "random",
        }
    }
}

/// `[alerts]`: a generic JSON webhook called on failures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertsConfig {
    /// `http(s)://…` URL receiving one POST per alert; none = no alerts.
    pub webhook_url: Option<String>,
    /// The NAME of an environment variable holding a bearer token for the webhook.
    pub webhook_token_env: Option<String>,
    /// How long one webhook call may take.
    pub timeout_secs: u64,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        AlertsConfig {
            webhook_url: None,
            webhook_token_env: None,
            timeout_secs: 10,
        }
    }
}

/// `[service]`: how `coffre serve` schedules jobs and where it answers probes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceConfig {
    /// IANA time zone the sources' schedules are read in; default `"UTC"`.
    pub time_zone: String,
    /// Jobs running at once over all sources, 1..=64; default 2.
    pub max_concurrent_jobs: u32,
    /// At start-up, a slot missed at most this many hours ago runs once; 0 = never.
    pub catch_up_window_hours: u64,
    /// Each source starts up to this many seconds after its slot (a fixed offset per source).
    pub jitter_secs: u64,
    /// Address of `/healthz`, `/readyz` and `/metrics`; default `127.0.0.1:9187`.
    pub listen: String,
    /// On SIGTERM or SIGINT, how long running jobs may finish before they are cancelled.
    pub shutdown_grace_secs: u64,
    /// When `coffre serve` prunes every source with a retention policy, if at all.
    pub prune_schedule: Option<String>,
    /// When `coffre serve` heals every source (copies missing in a target), if at all.
    pub heal_schedule: Option<String>,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        ServiceConfig {
            time_zone: "UTC".to_owned(),
            max_concurrent_jobs: 2,
            catch_up_window_hours: 24,
            jitter_secs: 0,
            listen: "127.0.0.1:9187".to_owned(),
            shutdown_grace_secs: 60,
            prune_schedule: None,
            heal_schedule: None,
        }
    }
}

/// `[encryption]`.
#[derive(Debug, Clone)]
pub struct EncryptionConfig {
    /// age X25519 recipients (`age1…`), every one of which can decrypt every backup.
    pub recipients: Vec<String>,
    /// The identity used to restore and drill, resolved against the config directory.
    pub identity_file: Option<PathBuf>,
}

/// `[anonymization]`: the secret key of deterministic fake data.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AnonymizationConfig {
    /// A file holding the key (any bytes; 32 random bytes recommended), resolved against
    /// the config directory. `COFFRE_ANONYMIZATION_KEY` in the environment overrides it.
    pub key_file: Option<PathBuf>,
}

/// `[integrity]`: the secret key of manifest tags (see [`crate::integrity`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IntegrityConfig {
    /// A file holding the key (at least 16 bytes; 32 random bytes recommended),
    /// resolved against the config directory. `COFFRE_INTEGRITY_KEY` overrides it.
    pub key_file: Option<PathBuf>,
}

/// `[compression]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompressionConfig {
    /// zstd level, 1..=19.
    pub level: i32,
    /// zstd worker threads, 0..=64 (0 = single-threaded).
    pub threads: u32,
}

impl Default for CompressionConfig {
    fn default() -> Self {
        CompressionConfig {
            level: 1,
            threads: 0,
        }
    }
}

/// `[targets.NAME]`: where backups are stored.
#[derive(Debug, Clone)]
pub enum TargetConfig {
    S3(S3Target),
    Fs(FsTarget),
}

/// `type = "s3"`: an S3 bucket, on AWS or an S3-compatible server.
#[derive(Debug, Clone)]
pub struct S3Target {
    pub bucket: String,
    /// Default `"us-east-1"`.
    pub region: String,
    /// An `http://` or `https://` URL, for S3-compatible servers.
    pub endpoint: Option<String>,
    /// Prepended to every object key; empty or ending with `/`.
    pub prefix: String,
    /// The name of the environment variable holding the access key id.
    pub access_key_id_env: Option<String>,
    /// The name of the environment variable holding the secret access key.
    pub secret_access_key_env: Option<String>,
    /// Multipart upload part size, 5..=512 MiB, default 8.
    pub part_size_mib: u64,
    /// Seconds this target may accept no data before a backup drops it, 5..=3600,
    /// default [`DEFAULT_STALL_TIMEOUT_SECS`].
    pub stall_timeout_secs: u64,
    /// S3 Object Lock retention of the objects written here, if any.
    pub object_lock: Option<ObjectLockConfig>,
}

/// Stall timeout of targets that set none, and of every fs target.
pub const DEFAULT_STALL_TIMEOUT_SECS: u64 = 120;

/// `object_lock = { mode = "governance", days = 30 }` on an S3 target: every object is
/// written under S3 Object Lock until `days` days after its backup finished. The bucket
/// must have been created with Object Lock enabled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct ObjectLockConfig {
    pub mode: ObjectLockMode,
    /// Retention period, 1..=36500 days.
    pub days: u32,
}

/// S3 Object Lock retention modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ObjectLockMode {
    /// Users with `s3:BypassGovernanceRetention` may still delete or shorten it.
    Governance,
    /// Nobody can delete the object or shorten its retention, not even the root account.
    Compliance,
}

impl ObjectLockMode {
    /// Every mode as written in the config.
    pub const ALL: [ObjectLockMode; 2] = [ObjectLockMode::Governance, ObjectLockMode::Compliance];

    /// As written in the config: `"governance"` or `"compliance"`.
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectLockMode::Governance => "governance",
            ObjectLockMode::Compliance => "compliance",
        }
    }

    /// As the S3 API spells it (`x-amz-object-lock-mode`): `"GOVERNANCE"` or `"COMPLIANCE"`.
    pub fn as_s3_str(self) -> &'static str {
        match self {
            ObjectLockMode::Governance => "GOVERNANCE",
            ObjectLockMode::Compliance => "COMPLIANCE",
        }
    }
}

/// `type = "fs"`: a local directory.
#[derive(Debug, Clone)]
pub struct FsTarget {
    /// Resolved against the config directory.
    pub path: PathBuf,
}

/// `[sources.NAME]`: a database to back up.
#[derive(Debug, Clone)]
pub enum SourceConfig {
    Postgres(PostgresSource),
    Mysql(MysqlSource),
    Sqlite(SqliteSource),
}

/// `type = "postgres"`.
#[derive(Debug, Clone)]
pub struct PostgresSource {
    /// `postgres://` or `postgresql://`, without a password.
    pub url: String,
    /// A file holding the password, resolved against the config directory.
    pub password_file: Option<PathBuf>,
    /// Names of the targets to store backups in.
    pub targets: Vec<String>,
    /// When false (the default) dumps use `--no-owner --no-privileges`.
    pub owners_and_privileges: bool,
    /// The `pg_dump` binary: a bare name is looked up in `PATH`, other relative paths are
    /// resolved against the config directory.
    pub pg_dump: PathBuf,
    /// The `psql` binary, like `pg_dump`.
    pub psql: PathBuf,
    /// The anonymization policy of this source, resolved against the config directory.
    pub policy: Option<PathBuf>,
    /// When true, every backup of this source is anonymized.
    pub anonymize: bool,
    /// The cron expression `coffre serve` backs this source up on, if any.
    pub schedule: Option<String>,
    /// `coffre serve` alerts when the newest good backup is older than this.
    pub rpo_hours: Option<u64>,
    /// `[sources.NAME.retention]`; empty (keep everything) when absent.
    pub retention: RetentionPolicy,
}

/// `type = "mysql"`: MySQL or MariaDB, through `mariadb-dump`/`mysqldump` and the
/// `mariadb`/`mysql` client (see [`crate::source::mysql`]).
#[derive(Debug, Clone)]
pub struct MysqlSource {
    /// `mysql://user@host:3306/database`, never with a password.
    pub url: String,
    /// A file holding the password, resolved against the config directory.
    pub password_file: Option<PathBuf>,
    /// Names of the targets to store backups in.
    pub targets: Vec<String>,
    /// The dump tool; `None`: `mariadb-dump`, else `mysqldump`, from PATH.
    pub mysqldump: Option<PathBuf>,
    /// The client; `None`: `mariadb`, else `mysql`, from PATH.
    pub mysql: Option<PathBuf>,
    /// Dump events too (needs the EVENT privilege); default true.
    pub events: bool,
    /// The anonymization policy of this source, resolved against the config directory.
    pub policy: Option<PathBuf>,
    /// When true, every backup of this source is anonymized.
    pub anonymize: bool,
    /// The cron expression `coffre serve` backs this source up on, if any.
    pub schedule: Option<String>,
    /// `coffre serve` alerts when the newest good backup is older than this.
    pub rpo_hours: Option<u64>,
    /// `[sources.NAME.retention]`; empty (keep everything) when absent.
    pub retention: RetentionPolicy,
}

/// `type = "sqlite"`.
#[derive(Debug, Clone)]
pub struct SqliteSource {
    /// The database file, resolved against the config directory.
    pub path: PathBuf,
    /// Names of the targets to store backups in.
    pub targets: Vec<String>,
    /// The anonymization policy of this source, resolved against the config directory.
    pub policy: Option<PathBuf>,
    /// When true, every backup of this source is anonymized.
    pub anonymize: bool,
    /// The cron expression `coffre serve` backs this source up on, if any.
    pub schedule: Option<String>,
    /// `coffre serve` alerts when the newest good backup is older than this.
    pub rpo_hours: Option<u64>,
    /// `[sources.NAME.retention]`; empty (keep everything) when absent.
    pub retention: RetentionPolicy,
}

impl SourceConfig {
    /// The names of the targets this source is stored in.
    pub fn targets(&self) -> &[String] {
        match self {
            SourceConfig::Postgres(s) => &s.targets,
            SourceConfig::Mysql(s) => &s.targets,
            SourceConfig::Sqlite(s) => &s.targets,
        }
    }

    /// The `type` as written in the config: `"postgres"`, `"mysql"` or `"sqlite"`.
    pub fn kind(&self) -> &'static str {
        match self {
            SourceConfig::Postgres(_) => "postgres",
            SourceConfig::Mysql(_) => "mysql",
            SourceConfig::Sqlite(_) => "sqlite",
        }
    }

    /// The anonymization policy file, if any.
    pub fn policy(&self) -> Option<&Path> {
        match self {
            SourceConfig::Postgres(s) => s.policy.as_deref(),
            SourceConfig::Mysql(s) => s.policy.as_deref(),
            SourceConfig::Sqlite(s) => s.policy.as_deref(),
        }
    }

    /// Whether every backup of this source is anonymized.
    pub fn anonymize(&self) -> bool {
        match self {
            SourceConfig::Postgres(s) => s.anonymize,
            SourceConfig::Mysql(s) => s.anonymize,
            SourceConfig::Sqlite(s) => s.anonymize,
        }
    }

    /// The cron expression of `coffre serve`, as written, if any.
    pub fn schedule(&self) -> Option<&str> {
        match self {
            SourceConfig::Postgres(s) => s.schedule.as_deref(),
            SourceConfig::Mysql(s) => s.schedule.as_deref(),
            SourceConfig::Sqlite(s) => s.schedule.as_deref(),
        }
    }

    /// The recovery point objective: `coffre serve` alerts when the newest good backup is
    /// older than this many hours.
    pub fn rpo_hours(&self) -> Option<u64> {
        match self {
            SourceConfig::Postgres(s) => s.rpo_hours,
            SourceConfig::Mysql(s) => s.rpo_hours,
            SourceConfig::Sqlite(s) => s.rpo_hours,
        }
    }

    /// Which backups `coffre prune` keeps; an empty policy (the default) keeps everything.
    pub fn retention(&self) -> &RetentionPolicy {
        match self {
            SourceConfig::Postgres(s) => &s.retention,
            SourceConfig::Mysql(s) => &s.retention,
            SourceConfig::Sqlite(s) => &s.retention,
        }
    }
}

impl TargetConfig {
    /// The `type` as written in the config: `"s3"` or `"fs"`.
    pub fn kind(&self) -> &'static str {
        match self {
            TargetConfig::S3(_) => "s3",
            TargetConfig::Fs(_) => "fs",
        }
    }

    /// How long this target may accept no data before a backup drops it (the others go
    /// on): `stall_timeout_secs` for S3, [`DEFAULT_STALL_TIMEOUT_SECS`] for fs.
    pub fn stall_timeout(&self) -> Duration {
        match self {
            TargetConfig::S3(s3) => Duration::from_secs(s3.stall_timeout_secs),
            TargetConfig::Fs(_) => Duration::from_secs(DEFAULT_STALL_TIMEOUT_SECS),
        }
    }

    /// The S3 Object Lock of this target, if any (fs targets have none).
    pub fn object_lock(&self) -> Option<&ObjectLockConfig> {
        match self {
            TargetConfig::S3(s3) => s3.object_lock.as_ref(),
            TargetConfig::Fs(_) => None,
        }
    }
}

/// Reads a small text file whole, refusing one over `max` bytes (`what` names the
/// kind of file in that error). Config and policy files are read this way.
pub(crate) fn read_small_text(path: &Path, max: u64, what: &str) -> std::io::Result<String> {
    let mut text = String::new();
    std::fs::File::open(path)?
        .take(max + 1)
        .read_to_string(&mut text)?;
    if text.len() as u64 > max {
        return Err(std::io::Error::other(format!(
            "larger than {max} bytes: is this really a {what} file?"
        )));
    }
    Ok(text)
}

impl Config {
    /// Reads, parses and validates (pure: no network, no database, files are not opened
    /// except the config itself). `file` and resolved paths are absolute; messages name
    /// the file as given.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let read_error = |source| ConfigError::Read {
            file: path.to_path_buf(),
            source,
        };
        let text = read_small_text(path, MAX_FILE_BYTES, "config").map_err(read_error)?;
        let absolute = std::path::absolute(path).map_err(read_error)?;
        build(&text, path, absolute)
    }

    /// Same from a string (the path is used for messages and for resolving relative paths).
    pub fn from_str_at(text: &str, path: &Path) -> Result<Config, ConfigError> {
        build(text, path, path.to_path_buf())
    }

    /// The schedule of the source `name` in `[service] time_zone`, with the service's jitter;
    /// `None` when it has none. Validation parsed it already, so an error here means the
    /// config was changed after loading.
    pub fn schedule_of(
        &self,
        name: &str,
    ) -> Option<Result<crate::schedule::Schedule, crate::schedule::ScheduleError>> {
        let expr = self.sources.get(name)?.schedule()?;
        Some(self.schedule_for(expr))
    }

    /// A service-wide cron expression (`prune_schedule`, a drill's `schedule`) in
    /// `[service] time_zone`, with the service's jitter.
    pub fn schedule_for(
        &self,
        expr: &str,
    ) -> Result<crate::schedule::Schedule, crate::schedule::ScheduleError> {
        crate::schedule::Schedule::parse(expr, &self.service.time_zone)
            .map(|s| s.with_jitter(Duration::from_secs(self.service.jitter_secs)))
    }

    /// The source called `name`; an unknown name is an error listing the known ones.
    pub fn source(&self, name: &str) -> Result<&SourceConfig, ConfigError> {
        self.sources
            .get(name)
            .ok_or_else(|| ConfigError::UnknownSource {
                file: self.file.clone(),
                name: name.to_owned(),
                known: self.sources.keys().cloned().collect(),
            })
    }
}

/// Parses then validates; `shown` names the file in messages, `file` is stored in the
/// config and its directory resolves relative paths.
fn build(text: &str, shown: &Path, file: PathBuf) -> Result<Config, ConfigError> {
    let invalid = |problems| ConfigError::Invalid {
        file: shown.to_path_buf(),
        problems,
    };
    let (config, locations) = parse::parse(text, file).map_err(|p| invalid(sorted(p)))?;
    let problems = validate::validate(&config, &locations);
    if problems.is_empty() {
        Ok(config)
    } else {
        Err(invalid(sorted(problems)))
    }
}

fn sorted(mut problems: Vec<Problem>) -> Vec<Problem> {
    problems.sort_by_key(|p| (p.line.is_none(), p.line));
    problems
}

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("config {}: cannot read: {source}", file.display())]
    Read {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file was read but is wrong; one line of the message per problem, in file order.
    #[error("{}", render_problems(file, problems))]
    Invalid {
        file: PathBuf,
        problems: Vec<Problem>,
    },
    /// [`Config::source`] was asked for a name the file does not define.
    #[error("config {}: no source named {name:?} ({})", file.display(), defined("sources", name, known))]
    UnknownSource {
        file: PathBuf,
        name: String,
        known: Vec<String>,
    },
}

/// One thing wrong in a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// 1-based; `None` when the problem is about something absent from the file.
    pub line: Option<usize>,
    /// Lowercase, names the key and the fix.
    pub message: String,
}

fn render_problems(file: &Path, problems: &[Problem]) -> String {
    let mut out = String::new();
    for (i, problem) in problems.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let _ = match problem.line {
            Some(line) => write!(out, "config {}:{line}: {}", file.display(), problem.message),
            None => write!(out, "config {}: {}", file.display(), problem.message),
        };
    }
    out
}

/// `defined targets: local, paris; did you mean "paris"?` (or `none defined`).
fn defined(what: &str, name: &str, known: &[String]) -> String {
    if known.is_empty() {
        return format!("no {what} are defined");
    }
    let mut out = format!("defined {what}: {}", known.join(", "));
    if let Some(close) = did_you_mean(name, known.iter().map(String::as_str)) {
        let _ = write!(out, "; did you mean {close:?}?");
    }
    out
}

/// The candidate closest to `word` by edit distance, if it is close enough to be a typo.
pub(crate) fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let limit = (word.chars().count() / 3).max(1);
    candidates
        .into_iter()
        .map(|c| (edit_distance(&word.to_lowercase(), &c.to_lowercase()), c))
        .filter(|&(d, _)| d <= limit)
        .min_by_key(|&(d, _)| d)
        .map(|(_, c)| c)
}

/// Levenshtein distance, counting an adjacent transposition as one edit.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    // rows[i][j] = distance between a[..i] and b[..j]; three rows suffice.
    let mut before = vec![0; b.len() + 1];
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    let mut current = vec![0; b.len() + 1];
    for i in 1..=a.len() {
        current[0] = i;
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            current[j] = (previous[j] + 1)
                .min(current[j - 1] + 1)
                .min(previous[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                current[j] = current[j].min(before[j - 2] + 1);
            }
        }
        std::mem::swap(&mut before, &mut previous);
        std::mem::swap(&mut previous, &mut current);
    }
    previous[b.len()]
}

/// `[targets.paris]`, quoting the name when TOML needs it: `[targets."a b"]`.
fn table_label(section: &str, name: &str) -> String {
    let bare = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if bare {
        format!("[{section}.{name}]")
    } else {
        format!("[{section}.{name:?}]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AT: &str = "/etc/coffre/coffre.toml";

    #[test]
    fn example_parses_with_resolved_paths() {
        let config = Config::from_str_at(EXAMPLE, Path::new(AT)).expect("valid config");
        assert_eq!(config.file, Path::new(AT));
        assert_eq!(config.state_dir, Path::new("/var/lib/coffre"));
        assert_eq!(
            config.encryption.recipients,
            ["age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p"]
        );
        assert_eq!(
            config.encryption.identity_file.as_deref(),
            Some(Path::new("/etc/coffre/identity.age"))
        );
        assert_eq!(config.compression, CompressionConfig::default());
        assert_eq!(
            config.targets.keys().collect::<Vec<_>>(),
            ["local", "paris"]
        );
        let TargetConfig::S3(paris) = &config.targets["paris"] else {
            panic!("paris is not s3");
        };
        assert_eq!(paris.bucket, "billing-paris");
        assert_eq!(paris.region, "eu-west-3");
        assert_eq!(paris.endpoint, None);
        assert_eq!(paris.prefix, "coffre/");
        assert_eq!(paris.access_key_id_env.as_deref(), Some("PARIS_KEY_ID"));
        assert_eq!(paris.secret_access_key_env.as_deref(), Some("PARIS_SECRET"));
        assert_eq!(paris.part_size_mib, 8);
        assert_eq!(paris.stall_timeout_secs, 120);
        assert_eq!(
            paris.object_lock,
            Some(ObjectLockConfig {
                mode: ObjectLockMode::Governance,
                days: 30
            })
        );
        assert_eq!(
            config.targets["paris"].stall_timeout(),
            Duration::from_secs(120)
        );
        let TargetConfig::Fs(local) = &config.targets["local"] else {
            panic!("local is not fs");
        };
        assert_eq!(local.path, Path::new("/var/backups/coffre"));
        assert_eq!(config.targets["local"].object_lock(), None);

        let billing = config.source("billing").expect("defined source");
        assert_eq!(billing.kind(), "postgres");
        assert_eq!(billing.targets(), ["paris", "local"]);
        let SourceConfig::Postgres(pg) = billing else {
            panic!("billing is not postgres");
        };
        assert_eq!(pg.url, "postgres://backup@db.internal:5432/billing");
        assert_eq!(
            pg.password_file.as_deref(),
            Some(Path::new("/etc/coffre/pg.pass"))
        );
        assert!(!pg.owners_and_privileges);
        assert_eq!(pg.pg_dump, Path::new("/usr/bin/pg_dump"));
        assert_eq!(pg.psql, Path::new("/usr/bin/psql"));
        assert_eq!(
            billing.retention(),
            &RetentionPolicy {
                keep_last: 7,
                daily: 14,
                weekly: 8,
                monthly: 12,
                yearly: 3,
                max_age_days: Some(1095),
            }
        );

        let demo = config.source("demo").expect("defined source");
        assert!(demo.retention().is_empty(), "no table: keep everything");
        assert_eq!(demo.kind(), "sqlite");
        let SourceConfig::Sqlite(sqlite) = demo else {
            panic!("demo is not sqlite");
        };
        assert_eq!(sqlite.path, Path::new("/etc/coffre/demo.db"));
        assert_eq!(sqlite.targets, ["local"]);
    }

    #[test]
    fn defaults_and_relative_paths() {
        let text = r#"
state_dir = "state"
[encryption]
recipients = ["age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p"]
identity_file = "./keys/identity.age"
[targets.s]
type = "s3"
bucket = "b-1"
[targets.l]
type = "fs"
path = "../backups"
[sources.pg]
type = "postgres"
url = "postgresql://backup@db/billing"
password_file = "pg.pass"
targets = ["s"]
pg_dump = "bin/pg_dump"
[sources.lite]
type = "sqlite"
path = "/srv/app.db"
targets = ["l", "s"]
"#;
        let config =
            Config::from_str_at(text, Path::new("/etc/coffre/c.toml")).expect("valid config");
        assert_eq!(config.state_dir, Path::new("/etc/coffre/state"));
        assert_eq!(
            config.encryption.identity_file.as_deref(),
            Some(Path::new("/etc/coffre/keys/identity.age"))
        );
        assert_eq!(config.compression, CompressionConfig::default());
        let TargetConfig::S3(s) = &config.targets["s"] else {
            panic!("s is not s3");
        };
        assert_eq!(s.region, "us-east-1");
        assert_eq!(s.prefix, "");
        assert_eq!(s.endpoint, None);
        assert_eq!(s.access_key_id_env, None);
        assert_eq!(s.part_size_mib, 8);
        assert_eq!(s.stall_timeout_secs, DEFAULT_STALL_TIMEOUT_SECS);
        assert_eq!(s.object_lock, None);
        let TargetConfig::Fs(l) = &config.targets["l"] else {
            panic!("l is not fs");
        };
        assert_eq!(
            config.targets["l"].stall_timeout(),
            Duration::from_secs(120),
            "fs targets have the fixed default"
        );
        assert!(config.sources["pg"].retention().is_empty());
        assert_eq!(
            config.sources["pg"].retention(),
            &RetentionPolicy::default()
        );
        assert_eq!(l.path, Path::new("/etc/coffre/../backups"));
        let SourceConfig::Postgres(pg) = &config.sources["pg"] else {
            panic!("pg is not postgres");
        };
        assert_eq!(
            pg.password_file.as_deref(),
            Some(Path::new("/etc/coffre/pg.pass"))
        );
        assert!(!pg.owners_and_privileges);
        assert_eq!(pg.pg_dump, Path::new("/etc/coffre/bin/pg_dump"));
        assert_eq!(
            pg.psql,
            Path::new("psql"),
            "bare names stay for PATH lookup"
        );
        let SourceConfig::Sqlite(lite) = &config.sources["lite"] else {
            panic!("lite is not sqlite");
        };
        assert_eq!(lite.path, Path::new("/srv/app.db"));
    }

    #[test]
    fn unknown_source_lists_the_known_ones() {
        let config = Config::from_str_at(EXAMPLE, Path::new(AT)).expect("valid config");
        let err = config.source("biling").expect_err("must fail").to_string();
        assert_eq!(
            err,
            "config /etc/coffre/coffre.toml: no source named \"biling\" \
             (defined sources: billing, demo, shop; did you mean \"billing\"?)"
        );
    }

    #[test]
    fn load_reads_the_file_and_resolves_against_its_directory() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("coffre.toml");
        std::fs::write(&path, EXAMPLE).expect("write");
        let config = Config::load(&path).expect("valid config");
        assert_eq!(config.file, path);
        let SourceConfig::Sqlite(demo) = config.source("demo").expect("defined source") else {
            panic!("demo is not sqlite");
        };
        assert_eq!(demo.path, dir.path().join("demo.db"));
    }

    #[test]
    fn load_reports_a_missing_file() {
        let err = Config::load(Path::new("/nonexistent/coffre.toml")).expect_err("must fail");
        assert!(matches!(err, ConfigError::Read { .. }));
        let text = err.to_string();
        assert!(
            text.starts_with("config /nonexistent/coffre.toml: cannot read: "),
            "{text}"
        );
    }

    #[test]
    fn load_refuses_a_huge_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("coffre.toml");
        let huge = "#".repeat(MAX_FILE_BYTES as usize + 10);
        std::fs::write(&path, huge).expect("write");
        let err = Config::load(&path).expect_err("must fail").to_string();
        assert!(err.contains("larger than"), "{err}");
    }

    #[test]
    fn several_problems_are_reported_in_file_order() {
        let text = EXAMPLE
            .replace("level = 1 ", "level = 30")
            .replace("bucket = \"billing-paris\"", "bukket = \"billing-paris\"");
        let err = Config::from_str_at(&text, Path::new("x.toml")).expect_err("must fail");
        let ConfigError::Invalid { problems, .. } = &err else {
            panic!("{err}");
        };
        // Parsing stops before validation: the unknown key is reported, the level is not.
        assert_eq!(problems.len(), 1, "{err}");
        let text = EXAMPLE
            .replace("level = 1 ", "level = 30")
            .replace("bucket = \"billing-paris\"", "bucket = \"Billing\"");
        let err = Config::from_str_at(&text, Path::new("x.toml"))
            .expect_err("must fail")
            .to_string();
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(lines.len(), 2, "{err}");
        assert!(lines[0].contains("level must be between 1 and 19"), "{err}");
        assert!(lines[1].contains("bucket \"Billing\""), "{err}");
    }

    #[test]
    fn edit_distance_counts_typos() {
        assert_eq!(edit_distance("bukket", "bucket"), 1);
        assert_eq!(edit_distance("bucekt", "bucket"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("same", "same"), 0);
        assert_eq!(did_you_mean("pariss", ["local", "paris"]), Some("paris"));
        assert_eq!(did_you_mean("zzz", ["local", "paris"]), None);
    }

    #[test]
    fn object_lock_modes_spelled_for_s3() {
        assert_eq!(ObjectLockMode::Governance.as_s3_str(), "GOVERNANCE");
        assert_eq!(ObjectLockMode::Compliance.as_s3_str(), "COMPLIANCE");
        assert_eq!(ObjectLockMode::Compliance.as_str(), "compliance");
        let json = serde_json::to_string(&ObjectLockConfig {
            mode: ObjectLockMode::Compliance,
            days: 7,
        })
        .expect("json");
        assert_eq!(json, r#"{"mode":"compliance","days":7}"#);
    }

    #[test]
    fn labels_quote_odd_names() {
        assert_eq!(table_label("targets", "paris"), "[targets.paris]");
        assert_eq!(table_label("targets", "a b"), "[targets.\"a b\"]");
    }
}
