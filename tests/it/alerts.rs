//! `coffre serve` beyond backups: scheduled drills, prune and heal, each recorded; the
//! webhook called (with its bearer token) on a failed backup, a failed drill and a source
//! past its RPO; the drill and RPO series in `/metrics`. A real HTTP receiver on loopback.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::harness::{Target, Workspace};
use crate::service::{
    free_port, http_get, jobs, logs, small_db, start_with_env, terminate, wait_ready,
};

/// What the receiver got: (Authorization header, JSON body) per POST.
type Received = Arc<Mutex<Vec<(String, serde_json::Value)>>>;

/// A webhook receiver on loopback answering 200 to every request; returns its port.
fn receiver() -> (u16, Received) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let received: Received = Arc::default();
    let sink = received.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().expect("clone"));
            let (mut length, mut auth) = (0usize, String::new());
            let mut line = String::new();
            loop {
                line.clear();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                let lower = line.to_ascii_lowercase();
                if let Some(v) = lower.strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
                if lower.starts_with("authorization:") {
                    auth = line["authorization:".len()..].trim().to_owned();
                }
            }
            let mut body = vec![0; length];
            if reader.read_exact(&mut body).is_ok()
                && let Ok(json) = serde_json::from_slice(&body)
            {
                sink.lock().expect("lock").push((auth, json));
            }
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
        }
    });
    (port, received)
}

fn events(received: &Received) -> Vec<(String, String)> {
    received
        .lock()
        .expect("lock")
        .iter()
        .map(|(_, v)| {
            (
                v["event"].as_str().unwrap_or("").to_owned(),
                v["source"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

#[test]
fn serve_runs_drills_prune_and_heal_and_alerts_on_failures() {
    let port = free_port();
    let (hook, received) = receiver();
    let ws = Workspace::new(
        &[Target::Fs("local")],
        &format!(
            "[service]\nlisten = \"127.0.0.1:{port}\"\nshutdown_grace_secs = 20\n\
             prune_schedule = \"*/4 * * * * *\"\nheal_schedule = \"*/4 * * * * *\"\n\
             [alerts]\nwebhook_url = \"http://127.0.0.1:{hook}/hook\"\n\
             webhook_token_env = \"COFFRE_TEST_HOOK_TOKEN\"\ntimeout_secs = 5\n\
             [sources.good]\ntype = \"sqlite\"\npath = \"good.db\"\ntargets = [\"local\"]\n\
             schedule = \"*/2 * * * * *\"\n\
             [sources.good.retention]\nkeep_last = 2\n\
             [sources.gone]\ntype = \"sqlite\"\npath = \"gone.db\"\ntargets = [\"local\"]\n\
             schedule = \"*/2 * * * * *\"\n\
             [sources.never]\ntype = \"sqlite\"\npath = \"never.db\"\ntargets = [\"local\"]\n\
             rpo_hours = 1\n\
             [drills.good]\nschedule = \"*/3 * * * * *\"\n\
             assertions = [\"SELECT count(*) = 50 FROM t\"]\n\
             [drills.gone]\nschedule = \"*/3 * * * * *\"\n"
        ),
    );
    small_db(&ws.path("good.db"), 50);
    small_db(&ws.path("never.db"), 1);
    let mut child = start_with_env(&ws, 1, &[("COFFRE_TEST_HOOK_TOKEN", "t0ken-for-the-hook")]);
    wait_ready(&ws, &mut child, port, 1);

    let wanted = [
        ("backup_failed", "gone"),
        ("drill_failed", "gone"),
        ("rpo_exceeded", "never"),
    ];
    let started = Instant::now();
    loop {
        let got = events(&received);
        let history = jobs(&ws);
        let ended =
            |kind: &str, status: &str| history.iter().any(|j| j.kind == kind && j.status == status);
        if wanted
            .iter()
            .all(|(e, s)| got.iter().any(|(ge, gs)| ge == e && gs == s))
            && ended("drill", "ok")
            && ended("prune", "ok")
            && ended("heal", "ok")
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "within 60 s: events {got:?}, jobs {history:?}\n{}",
            logs(&ws, 1)
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // Every alert carries the bearer token and says what failed.
    for (auth, alert) in received.lock().expect("lock").iter() {
        assert_eq!(auth, "Bearer t0ken-for-the-hook", "{alert:#}");
        assert!(
            alert["summary"].as_str().is_some_and(|s| !s.is_empty()),
            "{alert:#}"
        );
        assert!(alert["time"].as_str().is_some(), "{alert:#}");
    }
    let failed_backup = received
        .lock()
        .expect("lock")
        .iter()
        .find(|(_, a)| a["event"] == "backup_failed" && a["source"] == "gone")
        .map(|(_, a)| a.clone())
        .expect("backup_failed");
    assert_eq!(failed_backup["severity"], "critical");
    assert!(
        failed_backup["details"]["error"]
            .as_str()
            .is_some_and(|e| e.contains("gone.db")),
        "{failed_backup:#}"
    );

    // A passed drill of "good" is in the metrics, with its recovery time.
    let (_, metrics) = http_get(port, "/metrics").expect("metrics");
    for line in [
        "coffre_drill_last_ok{source=\"good\",target=\"local\"} 1",
        "coffre_drill_last_ok{source=\"gone\",target=\"local\"} 0",
        "coffre_rpo_breached{source=\"never\"} 1",
        "coffre_jobs_total{source=\"good\",kind=\"drill\",status=\"ok\"}",
        "coffre_jobs_total{source=\"*\",kind=\"prune\",status=\"ok\"}",
        "coffre_jobs_total{source=\"*\",kind=\"heal\",status=\"ok\"}",
    ] {
        assert!(metrics.contains(line), "missing {line:?} in:\n{metrics}");
    }
    assert!(
        metrics.contains("coffre_drill_last_recovery_seconds{source=\"good\",target=\"local\"}"),
        "{metrics}"
    );
    assert_eq!(terminate(&ws, child, Duration::from_secs(70), 1), 0);

    // Prune kept at most keep_last backups of "good" (plus one a slot may have added since).
    let listed = ws.listed("good");
    assert!(!listed.is_empty() && listed.len() <= 3, "{listed:?}");
    // The drill reports are in the state store and in the target.
    let (_, reports) = ws.json(&["drill", "reports", "good"]);
    assert!(
        reports
            .as_array()
            .is_some_and(|r| r.iter().any(|r| r["ok"] == true)),
        "{reports:#}"
    );
    assert!(ws.path("local/_coffre/drills/good").is_dir());
}
