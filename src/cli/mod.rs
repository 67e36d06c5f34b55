//! The command line: parses arguments, loads the configuration, runs one verb,
//! prints its result (a table for people, one JSON document with `--json`) and
//! returns the exit code: 0 success, 1 failure, 2 usage error, 3 degraded (a
//! backup stored in some targets only, or copies `heal` could not make whole).

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};
use serde::Serialize;

use crate::anonymize::setup;
use crate::config::Config;
use crate::pipeline::Context;
use crate::pipeline::anonymize_copy::{CopyOptions, run_anonymize_copy};
use crate::pipeline::backup::{BackupOptions, BackupReport, BackupStatus, run_backup};
use crate::pipeline::heal::{CopyStatus, HealOptions, HealReport, run_heal};
use crate::pipeline::prune::{PruneReport, run_prune};
use crate::pipeline::restore::{RestoreOptions, run_restore};
use crate::pipeline::verify::{VerifyReport, run_verify};
use crate::progress::{Progress, Ticker, human_bytes};
use crate::{catalog, demo, fixture, keys};

mod drill;
mod erasure;

/// Exit code of a backup stored in some targets only, or of a `heal` that left
/// copies broken.
pub const EXIT_DEGRADED: i32 = 3;

#[derive(Debug, Parser)]
#[command(
    name = "coffre",
    version,
    about = "Encrypted, multi-region backups of billing databases"
)]
pub struct Cli {
    /// Configuration file (TOML).
    #[arg(long, short = 'c', global = true, env = "COFFRE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Print one JSON document on stdout instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// Log format on stderr.
    #[arg(long, global = true, value_parser = ["text", "json"], default_value = "text")]
    pub log_format: String,
    /// More logs (-v info, -vv debug). RUST_LOG overrides.
    #[arg(long, short = 'v', global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Generate an age identity and print its recipient (public key), or, with
    /// --secret, a random secret key for [integrity] or [anonymization] key_file.
    Keygen {
        /// Where to write the identity (mode 0600); printed to stdout if absent.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Write 32 random bytes, in hex, to this new file (mode 0600) instead.
        #[arg(long, conflicts_with = "out")]
        secret: Option<PathBuf>,
    },
    /// Back up one source to all its targets.
    Backup {
        source: String,
        /// Anonymize with the source's policy (default: the source's `anonymize`).
        #[arg(long)]
        anonymize: bool,
    },
    /// List backups (all sources, or one).
    List { source: Option<String> },
    /// Restore a backup into an empty database.
    Restore {
        backup_id: String,
        /// postgres://… or mysql://… URL, or an SQLite file path (sqlite:///path/file.db).
        #[arg(long)]
        to: String,
        /// Restore from this target only (default: the first whole copy).
        #[arg(long)]
        target: Option<String>,
        /// Skip the check that the destination is empty.
        #[arg(long)]
        force: bool,
        /// Do not re-apply the source's erasure ledger (erased people come back!): only
        /// on an explicit decision, recorded in the audit log.
        #[arg(long)]
        skip_erasures: bool,
    },
    /// Re-read stored copies and check their size and SHA-256 (no decryption).
    Verify {
        /// One backup; all backups when absent.
        #[arg(conflicts_with = "all")]
        backup_id: Option<String>,
        /// Only the backups of this source.
        #[arg(long)]
        source: Option<String>,
        /// Every copy of every backup in every target (the default without an id).
        #[arg(long)]
        all: bool,
    },
    /// Rewrite missing, truncated, corrupt or untrusted copies of backups from a
    /// whole copy in another target (checked by size and SHA-256 on the way).
    Heal {
        /// Only the backups of this source (default: every source).
        source: Option<String>,
        /// Check every copy and report what would be copied; write nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Apply each source's retention policy: delete, in every target, the backups
    /// it no longer keeps (with why), never the newest restorable one.
    Prune {
        /// Only this source (default: every source with a retention policy).
        source: Option<String>,
        /// Show the plan and its reasons; delete nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Make an anonymized copy of an existing backup, encrypted only to a requester's key.
    Anonymize {
        backup_id: String,
        /// The requester's age recipient (age1…): the only key that decrypts the copy.
        #[arg(long)]
        recipient: String,
        /// Read the backup from this target (default: the first whole copy).
        #[arg(long)]
        target: Option<String>,
    },
    /// Restore drill: restore a backup of SOURCE from one target (each in turn) into a
    /// scratch database, check counts, checksums and assertions, time it, drop the
    /// scratch database, keep a sealed report. Exit 1 when the drill fails.
    #[command(args_conflicts_with_subcommands = true)]
    Drill {
        #[command(subcommand)]
        action: Option<DrillAction>,
        /// The source to drill.
        source: Option<String>,
        /// Drill this target (default: the one drilled least recently).
        #[arg(long)]
        target: Option<String>,
    },
    /// Record an erasure request (right to erasure): every restore, drill and anonymized
    /// copy re-applies it from now on, following the [erasure] rules of the source's policy.
    Erase {
        source: String,
        /// The subject: table.column=value of the policy's subject (e.g. clients.id=42).
        #[arg(long)]
        subject: String,
        /// Why (a ticket number, the request's date): kept in the ledger, encrypted.
        #[arg(long)]
        reason: Option<String>,
    },
    /// The erasure ledger: list it, or show which backups still hold a subject.
    Erasure {
        #[command(subcommand)]
        action: ErasureAction,
    },
    /// Users of the admin API: make the first admin (the API makes the others).
    User {
        #[command(subcommand)]
        action: UserAction,
    },
    /// The audit log: check its hash chain and the head kept in the stores.
    Audit {
        #[command(subcommand)]
        action: AuditAction,
    },
    /// Configuration: check a file (syntax, keys, values; no network, no database).
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
    /// Anonymization policies: check one against its database, or write a first one.
    Policy {
        #[command(subcommand)]
        action: PolicyAction,
    },
    /// Run the whole cycle on a sample SQLite database, with nothing configured.
    Demo {
        /// Where to put the demo's files.
        #[arg(long, default_value = "coffre-demo")]
        dir: PathBuf,
        /// Number of clients in the sample database.
        #[arg(long, default_value_t = 500)]
        scale: u64,
    },
    /// Run as a service: back up each source on its `schedule`, answer /healthz, /readyz
    /// and /metrics on `[service] listen`; stop on SIGTERM or SIGINT.
    Serve,
    /// Load the sample billing database (for tests, benchmarks, demos).
    Fixture {
        /// Number of clients.
        #[arg(long, default_value_t = 1000)]
        scale: u64,
        /// postgres://… or mysql://… URL of an existing empty database, or an SQLite
        /// file path.
        #[arg(long)]
        to: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum UserAction {
    /// Create an admin in the state store: prints a temporary password (or reads one from
    /// stdin) and the TOTP secret to enrol. Never a default password.
    CreateAdmin {
        name: String,
        /// Read the password from stdin (checked against the policy, no change required)
        /// instead of printing a temporary one.
        #[arg(long)]
        password_stdin: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditAction {
    /// Check the chain (altered, removed, reordered entries) and the sealed head in the
    /// stores (a rewritten or truncated chain). Exit 1 on any problem.
    Verify,
}

#[derive(Debug, Subcommand)]
pub enum ErasureAction {
    /// The ledger of every source (or one), merged from the state store and the stores.
    List { source: Option<String> },
    /// Which backups of SOURCE still hold the subject, and when each expires.
    Status {
        source: String,
        /// table.column=value of the policy's subject (e.g. clients.id=42).
        #[arg(long)]
        subject: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConfigAction {
    /// Load and validate the --config file; every problem is printed with its line.
    Check,
}

#[derive(Debug, Subcommand)]
pub enum DrillAction {
    /// Check a drill report's integrity tag (a JSON file, or `-` for stdin): exit 1 if
    /// it was altered or was not sealed under this config's integrity key.
    VerifyReport { file: PathBuf },
    /// List the drill reports kept in the state store, newest first.
    Reports {
        /// Only this source.
        source: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
}

#[derive(Debug, Subcommand)]
pub enum PolicyAction {
    /// Check the source's policy against its live schema (fail closed).
    Check { source: String },
    /// Write a starting policy for the source, with suggested rules.
    Init {
        source: String,
        /// Where to write it (default: stdout). Never overwrites.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

/// A verb's failure: message for people, and the exit code.
pub(crate) struct Failure {
    pub(crate) message: String,
    pub(crate) code: i32,
}

impl<E: std::fmt::Display> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure {
            message: e.to_string(),
            code: 1,
        }
    }
}

/// Runs the program; returns the process exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return code;
        }
    };
    init_logs(&cli);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return 1;
        }
    };
    let json = cli.json;
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(f) => {
            if json {
                println!(
                    "{}",
                    serde_json::json!({ "status": "failed", "error": f.message })
                );
            }
            eprintln!("error: {}", f.message);
            f.code
        }
    }
}

fn init_logs(cli: &Cli) {
    use tracing_subscriber::EnvFilter;
    let default = match cli.verbose {
        // A service says what it does; a one-shot command only what goes wrong.
        0 if matches!(cli.command, Command::Serve) => "info",
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if cli.log_format == "json" {
        builder.json().try_init()
    } else {
        builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init()
    };
}

pub(crate) fn print_json<T: Serialize>(value: &T) {
    match serde_json::to_string_pretty(value) {
        Ok(s) => println!("{s}"),
        Err(e) => eprintln!("error: cannot print JSON: {e}"),
    }
}

async fn context(cli: &Cli) -> Result<Context, Failure> {
    let path = cli.config.as_deref().ok_or_else(|| Failure {
        message: "this command needs a configuration: pass --config FILE (or set COFFRE_CONFIG)"
            .into(),
        code: 2,
    })?;
    let config = Config::load(path)?;
    Ok(Context::new(config).await?)
}

async fn run(cli: Cli) -> Result<i32, Failure> {
    let json = cli.json;
    match &cli.command {
        Command::Keygen {
            secret: Some(path), ..
        } => {
            keys::write_random_key_file(path)?;
            if json {
                print_json(&serde_json::json!({ "secret_file": path.display().to_string() }));
            } else {
                eprintln!("secret key written to {} (mode 0600)", path.display());
            }
            Ok(0)
        }
        Command::Keygen { out, .. } => keygen(out.as_deref(), json),
        Command::Backup { source, anonymize } => {
            let ctx = context(&cli).await?;
            let progress = Progress::new();
            let ticker = Ticker::start(progress.clone(), "backup", !json);
            let options = BackupOptions {
                anonymize: anonymize.then_some(true),
            };
            let report = run_backup(&ctx, source, options, progress).await?;
            ticker.finish().await;
            Ok(print_backup(&report, json))
        }
        Command::Anonymize {
            backup_id,
            recipient,
            target,
        } => {
            let ctx = context(&cli).await?;
            let progress = Progress::new();
            let ticker = Ticker::start(progress.clone(), "anonymize", !json);
            let opts = CopyOptions {
                backup_id: backup_id.clone(),
                recipient: recipient.clone(),
                target: target.clone(),
            };
            let result = run_anonymize_copy(&ctx, &opts, progress).await;
            ticker.finish().await;
            Ok(print_backup(&result?, json))
        }
        Command::List { source } => {
            let ctx = context(&cli).await?;
            let listing = catalog::list(&ctx, source.as_deref()).await?;
            list_output(&listing, json);
            Ok(if listing.unreachable.is_empty() { 0 } else { 1 })
        }
        Command::Restore {
            backup_id,
            to,
            target,
            force,
            skip_erasures,
        } => {
            let ctx = context(&cli).await?;
            let progress = Progress::new();
            let ticker = Ticker::start(progress.clone(), "restore", !json);
            let opts = RestoreOptions {
                backup_id: backup_id.clone(),
                to: to.clone(),
                target: target.clone(),
                force: *force,
                skip_erasures: skip_erasures.then(|| format!("cli:{}", whoami())),
            };
            let result = run_restore(&ctx, &opts, progress).await;
            ticker.finish().await;
            let report = result?;
            if json {
                print_json(&report);
            } else {
                println!(
                    "restored {} from {} into {}: {} rows in {} tables checked, {:.1} s",
                    report.id,
                    report.target,
                    report.destination,
                    report.rows,
                    report.tables.len(),
                    report.duration_s
                );
                for a in &report.failed_attempts {
                    println!("  skipped a bad copy: {a}");
                }
                if let Some(e) = &report.erasures {
                    erasure::print_applied(e);
                }
                if report.erasures_skipped_by.is_some() {
                    println!(
                        "  the erasure ledger was NOT re-applied (--skip-erasures, recorded in the audit log)"
                    );
                }
            }
            Ok(0)
        }
        Command::Verify {
            backup_id, source, ..
        } => {
            let ctx = context(&cli).await?;
            let progress = Progress::new();
            let ticker = Ticker::start(progress.clone(), "verify", !json);
            let result = run_verify(&ctx, backup_id.as_deref(), source.as_deref(), &progress).await;
            ticker.finish().await;
            let report = result?;
            verify_output(&ctx, &report, json);
            Ok(if report.ok { 0 } else { 1 })
        }
        Command::Heal { source, dry_run } => {
            let ctx = context(&cli).await?;
            let progress = Progress::new();
            let ticker = Ticker::start(progress.clone(), "heal", !json);
            let opts = HealOptions {
                source: source.clone(),
                dry_run: *dry_run,
            };
            let result = run_heal(&ctx, &opts, progress).await;
            ticker.finish().await;
            let report = result?;
            heal_output(&report, json);
            Ok(if report.is_whole() { 0 } else { EXIT_DEGRADED })
        }
        Command::Prune { source, dry_run } => {
            let ctx = context(&cli).await?;
            let report = run_prune(&ctx, source.as_deref(), *dry_run, chrono::Utc::now()).await?;
            prune_output(&report, json);
            Ok(if report.ok { 0 } else { 1 })
        }
        Command::Erase {
            source,
            subject,
            reason,
        } => {
            let ctx = context(&cli).await?;
            erasure::erase(&ctx, source, subject, reason.as_deref(), json).await
        }
        Command::Erasure { action } => {
            let ctx = context(&cli).await?;
            match action {
                ErasureAction::List { source } => {
                    erasure::list(&ctx, source.as_deref(), json).await
                }
                ErasureAction::Status { source, subject } => {
                    erasure::status(&ctx, source, subject, json).await
                }
            }
        }
        Command::Policy { action } => {
            let ctx = context(&cli).await?;
            policy_verb(&ctx, action, json)
        }
        Command::Config {
            action: ConfigAction::Check,
        } => {
            let path = cli.config.as_deref().ok_or_else(|| Failure {
                message: "pass the file to check: coffre --config FILE config check".into(),
                code: 2,
            })?;
            let config = Config::load(path)?;
            if json {
                print_json(&serde_json::json!({
                    "file": path.display().to_string(),
                    "valid": true,
                    "sources": config.sources.keys().collect::<Vec<_>>(),
                    "targets": config.targets.keys().collect::<Vec<_>>(),
                    "drills": config.drills.keys().collect::<Vec<_>>(),
                }));
            } else {
                println!(
                    "{}: valid ({} sources, {} targets, {} drills)",
                    path.display(),
                    config.sources.len(),
                    config.targets.len(),
                    config.drills.len()
                );
            }
            Ok(0)
        }
        Command::User {
            action:
                UserAction::CreateAdmin {
                    name,
                    password_stdin,
                },
        } => {
            let ctx = context(&cli).await?;
            let key = ctx.integrity_key()?.clone();
            let password = if *password_stdin {
                let mut text = String::new();
                std::io::stdin().read_line(&mut text)?;
                Some(text.trim_end_matches(['\n', '\r']).to_owned())
            } else {
                None
            };
            let state = crate::state::State::open_in(&ctx.config.state_dir)?;
            let created = crate::api::users::create(
                &state,
                &key,
                name,
                crate::auth::roles::Role::Admin,
                None,
                password.as_deref(),
            )?;
            crate::audit::record(
                &state,
                &crate::state::NewAuditEntry {
                    time: chrono::Utc::now(),
                    actor: format!("cli:{}", whoami()),
                    ip: "local".into(),
                    action: "create_admin".into(),
                    target: format!("user:{name}"),
                    outcome: "ok".into(),
                    details: serde_json::json!({}),
                },
            )?;
            if json {
                print_json(&created);
            } else {
                println!("admin {name:?} created (user #{})", created.id);
                if let Some(p) = &created.temporary_password {
                    println!("temporary password (change it at the first login): {p}");
                }
                if let (Some(uri), Some(secret)) = (&created.totp_uri, &created.totp_secret) {
                    println!("TOTP secret (enrol it in an authenticator app now): {secret}");
                    println!("  {uri}");
                }
            }
            Ok(0)
        }
        Command::Audit {
            action: AuditAction::Verify,
        } => {
            let ctx = context(&cli).await?;
            let state = std::sync::Mutex::new(crate::state::State::open_in(&ctx.config.state_dir)?);
            let report = crate::audit::verify_all(&ctx, &state).await?;
            if json {
                print_json(&report);
            } else {
                println!(
                    "audit log: {} entries, {}",
                    report.chain.entries,
                    if report.ok {
                        "chain intact"
                    } else {
                        "PROBLEMS FOUND"
                    }
                );
                match &report.stored_head {
                    Some(h) => println!("  head in the stores: #{} written {}", h.id, h.written_at),
                    None => println!("  no head in the stores yet (coffre serve writes it)"),
                }
                for p in &report.problems {
                    println!("  {}", p.what);
                }
                for u in &report.unreadable {
                    println!("  unreadable head: {u}");
                }
            }
            Ok(if report.ok { 0 } else { 1 })
        }
        Command::Drill {
            action,
            source,
            target,
        } => {
            let ctx = context(&cli).await?;
            drill::run(
                &ctx,
                action.as_ref(),
                source.as_deref(),
                target.clone(),
                json,
            )
            .await
        }
        Command::Demo { dir, scale } => {
            let report = demo::run(dir, *scale).await?;
            if json {
                print_json(&report);
            } else {
                println!("{}", report.text());
            }
            Ok(if report.equal { 0 } else { 1 })
        }
        Command::Serve => {
            let ctx = context(&cli).await?;
            crate::service::serve(ctx).await?;
            Ok(0)
        }
        Command::Fixture { scale, to } => {
            let stats = load_fixture(to, *scale).await?;
            if json {
                print_json(
                    &serde_json::json!({ "to": to, "scale": scale, "tables": stats.tables }),
                );
            } else {
                for (t, n) in &stats.tables {
                    println!("{t:<18} {n}");
                }
            }
            Ok(0)
        }
    }
}

fn policy_verb(ctx: &Context, action: &PolicyAction, json: bool) -> Result<i32, Failure> {
    match action {
        PolicyAction::Check { source } => {
            let report = tokio::task::block_in_place(|| setup::check_source(ctx, source))?;
            if json {
                print_json(&serde_json::json!({
                    "source": source,
                    "ok": report.errors.is_empty(),
                    "errors": report.errors,
                    "warnings": report.warnings,
                }));
            } else {
                for e in &report.errors {
                    println!("error: {e}");
                }
                for w in &report.warnings {
                    println!("warning: {w}");
                }
                println!(
                    "policy of {source}: {} errors, {} warnings",
                    report.errors.len(),
                    report.warnings.len()
                );
            }
            Ok(if report.errors.is_empty() { 0 } else { 1 })
        }
        PolicyAction::Init { source, out } => {
            let schema = tokio::task::block_in_place(|| setup::live_schema(ctx, source))?;
            let text =
                crate::anonymize::policy::init(&schema, crate::anonymize::rules::Locale::FrFr);
            match out {
                Some(path) => {
                    if path.exists() {
                        return Err(Failure {
                            message: format!(
                                "{} exists: refusing to overwrite a policy",
                                path.display()
                            ),
                            code: 1,
                        });
                    }
                    std::fs::write(path, &text)?;
                    if json {
                        print_json(&serde_json::json!({ "source": source, "written": path }));
                    } else {
                        eprintln!(
                            "policy written to {}: review every rule, then set policy = \"{}\" in [sources.{source}]",
                            path.display(),
                            path.display()
                        );
                    }
                }
                None => {
                    if json {
                        print_json(&serde_json::json!({ "source": source, "policy": text }));
                    } else {
                        print!("{text}");
                    }
                }
            }
            Ok(0)
        }
    }
}

/// Prints a backup report; returns the exit code of its status.
fn print_backup(report: &BackupReport, json: bool) -> i32 {
    if json {
        print_json(report);
    } else {
        println!(
            "{} backup {} of {}: {:?} ({} plain → {} stored, {} rows in {} tables, {:.1} s)",
            format!("{:?}", report.kind).to_lowercase(),
            report.id,
            report.source,
            report.status,
            human_bytes(report.plaintext_bytes),
            human_bytes(report.stored_bytes),
            report.rows,
            report.tables,
            report.duration_s
        );
        for t in &report.targets {
            println!(
                "  {:<12} {:<7} {}{}",
                t.target,
                t.status,
                t.location,
                t.error
                    .as_ref()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default()
            );
        }
        if let Some(e) = &report.error {
            eprintln!("error: {e}");
        }
    }
    match report.status {
        BackupStatus::Ok => 0,
        BackupStatus::Degraded => EXIT_DEGRADED,
        BackupStatus::Failed => 1,
    }
}

/// Prints a verify report; every bad copy names its target, where that target
/// writes and the object key.
fn verify_output(ctx: &Context, report: &VerifyReport, json: bool) {
    if json {
        print_json(report);
        return;
    }
    for b in &report.backups {
        for c in &b.copies {
            if c.status == "ok" {
                println!("{} {} {:<12} ok", b.source, b.id, c.target);
                continue;
            }
            let key = c.key.as_deref().unwrap_or_default();
            let location = ctx
                .store(&c.target)
                .map(|s| format!(" in {}", s.location()))
                .unwrap_or_default();
            println!(
                "{} {} {:<12} {}: target {}, object {key}{location}{}",
                b.source,
                b.id,
                c.target,
                c.status,
                c.target,
                c.detail
                    .as_deref()
                    .map(|d| {
                        // The key was just named: keep what is said about it.
                        let d = d
                            .strip_prefix(key)
                            .map_or(d, |rest| rest.trim_start_matches(':').trim_start());
                        format!(": {d}")
                    })
                    .unwrap_or_default()
            );
        }
    }
    for u in &report.unreachable {
        println!("unreachable target {u}");
    }
    let bad = report
        .backups
        .iter()
        .flat_map(|b| &b.copies)
        .filter(|c| c.status != "ok")
        .count();
    println!(
        "{} backups checked: {}",
        report.backups.len(),
        if report.ok {
            "all copies ok".to_owned()
        } else {
            format!(
                "PROBLEMS FOUND ({bad} bad copies, {} unreachable targets)",
                report.unreachable.len()
            )
        }
    );
}

/// Prints a heal report.
fn heal_output(report: &HealReport, json: bool) {
    if json {
        print_json(report);
        return;
    }
    for b in &report.backups {
        for c in &b.copies {
            let status = match c.status {
                CopyStatus::Ok => "ok",
                CopyStatus::Healed => "healed",
                CopyStatus::Failed => "FAILED",
                CopyStatus::WouldHeal => "would heal",
            };
            let mut line = format!("{} {} {:<12} {status}", b.source, b.id, c.target);
            if let Some(problem) = c.problem.and_then(|p| serde_json::to_value(p).ok()) {
                line.push_str(&format!(" ({})", problem.as_str().unwrap_or_default()));
            }
            if let Some(from) = &c.from {
                line.push_str(&format!(" from {from}"));
            }
            if let Some(bytes) = c.bytes {
                line.push_str(&format!(" ({})", human_bytes(bytes)));
            }
            if let Some(detail) = &c.detail {
                line.push_str(&format!(": {detail}"));
            }
            if let Some(error) = &c.error {
                line.push_str(&format!("; error: {error}"));
            }
            println!("{line}");
        }
    }
    for u in &report.unreachable {
        println!("unreachable target {u}");
    }
    for f in &report.untrusted {
        for c in &f.copies {
            eprintln!(
                "warning: folder {}/{} in target {}: {} (no trusted manifest in any target: not a backup, left alone)",
                f.source,
                f.id,
                c.target,
                c.detail.as_deref().unwrap_or(&c.status)
            );
        }
    }
    let copies = report.backups.iter().map(|b| b.copies.len()).sum::<usize>();
    let verb = if report.dry_run { "to heal" } else { "healed" };
    println!(
        "{} backups, {copies} copies checked: {} {verb}, {} not healed{}",
        report.backups.len(),
        report.healed,
        report.failed,
        if report.is_whole() { "" } else { " (DEGRADED)" }
    );
}

/// The local user running the CLI, for the audit log.
fn whoami() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".into())
}

async fn load_fixture(to: &str, scale: u64) -> Result<fixture::FixtureStats, Failure> {
    if to.starts_with("postgres://") || to.starts_with("postgresql://") {
        Ok(fixture::load_postgres(to, scale).await?)
    } else if to.starts_with("mysql://") || to.starts_with("mariadb://") {
        let db = crate::source::MysqlDatabase::new(to);
        Ok(tokio::task::spawn_blocking(move || fixture::load_mysql(&db, scale)).await??)
    } else {
        let path = PathBuf::from(to.strip_prefix("sqlite://").unwrap_or(to));
        Ok(tokio::task::spawn_blocking(move || fixture::create_sqlite(&path, scale)).await??)
    }
}

fn prune_output(report: &PruneReport, json: bool) {
    if json {
        print_json(report);
        return;
    }
    for src in &report.sources {
        println!("{} ({})", src.source, src.policy);
        if let Some(note) = &src.note {
            println!("  {note}");
        }
        if let Some(e) = &src.error {
            println!("  not pruned: {e}");
        }
        for u in &src.unreachable {
            println!("  unreachable: {u}");
        }
        for b in &src.backups {
            println!(
                "  {:<26} {:<12} {}",
                b.id,
                b.action.as_str(),
                b.reasons.join("; ")
            );
            for t in b.targets.iter().filter(|t| t.error.is_some()) {
                println!(
                    "    {}: {}",
                    t.target,
                    t.error.as_deref().unwrap_or_default()
                );
            }
        }
    }
    println!(
        "{}kept {}, deleted {}, would delete {}, failed {}, left alone {}",
        if report.dry_run { "dry run: " } else { "" },
        report.kept,
        report.deleted,
        report.would_delete,
        report.failed,
        report.skipped
    );
}

fn keygen(out: Option<&Path>, json: bool) -> Result<i32, Failure> {
    let key = keys::generate();
    match out {
        Some(path) => {
            keys::write_identity_file(path, &key)?;
            if json {
                print_json(&serde_json::json!({
                    "recipient": key.recipient,
                    "identity_file": path.display().to_string(),
                }));
            } else {
                println!("{}", key.recipient);
                eprintln!(
                    "identity written to {} (keep it secret and safe: it alone decrypts the backups)",
                    path.display()
                );
            }
        }
        None => {
            if json {
                print_json(&serde_json::json!({
                    "recipient": key.recipient,
                    "identity": key.identity,
                }));
            } else {
                println!("# public key: {}\n{}", key.recipient, key.identity);
            }
        }
    }
    Ok(0)
}

#[derive(Serialize)]
struct ListedBackup<'a> {
    id: &'a str,
    source: &'a str,
    kind: Option<crate::manifest::BackupKind>,
    started_at: Option<String>,
    finished_at: Option<String>,
    plaintext_bytes: Option<u64>,
    stored_bytes: Option<u64>,
    tables: Option<usize>,
    rows: Option<u64>,
    copies: &'a [catalog::Copy],
}

fn list_output(listing: &catalog::Listing, json: bool) {
    let rows: Vec<ListedBackup> = listing
        .entries
        .iter()
        .map(|e| {
            let m = e.manifest();
            ListedBackup {
                id: &e.id,
                source: &e.source,
                kind: m.map(|m| m.kind),
                started_at: m.map(|m| m.started_at.to_rfc3339()),
                finished_at: m.map(|m| m.finished_at.to_rfc3339()),
                plaintext_bytes: m.map(|m| m.plaintext_bytes),
                stored_bytes: m.and_then(|m| m.data().map(|d| d.size)),
                tables: m.map(|m| m.tables.tables.len()),
                rows: m.map(|m| m.tables.total_rows()),
                copies: &e.copies,
            }
        })
        .collect();
    if json {
        let unreachable: Vec<String> = listing
            .unreachable
            .iter()
            .map(|(t, e)| format!("{t}: {e}"))
            .collect();
        let untrusted: Vec<serde_json::Value> = listing
            .untrusted
            .iter()
            .map(|e| serde_json::json!({ "id": e.id, "source": e.source, "copies": e.copies }))
            .collect();
        print_json(&serde_json::json!({
            "backups": rows,
            "untrusted": untrusted,
            "unreachable": unreachable,
        }));
        return;
    }
    println!(
        "{:<10} {:<22} {:<10} {:>10} {:>10}  copies",
        "source", "id", "kind", "plain", "stored"
    );
    for r in &rows {
        let copies: Vec<String> = r
            .copies
            .iter()
            .map(|c| {
                if c.status == "ok" {
                    c.target.clone()
                } else {
                    format!("{}({})", c.target, c.status)
                }
            })
            .collect();
        println!(
            "{:<10} {:<22} {:<10} {:>10} {:>10}  {}",
            r.source,
            r.id,
            r.kind
                .map(|k| format!("{k:?}").to_lowercase())
                .unwrap_or_default(),
            human_bytes(r.plaintext_bytes.unwrap_or(0)),
            human_bytes(r.stored_bytes.unwrap_or(0)),
            copies.join(", ")
        );
    }
    for (t, e) in &listing.unreachable {
        eprintln!("warning: target {t} could not be listed: {e}");
    }
    for e in listing.entries.iter().chain(&listing.untrusted) {
        for c in e.copies.iter().filter(|c| c.status.ends_with("-manifest")) {
            eprintln!(
                "warning: {} {} in target {}: {} (not trusted: never restored or counted)",
                if e.manifest().is_some() {
                    "backup"
                } else {
                    "folder"
                },
                e.id,
                c.target,
                c.detail.as_deref().unwrap_or(&c.status)
            );
        }
    }
}
