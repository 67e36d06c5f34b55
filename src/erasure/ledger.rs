//! The erasure ledger: every erasure request recorded for a source, kept in the state store
//! and replicated to every target of the source, so that it outlives the appliance.
//!
//! Each entry is one object `_coffre/erasures/SOURCE/ID.json.age`: the entry as JSON,
//! tagged with HMAC-SHA256 under the integrity key (domain `coffre erasure`), then
//! encrypted with age to the configuration's recipients (a subject's key and the reason of
//! a request are personal data). Entries are never rewritten, so two appliances or a CLI
//! beside the service never race on one object. [`load`] merges the state store with every
//! store it can read: entries found only in a store are added to the state store (a fresh
//! install rebuilds the ledger), entries missing from a store are written to it again, and
//! objects whose tag does not check are refused (a forged erasure would delete data at the
//! next restore).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::sync::Mutex;

use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::integrity::IntegrityKey;
use crate::keys::{self, Identities};
use crate::pipeline::{Context, ContextError};
use crate::state::{State, StateError};

/// The object-key prefix of ledger entries in a store.
pub const STORE_PREFIX: &str = "_coffre/erasures/";
/// The `format` of an entry.
pub const FORMAT: &str = "coffre-erasure/1";
const DOMAIN: &str = "coffre erasure";
/// The largest entry object read.
const MAX_ENTRY_BYTES: u64 = 64 * 1024;
/// The longest reason kept.
pub const MAX_REASON_CHARS: usize = 1000;

/// Who is erased: the key of a row of the policy's subject table.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Subject {
    /// `schema.table`.
    pub table: String,
    pub column: String,
    /// The key's value, as text.
    pub key: String,
}

impl std::fmt::Display for Subject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}={}", self.table, self.column, self.key)
    }
}

/// `[schema.]table.column=value`, as written on the command line (the schema may be left
/// out; [`resolve_subject`] fills it in from the policy).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectArg {
    pub table: String,
    pub column: String,
    pub key: String,
}

impl std::str::FromStr for SubjectArg {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || {
            format!(
                "subject {s:?} must be table.column=value, e.g. clients.id=42 (or \
                 public.clients.id=42)"
            )
        };
        let (name, key) = s.split_once('=').ok_or_else(bad)?;
        let (table, column) = name.trim().rsplit_once('.').ok_or_else(bad)?;
        let key = key.trim();
        if table.is_empty() || column.is_empty() || key.is_empty() {
            return Err(bad());
        }
        Ok(SubjectArg {
            table: table.to_owned(),
            column: column.to_owned(),
            key: key.to_owned(),
        })
    }
}

/// One erasure request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Erasure {
    pub format: String,
    /// `TIME-RANDOM`, sorting in time order.
    pub id: String,
    pub source: String,
    pub subject: Subject,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// `cli:USER` or `user:NAME` (API).
    pub actor: String,
    pub recorded_at: DateTime<Utc>,
}

impl Erasure {
    pub fn store_key(&self) -> String {
        format!("{STORE_PREFIX}{}/{}.json.age", self.source, self.id)
    }

    fn sealed(&self, key: &IntegrityKey) -> Value {
        let mut doc = serde_json::to_value(self).unwrap_or(Value::Null);
        if let Value::Object(map) = &mut doc {
            let tag = key.tag_json(DOMAIN, &Value::Object(map.clone()), "mac");
            map.insert("mac".into(), Value::String(tag));
        }
        doc
    }

    /// Reads a sealed entry, checking its tag.
    fn unseal(doc: &Value, key: &IntegrityKey) -> Result<Erasure, String> {
        key.check_json(DOMAIN, doc, "mac")?;
        let mut doc = doc.clone();
        if let Value::Object(map) = &mut doc {
            map.remove("mac");
        }
        let e: Erasure = serde_json::from_value(doc).map_err(|e| e.to_string())?;
        if e.format != FORMAT {
            return Err(format!("format {:?}, expected {FORMAT:?}", e.format));
        }
        Ok(e)
    }
}

/// Errors of the ledger, naming the fix.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error(transparent)]
    Context(Box<ContextError>),
    #[error(transparent)]
    State(Box<StateError>),
    #[error(transparent)]
    Setup(Box<crate::anonymize::setup::SetupError>),
    #[error(
        "source {0} has no erasure rules: add an [erasure] section to its policy (see policies/README.md)"
    )]
    NoRules(String),
    #[error("{0}")]
    Subject(String),
    #[error("{0}")]
    Other(String),
}

