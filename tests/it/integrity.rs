//! Authenticated manifests: a manifest whose integrity tag does not check is
//! listed as rejected (naming its target), never restored from and fails verify.

use std::path::Path;

use crate::harness::{Target, Workspace, stderr};

/// A workspace with an SQLite billing fixture backed up to two fs targets.
fn two_region_workspace() -> Workspace {
    let ws = Workspace::new(
        &[Target::Fs("east"), Target::Fs("west")],
        "[sources.lite]\ntype = \"sqlite\"\npath = \"billing.db\"\ntargets = [\"east\", \"west\"]\n",
    );
    crate::harness::load_billing_sqlite(ws.path("billing.db"), 20);
    ws
}

fn manifest_path(ws: &Workspace, target: &str, id: &str) -> std::path::PathBuf {
    ws.path(&format!("{target}/lite/{id}/manifest.json"))
}

/// The status of `id`'s copy in `target`, in a list of backups (or untrusted folders).
fn copy_status(entries: &serde_json::Value, id: &str, target: &str) -> String {
    let backup = entries
        .as_array()
        .expect("entries")
        .iter()
        .find(|b| b["id"] == id)
        .unwrap_or_else(|| panic!("{id} not listed: {entries:#}"));
    let copy = backup["copies"]
        .as_array()
        .expect("copies")
        .iter()
        .find(|c| c["target"] == target)
        .unwrap_or_else(|| panic!("no copy in {target}: {backup:#}"));
    copy["status"].as_str().expect("status").to_owned()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read_dir") {
        let e = e.expect("entry");
        std::fs::copy(e.path(), to.join(e.file_name())).expect("copy");
    }
}

#[test]
fn an_altered_manifest_is_rejected_in_its_target_only() {
    let ws = two_region_workspace();
    let id = ws.backup_ok("lite");
    // Someone with write access to "east" shrinks the recorded size and hash to
    // match a replaced data object; the JSON stays valid, the tag no longer checks.
    let path = manifest_path(&ws, "east", &id);
    let text = std::fs::read_to_string(&path).expect("manifest");
    let mut doc: serde_json::Value = serde_json::from_str(&text).expect("json");
    doc["plaintext_bytes"] = serde_json::Value::from(1);
    std::fs::write(&path, serde_json::to_vec_pretty(&doc).expect("print")).expect("write");

    let (code, list) = ws.json(&["list", "lite"]);
    assert_eq!(code, 0, "{list:#}");
    assert_eq!(
        copy_status(&list["backups"], &id, "east"),
        "rejected-manifest"
    );
    assert_eq!(copy_status(&list["backups"], &id, "west"), "ok");
    let out = ws.run(&["list", "lite"]);
    let err = stderr(&out);
    assert!(
        err.contains("target east") && err.contains("tag does not check"),
        "{err}"
    );

    // Restoring from the altered region fails cleanly and names it; the default
    // restore uses the good region.
    let to = ws.path("from-east.db");
    let out = ws.run(&[
        "restore",
        &id,
        "--target",
        "east",
        "--to",
        to.to_str().expect("path"),
    ]);
    assert_ne!(out.status.code(), Some(0));
    assert!(stderr(&out).contains("east"), "{}", stderr(&out));
    assert!(!to.exists(), "nothing restored from a rejected copy");
    let to = ws.path("restored.db");
    let (code, v) = ws.json(&["restore", &id, "--to", to.to_str().expect("path")]);
    assert_eq!(code, 0, "{v:#}");
    assert_eq!(v["target"], "west");

    let (code, v) = ws.json(&["verify", &id]);
    assert_ne!(code, 0, "{v:#}");
    let copies = v["backups"][0]["copies"].as_array().expect("copies");
    let east = copies
        .iter()
        .find(|c| c["target"] == "east")
        .expect("east checked");
    assert_ne!(east["status"], "ok", "{v:#}");
}

#[test]
fn a_backup_forged_under_another_key_is_never_trusted() {
    let ws = two_region_workspace();
    let real = ws.backup_ok("lite");
    // The forger has the public recipient (so their backup decrypts with our
    // identity) but not our integrity key: their workspace has its own key.
    let forger = two_region_workspace();
    std::fs::copy(ws.path("identity.txt"), forger.path("identity2.txt")).expect("copy id");
    let config = std::fs::read_to_string(forger.path("coffre.toml")).expect("config");
    let recipient = std::fs::read_to_string(ws.path("coffre.toml"))
        .expect("config")
        .lines()
        .find(|l| l.starts_with("recipients"))
        .expect("recipients line")
        .to_owned();
    let config: String = config
        .lines()
        .map(|l| {
            if l.starts_with("recipients") {
                recipient.clone()
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(forger.path("coffre.toml"), config).expect("write config");
    let forged = forger.backup_ok("lite");
    for region in ["east", "west"] {
        copy_dir(
            &forger.path(&format!("{region}/lite/{forged}")),
            &ws.path(&format!("{region}/lite/{forged}")),
        );
    }

    let (_, list) = ws.json(&["list", "lite"]);
    assert_eq!(copy_status(&list["backups"], &real, "east"), "ok");
    assert!(
        !list["backups"].to_string().contains(&forged),
        "a forged backup is not a backup: {list:#}"
    );
    for region in ["east", "west"] {
        assert_eq!(
            copy_status(&list["untrusted"], &forged, region),
            "rejected-manifest"
        );
    }
    let to = ws.path("forged.db");
    let out = ws.run(&["restore", &forged, "--to", to.to_str().expect("path")]);
    assert_ne!(out.status.code(), Some(0));
    assert!(!to.exists(), "a forged backup is never restored");
    let (code, v) = ws.json(&["verify", &forged]);
    assert_ne!(code, 0, "{v:#}");
}
