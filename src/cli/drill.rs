//! `coffre drill`: run a drill and print its report, verify a report's seal, list the
//! reports kept in the state store.

use std::io::Read as _;
use std::path::Path;
use std::sync::Arc;

use super::{Failure, print_json};
use crate::drill::{self, DrillOptions, DrillReport, Outcome, report};
use crate::pipeline::Context;
use crate::progress::{Progress, Ticker, human_bytes};
use crate::state::State;

/// Runs the verb; returns the exit code.
pub(super) async fn run(
    ctx: &Context,
    action: Option<&super::DrillAction>,
    source: Option<&str>,
    target: Option<String>,
    json: bool,
) -> Result<i32, Failure> {
    match action {
        Some(super::DrillAction::VerifyReport { file }) => verify_report(ctx, file, json),
        Some(super::DrillAction::Reports { source, limit }) => {
            list_reports(ctx, source.as_deref(), *limit, json)
        }
        None => {
            let source = source.ok_or_else(|| Failure {
                message: "name the source to drill: coffre drill SOURCE (or a subcommand: \
                          verify-report, reports)"
                    .into(),
                code: 2,
            })?;
            let progress = Progress::new();
            let ticker = Ticker::start(progress.clone(), "drill", !json);
            let opts = DrillOptions {
                source: source.to_owned(),
                target,
            };
            let result = drill::run_drill(ctx, &opts, Arc::clone(&progress)).await;
            ticker.finish().await;
            let report = result?;
            let kept_in = drill::store_report(ctx, &report).await;
            let key = ctx.integrity_key()?;
            let saved = State::open_in(&ctx.config.state_dir)
                .and_then(|state| drill::save_report(&state, &report, key));
            if let Err(e) = &saved {
                tracing::warn!(error = %e, "the drill report is not in the state store");
            }
            if json {
                print_json(&report);
            } else {
                print_report(&report);
                println!(
                    "report {}: kept in {}{}",
                    report.id,
                    if kept_in.is_empty() {
                        "no target".to_owned()
                    } else {
                        format!("targets {} as {}", kept_in.join(", "), report.store_key())
                    },
                    saved.map_or_else(
                        |_| String::new(),
                        |id| format!(" and in the state store (#{})", id.0)
                    )
                );
            }
            Ok(if report.ok { 0 } else { 1 })
        }
    }
}

/// The report for people.
fn print_report(r: &DrillReport) {
    println!(
        "drill of {} from target {}: {} ({:.1} s)",
        r.source,
        r.target,
        if r.ok { "PASSED" } else { "FAILED" },
        r.timings.total_s
    );
    for c in &r.checks {
        let outcome = match c.outcome {
            Outcome::Passed => "passed",
            Outcome::Failed => "FAILED",
            Outcome::Skipped => "skipped",
        };
        println!("  {:<11}{outcome:<9}{}", c.name, c.detail);
    }
    if !r.tables.is_empty() {
        println!("  tables:");
        for t in &r.tables {
            println!(
                "    {:<28}{:>10} rows  {}  {}",
                t.table,
                t.restored_rows
                    .map_or_else(|| "?".to_owned(), |n| n.to_string()),
                t.restored_checksum.as_deref().unwrap_or("-"),
                if t.ok { "ok" } else { "MISMATCH" }
            );
        }
    }
    for a in &r.assertions {
        println!(
            "  assertion {}: {} ({})",
            if a.ok { "true " } else { "FALSE" },
            a.sql,
            a.result
        );
    }
    if let Some(bytes) = r.stored_bytes {
        println!(
            "  restore {:.1} s, read-back {:.1} s, assertions {:.1} s; {} downloaded; RPO {:.0} s",
            r.timings.restore_s,
            r.timings.verify_s,
            r.timings.assertions_s,
            human_bytes(bytes),
            r.rpo_seconds.unwrap_or(0.0)
        );
    }
}

fn verify_report(ctx: &Context, file: &Path, json: bool) -> Result<i32, Failure> {
    let key = ctx.integrity_key()?;
    let (bytes, what) = if file == Path::new("-") {
        let mut buf = Vec::new();
        std::io::stdin().take(16 << 20).read_to_end(&mut buf)?;
        (buf, "stdin".to_owned())
    } else {
        let what = file.display().to_string();
        let bytes = std::fs::read(file).map_err(|e| format!("{what}: {e}"))?;
        (bytes, what)
    };
    match report::verify(&bytes, &what, key) {
        Ok(r) => {
            if json {
                print_json(&serde_json::json!({
                    "file": what, "valid": true, "id": r.id, "source": r.source,
                    "target": r.target, "ok": r.ok,
                }));
            } else {
                println!(
                    "{what}: seal valid: drill {} of {} from {} {}",
                    r.id,
                    r.source,
                    r.target,
                    if r.ok { "passed" } else { "failed" }
                );
            }
            Ok(0)
        }
        Err(e) => {
            if json {
                print_json(
                    &serde_json::json!({ "file": what, "valid": false, "error": e.to_string() }),
                );
            } else {
                println!("{e}");
            }
            Ok(1)
        }
    }
}

fn list_reports(
    ctx: &Context,
    source: Option<&str>,
    limit: usize,
    json: bool,
) -> Result<i32, Failure> {
    if let Some(s) = source {
        ctx.config.source(s)?;
    }
    let state = State::open_in(&ctx.config.state_dir)?;
    let reports = state.drill_reports(source, Some(limit))?;
    if json {
        print_json(&reports);
        return Ok(0);
    }
    if reports.is_empty() {
        println!("no drill reports in {}", state.path().display());
    }
    for r in &reports {
        let failure = r
            .report
            .get("failure")
            .and_then(serde_json::Value::as_str)
            .unwrap_or("");
        println!(
            "#{:<5} {}  {:<12} {:<10} {:<8} {}",
            r.id.0,
            r.started_at.format("%Y-%m-%d %H:%M:%S"),
            r.source,
            r.target,
            if r.ok { "passed" } else { "FAILED" },
            if r.backup_id.is_empty() {
                "-"
            } else {
                &r.backup_id
            },
        );
        if !failure.is_empty() {
            println!("       {failure}");
        }
    }
    Ok(0)
}
