//! `coffre erase` (record an erasure request) and `coffre erasure list | status` (the
//! ledger, and which backups still hold a subject).

use std::sync::Mutex;

use super::{Failure, print_json, whoami};
use crate::erasure::apply::Applied;
use crate::erasure::ledger::{self, SubjectArg};
use crate::erasure::status;
use crate::pipeline::Context;
use crate::state::{NewAuditEntry, State};

fn open_state(ctx: &Context) -> Result<Mutex<State>, Failure> {
    Ok(Mutex::new(State::open_in(&ctx.config.state_dir)?))
}

fn subject_arg(text: &str) -> Result<SubjectArg, Failure> {
    text.parse().map_err(|message| Failure { message, code: 2 })
}

/// `coffre erase SOURCE --subject T.C=V [--reason R]`.
pub(super) async fn erase(
    ctx: &Context,
    source: &str,
    subject: &str,
    reason: Option<&str>,
    json: bool,
) -> Result<i32, Failure> {
    let subject = subject_arg(subject)?;
    let state = open_state(ctx)?;
    let actor = format!("cli:{}", whoami());
    let recorded = ledger::record(ctx, &state, source, &subject, reason, &actor).await?;
    {
        let guard = state
            .lock()
            .map_err(|_| Failure::from("the state store's lock is poisoned"))?;
        crate::audit::record(
            &guard,
            &NewAuditEntry {
                time: recorded.erasure.recorded_at,
                actor,
                ip: "local".into(),
                action: "record_erasure".into(),
                target: format!("source:{source}"),
                outcome: "ok".into(),
                details: serde_json::json!({ "erasure": recorded.erasure.id }),
            },
        )?;
    }
    if json {
        print_json(&recorded);
    } else {
        println!(
            "erasure {} recorded for {} of source {source}: re-applied by every restore, drill \
             and anonymized copy from now on",
            recorded.erasure.id, recorded.erasure.subject
        );
        println!(
            "  ledger entry stored in: {}",
            list_or_none(&recorded.stored_in)
        );
        for f in &recorded.failed {
            println!("  NOT stored in {f} (written again by the next ledger read)");
        }
    }
    Ok(if recorded.failed.is_empty() {
        0
    } else {
        super::EXIT_DEGRADED
    })
}

fn list_or_none(items: &[String]) -> String {
    if items.is_empty() {
        "no target".into()
    } else {
        items.join(", ")
    }
}

/// `coffre erasure list [SOURCE]`.
pub(super) async fn list(ctx: &Context, source: Option<&str>, json: bool) -> Result<i32, Failure> {
    let state = open_state(ctx)?;
    let sources = match source {
        Some(s) => vec![s.to_owned()],
        None => ctx.source_names(),
    };
    let mut all = Vec::new();
    for s in &sources {
        ctx.config.source(s)?;
        all.push((s.clone(), ledger::load(ctx, Some(&state), s, false).await?));
    }
    let ok = all
        .iter()
        .all(|(_, l)| l.rejected.is_empty() && l.unreachable.is_empty());
    if json {
        let doc: Vec<serde_json::Value> = all
            .iter()
            .map(|(s, l)| serde_json::json!({ "source": s, "ledger": l }))
            .collect();
        print_json(&doc);
    } else {
        for (s, l) in &all {
            println!("{s}: {} erasures", l.erasures.len());
            for e in &l.erasures {
                println!(
                    "  {}  {}  {}  by {}{}",
                    e.id,
                    e.recorded_at.format("%Y-%m-%d %H:%M:%S UTC"),
                    e.subject,
                    e.actor,
                    e.reason
                        .as_deref()
                        .map(|r| format!(" ({r})"))
                        .unwrap_or_default()
                );
            }
            if l.rebuilt > 0 {
                println!("  {} entries rebuilt from the stores", l.rebuilt);
            }
            if l.replicated > 0 {
                println!(
                    "  {} entries written again to targets that lacked them",
                    l.replicated
                );
            }
            for r in &l.rejected {
                println!("  REJECTED {r}");
            }
            for u in &l.unreachable {
                println!("  unreachable: {u}");
            }
            if let Some(why) = &l.stores_not_read {
                println!("  note: {why}");
            }
        }
    }
    Ok(if ok { 0 } else { 1 })
}

/// `coffre erasure status SOURCE --subject T.C=V`.
pub(super) async fn status(
    ctx: &Context,
    source: &str,
    subject: &str,
    json: bool,
) -> Result<i32, Failure> {
    let subject = subject_arg(subject)?;
    let state = open_state(ctx)?;
    let report = status::status(ctx, &state, source, &subject).await?;
    if json {
        print_json(&report);
    } else {
        println!(
            "{} in source {}: {} (ledger: {})",
            report.subject,
            report.source,
            if report.holding.is_empty() {
                "held by no backup".to_owned()
            } else {
                format!("held by {} backups", report.holding.len())
            },
            if report.erasures.is_empty() {
                "not erased".to_owned()
            } else {
                format!("erased, {}", report.erasures.join(", "))
            }
        );
        for h in &report.holding {
            println!(
                "  {}  {}  created {}  expires {}  ({}; in {})",
                h.id,
                h.kind,
                h.created.format("%Y-%m-%d"),
                h.expires
                    .map(|e| e.format("%Y-%m-%d").to_string())
                    .unwrap_or_else(|| "never".into()),
                h.how,
                h.targets.join(", ")
            );
        }
        println!("  {} backups do not hold it", report.without);
        for u in &report.unknown {
            println!("  UNKNOWN {u}");
        }
        match report.all_gone_by {
            Some(t) => println!("  the last copy expires by {}", t.format("%Y-%m-%d")),
            None if !report.holding.is_empty() => {
                println!("  no expiry: set max_age_days in the source's retention")
            }
            None => {}
        }
    }
    Ok(if report.unknown.is_empty() { 0 } else { 1 })
}

/// The erasure part of a restore's printout.
pub(super) fn print_applied(applied: &Applied) {
    println!(
        "  erasure ledger re-applied: {} entries, {} subjects",
        applied.erasures.len(),
        applied.subjects
    );
    for t in &applied.tables {
        println!("    {}: {} rows {}", t.table, t.rows, t.action.past_tense());
    }
    for f in &applied.foreign_keys_not_valid {
        println!("    foreign key {f}");
    }
    for s in &applied.skipped {
        println!("    skipped {s}");
    }
}
