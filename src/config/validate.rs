//! Pure checks of a parsed [`Config`]: no file is opened, no network is touched.
//!
//! Every problem is collected, each with the line of the offending key (from
//! [`Locations`]) and a message naming the fix.

use std::collections::BTreeMap;
use std::path::Path;
use std::str::FromStr as _;

use super::locate::Locations;
use super::{
    AlertsConfig, ApiConfig, Config, DEFAULT_STALL_TIMEOUT_SECS, DrillConfig, DrillPick,
    MysqlSource, PostgresSource, Problem, S3Target, SourceConfig, TargetConfig, defined,
    table_label,
};
use crate::schedule::Schedule;

/// zstd levels accepted in `[compression] level`.
pub(super) const LEVELS: std::ops::RangeInclusive<i32> = 1..=19;
/// Worker threads accepted in `[compression] threads`.
pub(super) const THREADS: std::ops::RangeInclusive<u32> = 0..=64;
/// S3 multipart part sizes accepted in `part_size_mib` (S3's minimum part is 5 MiB).
pub(super) const PART_SIZES_MIB: std::ops::RangeInclusive<u64> = 5..=512;
/// Seconds accepted in `stall_timeout_secs`.
pub(super) const STALL_TIMEOUTS_SECS: std::ops::RangeInclusive<u64> = 5..=3600;
/// Days accepted in `object_lock.days` (up to a hundred years).
pub(super) const LOCK_DAYS: std::ops::RangeInclusive<u32> = 1..=36500;
/// `[service] max_concurrent_jobs`.
pub(super) const CONCURRENT_JOBS: std::ops::RangeInclusive<u32> = 1..=64;
/// `[service] catch_up_window_hours` (up to a year).
pub(super) const CATCH_UP_HOURS: std::ops::RangeInclusive<u64> = 0..=8760;
/// `[service] jitter_secs` and `shutdown_grace_secs`.
pub(super) const SERVICE_SECS: std::ops::RangeInclusive<u64> = 0..=3600;

/// Every problem with `config`, unsorted; empty when it is valid.
pub(super) fn validate(config: &Config, at: &Locations) -> Vec<Problem> {
    let mut v = Validator {
        at,
        problems: Vec::new(),
    };
    v.path(&config.state_dir, &["state_dir"], "state_dir");
    v.encryption(config);
    v.compression(config);
    let zone_ok = v.service(config);
    // With an unknown zone (reported once, in [service]), check expressions alone.
    let zone = if zone_ok {
        config.service.time_zone.as_str()
    } else {
        "UTC"
    };
    for key in ["prune_schedule", "heal_schedule"] {
        let expr = match key {
            "prune_schedule" => &config.service.prune_schedule,
            _ => &config.service.heal_schedule,
        };
        if let Some(expr) = expr {
            v.schedule(expr, zone, &["service", key], &format!("[service] {key}"));
        }
    }
    v.alerts(&config.alerts);
    v.api(&config.api);
    if let Some(key_file) = &config.anonymization.key_file {
        v.path(key_file, &["anonymization", "key_file"], "key_file");
    }
    if let Some(key_file) = &config.integrity.key_file {
        v.path(key_file, &["integrity", "key_file"], "key_file");
    }

    if config.targets.is_empty() {
        v.report(
            &["targets"],
            "no targets defined: add at least one, e.g. [targets.local] with type = \"fs\" \
             and path = \"/var/backups/coffre\""
                .to_owned(),
        );
    }
    for (name, target) in &config.targets {
        v.name("targets", name);
        match target {
            TargetConfig::S3(s3) => v.s3(name, s3),
            TargetConfig::Fs(fs) => v.path(&fs.path, &["targets", name, "path"], "path"),
        }
    }

    if config.sources.is_empty() {
        v.report(
            &["sources"],
            "no sources defined: add at least one, e.g. [sources.billing] with type = \
             \"postgres\", url and targets"
                .to_owned(),
        );
    }
    for (name, source) in &config.sources {
        v.name("sources", name);
        v.source_targets(name, source.targets(), &config.targets);
        if let Some(policy) = source.policy() {
            v.path(policy, &["sources", name, "policy"], "policy");
        }
        if source.anonymize() && source.policy().is_none() {
            v.report(
                &["sources", name, "anonymize"],
                format!(
                    "source {name:?} has anonymize = true but no policy: add policy =                      \"policies/{name}.toml\" (`coffre policy init {name}` writes a starting one)"
                ),
            );
        }
        if source.retention().max_age_days == Some(0) {
            v.report(
                &["sources", name, "retention", "max_age_days"],
                format!(
                    "max_age_days in {}.retention] must be at least 1 (days); remove it to keep \
                     backups of any age",
                    table_label("sources", name).trim_end_matches(']')
                ),
            );
        }
        if let Some(expr) = source.schedule() {
            v.schedule(
                expr,
                zone,
                &["sources", name, "schedule"],
                &table_label("sources", name),
            );
        }
        if source.rpo_hours() == Some(0) || source.rpo_hours() > Some(RPO_HOURS_MAX) {
            v.report(
                &["sources", name, "rpo_hours"],
                format!(
                    "{}: rpo_hours must be between 1 and {RPO_HOURS_MAX} (alert when the \
                     newest good backup is older than this many hours); remove it for no alert",
                    table_label("sources", name)
                ),
            );
        }
        match source {
            SourceConfig::Postgres(pg) => v.postgres(name, pg),
            SourceConfig::Mysql(my) => v.mysql(name, my),
            SourceConfig::Sqlite(sqlite) => {
                v.path(&sqlite.path, &["sources", name, "path"], "path");
            }
        }
    }
    for (name, drill) in &config.drills {
        v.drill(config, name, drill, zone);
    }
    v.problems
}

/// `rpo_hours`: at most ten years.
const RPO_HOURS_MAX: u64 = 87_600;
/// `rto_seconds`: at most a week.
const RTO_SECONDS_MAX: u64 = 604_800;
/// `[alerts] timeout_secs`.
const WEBHOOK_TIMEOUT_SECS: std::ops::RangeInclusive<u64> = 1..=300;

struct Validator<'a> {
    at: &'a Locations,
    problems: Vec<Problem>,
}

