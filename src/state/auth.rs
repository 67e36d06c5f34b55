//! The admin API's records in the state store: users (argon2id password hashes, TOTP
//! secrets sealed under the integrity key, failed-login counters), sessions and API tokens
//! (SHA-256 fingerprints only: a token is shown once and never stored), and the audit log,
//! an append-only chain where each entry holds the SHA-256 of the one before
//! ([`crate::audit`] computes and checks it).
//!
//! Losing `state.db` loses these too (the stores keep the audit chain's head, so the loss
//! is detected): the first admin is then made again with `coffre user create-admin`.

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};

use super::{State, StateError, time_text};

pub(super) const MIGRATION_2: &str = "
    CREATE TABLE users (
        id                  INTEGER PRIMARY KEY AUTOINCREMENT,
        name                TEXT NOT NULL UNIQUE,
        role                TEXT NOT NULL,
        password_phc        TEXT NOT NULL,
        must_change         INTEGER NOT NULL,
        password_changed_at TEXT NOT NULL,
        totp_secret         TEXT,
        totp_last_step      INTEGER,
        failures            INTEGER NOT NULL DEFAULT 0,
        last_failure        TEXT,
        recipient           TEXT,
        disabled            INTEGER NOT NULL DEFAULT 0,
        created_at          TEXT NOT NULL
    );
    CREATE TABLE sessions (
        fingerprint TEXT PRIMARY KEY,
        user_id     INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
        created_at  TEXT NOT NULL,
        expires_at  TEXT NOT NULL,
        ip          TEXT NOT NULL
    );
    CREATE TABLE api_tokens (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        fingerprint TEXT NOT NULL UNIQUE,
        user_id     INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
        name        TEXT NOT NULL,
        role        TEXT NOT NULL,
        created_at  TEXT NOT NULL,
        expires_at  TEXT NOT NULL,
        revoked_at  TEXT,
        last_used   TEXT
    );
    CREATE TABLE audit_log (
        id        INTEGER PRIMARY KEY AUTOINCREMENT,
        time      TEXT NOT NULL,
        actor     TEXT NOT NULL,
        ip        TEXT NOT NULL,
        action    TEXT NOT NULL,
        target    TEXT NOT NULL,
        outcome   TEXT NOT NULL,
        details   TEXT NOT NULL,
        prev_hash TEXT NOT NULL,
        hash      TEXT NOT NULL
    );
    CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
    CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
";

/// Failed logins are counted per user and client address, so that failures from one
/// address (an attacker who knows a name) do not lock the user out everywhere. (The
/// `failures` and `last_failure` columns of `users`, from migration 2, are unused since.)
pub(super) const MIGRATION_3: &str = "
    CREATE TABLE login_failures (
        user_id      INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
        ip           TEXT NOT NULL,
        failures     INTEGER NOT NULL,
        last_failure TEXT NOT NULL,
        PRIMARY KEY (user_id, ip)
    );
";

/// A user as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    pub id: i64,
    pub name: String,
    pub role: String,
    pub password_phc: String,
    pub must_change: bool,
    pub password_changed_at: DateTime<Utc>,
    /// Sealed (see [`crate::api`]), never in clear.
    pub totp_secret: Option<String>,
    pub totp_last_step: Option<u64>,
    /// The age recipient anonymized copies for this user are encrypted to.
    pub recipient: Option<String>,
    pub disabled: bool,
    pub created_at: DateTime<Utc>,
}

/// A user to create.
#[derive(Debug, Clone, Copy)]
pub struct NewUser<'a> {
    pub name: &'a str,
    pub role: &'a str,
    pub password_phc: &'a str,
    pub must_change: bool,
    pub recipient: Option<&'a str>,
    pub now: DateTime<Utc>,
}

/// An API token as stored (its fingerprint only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    pub id: i64,
    pub user_id: i64,
    pub name: String,
    pub role: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub last_used: Option<DateTime<Utc>>,
}

