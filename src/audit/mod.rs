//! The tamper-evident audit log: who did what, when, from which address, with what
//! outcome — every API call and every job.
//!
//! Entries are appended to the state store (`audit_log`, with triggers refusing UPDATE and
//! DELETE); each holds `prev_hash`, the hash of the entry before it (the first one:
//! [`GENESIS`]), and `hash`, the SHA-256 of its own fields and `prev_hash`, each
//! length-prefixed so that no two field lists hash alike. [`verify`] walks the chain and
//! names every entry that was altered (its hash no longer matches its fields), removed or
//! reordered (its `prev_hash` is not the hash of the entry before it, or ids skip).
//!
//! A chain rewritten from some point on, with fresh hashes, would still verify: so the
//! chain's head (last id and hash) is sealed with the integrity key and written to the
//! stores (`_coffre/audit/head.json`) — [`check_head`] then finds a chain that no longer
//! contains the head it once had, or that is shorter than it.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::integrity::IntegrityKey;
use crate::state::{AuditEntry, NewAuditEntry, State, StateError};

/// The `prev_hash` of the first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";
/// Where the sealed head is written in each store.
pub const HEAD_KEY: &str = "_coffre/audit/head.json";
const HEAD_DOMAIN: &str = "coffre-audit-head/1";

/// The hash of an entry: SHA-256 over its `prev_hash` and fields, length-prefixed.
pub fn hash_entry(e: &AuditEntry) -> String {
    let mut h = Sha256::new();
    let id = e.id.to_string();
    for field in [
        e.prev_hash.as_str(),
        id.as_str(),
        e.time.as_str(),
        e.actor.as_str(),
        e.ip.as_str(),
        e.action.as_str(),
        e.target.as_str(),
        e.outcome.as_str(),
        e.details.as_str(),
    ] {
        h.update((field.len() as u64).to_be_bytes());
        h.update(field.as_bytes());
    }
    hex::encode(h.finalize())
}

/// Appends an entry, chained to the last one.
pub fn record(state: &State, entry: &NewAuditEntry) -> Result<AuditEntry, StateError> {
    state.append_audit(entry, hash_entry)
}

/// One thing wrong with the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// The entry concerned.
    pub id: i64,
    pub what: String,
}

/// What verifying found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verification {
    pub ok: bool,
    pub entries: u64,
    /// The last entry's id and hash.
    pub head: Option<(i64, String)>,
    pub problems: Vec<Problem>,
}

/// Checks a chain read in id order; `entries` may be read in pages (`start` = the entry
/// before the first page, or `None` for the beginning).
#[derive(Debug, Default)]
pub struct Verifier {
    last: Option<(i64, String)>,
    count: u64,
    problems: Vec<Problem>,
}

impl Verifier {
    pub fn feed(&mut self, entries: &[AuditEntry]) {
        for e in entries {
            self.count += 1;
            let (want_id, want_prev) = match &self.last {
                None => (1, GENESIS.to_owned()),
                Some((id, hash)) => (id + 1, hash.clone()),
            };
            if e.id != want_id {
                self.problems.push(Problem {
                    id: e.id,
                    what: format!(
                        "entry #{} follows #{}: entries #{}..#{} were removed",
                        e.id,
                        want_id - 1,
                        want_id,
                        e.id - 1
                    ),
                });
            }
            if e.prev_hash != want_prev {
                self.problems.push(Problem {
                    id: e.id,
                    what: format!(
                        "entry #{} does not chain to the entry before it: an entry before it \
                         was removed, reordered or altered",
                        e.id
                    ),
                });
            }
            let recomputed = hash_entry(e);
            if recomputed != e.hash {
                self.problems.push(Problem {
                    id: e.id,
                    what: format!(
                        "entry #{} was altered: its fields no longer give its hash ({} at {} by {})",
                        e.id, e.action, e.time, e.actor
                    ),
                });
            }
            self.last = Some((e.id, e.hash.clone()));
        }
    }

    pub fn finish(self) -> Verification {
        Verification {
            ok: self.problems.is_empty(),
            entries: self.count,
            head: self.last,
            problems: self.problems,
        }
    }
}

/// Verifies the whole chain in the state store.
pub fn verify(state: &State) -> Result<Verification, StateError> {
    let mut v = Verifier::default();
    let mut after = 0;
    loop {
        let page = state.audit_entries(after, 10_000)?;
        let Some(last) = page.last() else { break };
        after = last.id;
        v.feed(&page);
    }
    Ok(v.finish())
}