impl Validator<'_> {
    fn report(&mut self, path: &[&str], message: String) {
        let line = self.at.line(path);
        self.problems.push(Problem { line, message });
    }

    fn report_item(&mut self, path: &[&str], item: usize, message: String) {
        let line = self.at.item_line(path, item);
        self.problems.push(Problem { line, message });
    }

    fn path(&mut self, path: &Path, at: &[&str], key: &str) {
        let text = path.to_string_lossy();
        if text.is_empty() {
            self.report(at, format!("{key} is empty: give a path"));
        } else if text.starts_with('~') {
            self.report(
                at,
                format!(
                    "{key} {text:?} starts with \"~\", which is not expanded: write the full path"
                ),
            );
        }
    }

    fn encryption(&mut self, config: &Config) {
        let encryption = &config.encryption;
        if encryption.recipients.is_empty() {
            self.report(
                &["encryption", "recipients"],
                "[encryption] recipients is empty: add at least one age recipient \
                 (run `coffre keygen` to make one)"
                    .to_owned(),
            );
        }
        for (i, recipient) in encryption.recipients.iter().enumerate() {
            if let Some(message) = recipient_problem(recipient) {
                self.report_item(&["encryption", "recipients"], i, message);
            }
        }
        if let Some(identity) = &encryption.identity_file {
            self.path(identity, &["encryption", "identity_file"], "identity_file");
        }
    }

    fn compression(&mut self, config: &Config) {
        let compression = &config.compression;
        if !LEVELS.contains(&compression.level) {
            self.report(
                &["compression", "level"],
                format!(
                    "[compression] level must be between {} and {} (1 = fastest, 19 = smallest; \
                     default 1)",
                    LEVELS.start(),
                    LEVELS.end()
                ),
            );
        }
        if !THREADS.contains(&compression.threads) {
            self.report(
                &["compression", "threads"],
                format!(
                    "[compression] threads must be between {} and {} (0 = single-threaded; \
                     default 0)",
                    THREADS.start(),
                    THREADS.end()
                ),
            );
        }
    }

    /// `[service]`; returns whether its time zone is known.
    fn service(&mut self, config: &Config) -> bool {
        let service = &config.service;
        let at = |key| ["service", key];
        let zone_ok = match Schedule::parse("0 0 * * *", &service.time_zone) {
            Ok(_) => true,
            Err(e) => {
                self.report(&at("time_zone"), format!("[service] time_zone: {e}"));
                false
            }
        };
        if !CONCURRENT_JOBS.contains(&service.max_concurrent_jobs) {
            self.report(
                &at("max_concurrent_jobs"),
                format!(
                    "[service] max_concurrent_jobs must be between {} and {} (jobs running at \
                     once over all sources; default 2)",
                    CONCURRENT_JOBS.start(),
                    CONCURRENT_JOBS.end()
                ),
            );
        }
        if !CATCH_UP_HOURS.contains(&service.catch_up_window_hours) {
            self.report(
                &at("catch_up_window_hours"),
                format!(
                    "[service] catch_up_window_hours must be between {} and {} (0 = never run \
                     a missed slot at start-up; default 24)",
                    CATCH_UP_HOURS.start(),
                    CATCH_UP_HOURS.end()
                ),
            );
        }
        for (key, value, what) in [
            (
                "jitter_secs",
                service.jitter_secs,
                "the most a source starts after its slot; default 0",
            ),
            (
                "shutdown_grace_secs",
                service.shutdown_grace_secs,
                "how long running jobs may finish on SIGTERM; default 60",
            ),
        ] {
            if !SERVICE_SECS.contains(&value) {
                self.report(
                    &at(key),
                    format!(
                        "[service] {key} must be between {} and {} seconds ({what})",
                        SERVICE_SECS.start(),
                        SERVICE_SECS.end()
                    ),
                );
            }
        }
        if service.listen.parse::<std::net::SocketAddr>().is_err() {
            self.report(
                &at("listen"),
                format!(
                    "[service] listen {:?} is not an address and port: write one like \
                     \"127.0.0.1:9187\" (or \"[::1]:9187\"); host names are not resolved",
                    service.listen
                ),
            );
        }
        zone_ok
    }

    /// Names of targets and sources become parts of object keys.
    fn name(&mut self, section: &str, name: &str) {
        if is_valid_name(name) {
            return;
        }
        let kind = section.trim_end_matches('s');
        self.report(
            &[section, name],
            format!(
                "{kind} name {name:?} in {} is not allowed: use 1 to 63 lowercase letters, \
                 digits, \"_\" or \"-\", starting with a letter or digit (names become part of \
                 object keys)",
                table_label(section, name)
            ),
        );
    }

    fn s3(&mut self, name: &str, s3: &S3Target) {
        let at = |key| ["targets", name, key];
        if let Some(reason) = bucket_problem(&s3.bucket) {
            self.report(
                &at("bucket"),
                format!(
                    "bucket {:?} is not a valid s3 bucket name: it {reason}; use 3 to 63 \
                     lowercase letters, digits, dots and hyphens, starting and ending with a \
                     letter or digit",
                    s3.bucket
                ),
            );
        }
        let region_ok = !s3.region.is_empty()
            && s3
                .region
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !region_ok {
            self.report(
                &at("region"),
                format!(
                    "region {:?} is not a region name: write one like \"eu-west-3\", or remove \
                     it for \"us-east-1\"",
                    s3.region
                ),
            );
        }
        if let Some(endpoint) = &s3.endpoint
            && let Some(mut message) = http_url_problem(
                "endpoint",
                endpoint,
                "\"https://s3.example.com\" or \"http://127.0.0.1:8333\"",
            )
        {
            if message.ends_with("credentials") {
                message.push_str(
                    ": name environment variables in access_key_id_env and \
                     secret_access_key_env instead",
                );
            }
            self.report(&at("endpoint"), message);
        }
        if !s3.prefix.is_empty() {
            if s3.prefix.starts_with('/') {
                let fixed = format!("{}/", s3.prefix.trim_matches('/'));
                self.report(
                    &at("prefix"),
                    format!(
                        "prefix {:?} must not start with \"/\": write {fixed:?}",
                        s3.prefix
                    ),
                );
            } else if !s3.prefix.ends_with('/') {
                self.report(
                    &at("prefix"),
                    format!(
                        "prefix {:?} must end with \"/\": write \"{}/\"",
                        s3.prefix, s3.prefix
                    ),
                );
            }
        }
        for (key, value) in [
            ("access_key_id_env", &s3.access_key_id_env),
            ("secret_access_key_env", &s3.secret_access_key_env),
        ] {
            if let Some(value) = value
                && let Some(message) = env_name_problem(key, value)
            {
                self.report(&at(key), message);
            }
        }
        match (&s3.access_key_id_env, &s3.secret_access_key_env) {
            (Some(_), None) | (None, Some(_)) => {
                let (set, unset) = if s3.access_key_id_env.is_some() {
                    ("access_key_id_env", "secret_access_key_env")
                } else {
                    ("secret_access_key_env", "access_key_id_env")
                };
                self.report(
                    &at(set),
                    format!(
                        "{} sets {set} but not {unset}: set both, or neither to use the default \
                         aws credential chain",
                        table_label("targets", name)
                    ),
                );
            }
            _ => {}
        }
        if !PART_SIZES_MIB.contains(&s3.part_size_mib) {
            self.report(
                &at("part_size_mib"),
                format!(
                    "part_size_mib must be between {} and {} (s3 parts are at least 5 MiB; \
                     default 8)",
                    PART_SIZES_MIB.start(),
                    PART_SIZES_MIB.end()
                ),
            );
        }
        if !STALL_TIMEOUTS_SECS.contains(&s3.stall_timeout_secs) {
            self.report(
                &at("stall_timeout_secs"),
                format!(
                    "stall_timeout_secs must be between {} and {} (seconds a target may accept \
                     no data before a backup drops it; default {DEFAULT_STALL_TIMEOUT_SECS})",
                    STALL_TIMEOUTS_SECS.start(),
                    STALL_TIMEOUTS_SECS.end()
                ),
            );
        }
        if let Some(lock) = &s3.object_lock
            && !LOCK_DAYS.contains(&lock.days)
        {
            self.report(
                &["targets", name, "object_lock", "days"],
                format!(
                    "object_lock days must be between {} and {} (how long each object stays \
                     locked after its backup)",
                    LOCK_DAYS.start(),
                    LOCK_DAYS.end()
                ),
            );
        }
    }

    /// A cron expression; `label` names its table in messages.
    fn schedule(&mut self, expr: &str, zone: &str, path: &[&str], label: &str) {
        if let Err(e) = Schedule::parse(expr, zone) {
            self.report(path, format!("{label}: {e}"));
        }
    }

    fn alerts(&mut self, alerts: &AlertsConfig) {
        let at = |key| ["alerts", key];
        if let Some(url) = &alerts.webhook_url
            && let Some(problem) =
                http_url_problem("webhook_url", url, "\"https://hooks.example.com/coffre\"")
        {
            self.report(&at("webhook_url"), format!("[alerts] {problem}"));
        }
        if let Some(env) = &alerts.webhook_token_env
            && let Some(problem) = env_name_problem("webhook_token_env", env)
        {
            self.report(&at("webhook_token_env"), format!("[alerts] {problem}"));
        }
        if !WEBHOOK_TIMEOUT_SECS.contains(&alerts.timeout_secs) {
            self.report(
                &at("timeout_secs"),
                format!(
                    "[alerts] timeout_secs must be between {} and {} seconds (default 10)",
                    WEBHOOK_TIMEOUT_SECS.start(),
                    WEBHOOK_TIMEOUT_SECS.end()
                ),
            );
        }
    }

    fn api(&mut self, api: &ApiConfig) {
        let at = |key| ["api", key];
        if let Some(listen) = &api.listen {
            match listen.parse::<std::net::SocketAddr>() {
                Err(_) => self.report(
                    &at("listen"),
                    format!(
                        "[api] listen {listen:?} is not an address and port: write one like \
                         \"127.0.0.1:8080\"; host names are not resolved"
                    ),
                ),
                Ok(addr)
                    if !addr.ip().is_loopback()
                        && !api.allow_plain_http
                        && api.tls_cert.is_none() =>
                {
                    self.report(
                        &at("listen"),
                        format!(
                            "[api] listen {listen:?} is not a loopback address and no TLS \
                             certificate is set: passwords and tokens would cross the network \
                             in clear; set tls_cert and tls_key, or keep it on 127.0.0.1 \
                             behind a TLS-terminating proxy (allow_plain_http = true if that \
                             proxy reaches it over the network)"
                        ),
                    )
                }
                Ok(_) => {}
            }
        }
        match (&api.tls_cert, &api.tls_key) {
            (Some(cert), Some(key)) => {
                self.path(cert, &at("tls_cert"), "tls_cert");
                self.path(key, &at("tls_key"), "tls_key");
            }
            (Some(_), None) | (None, Some(_)) => self.report(
                &["api"],
                "[api]: set both tls_cert and tls_key (the certificate chain and its private \
                 key, PEM), or neither"
                    .to_owned(),
            ),
            (None, None) => {}
        }
        for (key, value, range) in [
            ("session_minutes", api.session_minutes, 1..=1440),
            ("password_max_age_days", api.password_max_age_days, 1..=3650),
            ("token_max_days", api.token_max_days, 1..=3650),
        ] {
            if !range.contains(&value) {
                self.report(
                    &at(key),
                    format!(
                        "[api] {key} must be between {} and {}",
                        range.start(),
                        range.end()
                    ),
                );
            }
        }
    }

    /// `[drills.NAME]`: NAME must be a source, and what that source needs must be there.
    fn drill(&mut self, config: &Config, name: &str, drill: &DrillConfig, zone: &str) {
        let label = table_label("drills", name);
        let at = |key: &'static str| ["drills", name, key];
        let Some(source) = config.sources.get(name) else {
            let known: Vec<String> = config.sources.keys().cloned().collect();
            self.report(
                &["drills", name],
                format!(
                    "{label}: drills are named after the source they drill, and there is no \
                     source named {name:?} ({})",
                    defined("sources", name, &known)
                ),
            );
            return;
        };
        if let Some(expr) = &drill.schedule {
            self.schedule(expr, zone, &at("schedule"), &label);
        }
        match (source, &drill.scratch_url) {
            (SourceConfig::Postgres(_), None) => self.report(
                &["drills", name],
                format!(
                    "{label}: missing key \"scratch_url\": add scratch_url = \
                     \"postgres://drill@127.0.0.1:5432/postgres\" (a server where the drill \
                     may create and drop databases)"
                ),
            ),
            (SourceConfig::Postgres(_), Some(url)) => {
                for message in url_problems(url, &POSTGRES_URL) {
                    self.report(
                        &at("scratch_url"),
                        format!("{label}: scratch_{message}").replace(
                            "\"postgres://backup@db.internal:5432/billing\"",
                            "\"postgres://drill@127.0.0.1:5432/postgres\"",
                        ),
                    );
                }
            }
            (SourceConfig::Mysql(_), None) => self.report(
                &["drills", name],
                format!(
                    "{label}: missing key \"scratch_url\": add scratch_url = \
                     \"mysql://drill@127.0.0.1:3306\" (a server where the drill may create \
                     and drop databases)"
                ),
            ),
            (SourceConfig::Mysql(_), Some(url)) => {
                for message in url_problems(url, &MYSQL_URL) {
                    if message.contains("names no database") {
                        continue; // the drill makes its own
                    }
                    self.report(&at("scratch_url"), format!("{label}: scratch_{message}"));
                }
            }
            (SourceConfig::Sqlite(_), Some(_)) => self.report(
                &at("scratch_url"),
                format!(
                    "{label}: scratch_url is for PostgreSQL and MySQL sources; an SQLite source is \
                     drilled into a temporary file under state_dir: remove scratch_url"
                ),
            ),
            (SourceConfig::Sqlite(_), None) => {}
        }
        if drill.rto_seconds == Some(0) || drill.rto_seconds > Some(RTO_SECONDS_MAX) {
            self.report(
                &at("rto_seconds"),
                format!(
                    "{label}: rto_seconds must be between 1 and {RTO_SECONDS_MAX} (the longest \
                     a drill's download, restore and checks may take); remove it for no limit"
                ),
            );
        }
        for (i, assertion) in drill.assertions.iter().enumerate() {
            if assertion.trim().is_empty() {
                self.report_item(
                    &at("assertions"),
                    i,
                    format!(
                        "{label}: assertion {} is empty: write a query returning one true \
                         value, e.g. \"SELECT count(*) = 0 FROM factures WHERE total_ttc < 0\"",
                        i + 1
                    ),
                );
            }
        }
        for (i, target) in drill.targets.iter().enumerate() {
            if !source.targets().contains(target) {
                self.report_item(
                    &at("targets"),
                    i,
                    format!(
                        "{label}: target {target:?} is not a target of source {name:?} ({})",
                        defined("targets", target, source.targets())
                    ),
                );
            }
        }
        if (drill.pick == DrillPick::Random && drill.window_days == 0) || drill.window_days > 36_500
        {
            self.report(
                &at("window_days"),
                format!(
                    "{label}: window_days must be between 1 and 36500 (with pick = \"random\", \
                     backups at most this many days old are drawn from; default 30)"
                ),
            );
        }
    }

    fn mysql(&mut self, name: &str, my: &MysqlSource) {
        let at = |key| ["sources", name, key];
        for message in url_problems(&my.url, &MYSQL_URL) {
            self.report(&at("url"), message);
        }
        if let Some(file) = &my.password_file {
            self.path(file, &at("password_file"), "password_file");
        }
        if let Some(tool) = &my.mysqldump {
            self.path(tool, &at("mysqldump"), "mysqldump");
        }
        if let Some(tool) = &my.mysql {
            self.path(tool, &at("mysql"), "mysql");
        }
    }

    fn postgres(&mut self, name: &str, pg: &PostgresSource) {
        let at = |key| ["sources", name, key];
        for message in url_problems(&pg.url, &POSTGRES_URL) {
            self.report(&at("url"), message);
        }
        if let Some(file) = &pg.password_file {
            self.path(file, &at("password_file"), "password_file");
        }
        self.path(&pg.pg_dump, &at("pg_dump"), "pg_dump");
        self.path(&pg.psql, &at("psql"), "psql");
    }

    fn source_targets(
        &mut self,
        name: &str,
        targets: &[String],
        defined_targets: &BTreeMap<String, TargetConfig>,
    ) {
        let path = ["sources", name, "targets"];
        let known: Vec<String> = defined_targets.keys().cloned().collect();
        if targets.is_empty() {
            let example = known.first().map_or("local", String::as_str);
            self.report(
                &path,
                format!(
                    "source {name:?} has no targets: name at least one, e.g. targets = \
                     [{example:?}] ({})",
                    defined("targets", "", &known)
                ),
            );
        }
        for (i, target) in targets.iter().enumerate() {
            if targets[..i].contains(target) {
                self.report_item(
                    &path,
                    i,
                    format!("source {name:?} names target {target:?} twice: remove one"),
                );
            } else if !defined_targets.contains_key(target) {
                self.report_item(
                    &path,
                    i,
                    format!(
                        "source {name:?} names target {target:?}, which is not defined ({})",
                        defined("targets", target, &known)
                    ),
                );
            }
        }
    }
}

