//! Retention end to end: real backups made by the binary, pruned in-process with
//! `run_prune` (the time of the plan is a parameter there), then seen through the
//! binary's `list`, `verify` and `restore`.

use chrono::Utc;
use coffre::config::Config;
use coffre::pipeline::Context;
use coffre::pipeline::prune::{Action, run_prune};

use crate::harness::{Target, Workspace};

#[tokio::test]
async fn prune_keeps_the_newest_real_backups_and_they_still_restore() {
    let ws = Workspace::new(
        &[Target::Fs("east"), Target::Fs("west")],
        "[sources.lite]\ntype = \"sqlite\"\npath = \"billing.db\"\ntargets = [\"east\", \"west\"]\n\
         [sources.lite.retention]\nkeep_last = 2\n",
    );
    crate::harness::load_billing_sqlite(ws.path("billing.db"), 20);
    let ids: Vec<String> = (0..3).map(|_| ws.backup_ok("lite")).collect();
    assert_eq!(ws.listed("lite"), ids);

    let config = Config::load(&ws.config).expect("config");
    let ctx = Context::new(config).await.expect("context");

    let plan = run_prune(&ctx, None, true, Utc::now())
        .await
        .expect("dry run");
    assert!(plan.ok, "{plan:#?}");
    assert_eq!((plan.kept, plan.would_delete, plan.deleted), (2, 1, 0));
    assert_eq!(ws.listed("lite"), ids, "a dry run deletes nothing");

    let report = run_prune(&ctx, Some("lite"), false, Utc::now())
        .await
        .expect("prune");
    assert!(report.ok, "{report:#?}");
    assert_eq!((report.kept, report.deleted, report.failed), (2, 1, 0));
    let lite = &report.sources[0];
    let oldest = lite
        .backups
        .iter()
        .find(|b| b.id == ids[0])
        .expect("oldest planned");
    assert_eq!(oldest.action, Action::Deleted);
    assert_eq!(
        oldest.reasons,
        ["not selected by keep_last/daily/weekly/monthly/yearly"]
    );
    let json = serde_json::to_value(&report).expect("json");
    assert_eq!(json["sources"][0]["backups"][2]["action"], "deleted");
    assert_eq!(
        json["sources"][0]["backups"][2]["targets"][1]["target"],
        "west"
    );

    assert_eq!(ws.listed("lite"), ids[1..]);
    for target in ["east", "west"] {
        assert!(
            !ws.path(&format!("{target}/lite/{}", ids[0])).exists(),
            "{target} still holds the pruned backup"
        );
    }
    let (code, v) = ws.json(&["verify"]);
    assert_eq!(code, 0, "{v:#}");
    assert_eq!(v["backups"].as_array().expect("backups").len(), 2);
    let to = ws.path("restored.db");
    let (code, v) = ws.json(&["restore", &ids[1], "--to", to.to_str().expect("path")]);
    assert_eq!(code, 0, "{v:#}");
}

#[test]
fn coffre_prune_says_what_it_deletes_and_why() {
    let ws = Workspace::new(
        &[Target::Fs("east")],
        "[sources.lite]\ntype = \"sqlite\"\npath = \"billing.db\"\ntargets = [\"east\"]\n\
         [sources.lite.retention]\nkeep_last = 1\n",
    );
    crate::harness::load_billing_sqlite(ws.path("billing.db"), 10);
    let ids: Vec<String> = (0..3).map(|_| ws.backup_ok("lite")).collect();

    let (code, plan) = ws.json(&["prune", "--dry-run"]);
    assert_eq!(code, 0, "{plan:#}");
    assert_eq!(plan["would_delete"], 2, "{plan:#}");
    assert_eq!(ws.listed("lite"), ids, "a dry run deletes nothing");
    let out = ws.run(&["prune", "lite", "--dry-run"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("would delete") && text.contains("not selected by keep_last"),
        "{text}"
    );

    let (code, done) = ws.json(&["prune", "lite"]);
    assert_eq!(code, 0, "{done:#}");
    assert_eq!(done["deleted"], 2, "{done:#}");
    assert_eq!(ws.listed("lite"), vec![ids[2].clone()]);
    let (code, v) = ws.json(&["verify", "--all"]);
    assert_eq!(code, 0, "{v:#}");
}