/// An audit entry to append; the store gives it its id and chains it.
#[derive(Debug, Clone)]
pub struct NewAuditEntry {
    pub time: DateTime<Utc>,
    pub actor: String,
    pub ip: String,
    pub action: String,
    pub target: String,
    pub outcome: String,
    pub details: serde_json::Value,
}

/// An audit entry as stored.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AuditEntry {
    pub id: i64,
    pub time: String,
    pub actor: String,
    pub ip: String,
    pub action: String,
    pub target: String,
    pub outcome: String,
    /// JSON text, exactly as stored (the hash covers it).
    pub details: String,
    pub prev_hash: String,
    pub hash: String,
}

const USER_COLUMNS: &str = "SELECT id, name, role, password_phc, must_change, password_changed_at, \
    totp_secret, totp_last_step, recipient, disabled, created_at FROM users";

const TOKEN_COLUMNS: &str = "SELECT id, user_id, name, role, created_at, expires_at, revoked_at, \
    last_used FROM api_tokens";

/// A `users` row as stored.
type RawUser = (
    i64,
    String,
    String,
    String,
    bool,
    String,
    Option<String>,
    Option<i64>,
    Option<String>,
    bool,
    String,
);

impl State {
    // ---- users ----

    /// Creates a user; a taken name is an error.
    pub fn create_user(&self, user: &NewUser<'_>) -> Result<i64, StateError> {
        self.conn
            .prepare_cached(
                "INSERT INTO users (name, role, password_phc, must_change, password_changed_at, \
                 recipient, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?5) RETURNING id",
            )
            .and_then(|mut stmt| {
                stmt.query_row(
                    params![
                        user.name,
                        user.role,
                        user.password_phc,
                        user.must_change,
                        time_text(user.now),
                        user.recipient
                    ],
                    |r| r.get(0),
                )
            })
            .map_err(|e| self.sql("creating a user", e))
    }

    /// Every user, by name.
    pub fn users(&self) -> Result<Vec<UserRecord>, StateError> {
        let raws: Vec<RawUser> = self
            .conn
            .prepare_cached(&format!("{USER_COLUMNS} ORDER BY name"))
            .and_then(|mut stmt| {
                stmt.query_map([], read_user)?
                    .collect::<Result<Vec<_>, _>>()
            })
            .map_err(|e| self.sql("listing users", e))?;
        raws.into_iter().map(|r| self.decode_user(r)).collect()
    }

    /// The user called `name`, if any.
    pub fn user_by_name(&self, name: &str) -> Result<Option<UserRecord>, StateError> {
        self.one_user("name = ?1", name)
    }

    /// The user with id `id`, if any.
    pub fn user_by_id(&self, id: i64) -> Result<Option<UserRecord>, StateError> {
        self.one_user("id = ?1", id)
    }

    fn one_user(
        &self,
        filter: &str,
        value: impl rusqlite::ToSql,
    ) -> Result<Option<UserRecord>, StateError> {
        let raw = self
            .conn
            .prepare_cached(&format!("{USER_COLUMNS} WHERE {filter}"))
            .and_then(|mut stmt| stmt.query_row([value], read_user).optional())
            .map_err(|e| self.sql("reading a user", e))?;
        raw.map(|r| self.decode_user(r)).transpose()
    }

    /// Sets a new password (and whether it must be changed at the next login).
    pub fn set_password(
        &self,
        id: i64,
        phc: &str,
        must_change: bool,
        now: DateTime<Utc>,
    ) -> Result<(), StateError> {
        self.exec(
            "setting a password",
            "UPDATE users SET password_phc = ?2, must_change = ?3, password_changed_at = ?4 \
             WHERE id = ?1",
            params![id, phc, must_change, time_text(now)],
        )
    }

    /// Sets (or clears) a user's sealed TOTP secret, forgetting the last step used.
    pub fn set_totp(&self, id: i64, sealed: Option<&str>) -> Result<(), StateError> {
        self.exec(
            "setting a TOTP secret",
            "UPDATE users SET totp_secret = ?2, totp_last_step = NULL WHERE id = ?1",
            params![id, sealed],
        )
    }