impl From<ContextError> for LedgerError {
    fn from(e: ContextError) -> Self {
        LedgerError::Context(Box::new(e))
    }
}

impl From<StateError> for LedgerError {
    fn from(e: StateError) -> Self {
        LedgerError::State(Box::new(e))
    }
}

/// The policy's erasure rules of a source (the policy parsed, not yet checked).
pub fn rules_of(
    ctx: &Context,
    source: &str,
) -> Result<(crate::anonymize::policy::Policy, super::rules::ErasureRules), LedgerError> {
    let policy =
        crate::anonymize::setup::load_policy(&ctx.config, source).map_err(|e| match e {
            crate::anonymize::setup::SetupError::NoPolicy(s) => LedgerError::NoRules(s),
            other => LedgerError::Setup(Box::new(other)),
        })?;
    let rules = policy
        .erasure
        .clone()
        .ok_or_else(|| LedgerError::NoRules(source.to_owned()))?;
    Ok((policy, rules))
}

/// The full subject a command-line subject names under `rules`, or why it does not.
pub fn resolve_subject(
    rules: &super::rules::ErasureRules,
    arg: &SubjectArg,
) -> Result<Subject, LedgerError> {
    if !rules.names_subject(&arg.table, &arg.column) {
        return Err(LedgerError::Subject(format!(
            "subject {}.{} is not this source's: its policy erases by {}.{} (e.g. --subject {}.{}=42)",
            arg.table,
            arg.column,
            rules.subject_table,
            rules.subject_column,
            rules.subject_table,
            rules.subject_column
        )));
    }
    Ok(Subject {
        table: rules.subject_table.clone(),
        column: rules.subject_column.clone(),
        key: arg.key.clone(),
    })
}

fn new_id(at: DateTime<Utc>) -> String {
    let mut random = [0u8; 4];
    let _ = getrandom::fill(&mut random);
    format!(
        "{}-{}",
        at.format("%Y%m%dT%H%M%S%.3fZ"),
        hex::encode(random)
    )
}

/// What [`record`] did.
#[derive(Debug, Clone, Serialize)]
pub struct Recorded {
    pub erasure: Erasure,
    /// Targets now holding the entry.
    pub stored_in: Vec<String>,
    /// Targets that could not take it, with why (written again by the next [`load`]).
    pub failed: Vec<String>,
}

/// Records an erasure request: checked against the source's policy, saved in the state
/// store, then replicated to every target of the source.
pub async fn record(
    ctx: &Context,
    state: &Mutex<State>,
    source: &str,
    subject: &SubjectArg,
    reason: Option<&str>,
    actor: &str,
) -> Result<Recorded, LedgerError> {
    ctx.config.source(source).map_err(ContextError::from)?;
    let (_, rules) = rules_of(ctx, source)?;
    let subject = resolve_subject(&rules, subject)?;
    if let Some(r) = reason
        && r.chars().count() > MAX_REASON_CHARS
    {
        return Err(LedgerError::Other(format!(
            "the reason is longer than {MAX_REASON_CHARS} characters: shorten it"
        )));
    }
    let now = Utc::now();
    let erasure = Erasure {
        format: FORMAT.to_owned(),
        id: new_id(now),
        source: source.to_owned(),
        subject,
        reason: reason.map(str::to_owned),
        actor: actor.to_owned(),
        recorded_at: now,
    };
    save(state, &erasure)?;
    let (stored_in, failed) = replicate(ctx, &erasure, None).await?;
    tracing::info!(source, id = %erasure.id, targets = stored_in.len(), "erasure recorded");
    Ok(Recorded {
        erasure,
        stored_in,
        failed,
    })
}

pub(crate) fn lock(state: &Mutex<State>) -> Result<std::sync::MutexGuard<'_, State>, LedgerError> {
    state
        .lock()
        .map_err(|_| LedgerError::Other("the state store's lock is poisoned".into()))
}

fn save(state: &Mutex<State>, erasure: &Erasure) -> Result<bool, LedgerError> {
    let doc = serde_json::to_value(erasure).map_err(|e| LedgerError::Other(e.to_string()))?;
    Ok(lock(state)?.save_erasure(&erasure.id, &erasure.source, erasure.recorded_at, &doc)?)
}