/// The sealed head written to the stores.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Head {
    pub id: i64,
    pub hash: String,
    pub written_at: String,
    pub mac: Option<String>,
}

impl Head {
    /// The head as sealed JSON.
    pub fn sealed(&self, key: &IntegrityKey) -> Vec<u8> {
        let mut doc = serde_json::to_value(Head {
            mac: None,
            ..self.clone()
        })
        .unwrap_or(serde_json::Value::Null);
        let tag = key.tag_json(HEAD_DOMAIN, &doc, "mac");
        if let serde_json::Value::Object(map) = &mut doc {
            map.insert("mac".into(), serde_json::Value::String(tag));
        }
        serde_json::to_vec_pretty(&doc).unwrap_or_default()
    }

    /// Reads a sealed head, checking its seal.
    pub fn open(bytes: &[u8], key: &IntegrityKey) -> Result<Head, String> {
        let doc: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|e| format!("not a head: {e}"))?;
        key.check_json(HEAD_DOMAIN, &doc, "mac")?;
        serde_json::from_value(doc).map_err(|e| format!("not a head: {e}"))
    }
}

/// Checks a chain against a head it once had: the chain must still hold entry `head.id`
/// with that hash.
pub fn check_head(state: &State, head: &Head) -> Result<Option<Problem>, StateError> {
    let entry = state
        .audit_entries(head.id - 1, 1)?
        .into_iter()
        .find(|e| e.id == head.id);
    Ok(match entry {
        None => Some(Problem {
            id: head.id,
            what: format!(
                "the chain has no entry #{} any more, which the head written at {} records: \
                 entries were removed (or state.db was replaced)",
                head.id, head.written_at
            ),
        }),
        Some(e) if e.hash != head.hash => Some(Problem {
            id: head.id,
            what: format!(
                "entry #{} differs from the head written at {}: the chain was rewritten",
                head.id, head.written_at
            ),
        }),
        Some(_) => None,
    })
}

/// What `coffre audit verify` and `GET /api/v1/audit/verify` report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub ok: bool,
    pub chain: Verification,
    /// The newest sealed head found in the stores, if any.
    pub stored_head: Option<Head>,
    /// Targets whose head could not be read (missing heads are not problems).
    pub unreadable: Vec<String>,
    pub problems: Vec<Problem>,
}

/// Verifies the chain, then the newest head the stores hold against it.
pub async fn verify_all(
    ctx: &crate::pipeline::Context,
    state: &std::sync::Mutex<State>,
) -> Result<Report, StateError> {
    let lock = || {
        state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    };
    let chain = tokio::task::block_in_place(|| verify(&lock()))?;
    let mut problems = chain.problems.clone();
    let mut unreadable = Vec::new();
    let mut newest: Option<Head> = None;
    if let Ok(key) = ctx.integrity_key() {
        for name in ctx.config.targets.keys() {
            let Some(store) = ctx.store(name) else {
                continue;
            };
            match store.get_bytes(HEAD_KEY, 1 << 20).await {
                Ok(bytes) => match Head::open(&bytes, key) {
                    Ok(head) => {
                        if newest.as_ref().is_none_or(|n| head.id > n.id) {
                            newest = Some(head);
                        }
                    }
                    Err(e) => problems.push(Problem {
                        id: 0,
                        what: format!("target {name}: {HEAD_KEY}: {e}"),
                    }),
                },
                Err(e) if e.is_not_found() => {}
                Err(e) => unreadable.push(format!("{name}: {e}")),
            }
        }
    }
    if let Some(head) = &newest
        && let Some(p) = tokio::task::block_in_place(|| check_head(&lock(), head))?
    {
        problems.push(p);
    }
    Ok(Report {
        ok: problems.is_empty(),
        chain,
        stored_head: newest,
        unreadable,
        problems,
    })
}