    /// Records the TOTP step a login used (a code is never accepted twice).
    pub fn set_totp_step(&self, id: i64, step: u64) -> Result<(), StateError> {
        let step = i64::try_from(step).unwrap_or(i64::MAX);
        self.exec(
            "recording a TOTP step",
            "UPDATE users SET totp_last_step = ?2 WHERE id = ?1",
            params![id, step],
        )
    }

    /// Counts a failed login of user `id` from `ip`.
    pub fn login_failed(&self, id: i64, ip: &str, now: DateTime<Utc>) -> Result<(), StateError> {
        self.exec(
            "recording a failed login",
            "INSERT INTO login_failures (user_id, ip, failures, last_failure) \
             VALUES (?1, ?2, 1, ?3) ON CONFLICT (user_id, ip) DO UPDATE SET \
             failures = failures + 1, last_failure = excluded.last_failure",
            params![id, ip, time_text(now)],
        )
    }

    /// Forgets the failed logins of user `id` from `ip` after a success.
    pub fn login_succeeded(&self, id: i64, ip: &str) -> Result<(), StateError> {
        self.exec(
            "resetting failed logins",
            "DELETE FROM login_failures WHERE user_id = ?1 AND ip = ?2",
            params![id, ip],
        )
    }

    /// The consecutive failed logins of user `id` from `ip`, and when the last one was.
    pub fn login_failures(
        &self,
        id: i64,
        ip: &str,
    ) -> Result<Option<(u32, DateTime<Utc>)>, StateError> {
        let raw: Option<(i64, String)> = self
            .conn
            .prepare_cached(
                "SELECT failures, last_failure FROM login_failures WHERE user_id = ?1 AND ip = ?2",
            )
            .and_then(|mut stmt| {
                stmt.query_row(params![id, ip], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()
            })
            .map_err(|e| self.sql("reading failed logins", e))?;
        raw.map(|(n, t)| {
            let at = self.time("login_failures", &id.to_string(), "last_failure", &t)?;
            Ok((u32::try_from(n).unwrap_or(u32::MAX), at))
        })
        .transpose()
    }

    /// Changes a user's role (their sessions end, so that the new role applies at once).
    pub fn set_role(&self, id: i64, role: &str) -> Result<(), StateError> {
        self.exec(
            "changing a role",
            "UPDATE users SET role = ?2 WHERE id = ?1",
            params![id, role],
        )?;
        self.exec(
            "ending sessions",
            "DELETE FROM sessions WHERE user_id = ?1",
            params![id],
        )
    }

    /// Sets (or clears) the age recipient anonymized copies for a user are encrypted to.
    pub fn set_recipient(&self, id: i64, recipient: Option<&str>) -> Result<(), StateError> {
        self.exec(
            "setting a recipient",
            "UPDATE users SET recipient = ?2 WHERE id = ?1",
            params![id, recipient],
        )
    }

    /// Enables or disables a user (a disabled user's sessions end).
    pub fn set_disabled(&self, id: i64, disabled: bool) -> Result<(), StateError> {
        self.exec(
            "disabling a user",
            "UPDATE users SET disabled = ?2 WHERE id = ?1",
            params![id, disabled],
        )?;
        if disabled {
            self.exec(
                "ending sessions",
                "DELETE FROM sessions WHERE user_id = ?1",
                params![id],
            )?;
        }
        Ok(())
    }

    // ---- sessions ----

    /// Stores a session by its token's fingerprint.
    pub fn create_session(
        &self,
        fingerprint: &str,
        user_id: i64,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
        ip: &str,
    ) -> Result<(), StateError> {
        self.exec(
            "creating a session",
            "INSERT INTO sessions (fingerprint, user_id, created_at, expires_at, ip) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                fingerprint,
                user_id,
                time_text(now),
                time_text(expires_at),
                ip
            ],
        )
    }

