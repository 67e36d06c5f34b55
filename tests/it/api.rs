//! The admin API through `coffre serve`: every route × every role answers exactly as the
//! permission matrix says; nothing but the login answers without a token; temporary and
//! expired passwords, the password policy, TOTP and lockout; API tokens; and the audit log
//! catching an altered row.

use std::time::Duration;

use coffre::api::routes::{Access, ROUTES};
use coffre::auth::roles::Role;
use coffre::auth::totp::{self, TotpSecret};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::harness::{Target, Workspace};
use crate::service::{free_port, logs, small_db, start, terminate, wait_ready};

const ADMIN_PASSWORD: &str = "Correct-Horse-Battery-9";

struct Server {
    ws: Workspace,
    base: String,
    http: reqwest::Client,
}

fn totp_now(secret: &str) -> String {
    let secret = TotpSecret::from_base32(secret).expect("base32");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("time")
        .as_secs();
    totp::code_at(&secret, now).expect("code")
}

/// Waits for the next TOTP step (a code is accepted once).
fn next_step() {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("time")
        .as_millis();
    let wait = 30_000 - (now % 30_000) as u64 + 50;
    std::thread::sleep(Duration::from_millis(wait));
}

impl Server {
    async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// A session of the first admin.
    async fn admin_session(&self, totp_secret: &str) -> String {
        let (status, v) = self
            .login("root-admin", ADMIN_PASSWORD, Some(totp_now(totp_secret)))
            .await;
        assert_eq!(status, StatusCode::OK, "{v}");
        v["token"].as_str().expect("token").to_owned()
    }

    async fn login(&self, name: &str, password: &str, totp: Option<String>) -> (StatusCode, Value) {
        let mut body = json!({ "name": name, "password": password });
        if let Some(code) = totp {
            body["totp"] = json!(code);
        }
        self.call(Method::POST, "/api/v1/login", None, Some(body))
            .await
    }
}

/// Starts `coffre serve` on `ws` and waits until it is ready.
fn serve(ws: Workspace, api_port: u16, probe_port: u16) -> (Server, std::process::Child) {
    let mut child = start(&ws, 1);
    wait_ready(&ws, &mut child, probe_port, 1);
    let srv = Server {
        base: format!("http://127.0.0.1:{api_port}"),
        http: reqwest::Client::new(),
        ws,
    };
    (srv, child)
}

fn workspace(api_port: u16, probe_port: u16) -> Workspace {
    let ws = Workspace::new(
        &[Target::Fs("local")],
        &format!(
            "[service]\nlisten = \"127.0.0.1:{probe_port}\"\nshutdown_grace_secs = 20\n\
             [api]\nlisten = \"127.0.0.1:{api_port}\"\n\
             [sources.lite]\ntype = \"sqlite\"\npath = \"lite.db\"\ntargets = [\"local\"]\n"
        ),
    );
    small_db(&ws.path("lite.db"), 20);
    ws
}