/// Writes an entry to the source's targets (`only`: just these); returns (written, failed).
async fn replicate(
    ctx: &Context,
    erasure: &Erasure,
    only: Option<&[String]>,
) -> Result<(Vec<String>, Vec<String>), LedgerError> {
    let key = ctx.integrity_key()?;
    let recipients =
        keys::parse_recipients(&ctx.config.encryption.recipients).map_err(ContextError::from)?;
    let plain = serde_json::to_vec_pretty(&erasure.sealed(key))
        .map_err(|e| LedgerError::Other(e.to_string()))?;
    let body = Bytes::from(encrypt(&plain, &recipients)?);
    let mut written = Vec::new();
    let mut failed = Vec::new();
    for store in ctx.stores_of(&erasure.source)? {
        if only.is_some_and(|o| !o.iter().any(|t| t == store.name())) {
            continue;
        }
        match store.put_bytes(&erasure.store_key(), body.clone()).await {
            Ok(()) => written.push(store.name().to_owned()),
            Err(e) => {
                tracing::warn!(target_name = %store.name(), error = %e, "cannot store an erasure entry; the next ledger read writes it again");
                failed.push(format!("{}: {e}", store.name()));
            }
        }
    }
    Ok((written, failed))
}

fn encrypt(plain: &[u8], recipients: &[age::x25519::Recipient]) -> Result<Vec<u8>, LedgerError> {
    let err = |e: &dyn std::fmt::Display| LedgerError::Other(format!("encrypting an erasure: {e}"));
    let encryptor =
        age::Encryptor::with_recipients(recipients.iter().map(|r| r as &dyn age::Recipient))
            .map_err(|e| err(&e))?;
    let mut out = Vec::with_capacity(plain.len() + 256);
    let mut w = encryptor.wrap_output(&mut out).map_err(|e| err(&e))?;
    w.write_all(plain).map_err(|e| err(&e))?;
    w.finish().map_err(|e| err(&e))?;
    Ok(out)
}

fn decrypt(bytes: &[u8], identities: &Identities) -> Result<Vec<u8>, String> {
    let d = age::Decryptor::new_buffered(bytes).map_err(|e| e.to_string())?;
    let mut r = d
        .decrypt(identities.iter().map(|i| i.as_ref() as &dyn age::Identity))
        .map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    r.by_ref()
        .take(MAX_ENTRY_BYTES)
        .read_to_end(&mut out)
        .map_err(|e| e.to_string())?;
    Ok(out)
}

/// The ledger of one source, as [`load`] found it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Ledger {
    /// Oldest first.
    pub erasures: Vec<Erasure>,
    /// Entries found in a store only, now in the state store too.
    pub rebuilt: usize,
    /// Entries written again to a store that lacked them.
    pub replicated: usize,
    /// Store objects refused (tag does not check, unreadable), with why.
    pub rejected: Vec<String>,
    /// Targets that could not be listed or read.
    pub unreachable: Vec<String>,
    /// Why the stores were not read, when they were not (no identity configured).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stores_not_read: Option<String>,
}

impl Ledger {
    /// The distinct subject keys, sorted.
    pub fn keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self
            .erasures
            .iter()
            .map(|e| e.subject.key.clone())
            .collect();
        keys.sort();
        keys.dedup();
        keys
    }
}