    /// The user of a live session (expired ones are removed on the way).
    pub fn session_user(
        &self,
        fingerprint: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<i64>, StateError> {
        self.exec(
            "expiring sessions",
            "DELETE FROM sessions WHERE expires_at <= ?1",
            params![time_text(now)],
        )?;
        self.conn
            .prepare_cached("SELECT user_id FROM sessions WHERE fingerprint = ?1")
            .and_then(|mut stmt| stmt.query_row([fingerprint], |r| r.get(0)).optional())
            .map_err(|e| self.sql("reading a session", e))
    }

    /// Ends one session.
    pub fn end_session(&self, fingerprint: &str) -> Result<(), StateError> {
        self.exec(
            "ending a session",
            "DELETE FROM sessions WHERE fingerprint = ?1",
            params![fingerprint],
        )
    }

    // ---- API tokens ----

    /// Stores a token by its fingerprint; returns its id.
    pub fn create_token(
        &self,
        fingerprint: &str,
        user_id: i64,
        name: &str,
        role: &str,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<i64, StateError> {
        self.conn
            .prepare_cached(
                "INSERT INTO api_tokens (fingerprint, user_id, name, role, created_at, expires_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6) RETURNING id",
            )
            .and_then(|mut stmt| {
                stmt.query_row(
                    params![
                        fingerprint,
                        user_id,
                        name,
                        role,
                        time_text(now),
                        time_text(expires_at)
                    ],
                    |r| r.get(0),
                )
            })
            .map_err(|e| self.sql("creating a token", e))
    }

    /// The live token with this fingerprint (not revoked, not expired), marked used.
    pub fn use_token(
        &self,
        fingerprint: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<TokenRecord>, StateError> {
        let raw = self
            .conn
            .prepare_cached(&format!(
                "{TOKEN_COLUMNS} WHERE fingerprint = ?1 AND revoked_at IS NULL AND expires_at > ?2"
            ))
            .and_then(|mut stmt| {
                stmt.query_row(params![fingerprint, time_text(now)], read_token)
                    .optional()
            })
            .map_err(|e| self.sql("reading a token", e))?;
        let Some(raw) = raw else { return Ok(None) };
        self.exec(
            "marking a token used",
            "UPDATE api_tokens SET last_used = ?2 WHERE id = ?1",
            params![raw.0, time_text(now)],
        )?;
        self.decode_token(raw).map(Some)
    }

    /// Tokens of one user (`Some`) or of all (`None`), newest first.
    pub fn tokens(&self, user_id: Option<i64>) -> Result<Vec<TokenRecord>, StateError> {
        let raws: Vec<RawToken> = self
            .conn
            .prepare_cached(&format!(
                "{TOKEN_COLUMNS} WHERE (?1 IS NULL OR user_id = ?1) ORDER BY id DESC"
            ))
            .and_then(|mut stmt| {
                stmt.query_map([user_id], read_token)?
                    .collect::<Result<Vec<_>, _>>()
            })
            .map_err(|e| self.sql("listing tokens", e))?;
        raws.into_iter().map(|r| self.decode_token(r)).collect()
    }

    /// Revokes a token; false when there is no such live token.
    pub fn revoke_token(&self, id: i64, now: DateTime<Utc>) -> Result<bool, StateError> {
        self.conn
            .execute(
                "UPDATE api_tokens SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
                params![id, time_text(now)],
            )
            .map(|n| n > 0)
            .map_err(|e| self.sql("revoking a token", e))
    }

    // ---- audit log ----

    /// Appends an entry: `hash_of(prev_hash, id, entry without hashes)` gives its hash.
    /// Returns the stored entry.
    pub fn append_audit(
        &self,
        entry: &NewAuditEntry,
        hash_of: impl FnOnce(&AuditEntry) -> String,
    ) -> Result<AuditEntry, StateError> {
        let tx = self
            .conn
            .unchecked_transaction()
            .map_err(|e| self.sql("appending to the audit log", e))?;
        let last: Option<(i64, String)> = tx
            .query_row(
                "SELECT id, hash FROM audit_log ORDER BY id DESC LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(|e| self.sql("reading the audit log's head", e))?;
        let (id, prev_hash) = match last {
            Some((id, hash)) => (id + 1, hash),
            None => (1, crate::audit::GENESIS.to_owned()),
        };
        let details =
            serde_json::to_string(&entry.details).map_err(|source| StateError::Encode {
                path: self.path.clone(),
                what: "an audit entry",
                source,
            })?;
        let mut stored = AuditEntry {
            id,
            time: time_text(entry.time),
            actor: entry.actor.clone(),
            ip: entry.ip.clone(),
            action: entry.action.clone(),
            target: entry.target.clone(),
            outcome: entry.outcome.clone(),
            details,
            prev_hash,
            hash: String::new(),
        };
        stored.hash = hash_of(&stored);
        tx.execute(
            "INSERT INTO audit_log (id, time, actor, ip, action, target, outcome, details, \
             prev_hash, hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            params![
                stored.id,
                stored.time,
                stored.actor,
                stored.ip,
                stored.action,
                stored.target,
                stored.outcome,
                stored.details,
                stored.prev_hash,
                stored.hash
            ],
        )
        .map_err(|e| self.sql("appending to the audit log", e))?;
        tx.commit()
            .map_err(|e| self.sql("appending to the audit log", e))?;
        Ok(stored)
    }

    /// Audit entries with `id > after`, oldest first, at most `limit`.
    pub fn audit_entries(&self, after: i64, limit: usize) -> Result<Vec<AuditEntry>, StateError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.conn
            .prepare_cached(
                "SELECT id, time, actor, ip, action, target, outcome, details, prev_hash, hash \
                 FROM audit_log WHERE id > ?1 ORDER BY id LIMIT ?2",
            )
            .and_then(|mut stmt| {
                stmt.query_map(params![after, limit], |r| {
                    Ok(AuditEntry {
                        id: r.get(0)?,
                        time: r.get(1)?,
                        actor: r.get(2)?,
                        ip: r.get(3)?,
                        action: r.get(4)?,
                        target: r.get(5)?,
                        outcome: r.get(6)?,
                        details: r.get(7)?,
                        prev_hash: r.get(8)?,
                        hash: r.get(9)?,
                    })
                })?
                .collect::<Result<Vec<_>, _>>()
            })
            .map_err(|e| self.sql("reading the audit log", e))
    }

    // ---- helpers ----

    fn exec(
        &self,
        action: &'static str,
        sql: &str,
        params: impl rusqlite::Params,
    ) -> Result<(), StateError> {
        self.conn
            .prepare_cached(sql)
            .and_then(|mut stmt| stmt.execute(params))
            .map(|_| ())
            .map_err(|e| self.sql(action, e))
    }

    fn decode_user(&self, r: RawUser) -> Result<UserRecord, StateError> {
        let row = r.0.to_string();
        let t = "users";
        Ok(UserRecord {
            id: r.0,
            name: r.1,
            role: r.2,
            password_phc: r.3,
            must_change: r.4,
            password_changed_at: self.time(t, &row, "password_changed_at", &r.5)?,
            totp_secret: r.6,
            totp_last_step: r.7.and_then(|s| u64::try_from(s).ok()),
            recipient: r.8,
            disabled: r.9,
            created_at: self.time(t, &row, "created_at", &r.10)?,
        })
    }

    fn decode_token(&self, r: RawToken) -> Result<TokenRecord, StateError> {
        let row = r.0.to_string();
        let t = "api_tokens";
        let opt =
            |c: &'static str, v: Option<String>| v.map(|v| self.time(t, &row, c, &v)).transpose();
        Ok(TokenRecord {
            id: r.0,
            user_id: r.1,
            name: r.2,
            role: r.3,
            created_at: self.time(t, &row, "created_at", &r.4)?,
            expires_at: self.time(t, &row, "expires_at", &r.5)?,
            revoked_at: opt("revoked_at", r.6)?,
            last_used: opt("last_used", r.7)?,
        })
    }
}

fn read_user(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawUser> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
        r.get(8)?,
        r.get(9)?,
        r.get(10)?,
    ))
}

type RawToken = (
    i64,
    i64,
    String,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
);

fn read_token(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawToken> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
    ))
}