/// Makes the first admin with the CLI; returns its TOTP secret.
fn create_admin(ws: &Workspace) -> String {
    use std::io::Write as _;
    let mut child = std::process::Command::new(crate::harness::BIN)
        .arg("--config")
        .arg(&ws.config)
        .args([
            "user",
            "create-admin",
            "root-admin",
            "--password-stdin",
            "--json",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(format!("{ADMIN_PASSWORD}\n").as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("wait");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["role"], "admin");
    assert!(v["temporary_password"].is_null());
    assert!(
        v["totp_uri"]
            .as_str()
            .is_some_and(|u| u.starts_with("otpauth://totp/"))
    );
    v["totp_secret"].as_str().expect("secret").to_owned()
}

fn concrete(path: &str) -> String {
    path.replace("{source}", "lite")
        .replace("{id}", "1")
        .replace("{copy}", "20260101T000000.000Z-0000")
        .replace("{backup}", "20260101T000000.000Z-0000")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_answers_each_role_as_the_matrix_says() {
    let (api_port, probe_port) = (free_port(), free_port());
    let ws = workspace(api_port, probe_port);
    let admin_totp = create_admin(&ws);
    let (srv, child) = serve(ws, api_port, probe_port);

    // Nothing but the login answers without a token.
    for r in ROUTES {
        let (status, body) = srv
            .call(r.method.clone(), &concrete(r.path), None, Some(json!({})))
            .await;
        if r.access == Access::Public {
            assert_ne!(status, StatusCode::UNAUTHORIZED, "{} {}", r.method, r.path);
        } else {
            assert_eq!(
                status,
                StatusCode::UNAUTHORIZED,
                "{} {}: {body}",
                r.method,
                r.path
            );
        }
    }

    // The admin needs its TOTP code.
    let (status, _) = srv.login("root-admin", ADMIN_PASSWORD, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, v) = srv
        .login("root-admin", ADMIN_PASSWORD, Some(totp_now(&admin_totp)))
        .await;
    assert_eq!(status, StatusCode::OK, "{v}\n{}", logs(&srv.ws, 1));
    assert_eq!(v["must_change_password"], false);
    let admin = v["token"].as_str().expect("token").to_owned();

    // One user per role, each with a temporary password, changed at once.
    let mut sessions: Vec<(Role, String)> = vec![(Role::Admin, admin.clone())];
    for role in [Role::Operator, Role::Support, Role::Auditor] {
        let name = format!("u-{}", role.as_str());
        let (status, created) = srv
            .call(
                Method::POST,
                "/api/v1/users",
                Some(&admin),
                Some(json!({ "name": name, "role": role.as_str() })),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        let temp = created["temporary_password"]
            .as_str()
            .expect("temporary")
            .to_owned();
        assert_eq!(
            created["totp_secret"].is_string(),
            role.requires_totp(),
            "{created}"
        );
        let code = created["totp_secret"].as_str().map(totp_now);
        let (status, v) = srv.login(&name, &temp, code).await;
        assert_eq!(status, StatusCode::OK, "{name}: {v}");
        assert_eq!(v["must_change_password"], true);
        let token = v["token"].as_str().expect("token").to_owned();
        // A temporary password opens nothing but /password, /me and /logout.
        let (status, _) = srv
            .call(Method::GET, "/api/v1/sources", Some(&token), None)
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        // The policy refuses a weak new one.
        let (status, v) = srv
            .call(
                Method::POST,
                "/api/v1/password",
                Some(&token),
                Some(json!({ "current": temp, "new": "motdepasse2024" })),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
        let (status, v) = srv
            .call(
                Method::POST,
                "/api/v1/password",
                Some(&token),
                Some(
                    json!({ "current": temp, "new": format!("Zebra-{}-Lampe-42", role.as_str()) }),
                ),
            )
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{v}");
        sessions.push((role, token));
    }

    // Every route × role: allowed → neither 401 nor 403; refused → 403.
    for r in ROUTES
        .iter()
        .filter(|r| r.access != Access::Public && r.operation != "logout")
    {
        for (role, token) in &sessions {
            let body = r.body.then(|| json!({}));
            let (status, v) = srv
                .call(r.method.clone(), &concrete(r.path), Some(token), body)
                .await;
            let allowed = match r.access {
                Access::Needs(p) => role.can(p),
                _ => true,
            };
            if allowed {
                assert!(
                    status != StatusCode::FORBIDDEN
                        && status != StatusCode::UNAUTHORIZED
                        && !status.is_server_error(),
                    "{} {} as {}: {status} {v}",
                    r.method,
                    r.path,
                    role.as_str()
                );
            } else {
                assert_eq!(
                    status,
                    StatusCode::FORBIDDEN,
                    "{} {} as {}: {v}",
                    r.method,
                    r.path,
                    role.as_str()
                );
            }
        }
    }

    // The served OpenAPI document lists exactly the routes.
    let (status, doc) = srv
        .call(Method::GET, "/api/v1/openapi.json", Some(&admin), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let served: usize = doc["paths"]
        .as_object()
        .expect("paths")
        .values()
        .map(|i| i.as_object().map_or(0, |o| o.len()))
        .sum();
    assert_eq!(served, ROUTES.len());

    // API tokens: never wider than their owner, usable, revocable.
    let support = &sessions[2].1;
    let (status, _) = srv
        .call(
            Method::POST,
            "/api/v1/tokens",
            Some(support),
            Some(json!({ "name": "ci", "role": "operator" })),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, t) = srv
        .call(
            Method::POST,
            "/api/v1/tokens",
            Some(&sessions[3].1),
            Some(json!({ "name": "audit-bot", "days": 7 })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{t}");
    let api_token = t["token"].as_str().expect("token").to_owned();
    let (status, _) = srv
        .call(Method::GET, "/api/v1/audit", Some(&api_token), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = srv
        .call(
            Method::POST,
            "/api/v1/sources/lite/backups",
            Some(&api_token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let id = t["id"].as_i64().expect("id");
    let (status, _) = srv
        .call(
            Method::DELETE,
            &format!("/api/v1/tokens/{id}"),
            Some(&sessions[3].1),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = srv
        .call(Method::GET, "/api/v1/audit", Some(&api_token), None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // An admin disables a user (their session ends at once) and cannot change itself.
    let (_, users) = srv
        .call(Method::GET, "/api/v1/users", Some(&admin), None)
        .await;
    let id_of = |name: &str| {
        users["users"]
            .as_array()
            .and_then(|u| u.iter().find(|u| u["name"] == name))
            .and_then(|u| u["id"].as_i64())
            .expect("user")
    };
    let (status, v) = srv
        .call(
            Method::PATCH,
            &format!("/api/v1/users/{}", id_of("u-auditor")),
            Some(&admin),
            Some(json!({ "disabled": true })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["disabled"], true);
    let (status, _) = srv
        .call(Method::GET, "/api/v1/me", Some(&sessions[3].1), None)
        .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "a disabled user's session ends"
    );
    let (status, _) = srv
        .call(
            Method::PATCH,
            &format!("/api/v1/users/{}", id_of("root-admin")),
            Some(&admin),
            Some(json!({ "role": "auditor" })),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    // Promoted to operator, the support user gets a TOTP secret to enrol.
    let (status, v) = srv
        .call(
            Method::PATCH,
            &format!("/api/v1/users/{}", id_of("u-support")),
            Some(&admin),
            Some(json!({ "role": "operator" })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert!(v["totp_secret"].is_string(), "{v}");

    // Logout ends the session.
    let (status, _) = srv
        .call(Method::POST, "/api/v1/logout", Some(&sessions[1].1), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = srv
        .call(Method::GET, "/api/v1/me", Some(&sessions[1].1), None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Every call above is in the audit log, which verifies.
    let (status, v) = srv
        .call(Method::GET, "/api/v1/audit/verify", Some(&admin), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["ok"], true, "{v}");
    assert!(v["chain"]["entries"].as_u64().unwrap_or(0) > 100, "{v}");
    let (_, entries) = srv
        .call(Method::GET, "/api/v1/audit?limit=10000", Some(&admin), None)
        .await;
    let entries = entries["entries"].as_array().expect("entries");
    assert!(entries.iter().any(|e| e["action"] == "trigger_backup"
        && e["actor"] == "user:u-operator"
        && e["outcome"] == "ok"));
    assert!(entries.iter().any(|e| e["action"] == "create_user"
        && e["actor"] == "user:u-support"
        && e["outcome"] == "denied"));
    assert!(
        entries
            .iter()
            .all(|e| e["ip"] == "127.0.0.1" || e["ip"] == "local"),
        "{entries:?}"
    );
    assert!(
        !entries
            .iter()
            .any(|e| e.to_string().contains(ADMIN_PASSWORD))
    );

    assert_eq!(terminate(&srv.ws, child, Duration::from_secs(60), 1), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lockout_expiry_and_an_altered_audit_row() {
    let (api_port, probe_port) = (free_port(), free_port());
    let ws = workspace(api_port, probe_port);
    let admin_totp = create_admin(&ws);
    let (srv, child) = serve(ws, api_port, probe_port);

    // A replayed TOTP code is refused.
    let code = totp_now(&admin_totp);
    let (status, _) = srv
        .login("root-admin", ADMIN_PASSWORD, Some(code.clone()))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = srv.login("root-admin", ADMIN_PASSWORD, Some(code)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "replayed code");

    // Repeated failures (the replayed code was the first): after the fourth, each attempt
    // waits (429 with Retry-After), the right password included; the lock after ten is
    // covered by the unit tests of auth::lockout.
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let (status, _) = srv.login("root-admin", "wrong-password-Xy9!", None).await;
        statuses.push(status.as_u16());
    }
    assert_eq!(statuses, [401, 401, 401]);
    let resp = srv
        .http
        .post(format!("{}/api/v1/login", srv.base))
        .json(&json!({ "name": "root-admin", "password": ADMIN_PASSWORD, "totp": totp_now(&admin_totp) }))
        .send()
        .await
        .expect("login");
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("Retry-After");
    assert!((1..=2).contains(&retry), "{retry}");
    // Failures from one address do not hold the user back at another.
    let elsewhere = reqwest::Client::builder()
        .local_address("127.0.0.2".parse::<std::net::IpAddr>().expect("ip"))
        .build()
        .expect("client");
    let resp = elsewhere
        .post(format!("{}/api/v1/login", srv.base))
        .json(&json!({ "name": "root-admin", "password": ADMIN_PASSWORD }))
        .send()
        .await
        .expect("login from 127.0.0.2");
    assert_eq!(
        resp.status(),
        StatusCode::UNAUTHORIZED,
        "checked, not held back"
    );

    // An expired password (older than password_max_age_days) must be changed first.
    let db = srv.ws.path("state/state.db");
    let conn = rusqlite::Connection::open(&db).expect("state");
    conn.execute_batch(
        "DELETE FROM login_failures; \
         UPDATE users SET password_changed_at = '2020-01-01T00:00:00.000Z';",
    )
    .expect("age the password");
    next_step();
    let (status, v) = srv
        .login("root-admin", ADMIN_PASSWORD, Some(totp_now(&admin_totp)))
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["must_change_password"], true);
    let token = v["token"].as_str().expect("token").to_owned();
    let (status, _) = srv
        .call(Method::GET, "/api/v1/users", Some(&token), None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    assert_eq!(terminate(&srv.ws, child, Duration::from_secs(60), 1), 0);

    // Altering one audit row (the triggers dropped first) is found, naming the entry.
    let (code, v) = srv.ws.json(&["audit", "verify"]);
    assert_eq!(code, 0, "{v:#}");
    assert!(
        v["stored_head"]["id"].as_i64().is_some(),
        "the service wrote the head: {v:#}"
    );
    conn.execute_batch(
        "DROP TRIGGER audit_log_no_update; \
         UPDATE audit_log SET outcome = 'ok' WHERE id = 3;",
    )
    .expect("tamper");
    let (code, v) = srv.ws.json(&["audit", "verify"]);
    assert_eq!(code, 1, "{v:#}");
    let problems = v["problems"].as_array().expect("problems");
    assert!(
        problems.iter().any(|p| p["id"] == 3
            && p["what"]
                .as_str()
                .is_some_and(|w| w.contains("#3 was altered"))),
        "{v:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn support_gets_an_anonymized_copy_only_its_key_opens_and_nothing_raw() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("billing.db");
    crate::harness::load_billing_sqlite(&db, 60);
    let ws = crate::anonymize::sqlite_anon_workspace(&db, crate::anonymize::KEY_A);
    let (api_port, probe_port) = (free_port(), free_port());
    let mut config = std::fs::read_to_string(&ws.config).expect("config");
    config.push_str(&format!(
        "[service]\nlisten = \"127.0.0.1:{probe_port}\"\n[api]\nlisten = \"127.0.0.1:{api_port}\"\n"
    ));
    std::fs::write(&ws.config, config).expect("config");
    ws.backup_ok("lite");
    let admin_totp = create_admin(&ws);

    // The requester's own age key; the appliance never sees its identity.
    let out = std::process::Command::new(crate::harness::BIN)
        .args(["keygen", "--json", "--out"])
        .arg(ws.path("support-identity.txt"))
        .output()
        .expect("keygen");
    let recipient = serde_json::from_slice::<Value>(&out.stdout).expect("json")["recipient"]
        .as_str()
        .expect("recipient")
        .to_owned();

    let (srv, child) = serve(ws, api_port, probe_port);
    let admin = srv.admin_session(&admin_totp).await;
    let (status, created) = srv
        .call(
            Method::POST,
            "/api/v1/users",
            Some(&admin),
            Some(json!({ "name": "sup", "role": "support", "recipient": recipient })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let temp = created["temporary_password"]
        .as_str()
        .expect("temporary")
        .to_owned();
    let (_, v) = srv.login("sup", &temp, None).await;
    let sup = v["token"].as_str().expect("token").to_owned();
    let (status, _) = srv
        .call(
            Method::POST,
            "/api/v1/password",
            Some(&sup),
            Some(json!({ "current": temp, "new": "Helpdesk-Lyon-Rhone-2031" })),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    // Never a raw backup, a restore-like action, a user or the audit log.
    for (method, path) in [
        (Method::GET, "/api/v1/backups"),
        (Method::POST, "/api/v1/sources/lite/backups"),
        (Method::POST, "/api/v1/sources/lite/drills"),
        (Method::GET, "/api/v1/jobs"),
        (Method::GET, "/api/v1/users"),
        (Method::GET, "/api/v1/audit"),
        (Method::GET, "/api/v1/audit/verify"),
    ] {
        let (status, _) = srv.call(method.clone(), path, Some(&sup), None).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}");
    }

    let (status, v) = srv
        .call(
            Method::POST,
            "/api/v1/sources/lite/anonymized-copies",
            Some(&sup),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{v}");
    let started = std::time::Instant::now();
    let copy = loop {
        let (status, v) = srv
            .call(Method::GET, "/api/v1/anonymized-copies", Some(&sup), None)
            .await;
        assert_eq!(status, StatusCode::OK);
        if let Some(c) = v["copies"].as_array().and_then(|a| a.first()) {
            break c.clone();
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no copy: {}",
            logs(&srv.ws, 1)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(copy["kind"], "anonymized");
    let resp = srv
        .http
        .get(format!(
            "{}{}",
            srv.base,
            copy["download"].as_str().expect("link")
        ))
        .bearer_auth(&sup)
        .send()
        .await
        .expect("download");
    assert_eq!(resp.status(), StatusCode::OK);
    let bytes = resp.bytes().await.expect("body");
    let file = srv.ws.path("copy.sql.zst.age");
    std::fs::write(&file, &bytes).expect("write");

    let decrypt = |identity: &str| {
        std::process::Command::new("bash")
            .args(["-o", "pipefail", "-c"])
            .arg(format!(
                "age -d -i {} {} | zstd -d",
                srv.ws.path(identity).display(),
                file.display()
            ))
            .output()
            .expect("age")
    };
    let opened = decrypt("support-identity.txt");
    assert!(
        opened.status.success(),
        "{}",
        String::from_utf8_lossy(&opened.stderr)
    );
    let sql = String::from_utf8_lossy(&opened.stdout).into_owned();
    assert!(
        sql.contains("INSERT INTO"),
        "{}",
        &sql[..sql.len().min(500)]
    );
    let conn = rusqlite::Connection::open(&db).expect("source");
    let emails: Vec<String> = conn
        .prepare("SELECT email FROM clients")
        .expect("prepare")
        .query_map([], |r| r.get(0))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("emails");
    assert_eq!(emails.len(), 60);
    for e in &emails {
        assert!(!sql.contains(e.as_str()), "{e} left in the copy");
    }
    // The appliance's own identity does not open it.
    assert!(!decrypt("identity.txt").status.success());
    // Another user (the admin, no recipient) sees no copy.
    let (_, v) = srv
        .call(Method::GET, "/api/v1/anonymized-copies", Some(&admin), None)
        .await;
    assert_eq!(v["copies"].as_array().map(Vec::len), Some(0), "{v}");

    assert_eq!(terminate(&srv.ws, child, Duration::from_secs(60), 1), 0);
}

/// Polls the job history until a job of `kind` satisfies `done`.
async fn wait_job(srv: &Server, token: &str, kind: &str, done: impl Fn(&Value) -> bool) -> Value {
    let started = std::time::Instant::now();
    loop {
        let (_, v) = srv
            .call(Method::GET, "/api/v1/jobs", Some(token), None)
            .await;
        if let Some(job) = v["jobs"]
            .as_array()
            .and_then(|jobs| jobs.iter().find(|j| j["kind"] == kind && done(j)))
        {
            return job.clone();
        }
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "no {kind} job as wanted: {v}\n{}",
            logs(&srv.ws, 1)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restores_verifies_and_cancels_through_the_api() {
    let (api_port, probe_port) = (free_port(), free_port());
    let ws = workspace(api_port, probe_port);
    let mut config = std::fs::read_to_string(&ws.config).expect("config");
    config.push_str("[sources.big]\ntype = \"sqlite\"\npath = \"big.db\"\ntargets = [\"local\"]\n");
    std::fs::write(&ws.config, config).expect("config");
    crate::interrupted::random_blobs(&ws.path("big.db"), 120);
    let id = ws.backup_ok("lite");
    let admin_totp = create_admin(&ws);
    let (srv, child) = serve(ws, api_port, probe_port);
    let admin = srv.admin_session(&admin_totp).await;

    // One backup's metadata: its manifest's tables and each copy.
    let (status, v) = srv
        .call(
            Method::GET,
            &format!("/api/v1/backups/{id}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["manifest"]["tables"]["tables"][0]["rows"], 20, "{v}");
    assert_eq!(v["copies"][0]["status"], "ok");

    // Verify: a job re-reads the copies.
    let (status, v) = srv
        .call(
            Method::POST,
            &format!("/api/v1/backups/{id}/verify"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{v}");
    let job = wait_job(&srv, &admin, "verify", |j| j["status"] != "running").await;
    assert_eq!(job["status"], "ok", "{job}");

    // Restore into a new SQLite file; a bad destination is refused at once.
    let (status, _) = srv
        .call(
            Method::POST,
            &format!("/api/v1/backups/{id}/restore"),
            Some(&admin),
            Some(json!({ "to": "ftp://nowhere/x" })),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let restored = srv.ws.path("restored.db");
    let (status, v) = srv
        .call(
            Method::POST,
            &format!("/api/v1/backups/{id}/restore"),
            Some(&admin),
            Some(json!({ "to": restored.display().to_string() })),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{v}");
    let job = wait_job(&srv, &admin, "restore", |j| j["status"] != "running").await;
    assert_eq!(job["status"], "ok", "{job}");
    let conn = rusqlite::Connection::open(&restored).expect("restored");
    let n: i64 = conn
        .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
        .expect("count");
    assert_eq!(n, 20);

    // Cancel: a running backup stops, is recorded interrupted, and leaves nothing listed.
    let (status, _) = srv
        .call(
            Method::POST,
            "/api/v1/sources/big/backups",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let running = wait_job(&srv, &admin, "backup", |j| {
        j["source"] == "big" && j["status"] == "running"
    })
    .await;
    let job_id = running["id"].as_i64().expect("id");
    let (status, v) = srv
        .call(
            Method::GET,
            &format!("/api/v1/jobs/{job_id}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        v["progress"].is_object() || v["job"]["status"] != "running",
        "live progress: {v}"
    );
    let (status, v) = srv
        .call(
            Method::DELETE,
            &format!("/api/v1/jobs/{job_id}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{v}");
    let ended = wait_job(&srv, &admin, "backup", |j| {
        j["id"] == job_id && j["status"] != "running"
    })
    .await;
    assert_eq!(ended["status"], "interrupted", "{ended}");
    assert!(
        ended["error"]
            .as_str()
            .is_some_and(|e| e.contains("cancelled by user:root-admin")),
        "{ended}"
    );
    let (status, _) = srv
        .call(
            Method::DELETE,
            &format!("/api/v1/jobs/{job_id}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(terminate(&srv.ws, child, Duration::from_secs(60), 1), 0);
    assert!(
        srv.ws.listed("big").is_empty(),
        "a cancelled backup is never listed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_certificate_the_api_speaks_https_only() {
    let (api_port, probe_port) = (free_port(), free_port());
    let ws = workspace(api_port, probe_port);
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).expect("cert");
    let cert_pem = cert.cert.pem();
    std::fs::write(ws.path("api.crt"), &cert_pem).expect("cert");
    std::fs::write(ws.path("api.key"), cert.key_pair.serialize_pem()).expect("key");
    let config = std::fs::read_to_string(&ws.config)
        .expect("config")
        .replace(
            &format!("[api]\nlisten = \"127.0.0.1:{api_port}\"\n"),
            &format!(
                "[api]\nlisten = \"127.0.0.1:{api_port}\"\ntls_cert = \"api.crt\"\ntls_key = \"api.key\"\n"
            ),
        );
    assert!(config.contains("tls_cert"));
    std::fs::write(&ws.config, config).expect("config");
    let admin_totp = create_admin(&ws);
    let mut child = start(&ws, 1);
    wait_ready(&ws, &mut child, probe_port, 1);

    let https = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert_pem.as_bytes()).expect("pem"))
        .build()
        .expect("client");
    let srv = Server {
        base: format!("https://127.0.0.1:{api_port}"),
        http: https,
        ws,
    };
    let (status, v) = srv
        .login("root-admin", ADMIN_PASSWORD, Some(totp_now(&admin_totp)))
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let resp = srv
        .http
        .get(format!("{}/api/v1/me", srv.base))
        .bearer_auth(v["token"].as_str().expect("token"))
        .send()
        .await
        .expect("me");
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers().contains_key("strict-transport-security"));
    // Plain HTTP on the same port gets no answer from the API.
    let plain = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{api_port}/api/v1/login"))
        .json(&json!({ "name": "root-admin", "password": ADMIN_PASSWORD }))
        .send()
        .await;
    assert!(
        plain.as_ref().map_or(true, |r| !r.status().is_success()
            && r.status() != StatusCode::UNAUTHORIZED),
        "{plain:?}"
    );
    assert_eq!(terminate(&srv.ws, child, Duration::from_secs(60), 1), 0);
}