/// Writes the chain's head, sealed, to every store, unless it is still `last_written`;
/// returns the id written.
pub async fn write_head(
    ctx: &crate::pipeline::Context,
    state: &std::sync::Mutex<State>,
    last_written: Option<i64>,
) -> Result<Option<i64>, String> {
    let key = ctx.integrity_key().map_err(|e| e.to_string())?;
    let last = tokio::task::block_in_place(|| {
        let s = state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut after = last_written.unwrap_or(0).max(0);
        let mut last = None;
        loop {
            let page = s.audit_entries(after, 10_000)?;
            let Some(l) = page.last() else { break };
            after = l.id;
            last = Some(l.clone());
        }
        Ok::<_, StateError>(last)
    })
    .map_err(|e| e.to_string())?;
    let Some(last) = last else { return Ok(None) };
    let head = Head {
        id: last.id,
        hash: last.hash,
        written_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        mac: None,
    };
    let body = bytes::Bytes::from(head.sealed(key));
    let mut failures = Vec::new();
    for name in ctx.config.targets.keys() {
        let Some(store) = ctx.store(name) else {
            continue;
        };
        if let Err(e) = store.put_bytes(HEAD_KEY, body.clone()).await {
            failures.push(e.to_string());
        }
    }
    if failures.len() == ctx.config.targets.len() && !failures.is_empty() {
        return Err(failures.join("; "));
    }
    Ok(Some(head.id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    fn entry(action: &str) -> NewAuditEntry {
        NewAuditEntry {
            time: Utc::now(),
            actor: "user:alice".into(),
            ip: "127.0.0.1".into(),
            action: action.into(),
            target: "billing".into(),
            outcome: "ok".into(),
            details: serde_json::json!({ "n": 1 }),
        }
    }

    #[test]
    fn a_chain_verifies_and_names_what_was_altered_removed_or_reordered() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = State::open_in(dir.path()).expect("state");
        for a in ["login", "backup.trigger", "restore", "logout"] {
            record(&state, &entry(a)).expect("append");
        }
        let v = verify(&state).expect("verify");
        assert!(v.ok, "{v:?}");
        assert_eq!(v.entries, 4);
        let mut entries = state.audit_entries(0, 100).expect("entries");

        // Altered: the action of #2.
        let mut altered = entries.clone();
        altered[1].action = "verify".into();
        let mut ver = Verifier::default();
        ver.feed(&altered);
        let v = ver.finish();
        assert!(!v.ok);
        assert_eq!(v.problems.len(), 1, "{v:?}");
        assert_eq!(v.problems[0].id, 2);
        assert!(v.problems[0].what.contains("altered"), "{v:?}");

        // Removed: #3.
        let removed: Vec<AuditEntry> = entries.iter().filter(|e| e.id != 3).cloned().collect();
        let mut ver = Verifier::default();
        ver.feed(&removed);
        let v = ver.finish();
        assert!(
            v.problems
                .iter()
                .any(|p| p.id == 4 && p.what.contains("removed")),
            "{v:?}"
        );

        // Reordered: #2 and #3 swapped.
        entries.swap(1, 2);
        let mut ver = Verifier::default();
        ver.feed(&entries);
        assert!(!ver.finish().ok);
    }

    #[test]
    fn the_store_refuses_updates_and_deletes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = State::open_in(dir.path()).expect("state");
        record(&state, &entry("login")).expect("append");
        let conn = rusqlite::Connection::open(state.path()).expect("open");
        let err = conn
            .execute("UPDATE audit_log SET actor = 'x'", [])
            .expect_err("append-only");
        assert!(err.to_string().contains("append-only"), "{err}");
        assert!(conn.execute("DELETE FROM audit_log", []).is_err());
    }

    #[test]
    fn a_head_detects_a_rewritten_or_truncated_chain() {
        let key = IntegrityKey::from_bytes(vec![7; 32], "test").expect("key");
        let dir = tempfile::tempdir().expect("tempdir");
        let state = State::open_in(dir.path()).expect("state");
        let last = (0..3)
            .map(|_| record(&state, &entry("login")).expect("append"))
            .last()
            .expect("entries");
        let head = Head {
            id: last.id,
            hash: last.hash.clone(),
            written_at: "2026-11-23T00:00:00.000Z".into(),
            mac: None,
        };
        let sealed = head.sealed(&key);
        let opened = Head::open(&sealed, &key).expect("opens");
        assert_eq!(check_head(&state, &opened).expect("check"), None);
        let forged = String::from_utf8(sealed)
            .expect("utf8")
            .replace("\"id\": 3", "\"id\": 2");
        assert!(Head::open(forged.as_bytes(), &key).is_err());

        // A fresh state (a replaced state.db) no longer holds the head.
        let other = tempfile::tempdir().expect("tempdir");
        let fresh = State::open_in(other.path()).expect("state");
        record(&fresh, &entry("login")).expect("append");
        let problem = check_head(&fresh, &opened).expect("check").expect("found");
        assert!(problem.what.contains("#3"), "{problem:?}");
    }
}