/// `[a-z0-9][a-z0-9_-]{0,62}`.
fn is_valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    first_ok
        && name.len() <= 63
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

fn recipient_problem(recipient: &str) -> Option<String> {
    if recipient.starts_with("AGE-SECRET-KEY-") {
        // Never echo a secret key.
        return Some(
            "this recipient is an age secret key, not a recipient: remove it from the config \
             now, and write its public recipient (`age-keygen -y` prints it) instead"
                .to_owned(),
        );
    }
    let error = age::x25519::Recipient::from_str(recipient).err()?;
    let hint = if recipient.starts_with("ssh-") {
        "ssh keys are not supported, only age X25519 recipients (\"age1...\")"
    } else if recipient.starts_with("age1") && recipient.len() > 62 {
        "plugin and post-quantum recipients are not supported, only age X25519 recipients"
    } else {
        "a recipient is \"age1\" followed by 58 letters and digits (run `coffre keygen` to make one)"
    };
    Some(format!(
        "recipient {recipient:?} is not a valid age X25519 recipient: {}; {hint}",
        error.to_lowercase()
    ))
}

/// Why `bucket` is not an S3 bucket name, as "it …" would finish the sentence.
fn bucket_problem(bucket: &str) -> Option<&'static str> {
    let bytes = bucket.as_bytes();
    let alnum = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if !(3..=63).contains(&bytes.len()) {
        Some("must be 3 to 63 characters long")
    } else if !bytes.iter().all(|b| alnum(b) || *b == b'.' || *b == b'-') {
        Some("may contain only lowercase letters, digits, dots and hyphens")
    } else if !bytes.first().is_some_and(alnum) || !bytes.last().is_some_and(alnum) {
        Some("must start and end with a letter or digit")
    } else if bucket.contains("..") {
        Some("must not contain two dots in a row")
    } else if bucket.parse::<std::net::Ipv4Addr>().is_ok() {
        Some("must not look like an ip address")
    } else {
        None
    }
}