/// The ledger of `source`: the state store's entries merged with every target's. Reading
/// the stores needs the identity; without one configured, the state store alone is used
/// (`stores_not_read` says so) unless `need_stores`, which makes it an error. With no
/// state store (`None`: it could not be opened), the stores alone give the ledger.
pub async fn load(
    ctx: &Context,
    state: Option<&Mutex<State>>,
    source: &str,
    need_stores: bool,
) -> Result<Ledger, LedgerError> {
    let mut ledger = Ledger::default();
    let mut by_id: BTreeMap<String, Erasure> = BTreeMap::new();
    let docs = match state {
        Some(state) => lock(state)?.erasures(Some(source))?,
        None => Vec::new(),
    };
    for doc in docs {
        match serde_json::from_value::<Erasure>(doc) {
            Ok(e) => {
                by_id.insert(e.id.clone(), e);
            }
            Err(e) => ledger
                .rejected
                .push(format!("state store: an entry is unreadable: {e}")),
        }
    }
    let identities = match ctx.config.encryption.identity_file {
        Some(_) => Some(ctx.identities()?.0),
        None if need_stores => {
            return Err(ContextError::from(keys::KeyError::NoIdentity).into());
        }
        None => None,
    };
    let Some(identities) = identities else {
        ledger.stores_not_read = Some(
            "no identity_file in [encryption]: the ledger copies in the stores were not read"
                .into(),
        );
        ledger.erasures = by_id.into_values().collect();
        return Ok(ledger);
    };
    let key = ctx.integrity_key()?;
    let prefix = format!("{STORE_PREFIX}{source}/");
    // Which ids each reachable target holds.
    let mut held: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for store in ctx.stores_of(source)? {
        let listing = match store.list(&prefix).await {
            Ok(l) => l,
            Err(e) => {
                ledger.unreachable.push(format!("{}: {e}", store.name()));
                continue;
            }
        };
        let ids = held.entry(store.name().to_owned()).or_default();
        for meta in listing {
            let Some(id) = meta
                .key
                .strip_prefix(&prefix)
                .and_then(|k| k.strip_suffix(".json.age"))
            else {
                continue;
            };
            if by_id.contains_key(id) {
                ids.push(id.to_owned());
                continue;
            }
            let what = format!("{}: {}", store.name(), meta.key);
            let read = store
                .get_bytes(&meta.key, MAX_ENTRY_BYTES * 2)
                .await
                .map_err(|e| e.to_string())
                .and_then(|b| decrypt(&b, &identities))
                .and_then(|plain| {
                    serde_json::from_slice::<Value>(&plain).map_err(|e| e.to_string())
                })
                .and_then(|doc| Erasure::unseal(&doc, key));
            match read {
                Ok(e) if e.id == id && e.source == source => {
                    ids.push(id.to_owned());
                    if let Some(state) = state {
                        save(state, &e)?;
                        ledger.rebuilt += 1;
                    }
                    by_id.insert(e.id.clone(), e);
                }
                Ok(_) => ledger
                    .rejected
                    .push(format!("{what}: its id or source does not match its key")),
                Err(why) => {
                    tracing::warn!(object = %what, reason = %why, "erasure entry refused");
                    ledger.rejected.push(format!("{what}: {why}"));
                }
            }
        }
    }
    // Entries a reachable target lacks are written to it again.
    for e in by_id.values() {
        let lacking: Vec<String> = held
            .iter()
            .filter(|(_, ids)| !ids.contains(&e.id))
            .map(|(t, _)| t.clone())
            .collect();
        if !lacking.is_empty() {
            let (written, _) = replicate(ctx, e, Some(&lacking)).await?;
            ledger.replicated += written.len();
        }
    }
    ledger.erasures = by_id.into_values().collect();
    ledger
        .erasures
        .sort_by(|a, b| (a.recorded_at, &a.id).cmp(&(b.recorded_at, &b.id)));
    Ok(ledger)
}

/// RFC 3339 to the millisecond, as the state store writes times.
pub fn time_text(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_parse_with_or_without_schema() {
        let s: SubjectArg = "clients.id=42".parse().expect("valid");
        assert_eq!(
            (s.table.as_str(), s.column.as_str(), s.key.as_str()),
            ("clients", "id", "42")
        );
        let s: SubjectArg = "public.clients.id = 42".parse().expect("valid");
        assert_eq!(s.table, "public.clients");
        assert!("clients=42".parse::<SubjectArg>().is_err());
        assert!("clients.id=".parse::<SubjectArg>().is_err());
    }

    #[test]
    fn a_sealed_entry_checks_and_an_altered_one_does_not() {
        let key = IntegrityKey::from_bytes(vec![7u8; 32], "test").expect("key");
        let e = Erasure {
            format: FORMAT.into(),
            id: new_id(Utc::now()),
            source: "billing".into(),
            subject: Subject {
                table: "public.clients".into(),
                column: "id".into(),
                key: "42".into(),
            },
            reason: Some("art. 17".into()),
            actor: "cli:root".into(),
            recorded_at: Utc::now(),
        };
        let doc = e.sealed(&key);
        assert_eq!(Erasure::unseal(&doc, &key).expect("checks"), e);
        let mut altered = doc.clone();
        altered["subject"]["key"] = Value::String("43".into());
        assert!(Erasure::unseal(&altered, &key).is_err());
        let other = IntegrityKey::from_bytes(vec![8u8; 32], "test").expect("key");
        assert!(Erasure::unseal(&doc, &other).is_err());
    }

    #[test]
    fn entries_round_trip_through_age() {
        let k = keys::generate();
        let recipients = keys::parse_recipients(std::slice::from_ref(&k.recipient)).expect("r");
        let sealed = encrypt(b"{\"a\":1}", &recipients).expect("encrypt");
        let identity: age::x25519::Identity = k.identity.parse().expect("identity");
        let ids: Identities = vec![Box::new(identity) as Box<dyn age::Identity + Send + Sync>];
        assert_eq!(decrypt(&sealed, &ids).expect("decrypt"), b"{\"a\":1}");
    }
}