/// The URL is never echoed: it could carry credentials. `key` names it in messages.
fn http_url_problem(key: &str, url: &str, examples: &str) -> Option<String> {
    let example = format!("write it like {examples}");
    let url = match url::Url::parse(url) {
        Ok(url) => url,
        Err(e) => {
            return Some(format!(
                "{key} is not a valid url ({}): {example}",
                e.to_string().to_lowercase()
            ));
        }
    };
    if !matches!(url.scheme(), "http" | "https") {
        return Some(format!(
            "{key} must be an http or https url, not {}: {example}",
            url.scheme()
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Some(format!("{key} has no host: {example}"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Some(format!("{key} must not contain credentials"));
    }
    None
}

/// `value` must name an environment variable, never hold the secret itself.
fn env_name_problem(key: &str, value: &str) -> Option<String> {
    let looks_like_key_id = (value.starts_with("AKIA") || value.starts_with("ASIA"))
        && value.len() == 20
        && value
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit());
    let mut chars = value.chars();
    let is_name = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if looks_like_key_id || !is_name {
        // Never echo the value: it may well be the secret.
        Some(format!(
            "{key} must be the name of an environment variable (letters, digits and \"_\", not \
             starting with a digit), never the credential itself: write e.g. {key} = \
             \"PARIS_{}\" and export that variable",
            if key.starts_with("access") {
                "KEY_ID"
            } else {
                "SECRET"
            }
        ))
    } else {
        None
    }
}

/// What a database URL must look like, per source type.
struct UrlRules {
    schemes: &'static [&'static str],
    /// `postgres:// or postgresql://`
    shown: &'static str,
    example: &'static str,
    password_fix: &'static str,
    /// libpq also reads `?password=`.
    password_in_query: bool,
    needs_database: bool,
}

const POSTGRES_URL: UrlRules = UrlRules {
    schemes: &["postgres", "postgresql"],
    shown: "postgres:// or postgresql://",
    example: "postgres://backup@db.internal:5432/billing",
    password_fix: "use PGPASSWORD, PGPASSFILE or password_file",
    password_in_query: true,
    needs_database: false,
};

const MYSQL_URL: UrlRules = UrlRules {
    schemes: &["mysql", "mariadb"],
    shown: "mysql://",
    example: "mysql://backup@db.internal:3306/shop",
    password_fix: "use password_file",
    password_in_query: false,
    needs_database: true,
};

/// The problems of a database URL. The URL is never echoed: it could carry a password.
fn url_problems(url: &str, rules: &UrlRules) -> Vec<String> {
    let example = format!("write it like \"{}\"", rules.example);
    let parsed = match url::Url::parse(url) {
        Ok(parsed) => parsed,
        Err(e) => {
            return vec![format!(
                "url is not a valid url ({}): {example}",
                e.to_string().to_lowercase()
            )];
        }
    };
    let mut problems = Vec::new();
    if !rules.schemes.contains(&parsed.scheme()) {
        problems.push(format!(
            "url must start with {}, not {}://: {example}",
            rules.shown,
            parsed.scheme()
        ));
    }
    let password_in_query =
        rules.password_in_query && parsed.query_pairs().any(|(key, _)| key == "password");
    if parsed.password().is_some() || password_in_query {
        problems.push(format!(
            "url must not contain a password: {}",
            rules.password_fix
        ));
    }
    if rules.needs_database && parsed.path().trim_matches('/').is_empty() {
        problems.push(format!("url names no database: {example}"));
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ConfigError, EXAMPLE};

    /// The error message for `text`, which must fail validation.
    fn error(text: &str) -> String {
        match Config::from_str_at(text, Path::new("x.toml")) {
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

    /// Asserts `text` fails with `message` on the line containing `needle`.
    #[track_caller]
    fn assert_fails(text: &str, needle: &str, message: &str) {
        let err = error(text);
        let expected = format!("config x.toml:{}: {message}", line_of(text, needle));
        assert!(
            err.lines().any(|l| l.starts_with(&expected)),
            "expected a line starting with\n  {expected}\ngot\n  {err}"
        );
    }

    #[test]
    fn service_and_schedules_are_checked_with_their_line() {
        let config = Config::from_str_at(EXAMPLE, Path::new("x.toml")).expect("valid");
        assert_eq!(config.sources["billing"].schedule(), Some("0 2 * * *"));
        assert_eq!(config.sources["demo"].schedule(), None);
        let schedule = config
            .schedule_of("billing")
            .expect("scheduled")
            .expect("parses");
        assert_eq!(schedule.expression(), "0 2 * * *");
        assert!(config.schedule_of("demo").is_none());

        let text = EXAMPLE.replace("schedule = \"0 2 * * *\"", "schedule = \"0 25 * * *\"");
        assert_fails(
            &text,
            "schedule = \"0 25",
            "[sources.billing]: schedule \"0 25 * * *\": hour field \"25\"",
        );
        let text = EXAMPLE.replace("schedule = \"0 2 * * *\"", "schedule = \"0 2 * *\"");
        assert_fails(
            &text,
            "schedule = \"0 2 * *\"",
            "[sources.billing]: schedule \"0 2 * *\": 4 fields, expected 5",
        );
        let text = EXAMPLE.replace("time_zone = \"UTC\"", "time_zone = \"Europe/Pariss\"");
        assert_fails(
            &text,
            "Europe/Pariss",
            "[service] time_zone: unknown time zone \"Europe/Pariss\": did you mean \"Europe/Paris\"?",
        );
        // A bad zone is reported once, not once per schedule.
        assert_eq!(error(&text).lines().count(), 1, "{}", error(&text));
        for (from, to, needle, message) in [
            (
                "max_concurrent_jobs = 2 ",
                "max_concurrent_jobs = 0 ",
                "max_concurrent_jobs = 0",
                "[service] max_concurrent_jobs must be between 1 and 64",
            ),
            (
                "catch_up_window_hours = 24",
                "catch_up_window_hours = -1",
                "catch_up_window_hours = -1",
                "[service] catch_up_window_hours must be between 0 and 8760",
            ),
            (
                "jitter_secs = 0 ",
                "jitter_secs = 7200 ",
                "jitter_secs = 7200",
                "[service] jitter_secs must be between 0 and 3600 seconds",
            ),
            (
                "shutdown_grace_secs = 60",
                "shutdown_grace_secs = 99999",
                "shutdown_grace_secs = 99999",
                "[service] shutdown_grace_secs must be between 0 and 3600 seconds",
            ),
            (
                "listen = \"127.0.0.1:9187\"",
                "listen = \"localhost\"",
                "listen = \"localhost\"",
                "[service] listen \"localhost\" is not an address and port",
            ),
        ] {
            assert!(EXAMPLE.contains(from), "{from}");
            assert_fails(&EXAMPLE.replace(from, to), needle, message);
        }
        let text = EXAMPLE.replace("jitter_secs = 0 ", "jiter_secs = 0 ");
        let err = Config::from_str_at(&text, Path::new("x.toml"))
            .expect_err("unknown key")
            .to_string();
        assert!(
            err.contains("unknown key \"jiter_secs\" in [service]")
                && err.contains("did you mean \"jitter_secs\"?"),
            "{err}"
        );
    }

    #[test]
    fn drills_alerts_and_objectives_are_checked_with_their_line() {
        let config = Config::from_str_at(EXAMPLE, Path::new("x.toml")).expect("valid");
        let drill = &config.drills["billing"];
        assert_eq!(drill.rto_seconds, Some(900));
        assert_eq!(drill.assertions.len(), 1);
        assert_eq!(config.sources["billing"].rpo_hours(), Some(26));
        assert_eq!(config.alerts.timeout_secs, 10);

        assert_fails(
            &EXAMPLE.replace("[drills.billing]", "[drills.biling]"),
            "[drills.biling]",
            "[drills.biling]: drills are named after the source they drill, and there is no \
             source named \"biling\" (defined sources: billing, demo, shop; did you mean \"billing\"?)",
        );
        assert_fails(
            &EXAMPLE.replace(
                "scratch_url = \"postgres://drill@127.0.0.1:5432/postgres\"",
                "scratch_url = \"postgres://drill:pw@127.0.0.1:5432/postgres\"",
            ),
            "scratch_url =",
            "[drills.billing]: scratch_url must not contain a password",
        );
        assert_fails(
            &EXAMPLE.replace(
                "scratch_url = \"postgres://drill@127.0.0.1:5432/postgres\"",
                "",
            ),
            "[drills.billing]",
            "[drills.billing]: missing key \"scratch_url\"",
        );
        assert_fails(
            &EXAMPLE.replace("rto_seconds = 900", "rto_seconds = 0"),
            "rto_seconds = 0",
            "[drills.billing]: rto_seconds must be between 1 and",
        );
        assert_fails(
            &EXAMPLE.replace("schedule = \"30 4 * * 0\"", "schedule = \"30 4 * *\""),
            "schedule = \"30 4 * *\"",
            "[drills.billing]: schedule \"30 4 * *\": 4 fields, expected 5",
        );
        assert_fails(
            &EXAMPLE.replace("rpo_hours = 26", "rpo_hours = 0"),
            "rpo_hours = 0",
            "[sources.billing]: rpo_hours must be between 1 and",
        );
        assert_fails(
            &EXAMPLE.replace("https://hooks.example.com/coffre", "ftp://hooks"),
            "webhook_url =",
            "[alerts] webhook_url must be an http or https url",
        );
        assert_fails(
            &EXAMPLE.replace("\"COFFRE_WEBHOOK_TOKEN\"", "\"s3cr3t-token!\""),
            "webhook_token_env =",
            "[alerts] webhook_token_env must be the name of an environment variable",
        );
        assert_fails(
            &EXAMPLE.replace(
                "heal_schedule = \"30 5 * * *\"",
                "heal_schedule = \"61 5 * * *\"",
            ),
            "heal_schedule =",
            "[service] heal_schedule: schedule \"61 5 * * *\"",
        );
        let pick = EXAMPLE.replace("# pick = \"random\"", "pick = \"randon\"");
        assert!(
            error(&pick).contains("unknown pick \"randon\" in [drills.billing]"),
            "{}",
            error(&pick)
        );
    }

    #[test]
    fn the_api_listens_in_clear_on_loopback_only_unless_told() {
        let open = EXAMPLE.replace("listen = \"127.0.0.1:8080\"", "listen = \"0.0.0.0:8080\"");
        assert_fails(
            &open,
            "listen = \"0.0.0.0:8080\"",
            "[api] listen \"0.0.0.0:8080\" is not a loopback address and no TLS certificate",
        );
        let tls = open.replace(
            "# tls_cert = \"/etc/coffre/api.crt\"",
            "tls_cert = \"/etc/coffre/api.crt\"",
        );
        assert_fails(&tls, "[api]", "[api]: set both tls_cert and tls_key");
        let tls = tls.replace(
            "# tls_key = \"/etc/coffre/api.key\"",
            "tls_key = \"/etc/coffre/api.key\"",
        );
        let config = Config::from_str_at(&tls, Path::new("x.toml")).expect("HTTPS on any address");
        assert!(config.api.tls_key.is_some());
        let proxied = open.replace("allow_plain_http = false", "allow_plain_http = true");
        Config::from_str_at(&proxied, Path::new("x.toml")).expect("behind a proxy");
    }

    #[test]
    fn service_defaults() {
        let start = EXAMPLE
            .find("# Optional section: `coffre serve`")
            .expect("marker");
        let end = EXAMPLE.find("# Targets are").expect("marker");
        let text = format!("{}{}", &EXAMPLE[..start], &EXAMPLE[end..]);
        let config = Config::from_str_at(&text, Path::new("x.toml")).expect("valid");
        assert_eq!(config.service, crate::config::ServiceConfig::default());
        let from_example = Config::from_str_at(EXAMPLE, Path::new("x.toml")).expect("valid");
        assert_eq!(
            from_example.service,
            crate::config::ServiceConfig {
                prune_schedule: Some("0 5 * * *".into()),
                heal_schedule: Some("30 5 * * *".into()),
                ..crate::config::ServiceConfig::default()
            },
            "the example shows the defaults, and the optional schedules"
        );
    }

    const RECIPIENT: &str = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p";

    #[test]
    fn empty_recipients() {
        let text = EXAMPLE.replace(&format!("    \"{RECIPIENT}\",\n"), "");
        assert_fails(
            &text,
            "recipients = [",
            "[encryption] recipients is empty: add at least one age recipient \
             (run `coffre keygen` to make one)",
        );
    }

    #[test]
    fn invalid_recipient_names_its_own_line() {
        let text = EXAMPLE.replace(
            &format!("    \"{RECIPIENT}\",\n"),
            &format!("    \"{RECIPIENT}\",\n    \"age1xyz\",\n"),
        );
        assert_fails(
            &text,
            "\"age1xyz\"",
            "recipient \"age1xyz\" is not a valid age X25519 recipient: ",
        );
        assert!(error(&text).contains("run `coffre keygen` to make one"));
    }

    #[test]
    fn secret_key_as_recipient_is_not_echoed() {
        let secret = "AGE-SECRET-KEY-1GFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPQ4EGAEX";
        let text = EXAMPLE.replace(RECIPIENT, secret);
        assert_fails(&text, secret, "this recipient is an age secret key");
        assert!(!error(&text).contains(secret));
    }

    #[test]
    fn ssh_recipient_is_explained() {
        let text = EXAMPLE.replace(RECIPIENT, "ssh-ed25519 AAAAC3Nza");
        assert!(error(&text).contains("ssh keys are not supported"));
    }

    #[test]
    fn undefined_target() {
        let text = EXAMPLE.replace(
            "targets = [\"paris\", \"local\"]",
            "targets = [\"pariss\", \"local\"]",
        );
        assert_fails(
            &text,
            "\"pariss\"",
            "source \"billing\" names target \"pariss\", which is not defined \
             (defined targets: local, paris; did you mean \"paris\"?)",
        );
    }

    #[test]
    fn undefined_target_on_a_multi_line_list() {
        let text = EXAMPLE.replace(
            "targets = [\"paris\", \"local\"]",
            "targets = [\n  \"paris\",\n  \"nowhere\",\n]",
        );
        assert_fails(
            &text,
            "\"nowhere\"",
            "source \"billing\" names target \"nowhere\", which is not defined \
             (defined targets: local, paris)",
        );
    }

    #[test]
    fn duplicate_and_empty_targets() {
        let text = EXAMPLE.replace(
            "targets = [\"paris\", \"local\"]",
            "targets = [\"local\", \"local\"]",
        );
        assert_fails(
            &text,
            "[\"local\", \"local\"]",
            "source \"billing\" names target \"local\" twice: remove one",
        );
        let text = EXAMPLE.replace("targets = [\"local\"]", "targets = []");
        assert_fails(
            &text,
            "targets = []",
            "source \"demo\" has no targets: name at least one, e.g. targets = [\"local\"] \
             (defined targets: local, paris)",
        );
    }

    #[test]
    fn password_in_url() {
        let text = EXAMPLE.replace("postgres://backup@db", "postgres://backup:hunter2@db");
        assert_fails(
            &text,
            "hunter2",
            "url must not contain a password: use PGPASSWORD, PGPASSFILE or password_file",
        );
        assert!(
            !error(&text).contains("hunter2"),
            "the password is never echoed"
        );
        let text = EXAMPLE.replace("5432/billing\"", "5432/billing?password=hunter2\"");
        assert_fails(&text, "hunter2", "url must not contain a password");
    }

    #[test]
    fn url_scheme_and_syntax() {
        let text = EXAMPLE.replace("postgres://backup@db", "mysql://backup@db");
        assert_fails(
            &text,
            "mysql://",
            "url must start with postgres:// or postgresql://, not mysql://",
        );
        let text = EXAMPLE.replace(
            "\"postgres://backup@db.internal:5432/billing\"",
            "\"host=db dbname=billing\"",
        );
        assert_fails(
            &text,
            "host=db",
            "url is not a valid url (relative url without a base)",
        );
    }

    #[test]
    fn names_must_fit_in_object_keys() {
        let text = EXAMPLE
            .replace("[targets.paris]", "[targets.Paris]")
            .replace("\"paris\", \"local\"", "\"Paris\", \"local\"");
        assert_fails(
            &text,
            "[targets.Paris]",
            "target name \"Paris\" in [targets.Paris] is not allowed: use 1 to 63 lowercase letters",
        );
        let text = EXAMPLE.replace("[sources.demo]", "[sources.\"my demo\"]");
        assert_fails(
            &text,
            "my demo",
            "source name \"my demo\" in [sources.\"my demo\"] is not allowed",
        );
        assert!(is_valid_name("a"));
        assert!(is_valid_name("eu-west_3"));
        assert!(is_valid_name(&"a".repeat(63)));
        assert!(!is_valid_name(&"a".repeat(64)));
        assert!(!is_valid_name("-a"));
        assert!(!is_valid_name("_a"));
        assert!(!is_valid_name(""));
    }

    #[test]
    fn at_least_one_target_and_one_source() {
        let start = EXAMPLE.find("# Targets are").expect("marker in the text");
        let text = EXAMPLE[..start].to_owned();
        let err = error(&text);
        assert!(
            err.contains("config x.toml: no targets defined: add at least one"),
            "{err}"
        );
        assert!(
            err.contains("config x.toml: no sources defined: add at least one"),
            "{err}"
        );
    }

    #[test]
    fn bucket_names() {
        let text = EXAMPLE.replace("bucket = \"billing-paris\"", "bucket = \"Billing_Paris\"");
        assert_fails(
            &text,
            "Billing_Paris",
            "bucket \"Billing_Paris\" is not a valid s3 bucket name: it may contain only lowercase \
             letters, digits, dots and hyphens; use 3 to 63",
        );
        assert_eq!(
            bucket_problem("ab"),
            Some("must be 3 to 63 characters long")
        );
        assert_eq!(
            bucket_problem("-ab"),
            Some("must start and end with a letter or digit")
        );
        assert_eq!(
            bucket_problem("a..b"),
            Some("must not contain two dots in a row")
        );
        assert_eq!(
            bucket_problem("192.168.1.1"),
            Some("must not look like an ip address")
        );
        assert_eq!(bucket_problem("billing.paris-1"), None);
    }

    #[test]
    fn endpoints() {
        let with = |endpoint: &str| {
            EXAMPLE.replace(
                "# endpoint = \"http://127.0.0.1:8333\"",
                &format!("endpoint = {endpoint:?}"),
            )
        };
        assert!(Config::from_str_at(&with("http://127.0.0.1:8333"), Path::new("x.toml")).is_ok());
        assert!(Config::from_str_at(&with("https://s3.example.com/"), Path::new("x.toml")).is_ok());
        assert_fails(
            &with("ftp://s3.example.com"),
            "endpoint =",
            "endpoint must be an http or https url, not ftp",
        );
        assert_fails(
            &with("s3.example.com"),
            "endpoint =",
            "endpoint is not a valid url",
        );
        let text = with("https://key:secret@s3.example.com");
        assert_fails(&text, "endpoint =", "endpoint must not contain credentials");
        assert!(!error(&text).contains("secret@"));
    }

    #[test]
    fn prefixes() {
        let text = EXAMPLE.replace("prefix = \"coffre/\"", "prefix = \"coffre\"");
        assert_fails(
            &text,
            "prefix =",
            "prefix \"coffre\" must end with \"/\": write \"coffre/\"",
        );
        let text = EXAMPLE.replace("prefix = \"coffre/\"", "prefix = \"/coffre/\"");
        assert_fails(
            &text,
            "prefix =",
            "prefix \"/coffre/\" must not start with \"/\": write \"coffre/\"",
        );
    }

    #[test]
    fn credential_env_names() {
        let text = EXAMPLE.replace("secret_access_key_env = \"PARIS_SECRET\"\n", "");
        assert_fails(
            &text,
            "access_key_id_env =",
            "[targets.paris] sets access_key_id_env but not secret_access_key_env: set both, or \
             neither to use the default aws credential chain",
        );
        let text = EXAMPLE.replace(
            "\"PARIS_SECRET\"",
            "\"wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\"",
        );
        assert_fails(
            &text,
            "secret_access_key_env =",
            "secret_access_key_env must be the name of an environment variable",
        );
        assert!(
            !error(&text).contains("wJalr"),
            "the secret is never echoed"
        );
        let text = EXAMPLE.replace("\"PARIS_KEY_ID\"", "\"AKIAIOSFODNN7EXAMPLE\"");
        assert_fails(
            &text,
            "access_key_id_env =",
            "access_key_id_env must be the name of an environment variable",
        );
    }

    #[test]
    fn ranges() {
        let text = EXAMPLE.replace("level = 1 ", "level = 20");
        assert_fails(
            &text,
            "level = 20",
            "[compression] level must be between 1 and 19",
        );
        let text = EXAMPLE.replace("level = 1 ", "level = 0 ");
        assert_fails(
            &text,
            "level = 0",
            "[compression] level must be between 1 and 19",
        );
        let text = EXAMPLE.replace("level = 1 ", "level = 99999999999");
        assert_fails(
            &text,
            "level = 9",
            "[compression] level must be between 1 and 19",
        );
        let text = EXAMPLE.replace("threads = 0", "threads = -1");
        assert_fails(
            &text,
            "threads = -1",
            "[compression] threads must be between 0 and 64 (0 = single-threaded",
        );
        let text = EXAMPLE.replace("threads = 0", "threads = 2");
        assert!(Config::from_str_at(&text, Path::new("x.toml")).is_ok());
        let text = EXAMPLE.replace("part_size_mib = 8", "part_size_mib = 4");
        assert_fails(
            &text,
            "part_size_mib",
            "part_size_mib must be between 5 and 512",
        );
        let text = EXAMPLE.replace("part_size_mib = 8", "part_size_mib = -8");
        assert_fails(
            &text,
            "part_size_mib",
            "part_size_mib must be between 5 and 512",
        );
    }

    #[test]
    fn object_lock_days_and_stall_timeout_ranges() {
        let text = EXAMPLE.replace("days = 30 }", "days = 0 }");
        assert_fails(
            &text,
            "object_lock =",
            "object_lock days must be between 1 and 36500",
        );
        let text = EXAMPLE.replace("days = 30 }", "days = -30 }");
        assert_fails(
            &text,
            "object_lock =",
            "object_lock days must be between 1 and 36500",
        );
        let text = EXAMPLE.replace(
            "object_lock = { mode = \"governance\", days = 30 }",
            "[targets.paris.object_lock]\nmode = \"compliance\"\ndays = 36501",
        );
        assert_fails(
            &text,
            "days = 36501",
            "object_lock days must be between 1 and 36500",
        );
        for days in [1, 36500] {
            let text = EXAMPLE.replace("days = 30 }", &format!("days = {days} }}"));
            assert!(
                Config::from_str_at(&text, Path::new("x.toml")).is_ok(),
                "{days}"
            );
        }
        for bad in ["4", "3601", "-1"] {
            let text = EXAMPLE.replace(
                "stall_timeout_secs = 120",
                &format!("stall_timeout_secs = {bad}"),
            );
            assert_fails(
                &text,
                "stall_timeout_secs",
                "stall_timeout_secs must be between 5 and 3600 (seconds a target may accept no \
                 data before a backup drops it; default 120)",
            );
        }
        let text = EXAMPLE.replace("stall_timeout_secs = 120", "stall_timeout_secs = 5");
        let config = Config::from_str_at(&text, Path::new("x.toml")).expect("valid config");
        assert_eq!(
            config.targets["paris"].stall_timeout(),
            std::time::Duration::from_secs(5)
        );
    }

    #[test]
    fn max_age_days_is_at_least_one() {
        let text = EXAMPLE.replace("max_age_days = 1095", "max_age_days = 0");
        assert_fails(
            &text,
            "max_age_days = 0",
            "max_age_days in [sources.billing.retention] must be at least 1 (days); remove it \
             to keep backups of any age",
        );
        // A maximum age alone is a policy: every backup younger than it is kept.
        let start = EXAMPLE.find("keep_last = 7").expect("marker in the text");
        let end = EXAMPLE
            .find("max_age_days = 1095")
            .expect("marker in the text");
        let text = format!("{}{}", &EXAMPLE[..start], &EXAMPLE[end..]);
        let config = Config::from_str_at(&text, Path::new("x.toml")).expect("valid config");
        let policy = config.sources["billing"].retention();
        assert_eq!(policy.max_age_days, Some(1095));
        assert_eq!(policy.summary(), "max_age_days 1095");
    }

    #[test]
    fn paths_must_be_written_in_full() {
        let text = EXAMPLE.replace("path = \"/var/backups/coffre\"", "path = \"~/backups\"");
        assert_fails(
            &text,
            "~/backups",
            "path \"~/backups\" starts with \"~\", which is not expanded: write the full path",
        );
        let text = EXAMPLE.replace("path = \"demo.db\"", "path = \"\"");
        assert_fails(&text, "path = \"\"", "path is empty: give a path");
        let text = EXAMPLE.replace("psql = \"/usr/bin/psql\"", "psql = \"\"");
        assert_fails(&text, "psql = \"\"", "psql is empty");
    }

    #[test]
    fn region_names() {
        let text = EXAMPLE.replace("region = \"eu-west-3\"", "region = \"eu west 3\"");
        assert_fails(
            &text,
            "region =",
            "region \"eu west 3\" is not a region name: write one like \"eu-west-3\"",
        );
    }
}
